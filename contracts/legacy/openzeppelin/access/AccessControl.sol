// SPDX-License-Identifier: MIT
// Legacy-profile shim (see contracts/legacy/README.md): OpenZeppelin 4.9's AccessControl with
// OpenZeppelin 5's errors, so the ABI and the revert data are those of the default build.
pragma solidity ^0.8.11;

import {AccessControl as AccessControl49} from "@openzeppelin/contracts-4.9/access/AccessControl.sol";

abstract contract AccessControl is AccessControl49 {
    /// @dev The `account` is missing a role (OpenZeppelin 5's IAccessControl error).
    error AccessControlUnauthorizedAccount(address account, bytes32 neededRole);

    /// @dev The caller of {renounceRole} is not the account it names.
    error AccessControlBadConfirmation();

    function _checkRole(bytes32 role, address account) internal view virtual override {
        if (!hasRole(role, account)) revert AccessControlUnauthorizedAccount(account, role);
    }

    function renounceRole(bytes32 role, address callerConfirmation) public virtual override {
        if (callerConfirmation != _msgSender()) revert AccessControlBadConfirmation();
        _revokeRole(role, callerConfirmation);
    }
}
