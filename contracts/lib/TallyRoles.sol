// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.11;

/**
 * @title TallyRoles
 * @notice The AccessControl role identifiers of Tally. They are granted and revoked on the
 * {ParticipantRegistry} only; the {EvidenceLedger} and the {SettlementVault} ask the registry
 * (`IAccessControl.hasRole`), so every role of a deployment lives in one place.
 */
library TallyRoles {
    /// @dev AccessControl's admin role: grants and revokes every other role, pauses the vault.
    bytes32 internal constant ADMIN_ROLE = 0x00;
    /// @dev Runs the data space: admits participants, anchors checkpoints, proposes rounds.
    bytes32 internal constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    /// @dev Checks the operator: may challenge any round during its challenge window.
    bytes32 internal constant AUDITOR_ROLE = keccak256("AUDITOR_ROLE");
    /// @dev Rules on disputed settlement rounds: upholds (cancels) or rejects a challenge. One
    /// role, not an on-chain k-of-n quorum: a quorum is a policy, and a multisig contract (a Safe,
    /// say) holding this role gives k-of-n without the vault carrying vote bookkeeping.
    bytes32 internal constant ARBITER_ROLE = keccak256("ARBITER_ROLE");
}
