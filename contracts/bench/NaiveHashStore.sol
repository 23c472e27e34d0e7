// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.11;

/**
 * @title NaiveHashStore
 * @notice Benchmark baseline (not part of Tally): anchors evidence the naive way, one receipt
 * hash per transaction in its own storage slot. Compare with EvidenceLedger, which anchors a
 * whole log in one checkpoint.
 */
contract NaiveHashStore {
    mapping(bytes32 => uint256) private _storedAt; // receipt hash => block number

    /// @notice Block number at which `hash` was stored (0: never).
    function storedAt(bytes32 hash) external view returns (uint256 blockNumber) {
        return _storedAt[hash];
    }

    /// @notice Store one receipt hash.
    function store(bytes32 hash) external {
        _storedAt[hash] = block.number;
    }
}
