// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title NaiveHashStore
 * @notice Benchmark baseline (not part of Tally): anchors evidence the naive way, one receipt
 * hash per transaction in its own storage slot. Compare with EvidenceLedger, which anchors a
 * whole log in one checkpoint.
 */
contract NaiveHashStore {
    /// @notice Block number at which `hash` was stored (0: never).
    mapping(bytes32 hash => uint256 blockNumber) public storedAt;

    /// @notice Store one receipt hash.
    function store(bytes32 hash) external {
        storedAt[hash] = block.number;
    }
}
