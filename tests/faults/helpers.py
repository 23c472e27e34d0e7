"""Helpers of the fault-injection suite: forked children, a served API, signed work, and
the checks every trial ends with.

Children are forked from the test process (``multiprocessing`` with the ``fork``
context), which has already imported ``service``: a child is serving or anchoring in
a fraction of a second, where a fresh interpreter would take seconds. A child is
killed with SIGKILL (nothing flushed, no handler runs); no database connection of the
parent crosses a fork (engines are disposed before each one).
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import signal
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from web3 import Web3

from service.bench.indexer import BulkSender
from service.chain.client import Chain
from service.chain.deploy import TallyContracts
from service.evidence.entries import SignedEntry
from service.evidence.log import leaf_data_at
from service.evidence.merkle import leaf_hash, root_from_leaf_hashes
from service.evidence.models import LogEntry
from service.evidence.tiles import MerkleLog, SqlTileStorage
from tests.api.test_serve import serve_env as api_serve_env
from tests.evidence.test_crash import signed_receipts
from tests.space import Space

FORK = multiprocessing.get_context("fork")


# --- children -----------------------------------------------------------------------------


def fork(target: Callable[..., None], *args: Any) -> BaseProcess:
    """Run ``target(*args)`` in a forked child (imports already loaded)."""
    child = FORK.Process(target=target, args=args, daemon=True)
    child.start()
    return child


def sigkill(child: BaseProcess) -> None:
    """SIGKILL the child and reap it."""
    assert child.pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=30)
    assert child.exitcode is not None, "the child did not die"


# --- a served API -------------------------------------------------------------------------


def serve_env(tmp: Path, space: Space, db_url: str) -> dict[str, str]:
    """The environment ``tally serve`` reads, for ``space`` on its RPC node (errors only in
    the log: hundreds of killed servers)."""
    return api_serve_env(tmp, space, space.chain, db_url, log_level="ERROR")


def serve_child(env: dict[str, str], port: int) -> None:
    """The body of a forked ``tally serve`` (one worker, no loops): the CLI's own code."""
    os.environ.update(env)
    from service.cli.serve_cmd import serve

    serve(host="127.0.0.1", port=port, workers=1, anchor_every=0.0, index=False)


def warm_serve(env: dict[str, str]) -> None:
    """Serve once in this process (app, lifespan, a request) and load what uvicorn
    imports lazily, so that forked servers start warm (about 0.1 s instead of 2)."""
    import uvicorn

    from service.api.main import create_app
    from service.settings import load_settings

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        uvicorn.Config("service.api.main:create_app", factory=True).load()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from fastapi.testclient import TestClient

            with TestClient(create_app(settings=load_settings())) as client:
                assert client.get("/readyz").status_code == 200
                client.post("/v1/auth/challenge", json={"address": "0x" + "00" * 20})
                client.post("/v1/evidence", json={"entries": []})
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def wait_ready(url: str, child: BaseProcess, *, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=url, timeout=2.0) as http:
        while time.monotonic() < deadline:
            assert child.is_alive(), f"the server exited with {child.exitcode}"
            try:
                if http.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
    raise AssertionError(f"{url} not ready after {timeout_s}s")


def sign_in(url: str, acct: LocalAccount) -> dict[str, str]:
    """SIWE sign-in; the bearer header (valid across restarts: same secret)."""
    with httpx.Client(base_url=url, timeout=30.0) as http:
        message = http.post("/v1/auth/challenge", json={"address": acct.address}).json()["message"]
        signed = Account.sign_message(encode_defunct(text=message), private_key=acct.key)
        r = http.post(
            "/v1/auth/token",
            json={"message": message, "signature": "0x" + bytes(signed.signature).hex()},
        )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


# --- work ---------------------------------------------------------------------------------


def receipts(space: Space, nonces: range) -> list[SignedEntry]:
    """Dual-signed receipts of consumers[0] / providers[0] under ``tests.evidence.test_log.AG``."""
    return signed_receipts(space.domain, nonces)


def entry_ids(batch: list[SignedEntry]) -> list[str]:
    return ["0x" + e.id().hex() for e in batch]


@dataclass
class Acks:
    """What clients were told: entry id -> leaf index (2xx answers only), and the
    batches whose answer never came (sent, outcome unknown)."""

    at: dict[str, int] = field(default_factory=dict)
    unknown: list[list[SignedEntry]] = field(default_factory=list)
    done: list[list[SignedEntry]] = field(default_factory=list)  # acknowledged batches
    batches: int = 0
    retryable: int = 0  # 503 answers (retried)
    codes: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, batch: list[SignedEntry], results: list[dict[str, Any]]) -> None:
        with self.lock:
            self.batches += 1
            self.done.append(batch)
            for item in results:
                assert item["status"] in ("accepted", "duplicate"), item
                previous = self.at.setdefault(item["entry_id"], item["leaf_index"])
                assert previous == item["leaf_index"], f"an entry moved: {item}"


