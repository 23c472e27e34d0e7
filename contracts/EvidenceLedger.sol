// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.11;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

import {IEvidenceLedger} from "./interfaces/IEvidenceLedger.sol";
import {MerkleLog} from "./lib/MerkleLog.sol";
import {TallyRoles} from "./lib/TallyRoles.sol";

/**
 * @title EvidenceLedger
 * @notice Append-only checkpoints of Tally's RFC 9162 evidence log. `anchor` accepts a checkpoint
 * only when it strictly extends the latest one and an RFC 9162 consistency proof between the two
 * verifies here, on chain (SHA-256 precompile): the contract itself guarantees that the anchored
 * log only grows. `verifyInclusion` checks an entry's inclusion proof against any checkpoint.
 * Operators are the registry's `OPERATOR_ROLE` holders.
 * @dev The tree size is the operator's word. A consistency proof does not pin the new size
 * (the verifier reads the sizes only through the proof's shape: the proof from 4 to 6 leaves
 * also verifies "size 8" with the root of 6; half of all (old, real, claimed) size triples up
 * to 64 leaves verify), and the first checkpoint carries no proof. Only an operator can anchor
 * such a checkpoint, and it breaks only its own log (entries past the real size can never be
 * proven against it); `tally audit log` names it ("checkpoint k claims size n but its root is
 * the root of the first m leaves"). No cheap exact on-chain check exists, so none is made:
 * requiring the new last leaf's entry bytes (hashed here with 0x00) and its inclusion proof
 * at index treeSize - 1 costs 21,803-27,209 gas per anchor (+22-26% on 86,803-104,329, a
 * 563-byte receipt entry) and still pins only the number of bits set in treeSize - 1 (the
 * root of 6 leaves passes as size 7); an exact check needs a path down to an entry under
 * every left sibling of that path: O(log^2 n) hashes and up to log n entries per anchor.
 */
contract EvidenceLedger is IEvidenceLedger {
    struct Checkpoint {
        uint64 treeSize;
        uint64 blockNumber;
        uint64 timestamp;
        bytes32 rootHash;
    }

    /// @notice The ParticipantRegistry whose `OPERATOR_ROLE` may anchor.
    IAccessControl public immutable registry;

    Checkpoint[] private _checkpoints;

    constructor(address registry_) {
        if (registry_ == address(0)) revert EvidenceLedgerZeroAddress();
        registry = IAccessControl(registry_);
    }

    /// @inheritdoc IEvidenceLedger
    function anchor(uint64 treeSize, bytes32 rootHash, bytes32[] calldata consistencyProof) external {
        if (!registry.hasRole(TallyRoles.OPERATOR_ROLE, msg.sender)) {
            revert EvidenceLedgerUnauthorizedAccount(msg.sender, TallyRoles.OPERATOR_ROLE);
        }
        if (treeSize == 0) revert EvidenceLedgerEmptyTree();
        uint256 seq = _checkpoints.length;
        if (seq == 0) {
            if (consistencyProof.length != 0) revert EvidenceLedgerUnexpectedProof(consistencyProof.length);
        } else {
            // Strictly extend the latest checkpoint, proven from its (size, root).
            Checkpoint storage prev = _checkpoints[seq - 1];
            uint64 prevSize = prev.treeSize;
            if (treeSize <= prevSize) revert EvidenceLedgerNotExtending(prevSize, treeSize);
            if (!MerkleLog.verifyConsistency(prevSize, treeSize, prev.rootHash, rootHash, consistencyProof)) {
                revert EvidenceLedgerInconsistentCheckpoint(seq - 1, prevSize, treeSize, rootHash);
            }
        }

        _checkpoints.push(
            Checkpoint({
                treeSize: treeSize,
                blockNumber: uint64(block.number),
                timestamp: uint64(block.timestamp),
                rootHash: rootHash
            })
        );
        emit CheckpointAnchored(seq, treeSize, rootHash);
    }

    /// @inheritdoc IEvidenceLedger
    function count() external view returns (uint256) {
        return _checkpoints.length;
    }

    /// @inheritdoc IEvidenceLedger
    function checkpoint(
        uint256 seq
    ) external view returns (uint64 treeSize, bytes32 rootHash, uint64 blockNumber, uint64 timestamp) {
        Checkpoint storage c = _checkpointAt(seq);
        return (c.treeSize, c.rootHash, c.blockNumber, c.timestamp);
    }

    /// @inheritdoc IEvidenceLedger
    function latest()
        external
        view
        returns (uint256 seq, uint64 treeSize, bytes32 rootHash, uint64 blockNumber, uint64 timestamp)
    {
        uint256 n = _checkpoints.length;
        if (n == 0) revert EvidenceLedgerNoCheckpoint();
        Checkpoint storage c = _checkpoints[n - 1];
        return (n - 1, c.treeSize, c.rootHash, c.blockNumber, c.timestamp);
    }

    /// @inheritdoc IEvidenceLedger
    function verifyInclusion(
        uint256 seq,
        uint64 leafIndex,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) external view returns (bool) {
        Checkpoint storage c = _checkpointAt(seq);
        return MerkleLog.verifyInclusion(leafIndex, c.treeSize, leafHash, proof, c.rootHash);
    }

    /// @inheritdoc IEvidenceLedger
    function verifyConsistency(
        uint64 size1,
        uint64 size2,
        bytes32 root1,
        bytes32 root2,
        bytes32[] calldata proof
    ) external view returns (bool) {
        return MerkleLog.verifyConsistency(size1, size2, root1, root2, proof);
    }

    /// @inheritdoc IEvidenceLedger
    function rootFromInclusionProof(
        uint64 leafIndex,
        uint64 treeSize,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) external view returns (bool ok, bytes32 rootHash) {
        return MerkleLog.rootFromInclusionProof(leafIndex, treeSize, leafHash, proof);
    }

    /// @inheritdoc IEvidenceLedger
    function leafHashOf(bytes calldata data) external pure returns (bytes32) {
        return MerkleLog.leafHash(data);
    }

    /// @inheritdoc IEvidenceLedger
    function nodeHashOf(bytes32 left, bytes32 right) external view returns (bytes32) {
        return MerkleLog.nodeHash(left, right);
    }

    function _checkpointAt(uint256 seq) private view returns (Checkpoint storage) {
        uint256 n = _checkpoints.length;
        if (seq >= n) revert EvidenceLedgerUnknownCheckpoint(seq, n);
        return _checkpoints[seq];
    }
}
