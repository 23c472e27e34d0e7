"""SIGKILL at seeded random points, then restart: ``tally serve`` during ingest, the
anchoring loop, and the indexer (>= 30 trials each, one long-lived anvil, children
forked from this already-imported process).

- serve: two clients POST /v1/evidence batches; the server is killed at a seeded delay
  after its first answer. After each kill and restart every entry a 2xx answer
  acknowledged is in the log exactly once, at the leaf it was given; a batch whose
  answer never came is all in the log or not at all, and sent again it lands once.
- anchoring: the log grows while the loop anchors; after each kill every anchored
  checkpoint is a root of the tree at its size, no size is anchored twice, SQL holds
  no checkpoint the chain lacks and at most the one whose receipt the kill cut off,
  which the restarted loop records from the chain instead of sending again.
- indexer: after each kill nothing lies above the cursor and the mirror up to it equals
  the node's logs; after the last restart it equals a fresh index of the whole chain.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

import service.api.main
import service.cli.serve_cmd  # noqa: F401
from service.bench.indexer import BulkSender
from service.chain.client import Chain
from service.chain.config import Deployment, rpc_network
from service.chain.deploy import deploy_tally
from service.chain.devnode import Anvil, free_port
from service.db import create_schema, make_engine
from service.evidence.anchor import OnChainCheckpoint, read_checkpoint
from service.evidence.directory import ChainDirectory
from service.evidence.entries import SignedEntry
from service.evidence.log import append_entries
from service.evidence.models import AnchorRow
from service.evidence.tiles import MerkleLog, SqlTileStorage
from service.indexer import handlers
from service.indexer.runner import Indexer
from service.indexer.source import RpcSource
from service.indexer.store import T_CURSORS
from tests.evidence.test_log import agreement
from tests.faults.helpers import (
    FORK,
    Acks,
    Clients,
    Work,
    chain_events,
    check_log,
    entry_ids,
    fork,
    lost_entries,
    post_batches,
    receipts,
    serve_child,
    serve_env,
    sigkill,
    sign_in,
    wait_ready,
    warm_serve,
)
from tests.indexer.helpers import dump, fresh_index
from tests.space import Space, build_space

pytestmark = pytest.mark.anvil

TRIALS = 30
SEED = 20_260_901


def test_kill_serve_mid_ingest_keeps_every_acknowledged_entry_once(
    fault_anvil: Anvil, tmp_path: Path, figures: dict[str, Any]
) -> None:
    space = build_space(Chain.connect(rpc_network(fault_anvil.url, chain_id=31337)))
    db_url = f"sqlite:///{tmp_path}/tally.db"
    env = serve_env(tmp_path, space, db_url)
    warm_serve(env)
    rng = random.Random(SEED)
    nonces = itertools.count(1)
    batch_size, clients = 10, 2

    def new_batches() -> Iterator[list[SignedEntry]]:
        while True:
            first = next(nonces)
            for _ in range(batch_size - 1):
                next(nonces)
            yield receipts(space, range(first, first + batch_size))

    make = new_batches()
    acks = Acks()
    resend: list[list[SignedEntry]] = []
    headers: dict[str, str] | None = None
    in_flight = committed_unanswered = 0
    for _trial in range(TRIALS):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        child = fork(serve_child, env, port)
        try:
            wait_ready(url, child)
            if headers is None:
                headers = sign_in(url, space.consumers[0])
                r = httpx.post(
                    url + "/v1/evidence",
                    json={"entries": [agreement(space).to_json()]},
                    headers=headers,
                )
                assert r.json()["results"][0]["status"] == "accepted", r.text
            again = [rng.choice(acks.done)] if acks.done else []  # answered: duplicates
            work = Work(resend + again, make)
            answered = acks.batches
            threads = Clients(post_batches, (url, headers, work, acks), clients).start()
            delay = rng.uniform(0.0, 0.3)  # drawn first: the same seed, the same delays
            deadline = time.monotonic() + 30
            while acks.batches == answered and not threads.errors:  # ingesting, then kill
                assert time.monotonic() < deadline, "no batch answered"
                time.sleep(0.002)
            time.sleep(delay)
        finally:
            sigkill(child)
        threads.join()
        engine = make_engine(db_url)
        rows = check_log(engine)
        engine.dispose()
        assert not lost_entries(rows, acks), "an acknowledged entry is not in the log"
        present = {r.entry_id for r in rows}
        resend = []
        for batch in acks.unknown:  # answer lost in the kill: all or nothing, then resend
            ids = set(entry_ids(batch))
            assert ids <= present or not ids & present, "half a batch is in the log"
            committed_unanswered += ids <= present
            resend.append(batch)
        in_flight += bool(acks.unknown)
        acks.unknown.clear()

    # the last restart: the API serves the same log, every acknowledged entry once
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    child = fork(serve_child, env, port)
    try:
        wait_ready(url, child)
        assert headers is not None
        post_batches(url, headers, iter(resend), acks)
        served = _read_log(url, sign_in(url, space.auditor))
    finally:
        sigkill(child)
    at = {e["entry_id"]: e["leaf_index"] for e in served}
    assert len(at) == len(served) == served[-1]["leaf_index"] + 1
    lost = [eid for eid, i in acks.at.items() if at.get(eid) != i]
    figures.update(
        trials=TRIALS,
        kills_with_a_batch_in_flight=in_flight,
        batches_committed_but_unanswered=committed_unanswered,
        batches_acknowledged=acks.batches,
        entries_acknowledged=len(acks.at),
        entries_in_log=len(served),
        entries_lost=len(lost),
        entries_twice=len(served) - len(at),
    )
    assert not lost
    assert in_flight >= TRIALS // 3  # most kills hit the server with requests in flight


def _read_log(url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every entry with its id, from the staff route (the public log serves leaves only)."""
    entries: list[dict[str, Any]] = []
    start: int | None = 0
    with httpx.Client(base_url=url, timeout=30.0) as http:
        while start is not None:
            page = http.get("/v1/evidence", params={"start": start}, headers=headers).json()
            entries.extend(page["entries"])
            start = page["next"]
    return entries


