// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.11;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {ISettlementVault} from "../interfaces/ISettlementVault.sol";

/**
 * @title VaultProbe
 * @notice Test helper (never deployed outside tests): everything the vault state-machine test
 * checks after each step, read in one `eth_call` instead of a dozen.
 */
contract VaultProbe {
    /// @notice One read of the vault: its token balance and aggregates, the `total`, `paid` and
    /// `status` of `roundIds`, the free vault balances and the token balances of `accounts`.
    struct State {
        uint256 vaultTokens;
        uint256 unallocated;
        uint64 settledUntil;
        bool pending;
        uint256 pendingId;
        uint256[] totals;
        uint256[] paids;
        uint8[] statuses;
        uint256[] freeBalances;
        uint256[] tokenBalances;
    }

    function read(
        ISettlementVault vault,
        uint256[] calldata roundIds,
        address[] calldata accounts
    ) external view returns (State memory s) {
        IERC20 token = vault.token();
        s.vaultTokens = token.balanceOf(address(vault));
        s.unallocated = vault.unallocated();
        s.settledUntil = vault.settledUntil();
        (s.pending, s.pendingId) = vault.pendingRound();
        s.totals = new uint256[](roundIds.length);
        s.paids = new uint256[](roundIds.length);
        s.statuses = new uint8[](roundIds.length);
        for (uint256 i = 0; i < roundIds.length; ++i) {
            ISettlementVault.Round memory r = vault.round(roundIds[i]);
            (s.totals[i], s.paids[i], s.statuses[i]) = (r.total, r.paid, uint8(r.status));
        }
        s.freeBalances = new uint256[](accounts.length);
        s.tokenBalances = new uint256[](accounts.length);
        for (uint256 i = 0; i < accounts.length; ++i) {
            s.freeBalances[i] = vault.balanceOf(accounts[i]);
            s.tokenBalances[i] = token.balanceOf(accounts[i]);
        }
    }
}
