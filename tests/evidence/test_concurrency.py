"""Several processes, each with its own engine, append at once: the database serializes
them into one gap-free, duplicate-free log whose root is over the stored leaves."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest

from service.chain.client import Chain
from service.chain.config import rpc_network
from service.chain.devnode import Anvil
from service.db import create_schema, make_engine
from service.evidence.directory import ChainDirectory
from service.evidence.eip712 import Domain
from service.evidence.log import append_entries
from service.evidence.merkle import leaf_hash
from tests.evidence.test_crash import assert_log_sound, signed_receipts
from tests.evidence.test_log import agreement, ingest
from tests.space import Space, build_space

WORKERS = 4
BATCHES = 4
BATCH = 15


@pytest.fixture(scope="module")
def anvil_space(anvil: Anvil) -> Iterator[Space]:
    chain = Chain.connect(rpc_network(anvil.url, chain_id=31337))
    snap = chain.snapshot()
    yield build_space(chain)
    chain.revert(snap)


def _worker(
    worker: int,
    rpc: str,
    registry: str,
    ledger: str,
    db_url: str,
    barrier: Barrier,
    out: Any,
) -> None:
    """Append BATCHES batches of distinct receipts; report (entry id, leaf index) per batch."""
    chain = Chain.connect(rpc_network(rpc, chain_id=31337))
    domain = Domain(chain_id=chain.chain_id, verifying_contract=ledger)
    directory = ChainDirectory(chain, chain.contract("ParticipantRegistry", registry))
    engine = make_engine(db_url)
    first = 1_000 * (worker + 1)
    batches = [
        signed_receipts(domain, range(first + b * BATCH, first + (b + 1) * BATCH))
        for b in range(BATCHES)
    ]
    done: list[list[tuple[str, str, int | None]]] = []
    barrier.wait(timeout=60)  # everyone starts appending together
    for batch in batches:
        results = append_entries(engine=engine, domain=domain, directory=directory, entries=batch)
        done.append([(r.status, r.entry_id or "", r.leaf_index) for r in results])
    engine.dispose()
    out.put((worker, done))


def test_processes_appending_at_once_leave_no_gap_and_no_duplicate(
    db_url: str, anvil_space: Space
) -> None:
    space = anvil_space
    engine = make_engine(db_url)
    create_schema(engine)
    assert ingest(engine, space, [agreement(space)])[0].status == "accepted"  # type: ignore[attr-defined]
    engine.dispose()  # no pooled connection crosses the fork

    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(WORKERS)
    out = ctx.Queue()
    rpc = space.chain.network.rpc_url or ""
    args = (rpc, space.contracts.registry.address, space.contracts.ledger.address, db_url)
    procs = [
        ctx.Process(target=_worker, args=(w, *args, barrier, out), daemon=True)
        for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    reports = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0

    total = 1 + WORKERS * BATCHES * BATCH
    indices: list[int] = []
    for worker, batches in reports.items():
        for batch in batches:
            assert {status for status, _, _ in batch} == {"accepted"}, worker
            leaves = [index for _, _, index in batch]
            assert all(i is not None for i in leaves)
            # a batch is appended under one lock: its leaves are consecutive
            assert leaves == list(range(leaves[0], leaves[0] + BATCH))  # type: ignore[operator]
            indices.extend(i for i in leaves if i is not None)
    assert sorted(indices) == list(range(1, total))

    engine = make_engine(db_url)
    rows = assert_log_sound(engine)
    assert len(rows) == total
    by_index = {r.leaf_index: r for r in rows}
    for batches in reports.values():
        for batch in batches:
            for _, eid, index in batch:
                assert index is not None and by_index[index].entry_id == eid
    assert len({leaf_hash(r.data) for r in rows}) == total
    engine.dispose()
