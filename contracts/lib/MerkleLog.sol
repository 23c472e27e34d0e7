// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.11;

/**
 * @title MerkleLog
 * @notice Verifiers for RFC 9162 (Certificate Transparency v2) Merkle tree proofs, with SHA-256
 * from the precompile at address 0x02: leaf = SHA-256(0x00 || data), node = SHA-256(0x01 ||
 * left || right). The trees are those of Certificate Transparency, Trillian and Sigstore.
 *
 * The verifiers never revert on a bad proof (wrong length, wrong hashes, index out of range):
 * they return false. Edge cases (as Tally's Python module `service/evidence/merkle.py`): a
 * consistency proof between equal sizes is empty and the roots must be equal; every tree is
 * consistent with the empty tree (size 0, root SHA-256("")), with an empty proof.
 */
library MerkleLog {
    /// @notice Root of the empty tree: SHA-256("") (RFC 9162 section 2.1.1).
    bytes32 internal constant EMPTY_ROOT = 0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855;

    /// @dev The SHA-256 precompile failed (it only does when it runs out of gas).
    error MerkleLogHashFailed();

    /// @notice SHA-256(0x00 || data): the hash of one log entry.
    function leafHash(bytes memory data) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x00), data));
    }

    /// @notice SHA-256(0x01 || left || right): the hash of an inner node.
    function nodeHash(bytes32 left, bytes32 right) internal view returns (bytes32 result) {
        bool ok;
        /// @solidity memory-safe-assembly
        assembly {
            // 65 bytes of scratch past the free memory pointer (not allocated: used once, here).
            let ptr := mload(0x40)
            mstore8(ptr, 0x01)
            mstore(add(ptr, 0x01), left)
            mstore(add(ptr, 0x21), right)
            ok := staticcall(gas(), 0x02, ptr, 0x41, 0x00, 0x20)
            result := mload(0x00)
        }
        if (!ok) revert MerkleLogHashFailed();
    }

    /**
     * @notice The root that an inclusion proof leads to (RFC 9162 section 2.1.3.2).
     * @return ok False when the proof cannot be valid for (`index`, `size`): index out of range,
     * or a path too long or too short. `root` is meaningful only when `ok`.
     */
    function rootFromInclusionProof(
        uint64 index,
        uint64 size,
        bytes32 leaf,
        bytes32[] calldata proof
    ) internal view returns (bool ok, bytes32 root) {
        if (index >= size) return (false, bytes32(0));
        uint64 fn = index;
        uint64 sn = size - 1;
        root = leaf;
        for (uint256 i = 0; i < proof.length; ++i) {
            if (sn == 0) return (false, bytes32(0)); // path longer than the tree is high
            bytes32 p = proof[i];
            if (fn & 1 == 1 || fn == sn) {
                root = nodeHash(p, root);
                if (fn & 1 == 0) {
                    while (fn & 1 == 0 && fn != 0) {
                        fn >>= 1;
                        sn >>= 1;
                    }
                }
            } else {
                root = nodeHash(root, p);
            }
            fn >>= 1;
            sn >>= 1;
        }
        if (sn != 0) return (false, bytes32(0)); // path too short
        return (true, root);
    }

    /// @notice Whether `proof` proves that `leaf` sits at `index` in the tree of `size` leaves
    /// whose root is `root` (RFC 9162 section 2.1.3.2).
    function verifyInclusion(
        uint64 index,
        uint64 size,
        bytes32 leaf,
        bytes32[] calldata proof,
        bytes32 root
    ) internal view returns (bool) {
        (bool ok, bytes32 computed) = rootFromInclusionProof(index, size, leaf, proof);
        return ok && computed == root;
    }

    /**
     * @notice Whether `proof` proves that the tree of `size2` leaves with root `root2` extends
     * the tree of `size1` leaves with root `root1` (RFC 9162 section 2.1.4.2).
     * @dev `size1 > size2` is never consistent. `size1 == size2` needs an empty proof and equal
     * roots; `size1 == 0` needs an empty proof and `root1 == EMPTY_ROOT` (`root2` is then not
     * checked at all: the caller must check it by other means).
     */
    function verifyConsistency(
        uint64 size1,
        uint64 size2,
        bytes32 root1,
        bytes32 root2,
        bytes32[] calldata proof
    ) internal view returns (bool) {
        if (size1 > size2) return false;
        if (size1 == size2) return proof.length == 0 && root1 == root2;
        if (size1 == 0) return proof.length == 0 && root1 == EMPTY_ROOT;
        // 1. An empty path proves nothing between two different non-empty sizes.
        if (proof.length == 0) return false;
        // 2. + 5. When size1 is a power of two, root1 is the implicit first element of the path.
        bytes32 fr;
        bytes32 sr;
        uint256 i;
        if (size1 & (size1 - 1) == 0) {
            fr = root1;
            sr = root1;
        } else {
            fr = proof[0];
            sr = proof[0];
            i = 1;
        }
        // 3. + 4. Start at the last leaf of the old tree, above its complete right subtrees.
        uint64 fn = size1 - 1;
        uint64 sn = size2 - 1;
        while (fn & 1 == 1) {
            fn >>= 1;
            sn >>= 1;
        }
        // 6. Rebuild both roots from the remaining path.
        for (; i < proof.length; ++i) {
            if (sn == 0) return false; // path too long
            bytes32 c = proof[i];
            if (fn & 1 == 1 || fn == sn) {
                fr = nodeHash(c, fr);
                sr = nodeHash(c, sr);
                if (fn & 1 == 0) {
                    while (fn & 1 == 0 && fn != 0) {
                        fn >>= 1;
                        sn >>= 1;
                    }
                }
            } else {
                sr = nodeHash(sr, c);
            }
            fn >>= 1;
            sn >>= 1;
        }
        // 7. Both roots rebuilt, and the path reached the top of the new tree.
        return sn == 0 && fr == root1 && sr == root2;
    }
}
