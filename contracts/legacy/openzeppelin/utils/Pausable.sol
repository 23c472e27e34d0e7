// SPDX-License-Identifier: MIT
// Legacy-profile shim (see contracts/legacy/README.md): OpenZeppelin 4.9's Pausable (at
// security/ there) with OpenZeppelin 5's errors. Storage as in 5.x: `bool _paused` in slot 0.
pragma solidity ^0.8.11;

import {Pausable as Pausable49} from "@openzeppelin/contracts-4.9/security/Pausable.sol";

abstract contract Pausable is Pausable49 {
    /// @dev The operation failed because the contract is paused.
    error EnforcedPause();

    /// @dev The operation failed because the contract is not paused.
    error ExpectedPause();

    function _requireNotPaused() internal view virtual override {
        if (paused()) revert EnforcedPause();
    }

    function _requirePaused() internal view virtual override {
        if (!paused()) revert ExpectedPause();
    }
}
