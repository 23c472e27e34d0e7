"""Crash safety: a process killed (SIGKILL) in the middle of ingesting loses nothing it
acknowledged, leaves no gap and no half batch, and the tree matches the stored leaves.

The ingesting process is this module run as a script (``python -m tests.evidence.test_crash``):
it appends batches of dual-signed receipts in a loop and prints ``begin <ids>`` before
each batch and ``ack <ids>`` once ``append_entries`` has returned (committed).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from service.chain.client import Chain
from service.chain.config import rpc_network
from service.chain.keys import dev_account
from service.db import create_schema, make_engine
from service.evidence.directory import ChainDirectory
from service.evidence.eip712 import Domain
from service.evidence.entries import SignedEntry, UsageReceipt, sign_entry
from service.evidence.log import append_entries, leaf_data_at
from service.evidence.merkle import leaf_hash, root_from_leaf_hashes
from service.evidence.models import LogEntry
from service.evidence.tiles import MerkleLog, SqlTileStorage
from tests.evidence.test_log import AG, T0, agreement, ingest
from tests.space import Space

ROOT = Path(__file__).resolve().parents[2]
CONSUMER, PROVIDER = 5, 2  # dev account indices of space.consumers[0] / space.providers[0]
BATCH = 50
ACKS_BEFORE_KILL = 2


def signed_receipts(domain: Domain, nonces: range) -> list[SignedEntry]:
    """Receipts of space.consumers[0] from space.providers[0] under tests.evidence AG."""
    consumer, provider = dev_account(CONSUMER), dev_account(PROVIDER)
    keys = [bytes(consumer.key), bytes(provider.key)]
    return [
        sign_entry(
            UsageReceipt(
                agreementId=AG,
                consumer=consumer.address,
                provider=provider.address,
                units=1 + n % 7,
                periodStart=T0 + 10,
                periodEnd=T0 + 20,
                detailHash=n.to_bytes(32, "big"),
                nonce=n,
            ),
            domain,
            keys,
        )
        for n in nonces
    ]


def stored(engine: Engine) -> list[LogEntry]:
    with Session(engine) as s:
        return list(s.exec(select(LogEntry).order_by(col(LogEntry.leaf_index))))


def assert_log_sound(engine: Engine) -> list[LogEntry]:
    """Gap-free leaf indices, unique ids, and a tree whose root is over the stored leaves."""
    rows = stored(engine)
    assert [r.leaf_index for r in rows] == list(range(len(rows)))
    assert len({r.entry_id for r in rows}) == len(rows)
    with Session(engine) as s:
        size, root = MerkleLog(SqlTileStorage(s)).state()
    assert size == len(rows)
    with Session(engine) as s:  # each leaf: the entry's commitment (T15) or its bytes
        leaves = [leaf_hash(leaf_data_at(session=s, leaf_index=r.leaf_index)) for r in rows]
    assert root == root_from_leaf_hashes(leaves)
    return rows


def _ingest_forever(rpc: str, registry: str, ledger: str, db_url: str, batch: int) -> None:
    chain = Chain.connect(rpc_network(rpc, chain_id=31337))
    domain = Domain(chain_id=chain.chain_id, verifying_contract=ledger)
    directory = ChainDirectory(chain, chain.contract("ParticipantRegistry", registry))
    engine = make_engine(db_url)
    nonce = 1
    while True:
        entries = signed_receipts(domain, range(nonce, nonce + batch))
        nonce += batch
        ids = ["0x" + e.id().hex() for e in entries]
        print("begin", *ids, flush=True)
        results = append_entries(engine=engine, domain=domain, directory=directory, entries=entries)
        bad = [r for r in results if r.status != "accepted"]
        if bad:
            print("error", bad[0].code, bad[0].message, flush=True)
            sys.exit(2)
        print("ack", *ids, flush=True)


def test_kill_mid_ingest_loses_nothing_acknowledged(db_url: str, anvil_space: Space) -> None:
    space = anvil_space
    engine = make_engine(db_url)
    create_schema(engine)
    first = agreement(space)
    assert ingest(engine, space, [first])[0].status == "accepted"  # type: ignore[attr-defined]
    engine.dispose()

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.evidence.test_crash",
            space.chain.network.rpc_url or "",
            space.contracts.registry.address,
            space.contracts.ledger.address,
            db_url,
            str(BATCH),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked: list[list[str]] = []
    begun: list[list[str]] = []
    took: list[float] = []  # seconds from "begin" to "ack" of each acknowledged batch
    killed = False
    started = deadline = time.monotonic()
    deadline += 60
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.monotonic()
            kind, *ids = line.split()
            assert kind in ("begin", "ack"), line
            if kind == "ack":
                acked.append(ids)
                took.append(now - started)
            else:
                begun.append(ids)
                started = now
            if kind == "begin" and len(acked) >= ACKS_BEFORE_KILL:
                # kill somewhere inside this append: most of it is the database transaction
                time.sleep(random.uniform(0.2, 0.9) * sorted(took)[len(took) // 2])
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
            assert now < deadline, "the ingesting process is too slow"
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert killed, f"the ingesting process ended on its own: {err}"
    assert proc.returncode == -signal.SIGKILL
    for line in rest.splitlines():  # lines written before the kill but not yet read
        kind, *ids = line.split()
        (begun if kind == "begin" else acked).append(ids)

    engine = make_engine(db_url)
    rows = assert_log_sound(engine)
    present = {r.entry_id for r in rows}
    for batch in acked:
        assert set(batch) <= present, "an acknowledged entry is missing"
    in_flight = [b for b in begun if b not in acked]
    assert len(in_flight) <= 1
    for batch in in_flight:  # all or nothing
        assert set(batch) <= present or not set(batch) & present
    everything = {i for b in begun for i in b}
    assert present - everything == {"0x" + first.id().hex()}  # nothing from nowhere
    assert len(rows) >= 1 + ACKS_BEFORE_KILL * BATCH

    # the log takes appends again after the crash (no lock or partial state left behind)
    again = ingest(engine, space, signed_receipts(space.domain, range(10**6, 10**6 + 3)))
    assert [r.leaf_index for r in again] == [len(rows), len(rows) + 1, len(rows) + 2]  # type: ignore[attr-defined]
    assert_log_sound(engine)
    engine.dispose()


if __name__ == "__main__":
    _ingest_forever(*sys.argv[1:5], batch=int(sys.argv[5]))
