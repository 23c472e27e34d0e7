"""The indexer on the embedded chain (eth-tester): events read from receipts, reorgs too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from service.chain.client import Chain
from service.chain.deploy import deploy_tally
from service.db import create_schema, make_engine
from service.indexer import handlers
from service.indexer.runner import Indexer
from service.indexer.source import ReceiptSource
from service.settlement.payout_tree import build_payout_tree
from tests.indexer.helpers import (
    UNIT,
    anchor_checkpoints,
    dump,
    mirror_events,
    reference_events,
    rows,
)


def _index(chain: Chain, engine: Engine, deployment: Any) -> Any:
    return Indexer(
        source=ReceiptSource(chain.w3),
        engine=engine,
        deployment=deployment,
        network="embedded",
        max_range=7,
    ).run()


def test_embedded_chain_mirror_and_reorg(chain: Chain, engine: Engine, tmp_path: Path) -> None:
    acc = chain.accounts
    admin, prov, cons = acc[0], acc[1], acc[2]
    t = deploy_tally(chain, admin=admin, challenge_window_s=0, network="embedded")
    reg, vault, token = t.registry, t.vault, t.token
    chain.transact(reg.functions.register(prov.address, 1, b"\x01" * 32, "p"), sender=admin)
    chain.transact(reg.functions.register(cons.address, 2, b"\x02" * 32, "c"), sender=admin)
    anchor_checkpoints(chain, t.ledger, admin, [3, 5])
    chain.transact(token.functions.mint(admin.address, 100 * UNIT), sender=admin)
    chain.transact(token.functions.approve(vault.address, 2**256 - 1), sender=admin)
    chain.transact(vault.functions.deposit(50 * UNIT), sender=admin)
    tree = build_payout_tree(round_id=1, payouts={prov.address: 4 * UNIT, cons.address: 6 * UNIT})
    chain.transact(
        vault.functions.propose(
            1, tree.root, tree.total, 1, bytes(32), 0, 1, [(admin.address, tree.total)], "s"
        ),
        sender=admin,
    )
    chain.transact(vault.functions.finalize(1), sender=admin)
    fork = chain.snapshot()
    e = tree.entries[tree.index_of(prov.address)]
    chain.transact(
        vault.functions.claim(1, e.index, e.account, e.amount, list(e.proof)), sender=admin
    )
    chain.transact(reg.functions.suspend(prov.address), sender=admin)
    chain.transact(vault.functions.depositFor(cons.address, 5 * UNIT), sender=admin)
    dep = t.deployment
    assert dep.chain_id > 2**32  # eth-tester's chain id needs 64-bit columns

    summary = _index(chain, engine, dep)
    head = chain.w3.eth.block_number
    assert summary.cursor == head and summary.ranges > 1
    assert mirror_events(engine, dep.chain_id) == reference_events(chain, dep, head)
    (round_row,) = rows(engine, handlers.T_ROUNDS)
    assert (round_row["claimed_total"], round_row["status"]) == (4 * UNIT, "finalized")
    balances = {b["account"]: b["balance"] for b in rows(engine, handlers.T_BALANCES)}
    assert balances == {admin.address.lower(): 40 * UNIT, cons.address.lower(): 5 * UNIT}

    # the last three blocks are replaced by one other block: a reorg of depth 3
    chain.revert(fork)
    chain.transact(reg.functions.update(prov.address, 7, b"\x03" * 32, "p2"), sender=admin)
    summary = _index(chain, engine, dep)
    assert [r["depth"] for r in summary.reorgs] == [3]
    head = chain.w3.eth.block_number
    assert mirror_events(engine, dep.chain_id) == reference_events(chain, dep, head)
    (round_row,) = rows(engine, handlers.T_ROUNDS)
    assert (round_row["claimed_total"], round_row["claim_count"]) == (0, 0)
    assert rows(engine, handlers.T_CLAIMS) == []
    balances = {b["account"]: b["balance"] for b in rows(engine, handlers.T_BALANCES)}
    assert balances == {admin.address.lower(): 40 * UNIT}  # the orphaned deposit is gone
    parts = {p["account"]: p for p in rows(engine, handlers.T_PARTICIPANTS)}
    assert (parts[prov.address.lower()]["roles"], parts[prov.address.lower()]["suspended"]) == (
        7,
        False,
    )

    fresh = make_engine(f"sqlite:///{tmp_path}/fresh.db")
    create_schema(fresh)
    _index(chain, fresh, dep)
    assert dump(engine) == dump(fresh)
    fresh.dispose()