# --- the anchoring loop -------------------------------------------------------------------


def anchor_child(env: dict[str, str], log_path: str, started: Any) -> None:
    """The anchoring loop of ``tally serve`` (BackgroundLoops), ticking every 10 ms;
    ``started`` is set once it runs."""
    os.environ.update(env)
    logging.basicConfig(level=logging.WARNING, filename=log_path, force=True)
    from service.api.background import BackgroundLoops
    from service.api.context import build_context
    from service.settings import load_settings

    loops = BackgroundLoops(build_context(load_settings()), anchor_every_s=0.01, index=False)
    loops.start()
    started.set()
    threading.Event().wait()  # until killed


class _Appender:
    """Grows the log from this process while the child anchors (3 receipts / 15 ms)."""

    def __init__(self, engine: Engine, space: Space, nonces: Iterator[int]) -> None:
        self.engine, self.space, self.nonces = engine, space, nonces
        self.directory = ChainDirectory(space.chain, space.contracts.registry)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.015):
            n = next(self.nonces)
            batch = receipts(self.space, range(3 * n, 3 * n + 3))
            results = append_entries(
                engine=self.engine,
                domain=self.space.domain,
                directory=self.directory,
                entries=batch,
            )
            assert all(r.status == "accepted" for r in results), results

    def __enter__(self) -> _Appender:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        self.engine.dispose()  # no pooled connection crosses the next fork