def post_batches(
    url: str,
    headers: dict[str, str],
    work: Iterator[list[SignedEntry]],
    acks: Acks,
    *,
    retry_503: bool = False,
    stop: threading.Event | None = None,
    max_retries: int = 600,
) -> None:
    """POST batches until ``work`` runs out, the server goes away or ``stop`` is set.
    A batch whose answer never came goes to ``acks.unknown``; with ``retry_503`` a 503
    is retried (its code counted, 50 ms apart, at most ``max_retries`` times) until the
    batch is acknowledged."""
    with httpx.Client(base_url=url, timeout=30.0) as http:
        for batch in work:
            body = {"entries": [e.to_json() for e in batch]}
            for _ in range(max_retries):
                if stop is not None and stop.is_set() and not retry_503:
                    with acks.lock:
                        acks.unknown.append(batch)  # never sent
                    return
                try:
                    r = http.post("/v1/evidence", json=body, headers=headers)
                except httpx.HTTPError:
                    with acks.lock:
                        acks.unknown.append(batch)
                    return
                if r.status_code == 503 and retry_503:
                    code = r.json()["error"]["code"]
                    with acks.lock:
                        acks.retryable += 1
                        acks.codes[code] = acks.codes.get(code, 0) + 1
                    time.sleep(0.05)
                    continue
                assert r.status_code == 200, f"{r.status_code}: {r.text}"
                acks.record(batch, r.json()["results"])
                break
            else:
                raise AssertionError(f"still 503 after {max_retries} tries")
            if stop is not None and stop.is_set():
                return


class Clients:
    """Client threads whose failures are raised in the test, not lost in a thread."""

    def __init__(self, target: Callable[..., None], args: tuple[Any, ...], n: int) -> None:
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(target, args)) for _ in range(n)]

    def _run(self, target: Callable[..., None], args: tuple[Any, ...]) -> None:
        try:
            target(*args)
        except BaseException as err:  # re-raised by join()
            self.errors.append(err)

    def start(self) -> Clients:
        for t in self.threads:
            t.start()
        return self

    def join(self) -> None:
        for t in self.threads:
            t.join(timeout=120)
            assert not t.is_alive(), "a client hangs"
        if self.errors:
            raise self.errors[0]


class Work:
    """Batches for the clients (thread-safe): resends first, then new receipts."""

    def __init__(self, first: list[list[SignedEntry]], make: Iterator[list[SignedEntry]]) -> None:
        self._first = deque(first)
        self._make = make
        self._lock = threading.Lock()

    def __iter__(self) -> Work:
        return self

    def __next__(self) -> list[SignedEntry]:
        with self._lock:
            if self._first:
                return self._first.popleft()
            return next(self._make)


def chain_events(sender: BulkSender, t: TallyContracts, admin: str, k: int, n: int) -> None:
    """Queue about ``n`` registry and token events (ABIs other work leaves alone)."""
    for i in range(n):
        who = Web3.to_checksum_address(hashlib.sha256(f"{k}:{i}".encode()).digest()[:20])
        if i % 3 == 0:
            sender.add(t.registry, "register", who, 1 + i % 7, bytes(32), f"u{k}.{i}", sender=admin)
        elif i % 3 == 1:
            sender.add(t.token, "mint", who, 10**18 + i, sender=admin)
        else:
            sender.add(t.token, "approve", who, i, sender=admin)


# --- checks -------------------------------------------------------------------------------


def stored(engine: Engine) -> list[LogEntry]:
    with Session(engine) as s:
        return list(s.exec(select(LogEntry).order_by(col(LogEntry.leaf_index))))


def check_log(engine: Engine) -> list[LogEntry]:
    """Gap-free leaf indices, each entry once, and a tree over exactly the stored leaves."""
    rows = stored(engine)
    assert [r.leaf_index for r in rows] == list(range(len(rows))), "a gap in the log"
    assert len({r.entry_id for r in rows}) == len(rows), "an entry is in the log twice"
    with Session(engine) as s:
        size, root = MerkleLog(SqlTileStorage(s)).state()
    assert size == len(rows)
    with Session(engine) as s:
        leaves = [leaf_hash(leaf_data_at(session=s, leaf_index=r.leaf_index)) for r in rows]
    assert root == root_from_leaf_hashes(leaves)
    return rows


def lost_entries(rows: list[LogEntry], acks: Acks) -> list[str]:
    """Acknowledged entries that are not in the log at the leaf they were given."""
    at = {r.entry_id: r.leaf_index for r in rows}
    return [eid for eid, index in acks.at.items() if at.get(eid) != index]


def fresh_chain(chain: Chain) -> Chain:
    """A new connection to the same node (its own nonce cache)."""
    return Chain.connect(chain.network)
