// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.11;

/**
 * @title IEvidenceLedger
 * @notice Append-only checkpoints `(treeSize, rootHash)` of Tally's RFC 9162 evidence log. Each
 * checkpoint after the first is accepted only with a consistency proof from the previous one,
 * verified on chain, so the anchored log can only grow: nothing anchored can be rewritten or
 * dropped. Hashes are SHA-256 (leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || l || r)).
 */
interface IEvidenceLedger {
    /// @notice Checkpoint `seq` (0, 1, 2, ...) of the log was anchored.
    event CheckpointAnchored(uint256 indexed seq, uint64 treeSize, bytes32 rootHash);

    /// @notice The registry address is zero.
    error EvidenceLedgerZeroAddress();
    /// @notice `account` lacks `role` on the registry.
    error EvidenceLedgerUnauthorizedAccount(address account, bytes32 role);
    /// @notice A checkpoint of the empty log (tree size 0) anchors nothing.
    error EvidenceLedgerEmptyTree();
    /// @notice The first checkpoint has no predecessor, so its consistency proof must be empty.
    error EvidenceLedgerUnexpectedProof(uint256 proofLength);
    /// @notice `treeSize` does not strictly extend the latest checkpoint's `previousSize`.
    error EvidenceLedgerNotExtending(uint64 previousSize, uint64 treeSize);
    /// @notice The consistency proof from checkpoint `previousSeq` to the new one does not verify.
    error EvidenceLedgerInconsistentCheckpoint(
        uint256 previousSeq,
        uint64 previousSize,
        uint64 treeSize,
        bytes32 rootHash
    );
    /// @notice No checkpoint `seq`: only `count` are anchored.
    error EvidenceLedgerUnknownCheckpoint(uint256 seq, uint256 count);
    /// @notice Nothing is anchored yet.
    error EvidenceLedgerNoCheckpoint();

    /**
     * @notice Anchor checkpoint `(treeSize, rootHash)` as the next sequence number.
     * @param consistencyProof RFC 9162 consistency proof from the latest checkpoint to this one;
     * empty for the first checkpoint.
     * @dev Requirements: caller has `OPERATOR_ROLE` on the registry; `treeSize > 0`; for the first
     * checkpoint an empty proof; otherwise `treeSize` greater than the latest checkpoint's size
     * and a proof that verifies. Emits {CheckpointAnchored}.
     */
    function anchor(uint64 treeSize, bytes32 rootHash, bytes32[] calldata consistencyProof) external;

    /// @notice How many checkpoints are anchored; valid sequence numbers are `0 .. count() - 1`.
    function count() external view returns (uint256);

    /**
     * @notice Checkpoint `seq`: log size, root, and the block that anchored it.
     * @dev Reverts with {EvidenceLedgerUnknownCheckpoint} when `seq >= count()`.
     */
    function checkpoint(
        uint256 seq
    ) external view returns (uint64 treeSize, bytes32 rootHash, uint64 blockNumber, uint64 timestamp);

    /**
     * @notice The latest checkpoint and its sequence number.
     * @dev Reverts with {EvidenceLedgerNoCheckpoint} when nothing is anchored.
     */
    function latest()
        external
        view
        returns (uint256 seq, uint64 treeSize, bytes32 rootHash, uint64 blockNumber, uint64 timestamp);

    /**
     * @notice Whether `proof` is an RFC 9162 inclusion proof of `leafHash` at `leafIndex` in the
     * tree of checkpoint `seq`. A wrong or malformed proof (any length) returns false.
     * @param leafHash the leaf hash SHA-256(0x00 || entry), not the entry itself.
     * @dev Reverts with {EvidenceLedgerUnknownCheckpoint} when `seq >= count()`.
     */
    function verifyInclusion(
        uint256 seq,
        uint64 leafIndex,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) external view returns (bool);

    /**
     * @notice RFC 9162 consistency check between any two trees (the algorithm `anchor` uses).
     * Never reverts on a bad proof: returns false. Equal sizes need an empty proof and equal
     * roots; size1 == 0 needs an empty proof and root1 == SHA-256("") (root2 is not checked).
     */
    function verifyConsistency(
        uint64 size1,
        uint64 size2,
        bytes32 root1,
        bytes32 root2,
        bytes32[] calldata proof
    ) external view returns (bool);

    /**
     * @notice The root an RFC 9162 inclusion proof leads to; `ok` is false when the proof's
     * length cannot fit (`leafIndex`, `treeSize`) or `leafIndex >= treeSize`.
     */
    function rootFromInclusionProof(
        uint64 leafIndex,
        uint64 treeSize,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) external view returns (bool ok, bytes32 rootHash);

    /// @notice SHA-256(0x00 || data): the leaf hash of a log entry.
    function leafHashOf(bytes calldata data) external pure returns (bytes32);

    /// @notice SHA-256(0x01 || left || right): an inner node of the log's tree.
    function nodeHashOf(bytes32 left, bytes32 right) external view returns (bytes32);
}
