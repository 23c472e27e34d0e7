// SPDX-License-Identifier: MIT
// Legacy-profile shim (see contracts/legacy/README.md): OpenZeppelin 5.4's safeTransfer and
// safeTransferFrom (the two Tally uses), same code and error; 4.9 reverts with strings.
pragma solidity ^0.8.11;

import {IERC20} from "@openzeppelin/contracts-4.9/token/ERC20/IERC20.sol";

library SafeERC20 {
    /// @dev An operation with an ERC-20 token failed.
    error SafeERC20FailedOperation(address token);

    /// @dev Transfer `value` of `token` from the calling contract to `to`; a token that returns
    /// nothing counts as successful when the call did not revert.
    function safeTransfer(IERC20 token, address to, uint256 value) internal {
        _callOptionalReturn(token, abi.encodeCall(token.transfer, (to, value)));
    }

    /// @dev Transfer `value` of `token` from `from` to `to` on the calling contract's allowance.
    function safeTransferFrom(IERC20 token, address from, address to, uint256 value) internal {
        _callOptionalReturn(token, abi.encodeCall(token.transferFrom, (from, to, value)));
    }

    /// @dev Call `token` with `data`: a revert bubbles up; returned data must be `true`; no
    /// returned data needs code at `token`.
    function _callOptionalReturn(IERC20 token, bytes memory data) private {
        uint256 returnSize;
        uint256 returnValue;
        /// @solidity memory-safe-assembly
        assembly {
            let success := call(gas(), token, 0, add(data, 0x20), mload(data), 0, 0x20)
            // bubble errors
            if iszero(success) {
                let ptr := mload(0x40)
                returndatacopy(ptr, 0, returndatasize())
                revert(ptr, returndatasize())
            }
            returnSize := returndatasize()
            returnValue := mload(0)
        }

        if (returnSize == 0 ? address(token).code.length == 0 : returnValue != 1) {
            revert SafeERC20FailedOperation(address(token));
        }
    }
}
