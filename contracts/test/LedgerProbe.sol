// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.11;

import {IEvidenceLedger} from "../interfaces/IEvidenceLedger.sol";

/**
 * @title LedgerProbe
 * @notice Test helper (never deployed outside tests): asks a deployed EvidenceLedger's proof
 * verifiers about many cases in one `eth_call`, so property tests can compare hundreds of
 * answers with the Python module without paying a call each.
 */
contract LedgerProbe {
    struct ConsistencyCase {
        uint64 size1;
        uint64 size2;
        bytes32 root1;
        bytes32 root2;
        bytes32[] proof;
    }

    struct InclusionCase {
        uint64 leafIndex;
        uint64 treeSize;
        bytes32 leafHash;
        bytes32[] proof;
        bytes32 root;
    }

    /// @notice `ledger.verifyConsistency` of each case.
    function consistency(
        IEvidenceLedger ledger,
        ConsistencyCase[] calldata cases
    ) external view returns (bool[] memory out) {
        out = new bool[](cases.length);
        for (uint256 i = 0; i < cases.length; ++i) {
            ConsistencyCase calldata c = cases[i];
            out[i] = ledger.verifyConsistency(c.size1, c.size2, c.root1, c.root2, c.proof);
        }
    }

    /// @notice Whether `ledger.rootFromInclusionProof` of each case is ok and equals its root.
    function inclusion(
        IEvidenceLedger ledger,
        InclusionCase[] calldata cases
    ) external view returns (bool[] memory out) {
        out = new bool[](cases.length);
        for (uint256 i = 0; i < cases.length; ++i) {
            InclusionCase calldata c = cases[i];
            (bool ok, bytes32 root) = ledger.rootFromInclusionProof(c.leafIndex, c.treeSize, c.leafHash, c.proof);
            out[i] = ok && root == c.root;
        }
    }
}
