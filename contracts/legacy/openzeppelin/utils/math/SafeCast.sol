// SPDX-License-Identifier: MIT
// Legacy-profile shim (see contracts/legacy/README.md): the one SafeCast function Tally uses,
// as OpenZeppelin 5.4 writes it (4.9 reverts with a string).
pragma solidity ^0.8.11;

library SafeCast {
    /// @dev Value doesn't fit in an uint of `bits` size.
    error SafeCastOverflowedUintDowncast(uint8 bits, uint256 value);

    /// @dev `value` as a uint64; reverts with {SafeCastOverflowedUintDowncast} when it does not fit.
    function toUint64(uint256 value) internal pure returns (uint64) {
        if (value > type(uint64).max) {
            revert SafeCastOverflowedUintDowncast(64, value);
        }
        return uint64(value);
    }
}
