"""Fixtures of the fault-injection suite: one anvil for the package, a private PostgreSQL
cluster, and the figures every test records.

Each test fills the ``figures`` dict (faults injected, trials, entries acknowledged,
entries lost, double anchors, mirror mismatches, ...); the dict is printed when the test
ends (``pytest -s``) and in the terminal summary, and written as JSON to the file named
by ``TALLY_FAULTS_FIGURES`` when that is set. Nothing here is skipped under ``CI``: a
missing anvil or ``initdb`` fails there instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from service.chain.devnode import Anvil, anvil_binary, free_port
from service.db import make_engine
from service.errors import DevNodeError

FIGURES: dict[str, dict[str, Any]] = {}


def _missing(what: str) -> None:
    """Skip locally, fail under CI (where every fault test must run)."""
    if os.environ.get("CI"):
        pytest.fail(what)
    pytest.skip(what)


@pytest.fixture(scope="package")
def fault_anvil() -> Iterator[Anvil]:
    """One anvil for the whole suite (each test deploys its own contracts on it)."""
    try:
        anvil_binary()
    except DevNodeError as err:
        _missing(str(err))
    node = Anvil(accounts=10).start()
    yield node
    node.stop()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The test's figures: printed at its end and collected for the summary."""
    fig: dict[str, Any] = {}
    t0 = time.perf_counter()
    yield fig
    fig["seconds"] = round(time.perf_counter() - t0, 1)
    FIGURES[request.node.name] = fig
    print(f"\nFIGURES {request.node.name}: " + json.dumps(fig, sort_keys=False))
    target = os.environ.get("TALLY_FAULTS_FIGURES")
    if target:
        Path(target).write_text(json.dumps(FIGURES, indent=2) + "\n", encoding="utf-8")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault-injection figures")
    for name, fig in FIGURES.items():
        terminalreporter.write_line(f"{name}: " + json.dumps(fig))


# --- a private PostgreSQL cluster -------------------------------------------------------


@dataclass
class PrivateCluster:
    """A PostgreSQL cluster of the test's own: a temp dir, a free port, loopback only."""

    root: Path
    port: int
    user: str | None  # run the server as this user (initdb refuses root)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            list(args),
            user=self.user,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.root,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync", "-E", "UTF8", "--locale=C",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=40"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "30", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stop (``fast``: clean shutdown, ``immediate``: a crash, WAL recovery at start)
        and start again on the same port."""
        self.stop(mode)
        self.start()


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivateCluster]:
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        _missing("initdb / pg_ctl not on PATH")
    user: str | None = None
    root = Path(tempfile.mkdtemp(prefix="tally-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root: the cluster runs as postgres
        user = "postgres"
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            user, entry = "nobody", pwd.getpwnam("nobody")
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = PrivateCluster(root=root, port=free_port(), user=user)
    try:
        cluster.init()
        cluster.start()
        engine = make_engine(cluster.url, pool=False)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        engine.dispose()
        yield cluster
    finally:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
