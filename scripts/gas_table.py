"""Print a markdown table of the gas Tally's contracts use, measured on the embedded chain.

    .venv/bin/python scripts/gas_table.py [--payees 1000] [--seed 1]

Rows: deployment of every contract; anchoring checkpoints with consistency proofs of growing
size; deposit, propose, challenge, cancel, finalize, sweep; and the claims of a round of
``--payees`` payees paid to fresh recipients (no prior token balance), in random order, next to
the same claims on ``MinimalDistributor`` (a bare single-root distributor, same tree and
recipients). Each claim is its own transaction, so every storage slot starts cold, as on a real
chain. Gas is the receipt's ``gasUsed``; nothing here depends on timing.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3.contract import Contract
from web3.types import TxReceipt

from service.bench.claims import compare_claims, fresh_accounts, random_payouts
from service.chain.client import Chain
from service.evidence import merkle
from service.settlement.payout_tree import PayoutTree, build_payout_tree

OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
AUDITOR_ROLE = keccak(text="AUDITOR_ROLE")
WINDOW_S = 3_600
EXPIRY_S = 30 * 86_400
TX_GAS = 5_000_000
UNLIMITED_ALLOWANCE = 2**256 - 1
ANCHOR_SIZES = (1_000, 1_024, 1_500, 10_000, 100_000, 1_000_000, 1_000_001)


@dataclass
class Row:
    operation: str
    gas: str
    note: str = ""


class Bench:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.rows: list[Row] = []
        self.admin, self.operator, self.auditor, self.consumer, self.claimer = chain.accounts[:5]

    def tx(self, fn: Any, sender: LocalAccount) -> TxReceipt:
        return self.chain.transact(fn, sender=sender, gas=TX_GAS)

    def deploy(self, name: str, *args: Any) -> Contract:
        contract, receipt = self.chain.deploy(name, *args, sender=self.admin)
        self.add(f"deploy {name}", receipt["gasUsed"])
        return contract

    def add(self, operation: str, gas: int | str, note: str = "") -> None:
        self.rows.append(Row(operation, f"{gas:,}" if isinstance(gas, int) else gas, note))


def anchor_rows(b: Bench, ledger: Contract) -> None:
    top = max(ANCHOR_SIZES)
    hashes = [merkle.leaf_hash(i.to_bytes(8, "big")) for i in range(top)]
    previous = 0
    for size in ANCHOR_SIZES:
        prefix = hashes[:size]
        proof = merkle.consistency_proof(prefix, previous) if previous else []
        receipt = b.tx(
            ledger.functions.anchor(size, merkle.root_from_leaf_hashes(prefix), proof), b.operator
        )
        what = "first checkpoint" if not previous else f"{previous:,} -> {size:,} leaves"
        b.add(f"anchor ({what})", receipt["gasUsed"], f"consistency proof of {len(proof)} hashes")
        previous = size


def summary(gas: Sequence[int]) -> str:
    return f"avg {statistics.fmean(gas):,.0f} / max {max(gas):,} / min {min(gas):,}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payees", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    chain = Chain.embedded()
    b = Bench(chain)
    registry = b.deploy("ParticipantRegistry", b.admin.address)
    ledger = b.deploy("EvidenceLedger", registry.address)
    token = b.deploy("DemoToken", "Tally Demo Token", "TDT", b.admin.address)
    vault = b.deploy(
        "SettlementVault", token.address, registry.address, ledger.address, WINDOW_S, EXPIRY_S
    )
    store = b.deploy("NaiveHashStore")
    b.tx(registry.functions.grantRole(OPERATOR_ROLE, b.operator.address), b.admin)
    b.tx(registry.functions.grantRole(AUDITOR_ROLE, b.auditor.address), b.admin)
    receipt = b.tx(
        registry.functions.register(b.consumer.address, 2, keccak(text="did"), "did:web:c.example"),
        b.operator,
    )
    b.add("register participant", receipt["gasUsed"])
    receipt = b.tx(store.functions.store(keccak(text="one receipt")), b.admin)
    b.add("NaiveHashStore.store (one receipt hash)", receipt["gasUsed"], "baseline for anchoring")

    anchor_rows(b, ledger)

    # The round: payees sorted by address, fresh recipients, amounts of about one token.
    round_id = 1
    payouts = random_payouts(args.payees, args.seed)
    tree: PayoutTree = build_payout_tree(round_id=round_id, payouts=payouts)
    funds = 3 * tree.total
    b.tx(token.functions.mint(b.consumer.address, funds), b.admin)
    b.tx(token.functions.approve(vault.address, UNLIMITED_ALLOWANCE), b.consumer)
    receipt = b.tx(vault.functions.deposit(funds), b.consumer)
    b.add("deposit", receipt["gasUsed"])

    policy = keccak(text="policy")
    uri = "ipfs://bafy-statement-of-round"
    receipt = b.tx(
        vault.functions.propose(round_id, tree.root, tree.total, 0, policy, uri), b.operator
    )
    b.add("propose", receipt["gasUsed"], f"statement URI of {len(uri)} bytes")
    receipt = b.tx(vault.functions.propose(2, tree.root, 1, 0, policy, uri), b.operator)
    receipt = b.tx(vault.functions.challenge(2, keccak(text="why")), b.auditor)
    b.add("challenge", receipt["gasUsed"])
    receipt = b.tx(vault.functions.cancel(2), b.operator)
    b.add("cancel", receipt["gasUsed"])
    chain.increase_time(WINDOW_S)
    receipt = b.tx(vault.functions.finalize(round_id), b.claimer)
    b.add("finalize", receipt["gasUsed"])

    # The same random leaves claimed from a MinimalDistributor (in a reverted snapshot, so
    # both see fresh recipients) and from the vault: service/bench/claims.py.
    gas = compare_claims(
        chain,
        token=token,
        vault=vault,
        tree=tree,
        round_id=round_id,
        admin=b.admin,
        claimer=b.claimer,
        seed=args.seed,
    )
    b.add("deploy MinimalDistributor", gas.baseline_deploy_gas)
    ours, baseline = gas.vault, gas.baseline
    n = len(tree)
    b.add(f"claim, {n:,}-payee round, fresh recipients", summary(ours), "SettlementVault")
    b.add(f"claim, {n:,}-payee tree, fresh recipients", summary(baseline), "MinimalDistributor")
    ratio = statistics.fmean(ours) / statistics.fmean(baseline)
    b.add("claim avg, vault / minimal", f"{ratio:.4f}", "goal <= 1.04")
    b.add("claim avg vs Uniswap merkle-distributor", f"{statistics.fmean(ours):,.0f}", "<= 78,598")

    # claimMany (two rounds, one payee) and sweep of unclaimed payouts.
    payee = tree.entries[0].account
    two = build_payout_tree(round_id=3, payouts={payee: 5, fresh_accounts(1, -1)[0]: 7})
    b.tx(vault.functions.propose(3, two.root, two.total, 0, policy, uri), b.operator)
    four = build_payout_tree(round_id=4, payouts={payee: 9, fresh_accounts(1, -2)[0]: 3})
    b.tx(vault.functions.propose(4, four.root, four.total, 0, policy, uri), b.operator)
    chain.increase_time(WINDOW_S)
    b.tx(vault.functions.finalize(3), b.claimer)
    b.tx(vault.functions.finalize(4), b.claimer)
    e3, e4 = two.entries[two.index_of(payee)], four.entries[four.index_of(payee)]
    receipt = b.tx(
        vault.functions.claimMany(
            [3, 4], [e3.index, e4.index], payee, [e3.amount, e4.amount], [e3.proof, e4.proof]
        ),
        b.claimer,
    )
    b.add("claimMany (2 rounds, 1 transfer)", receipt["gasUsed"])
    chain.increase_time(EXPIRY_S)
    left = [two.entries[1 - e3.index]]
    receipt = b.tx(
        vault.functions.sweep(3, [(e.index, e.account, e.amount, list(e.proof)) for e in left]),
        b.operator,
    )
    b.add("sweep (1 unclaimed payout)", receipt["gasUsed"])
    receipt = b.tx(vault.functions.pause(), b.admin)
    b.add("pause", receipt["gasUsed"])

    print("| operation | gas | note |")
    print("|---|---:|---|")
    for row in b.rows:
        print(f"| {row.operation} | {row.gas} | {row.note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
