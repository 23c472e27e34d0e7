// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.11;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";

/**
 * @title ParticipantRegistry
 * @notice Participants of a Tally data space and the roles of a deployment. The admin
 * (`DEFAULT_ADMIN_ROLE`) grants `OPERATOR_ROLE`, `AUDITOR_ROLE` and `ARBITER_ROLE` with
 * AccessControl's `grantRole` (events `RoleGranted` / `RoleRevoked`); operators admit, update, suspend and
 * reinstate participants. The EvidenceLedger and the SettlementVault read roles from here.
 */
contract ParticipantRegistry is AccessControl, IParticipantRegistry {
    // The roles are TallyRoles' (the ledger and the vault ask for those), spelled out here
    // because solc 0.8.11 (the legacy profile) takes no library constant as a constant's value.

    /// @notice Role of the operators.
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    /// @notice Role of the auditors.
    bytes32 public constant AUDITOR_ROLE = keccak256("AUDITOR_ROLE");
    /// @notice Role of the arbiters (rule on disputed settlement rounds).
    bytes32 public constant ARBITER_ROLE = keccak256("ARBITER_ROLE");

    /// @notice Participant role bit: provides data.
    uint8 public constant PROVIDER = 1;
    /// @notice Participant role bit: consumes data.
    uint8 public constant CONSUMER = 2;
    /// @notice Participant role bit: provides a service (compute, storage, brokerage).
    uint8 public constant SERVICE = 4;
    /// @notice All participant role bits.
    uint8 public constant ALL_ROLES = PROVIDER | CONSUMER | SERVICE;

    mapping(address => Participant) private _participants; // by account

    /// @param admin receives `DEFAULT_ADMIN_ROLE` (and nothing else: it grants the other roles).
    constructor(address admin) {
        if (admin == address(0)) revert ParticipantRegistryZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IParticipantRegistry
    function register(
        address account,
        uint8 roles,
        bytes32 identityHash,
        string calldata metadataURI
    ) external onlyRole(OPERATOR_ROLE) {
        if (account == address(0)) revert ParticipantRegistryZeroAddress();
        _checkRoles(roles);
        Participant storage p = _participants[account];
        if (p.status != Status.Unregistered) revert ParticipantRegistryAlreadyRegistered(account);

        p.roles = roles;
        p.status = Status.Active;
        p.registeredAt = uint64(block.number);
        p.identityHash = identityHash;
        p.metadataURI = metadataURI;
        emit ParticipantRegistered(account, roles, identityHash, metadataURI);
    }

    /// @inheritdoc IParticipantRegistry
    function update(
        address account,
        uint8 roles,
        bytes32 identityHash,
        string calldata metadataURI
    ) external onlyRole(OPERATOR_ROLE) {
        _checkRoles(roles);
        Participant storage p = _participants[account];
        if (p.status == Status.Unregistered) revert ParticipantRegistryNotRegistered(account);

        p.roles = roles;
        p.identityHash = identityHash;
        p.metadataURI = metadataURI;
        emit ParticipantUpdated(account, roles, identityHash, metadataURI);
    }

    /// @inheritdoc IParticipantRegistry
    function suspend(address account) external onlyRole(OPERATOR_ROLE) {
        Participant storage p = _participants[account];
        if (p.status == Status.Unregistered) revert ParticipantRegistryNotRegistered(account);
        if (p.status == Status.Suspended) revert ParticipantRegistryAlreadySuspended(account);

        p.status = Status.Suspended;
        emit ParticipantSuspended(account);
    }

    /// @inheritdoc IParticipantRegistry
    function reinstate(address account) external onlyRole(OPERATOR_ROLE) {
        Participant storage p = _participants[account];
        if (p.status == Status.Unregistered) revert ParticipantRegistryNotRegistered(account);
        if (p.status != Status.Suspended) revert ParticipantRegistryNotSuspended(account);

        p.status = Status.Active;
        emit ParticipantReinstated(account);
    }

    /// @inheritdoc IParticipantRegistry
    function isActive(address account) external view returns (bool) {
        return _participants[account].status == Status.Active;
    }

    /// @inheritdoc IParticipantRegistry
    function rolesOf(address account) external view returns (uint8) {
        return _participants[account].roles;
    }

    /// @inheritdoc IParticipantRegistry
    function participant(address account) external view returns (Participant memory) {
        return _participants[account];
    }

    /// @dev `roles` must be a non-empty subset of PROVIDER | CONSUMER | SERVICE.
    function _checkRoles(uint8 roles) private pure {
        if (roles == 0 || roles & ~ALL_ROLES != 0) revert ParticipantRegistryInvalidRoles(roles);
    }
}