def test_kill_anchoring_loop_never_double_anchors_or_loses_a_checkpoint(
    fault_anvil: Anvil, tmp_path: Path, figures: dict[str, Any]
) -> None:
    chain = Chain.connect(rpc_network(fault_anvil.url, chain_id=31337))
    space = build_space(chain)
    ledger = space.contracts.ledger
    db_url = f"sqlite:///{tmp_path}/tally.db"
    env = serve_env(tmp_path, space, db_url)
    engine = make_engine(db_url)
    create_schema(engine)
    directory = ChainDirectory(chain, space.contracts.registry)
    first = [agreement(space), *receipts(space, range(1, 3))]
    append_entries(engine=engine, domain=space.domain, directory=directory, entries=first)
    engine.dispose()
    rng = random.Random(SEED + 1)
    nonces = itertools.count(1)
    operator_nonce0 = chain.w3.eth.get_transaction_count(space.operator.address)
    on_chain: list[OnChainCheckpoint] = []
    cut_off: set[int] = set()  # checkpoints a kill left on chain but not in SQL
    log_path = tmp_path / "anchor.log"

    def check() -> list[AnchorRow]:
        """SQL never holds a checkpoint the chain lacks; every anchored root is the
        tree's root at its size; sizes only grow."""
        count = int(chain.call(ledger.functions.count()))
        on_chain.extend(read_checkpoint(chain, ledger, seq) for seq in range(len(on_chain), count))
        with Session(engine) as s:
            rows = list(s.exec(select(AnchorRow).order_by(col(AnchorRow.seq))))
            tree = MerkleLog(SqlTileStorage(s))
            for cp in on_chain:
                assert tree.root(size=cp.tree_size) == cp.root, f"checkpoint {cp.seq}"
        sizes = [cp.tree_size for cp in on_chain]
        assert sizes == sorted(set(sizes)), "a size anchored twice"
        assert len(rows) in (len(on_chain), len(on_chain) - 1)
        for row, cp in zip(rows, on_chain, strict=False):
            assert (row.seq, row.tree_size, row.root) == (
                cp.seq,
                cp.tree_size,
                "0x" + cp.root.hex(),
            )
        return rows

    for _trial in range(TRIALS):
        delay = rng.uniform(0.0, 0.3)
        started = FORK.Event()
        child = fork(anchor_child, env, str(log_path), started)
        try:
            with _Appender(make_engine(db_url), space, nonces):
                assert started.wait(30), "the anchoring loop did not start"
                time.sleep(delay)  # the loop anchors (and the log grows) meanwhile
                sigkill(child)
        finally:
            sigkill(child)
        rows = check()
        cut_off.update(cp.seq for cp in on_chain[len(rows) :])
        engine.dispose()

    # the last restart: the loop records what the chain has, then anchors the rest
    child = fork(anchor_child, env, str(log_path), FORK.Event())
    try:
        deadline = time.monotonic() + 30
        while True:
            rows = check()
            with Session(engine) as s:
                size = MerkleLog(SqlTileStorage(s)).size()
            if rows and len(rows) == len(on_chain) and rows[-1].tree_size == size:
                break
            assert time.monotonic() < deadline, "the restarted loop did not catch up"
            time.sleep(0.05)
    finally:
        sigkill(child)
    engine.dispose()
    sent = chain.w3.eth.get_transaction_count(space.operator.address) - operator_nonce0
    refused = log_path.read_text().count("NotExtending") if log_path.exists() else 0
    figures.update(
        trials=TRIALS,
        checkpoints=len(on_chain),
        kills_between_send_and_record=len(cut_off),
        anchor_transactions=sent,
        double_anchors=sent - len(on_chain) + refused,
        checkpoints_lost=len(on_chain) - len(rows),
        log_size=size,
    )
    assert sent == len(on_chain), "an anchor transaction was sent that anchored nothing"
    assert refused == 0


# --- the indexer --------------------------------------------------------------------------


def index_child(url: str, deployment: Deployment, db_url: str) -> None:
    engine = make_engine(db_url)
    Indexer(
        source=RpcSource(url), engine=engine, deployment=deployment, network="anvil", max_range=2
    ).run()
    engine.dispose()


