// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.11;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

/**
 * @title IParticipantRegistry
 * @notice Who takes part in a Tally data space, in which capacities, and whether they are in good
 * standing. Operator and auditor are AccessControl roles (`OPERATOR_ROLE`, `AUDITOR_ROLE`, admin
 * `DEFAULT_ADMIN_ROLE`); provider, consumer and service are a bitmask per participant.
 */
interface IParticipantRegistry is IAccessControl {
    /// @notice Standing of a participant.
    enum Status {
        Unregistered,
        Active,
        Suspended
    }

    /// @notice One participant's record.
    struct Participant {
        uint8 roles; // bitmask of PROVIDER (1), CONSUMER (2), SERVICE (4)
        Status status;
        uint64 registeredAt; // block number of registration
        bytes32 identityHash; // e.g. keccak256 of a DID document or of a legal identifier
        string metadataURI;
    }

    /// @notice `participant` was admitted with the given roles and identity.
    event ParticipantRegistered(
        address indexed participant,
        uint8 roles,
        bytes32 identityHash,
        string metadataURI
    );
    /// @notice `participant`'s roles, identity hash or metadata URI were replaced.
    event ParticipantUpdated(
        address indexed participant,
        uint8 roles,
        bytes32 identityHash,
        string metadataURI
    );
    /// @notice `participant` was suspended: no longer active.
    event ParticipantSuspended(address indexed participant);
    /// @notice `participant` was reinstated: active again.
    event ParticipantReinstated(address indexed participant);

    /// @notice The zero address cannot be a participant.
    error ParticipantRegistryZeroAddress();
    /// @notice `roles` is empty or has bits outside PROVIDER | CONSUMER | SERVICE.
    error ParticipantRegistryInvalidRoles(uint8 roles);
    /// @notice `participant` is registered already.
    error ParticipantRegistryAlreadyRegistered(address participant);
    /// @notice `participant` is not registered.
    error ParticipantRegistryNotRegistered(address participant);
    /// @notice `participant` is suspended already.
    error ParticipantRegistryAlreadySuspended(address participant);
    /// @notice `participant` is not suspended.
    error ParticipantRegistryNotSuspended(address participant);

    /**
     * @notice Admit `participant` with `roles`, an identity hash and a metadata URI.
     * @dev Requirements: caller has `OPERATOR_ROLE`; `participant` is not the zero address and
     * not registered; `roles` is a non-empty subset of PROVIDER | CONSUMER | SERVICE.
     * Emits {ParticipantRegistered}.
     */
    function register(
        address participant,
        uint8 roles,
        bytes32 identityHash,
        string calldata metadataURI
    ) external;

    /**
     * @notice Replace the roles, identity hash and metadata URI of `participant`; its status
     * (active or suspended) and registration block stay.
     * @dev Requirements: caller has `OPERATOR_ROLE`; `participant` is registered; `roles` as in
     * {register}. Emits {ParticipantUpdated}.
     */
    function update(
        address participant,
        uint8 roles,
        bytes32 identityHash,
        string calldata metadataURI
    ) external;

    /**
     * @notice Suspend `participant`: {isActive} turns false (it may no longer challenge rounds,
     * and the off-chain service refuses its evidence).
     * @dev Requirements: caller has `OPERATOR_ROLE`; `participant` is active.
     * Emits {ParticipantSuspended}.
     */
    function suspend(address participant) external;

    /**
     * @notice Reinstate a suspended `participant`.
     * @dev Requirements: caller has `OPERATOR_ROLE`; `participant` is suspended.
     * Emits {ParticipantReinstated}.
     */
    function reinstate(address participant) external;

    /// @notice Whether `account` is registered and not suspended.
    function isActive(address account) external view returns (bool);

    /// @notice The role bitmask of `account` (0 when unregistered; kept while suspended).
    function rolesOf(address account) external view returns (uint8);

    /// @notice The whole record of `account` (all zero, status Unregistered, when unknown).
    function participant(address account) external view returns (Participant memory);
}
