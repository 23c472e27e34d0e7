"""Print a markdown table of the gas Tally's contracts use, per build profile and node.

    .venv/bin/python scripts/gas_table.py [--payees 1000] [--seed 1] [--no-istanbul]

Rows: deployment of every contract; anchoring checkpoints with consistency proofs of growing
size; deposit, depositFor, withdrawal request and withdrawal; propose (one and three debits),
challenge, resolve (rejected, upheld), cancel, finalize, sweep; and the claims of a round of
``--payees`` payees paid to fresh recipients (no prior token balance), in random order, next to
the same claims on ``MinimalDistributor`` (a bare single-root distributor, same tree and
recipients). Each claim is its own transaction, so every storage slot starts cold, as on a real
chain. Gas is the receipt's ``gasUsed``; nothing here depends on timing.

Columns: the default build on the embedded chain; the legacy build (solc 0.8.11, OpenZeppelin
4.9, istanbul) on the same embedded chain, so the difference is the older compiler's alone; and
(unless ``--no-istanbul``) the legacy build on anvil started like a FISCO BCOS-class node
(``--hardfork istanbul --gas-price 0``: no EIP-2929 warm/cold pricing, EIP-2200 storage costs),
the gas such a chain meters. The same operations run in the same order on each.
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

from service.bench.claims import (
    GOAL_GAS_AVG,
    GOAL_RATIO,
    compare_claims,
    fresh_accounts,
    random_payouts,
)
from service.chain.client import Chain
from service.chain.config import at_rpc_url, load_network
from service.chain.devnode import LEGACY_NODE, Anvil
from service.evidence import merkle
from service.settlement.payout_tree import PayoutTree, build_payout_tree

OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
AUDITOR_ROLE = keccak(text="AUDITOR_ROLE")
ARBITER_ROLE = keccak(text="ARBITER_ROLE")
WINDOW_S = 3_600
EXPIRY_S = 30 * 86_400
DELAY_S = 7 * 86_400
PERIOD_S = 86_400
TX_GAS = 5_000_000
UNLIMITED_ALLOWANCE = 2**256 - 1
ANCHOR_SIZES = (1_000, 1_024, 1_500, 10_000, 100_000, 1_000_000, 1_000_001)


@dataclass
class Row:
    operation: str
    gas: str
    note: str = ""


COLUMNS = (
    "default (0.8.30, paris)",
    "legacy (0.8.11, istanbul build)",
    "legacy on an istanbul node",
)


class Bench:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.rows: list[Row] = []
        self.admin, self.operator, self.auditor, self.consumer, self.claimer = chain.accounts[:5]
        self.arbiter = chain.accounts[5]

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


def measure(chain: Chain, args: argparse.Namespace) -> list[Row]:
    """Every row of the table, measured on ``chain`` (with its network's build profile)."""
    b = Bench(chain)
    registry = b.deploy("ParticipantRegistry", b.admin.address)
    ledger = b.deploy("EvidenceLedger", registry.address)
    token = b.deploy("DemoToken", "Tally Demo Token", "TDT", b.admin.address)
    vault = b.deploy(
        "SettlementVault",
        token.address,
        registry.address,
        ledger.address,
        WINDOW_S,
        EXPIRY_S,
        DELAY_S,
    )
    store = b.deploy("NaiveHashStore")
    b.tx(registry.functions.grantRole(OPERATOR_ROLE, b.operator.address), b.admin)
    b.tx(registry.functions.grantRole(AUDITOR_ROLE, b.auditor.address), b.admin)
    b.tx(registry.functions.grantRole(ARBITER_ROLE, b.arbiter.address), b.admin)
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
    b.add("deposit", receipt["gasUsed"], "first deposit of the account")
    # Two more consumers funded by the admin (depositFor), for a round of three debits.
    others = sorted(fresh_accounts(2, -3), key=str.lower)
    b.tx(token.functions.mint(b.admin.address, 2 * 10**18), b.admin)
    b.tx(token.functions.approve(vault.address, UNLIMITED_ALLOWANCE), b.admin)
    for other in others:
        receipt = b.tx(vault.functions.depositFor(other, 10**18), b.admin)
    b.add("depositFor", receipt["gasUsed"], "first deposit of the account")

    policy = keccak(text="policy")
    uri = "ipfs://bafy-statement-of-round"

    def propose(rid: int, root: bytes, total: int, debits: list[tuple[str, int]]) -> TxReceipt:
        start = int(chain.call(vault.functions.settledUntil()))
        fn = vault.functions.propose(
            rid, root, total, 0, policy, start, start + PERIOD_S, debits, uri
        )
        return b.tx(fn, b.operator)

    def one_debit(total: int) -> list[tuple[str, int]]:
        return [(b.consumer.address, total)]

    finding = keccak(text="finding")
    no_proof: list[bytes] = []
    # A disputed round: the arbiter rejects the challenge, the operator cancels in the window.
    propose(2, tree.root, 1, one_debit(1))
    receipt = b.tx(vault.functions.challenge(2, finding, 0, 0, no_proof), b.auditor)
    b.add("challenge", receipt["gasUsed"], "by an auditor")
    receipt = b.tx(vault.functions.resolve(2, False, keccak(text="rejected")), b.arbiter)
    b.add("resolve, rejected", receipt["gasUsed"], "round back to Proposed")
    receipt = b.tx(vault.functions.cancel(2), b.operator)
    b.add("cancel", receipt["gasUsed"], "1 debit refunded")
    # A disputed round the arbiter upholds.
    propose(5, tree.root, 1, one_debit(1))
    b.tx(vault.functions.challenge(5, finding, 0, 0, no_proof), b.auditor)
    receipt = b.tx(vault.functions.resolve(5, True, keccak(text="upheld")), b.arbiter)
    b.add("resolve, upheld", receipt["gasUsed"], "cancels, 1 debit refunded")

    receipt = propose(round_id, tree.root, tree.total, one_debit(tree.total))
    b.add("propose", receipt["gasUsed"], f"1 debit, statement URI of {len(uri)} bytes")
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
    b.add("claim avg, vault / minimal", f"{ratio:.4f}", f"goal <= {GOAL_RATIO}")
    b.add(
        "claim avg vs Uniswap merkle-distributor",
        f"{statistics.fmean(ours):,.0f}",
        f"<= {GOAL_GAS_AVG:,}",
    )

    # claimMany (two rounds, one payee); a round of three debits; sweeps.
    payee = tree.entries[0].account
    two = build_payout_tree(round_id=3, payouts={payee: 5, fresh_accounts(1, -1)[0]: 7})
    four = build_payout_tree(round_id=4, payouts={payee: 9, fresh_accounts(1, -2)[0]: 3})
    for rid, t in ((3, two), (4, four)):
        propose(rid, t.root, t.total, one_debit(t.total))
        chain.increase_time(WINDOW_S)
        b.tx(vault.functions.finalize(rid), b.claimer)
    e3, e4 = two.entries[two.index_of(payee)], four.entries[four.index_of(payee)]
    receipt = b.tx(
        vault.functions.claimMany(
            [3, 4], [e3.index, e4.index], payee, [e3.amount, e4.amount], [e3.proof, e4.proof]
        ),
        b.claimer,
    )
    b.add("claimMany (2 rounds, 1 transfer)", receipt["gasUsed"])
    funders = sorted([b.consumer.address, *others], key=str.lower)
    six = build_payout_tree(round_id=6, payouts={fresh_accounts(1, -4)[0]: 2})
    receipt = propose(6, six.root, 3 * 10**17, [(a, 10**17) for a in funders])
    b.add("propose", receipt["gasUsed"], "3 debits")
    chain.increase_time(WINDOW_S)
    b.tx(vault.functions.finalize(6), b.claimer)
    chain.increase_time(EXPIRY_S)
    receipt = b.tx(vault.functions.sweep(3), b.operator)
    b.add("sweep", receipt["gasUsed"], "1 funder credited")
    receipt = b.tx(vault.functions.sweep(6), b.operator)
    b.add("sweep", receipt["gasUsed"], "3 funders credited")

    receipt = b.tx(vault.functions.requestWithdrawal(10**18), b.consumer)
    b.add("requestWithdrawal", receipt["gasUsed"])
    chain.increase_time(DELAY_S)
    receipt = b.tx(vault.functions.withdraw(), b.consumer)
    b.add("withdraw", receipt["gasUsed"], "after the notice")
    receipt = b.tx(vault.functions.pause(), b.admin)
    b.add("pause", receipt["gasUsed"])

    return b.rows


def _on_istanbul_node(args: argparse.Namespace) -> list[Row]:
    node = Anvil(accounts=10, **LEGACY_NODE).start()
    try:
        network = at_rpc_url(load_network("anvil-legacy"), node.url)
        return measure(Chain.connect(network), args)
    finally:
        node.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payees", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-istanbul", action="store_true", help="skip the istanbul anvil column")
    args = parser.parse_args(argv)

    tables = [
        measure(Chain.embedded(), args),
        measure(Chain.embedded(profile="legacy"), args),
    ]
    if not args.no_istanbul:
        tables.append(_on_istanbul_node(args))
    for other in tables[1:]:
        assert [r.operation for r in other] == [r.operation for r in tables[0]]

    heads = COLUMNS[: len(tables)]
    print("| operation | " + " | ".join(heads) + " | note |")
    print("|---|" + "---:|" * len(heads) + "---|")
    for rows in zip(*tables, strict=True):
        cells = " | ".join(r.gas for r in rows)
        print(f"| {rows[0].operation} | {cells} | {rows[0].note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