def test_kill_indexer_mirror_equals_chain_after_restart(
    fault_anvil: Anvil, tmp_path: Path, figures: dict[str, Any]
) -> None:
    chain = Chain.connect(rpc_network(fault_anvil.url, chain_id=31337))
    admin = chain.accounts[0].address
    t = deploy_tally(chain, admin=chain.accounts[0], network="anvil")
    sender = BulkSender(fault_anvil.url, per_block=2)
    chain_events(sender, t, admin, 0, 60)
    sender.flush()
    dep = t.deployment
    db_url = f"sqlite:///{tmp_path}/mirror.db"
    engine = make_engine(db_url)
    create_schema(engine)
    engine.dispose()
    source = RpcSource(fault_anvil.url)
    addresses = sorted(c.address.lower() for c in dep.contracts.values())
    rng = random.Random(SEED + 2)
    mismatches = kills_mid_run = 0
    for trial in range(TRIALS):
        chain_events(sender, t, admin, trial + 1, 24)  # 12 more blocks for each run
        sender.flush()
        head = chain.w3.eth.block_number
        before = _cursor(engine)
        child = fork(index_child, fault_anvil.url, dep, db_url)
        if trial % 2:  # at a random moment of its start or first ranges
            time.sleep(rng.uniform(0.0, 0.1))
        else:  # just after one of its commits: a fixed sleep finished too many runs first
            deadline = time.monotonic() + 10
            while _cursor(engine) == before and child.is_alive() and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.01))
        running = child.is_alive()
        sigkill(child)
        cursor = _cursor(engine)
        kills_mid_run += running and cursor < head
        above, mirror = _mirror(engine, cursor)
        node = (
            {
                (
                    int(x["blockNumber"], 16),
                    x["blockHash"],
                    x["transactionHash"],
                    int(x["logIndex"], 16),
                )
                for x in source.get_logs(addresses, dep.deploy_block, cursor)
            }
            if cursor >= dep.deploy_block
            else set()
        )
        mismatches += above + len(node ^ mirror)
        engine.dispose()
    # the last restart, to the head: raw and derived tables equal a fresh index
    index_child(fault_anvil.url, dep, db_url)
    head = chain.w3.eth.block_number
    assert _cursor(engine) == head
    fresh = fresh_index(fault_anvil.url, dep, tmp_path / "fresh.db")
    final = dump(engine)
    differ = sum(len({repr(r) for r in final[k]} ^ {repr(r) for r in fresh[k]}) for k in fresh)
    events = len(final[handlers.T_EVENTS.name])
    engine.dispose()
    figures.update(
        trials=TRIALS,
        kills_mid_run=kills_mid_run,
        events=events,
        blocks=head - dep.deploy_block + 1,
        mirror_mismatches=mismatches + differ,
    )
    assert mismatches == 0 and differ == 0
    assert kills_mid_run >= TRIALS // 3


def _cursor(engine: Engine) -> int:
    with engine.connect() as conn:
        value = conn.execute(sa.select(sa.func.max(T_CURSORS.c.block_number))).scalar()
    return -1 if value is None else int(value)


def _mirror(engine: Engine, cursor: int) -> tuple[int, set[tuple[int, str, str, int]]]:
    """(rows above the cursor, the raw events' keys up to it)."""
    ev = handlers.T_EVENTS
    with engine.connect() as conn:
        above = conn.execute(
            sa.select(sa.func.count()).select_from(ev).where(ev.c.block_number > cursor)
        ).scalar_one()
        keys = {
            (int(n), str(h), str(tx), int(i))
            for n, h, tx, i in conn.execute(
                sa.select(ev.c.block_number, ev.c.block_hash, ev.c.tx_hash, ev.c.log_index)
            )
        }
    return int(above), keys
