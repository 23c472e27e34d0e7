// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.11;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/**
 * @title DemoToken
 * @notice A plain OpenZeppelin ERC-20 (18 decimals) for the demo and the tests; only its owner
 * mints.
 */
contract DemoToken is ERC20, Ownable {
    constructor(string memory name_, string memory symbol_, address owner_) ERC20(name_, symbol_) Ownable(owner_) {}

    /**
     * @notice Create `amount` tokens for `to`.
     * @dev Requirements: caller is the owner; `to` is not the zero address. Emits {Transfer}.
     */
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
