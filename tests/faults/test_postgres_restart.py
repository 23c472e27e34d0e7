"""PostgreSQL restarted under ``tally serve`` while clients ingest: a private cluster
(``initdb`` / ``pg_ctl`` in a temp dir, a free port; the machine's own server is not
touched) is restarted cleanly, crashed (``pg_ctl -m immediate``: WAL recovery at start)
and restarted again while two clients POST evidence batches.

Clients get retryable errors only (HTTP 503 with the stable code
``database_unavailable``; they retry the same batch), the server stays up, and every
entry a 2xx answer acknowledged is in the log exactly once at its leaf.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import service.api.main
import service.cli.serve_cmd  # noqa: F401
from service.chain.client import Chain
from service.chain.config import rpc_network
from service.chain.devnode import Anvil, free_port
from service.db import make_engine
from service.evidence.entries import SignedEntry
from tests.evidence.test_log import agreement
from tests.faults.conftest import PrivateCluster
from tests.faults.helpers import (
    Acks,
    Clients,
    Work,
    check_log,
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
from tests.space import build_space

pytestmark = pytest.mark.anvil

RESTARTS = ("fast", "immediate", "fast")
BATCHES_BETWEEN = 6  # batches acknowledged before each restart (and after the last)


def _wait(predicate: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_postgres_restart_mid_ingest_gives_retryable_errors_and_loses_nothing(
    fault_anvil: Anvil,
    private_postgres: PrivateCluster,
    tmp_path: Path,
    figures: dict[str, Any],
) -> None:
    space = build_space(Chain.connect(rpc_network(fault_anvil.url, chain_id=31337)))
    env = serve_env(tmp_path, space, private_postgres.url)
    warm_serve(env)  # creates the schema, too
    nonces = itertools.count(1, 10)

    def batches() -> Iterator[list[SignedEntry]]:
        while True:
            first = next(nonces)
            yield receipts(space, range(first, first + 10))

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    child = fork(serve_child, env, port)
    acks = Acks()
    stop = threading.Event()
    try:
        wait_ready(url, child)
        headers = sign_in(url, space.consumers[0])
        r = httpx.post(
            url + "/v1/evidence", json={"entries": [agreement(space).to_json()]}, headers=headers
        )
        assert r.status_code == 200, r.text
        clients = Clients(
            lambda: post_batches(
                url, headers, Work([], batches()), acks, retry_503=True, stop=stop
            ),
            (),
            2,
        ).start()
        for k, mode in enumerate(RESTARTS):
            _wait(lambda k=k: acks.batches >= (k + 1) * BATCHES_BETWEEN, "ingest stalled")
            private_postgres.restart(mode)
        _wait(lambda: acks.batches >= (len(RESTARTS) + 1) * BATCHES_BETWEEN, "no recovery")
        stop.set()
        clients.join()
        assert child.is_alive(), "the server died with the database"
    finally:
        stop.set()
        sigkill(child)
    engine = make_engine(private_postgres.url)
    rows = check_log(engine)
    engine.dispose()
    lost = lost_entries(rows, acks)
    figures.update(
        database_restarts=len(RESTARTS),
        retryable_errors=acks.retryable,
        error_codes=dict(sorted(acks.codes.items())),
        batches_acknowledged=acks.batches,
        entries_acknowledged=len(acks.at),
        entries_in_log=len(rows),
        entries_lost=len(lost),
    )
    assert not lost
    assert set(acks.codes) <= {"database_unavailable"}
    assert acks.retryable > 0  # the restarts were felt, and answered with a retryable code
