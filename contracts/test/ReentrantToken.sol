// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.11;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/**
 * @title ReentrantToken
 * @notice Test helper (never deployed outside tests): an ERC-20 that, once armed, calls `target`
 * with `payload` in the middle of its next transfer out of `target`, the way a token with
 * transfer hooks could re-enter the vault. It records the outcome instead of failing.
 */
contract ReentrantToken is ERC20 {
    address public target;
    bytes public payload;
    bool public armed;
    bool public reentrySucceeded;
    bytes public reentryReturnData;

    event ReentryAttempted(bool success, bytes returnData);

    constructor() ERC20("Reentrant", "RNT") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
        armed = true;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (armed && from == target) {
            armed = false;
            (bool ok, bytes memory ret) = target.call(payload);
            reentrySucceeded = ok;
            reentryReturnData = ret;
            emit ReentryAttempted(ok, ret);
        }
    }
}
