// SPDX-License-Identifier: MIT
// Legacy-profile shim (see contracts/legacy/README.md): OpenZeppelin 5.4's ERC-6093 errors for
// ERC-20 tokens (not in 4.9).
pragma solidity ^0.8.11;

interface IERC20Errors {
    error ERC20InsufficientBalance(address sender, uint256 balance, uint256 needed);
    error ERC20InvalidSender(address sender);
    error ERC20InvalidReceiver(address receiver);
    error ERC20InsufficientAllowance(address spender, uint256 allowance, uint256 needed);
    error ERC20InvalidApprover(address approver);
    error ERC20InvalidSpender(address spender);
}
