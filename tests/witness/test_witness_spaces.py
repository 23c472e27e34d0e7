"""One witness, two spaces, real processes on loopback.

Two spaces are two Tally deployments on one anvil node (two EvidenceLedger contracts,
two registries), each with its own SQLite log served by its own ``tally serve``
process. The test process plays both operators: it appends entries to each log and
anchors them (:func:`~service.evidence.anchor.anchor_once`), so each checkpoint exists
exactly when the test says. The witness is ``tally witness`` in a child process.

- ``test_witness_cosigns_two_growing_logs_then_catches_a_split_view``: the witness loop
  cosigns both logs over three checkpoints each and each space serves the cosignature
  back with its note; then A's operator rewrites an anchored entry (its bytes, its leaf
  and the tiles, so the served tree is a self-consistent fork) and serves the fork at
  the cosigned size: the witness refuses; A grows the fork and serves it at a larger
  size: ``--once`` exits 3, and both split-view proofs verify with
  ``tally witness verify-proof``; B goes on being cosigned.
- ``test_witness_killed_between_verify_and_store_neither_cosigns_twice_nor_skips``: the
  witness SIGKILLs itself (``TALLY_WITNESS_FAULT``) after verifying and signing but before
  storing, and after storing but before posting; each restart ends with exactly one
  cosignature per checkpoint from its key, in the witness and on the space.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service.api.process import ServeProcess
from service.chain.client import Chain
from service.chain.config import rpc_network
from service.chain.devnode import Anvil, free_port
from service.db import create_schema, make_engine
from service.evidence.anchor import anchor_once
from service.evidence.merkle import leaf_hash
from service.evidence.models import AnchorRow, LogEntry
from service.evidence.tiles import MerkleLog, SqlTileStorage
from service.witness.follower import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_SPLIT_VIEW,
    EXIT_UNAVAILABLE,
    FAULT_ENV,
)
from service.witness.note import (
    CosignatureV1Signer,
    NoteSigner,
    NoteVerifier,
    open_checkpoint,
)
from service.witness.store import WitnessStore
from tests.api.test_serve import serve_env
from tests.evidence.test_log import agreement, ingest, receipt
from tests.faults.helpers import FORK
from tests.space import Space, build_space

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


@dataclass
class Served:
    """One space: its deployment, its log database and its ``tally serve`` process."""

    name: str
    space: Space
    engine: Engine
    server: ServeProcess
    vkey: str
    nonce: int = 0

    @property
    def url(self) -> str:
        return self.server.url

    def grow(self, n: int) -> int:
        """Append ``n`` receipts and anchor them; the new anchored size."""
        if self.nonce == 0:
            ingest(self.engine, self.space, [agreement(self.space)])
        entries = [receipt(self.space, self.nonce + k + 1) for k in range(n)]
        self.nonce += n
        ingest(self.engine, self.space, entries)  # type: ignore[arg-type]
        row = anchor_once(
            engine=self.engine,
            chain=self.space.chain,
            ledger=self.space.contracts.ledger,
            operator=self.space.operator,
        )
        assert row is not None
        return row.tree_size

    def note(self) -> str:
        r = httpx.get(self.url + "/v1/log/checkpoint", timeout=10.0)
        assert r.status_code == 200, r.text
        return r.text


def _space_env(tmp: Path, space: Space, chain: Chain, name: str, witnesses: str) -> dict[str, str]:
    """test_serve's environment; on a dev chain the note key is derived from the dev
    operator's, and the space accepts cosignatures from ``witnesses`` only."""
    env = serve_env(tmp, space, chain, f"sqlite:///{tmp}/log.db", log_level="ERROR")
    return {**env, "TALLY_SPACE_NAME": f"space-{name}.test", "TALLY_WITNESSES": witnesses}


def _space_vkey(url: str) -> str:
    """The space's note key, as its operator publishes it (the test pins what it got)."""
    r = httpx.get(url + "/v1/log/key", timeout=10.0)
    assert r.status_code == 200, r.text
    return str(r.json()["vkey"])


@pytest.fixture(scope="module")
def chain(anvil: Anvil) -> Iterator[Chain]:
    c = Chain.connect(rpc_network(anvil.url, chain_id=31337))
    snap = c.snapshot()
    yield c
    c.revert(snap)


def _key(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[Path, CosignatureV1Signer]:
    signer = CosignatureV1Signer.generate(name)
    path = tmp_path_factory.mktemp("witness-key") / "witness.key"
    path.write_text(signer.skey() + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path, signer


@pytest.fixture(scope="module")
def witness_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CosignatureV1Signer]:
    return _key(tmp_path_factory, "witness.test/w1")


@pytest.fixture(scope="module")
def crash_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CosignatureV1Signer]:
    return _key(tmp_path_factory, "witness.test/crash")


@pytest.fixture(scope="module")
def spaces(
    chain: Chain,
    tmp_path_factory: pytest.TempPathFactory,
    witness_key: tuple[Path, CosignatureV1Signer],
    crash_key: tuple[Path, CosignatureV1Signer],
) -> Iterator[dict[str, Served]]:
    out: dict[str, Served] = {}
    try:
        for name in ("a", "b"):
            tmp = tmp_path_factory.mktemp(f"space-{name}")
            space = build_space(chain)
            witnesses = f"{witness_key[1].vkey()} {crash_key[1].vkey()}"
            env = _space_env(tmp, space, chain, name, witnesses)
            engine = make_engine(env["TALLY_DATABASE_URL"])
            create_schema(engine)
            server = ServeProcess(
                env=env, port=free_port(), anchor_every_s=0.0, log_path=tmp / "serve.log"
            ).start()
            out[name] = Served(name, space, engine, server, vkey="")
        for s in out.values():
            s.grow(3)
            s.vkey = _space_vkey(s.url)
        yield out
    finally:
        for s in out.values():
            s.server.stop()
            s.engine.dispose()


def write_config(path: Path, spaces: list[Served], anvil_url: str) -> Path:
    lines = ["[witness]", 'database = "witness.db"', 'metrics_file = "witness.prom"', ""]
    for s in spaces:
        lines += [
            f"[spaces.{s.name}]",
            f'url = "{s.url}"',
            f'vkey = "{s.vkey}"',
            f'rpc = "{anvil_url}"',
            "chain_id = 31337",
            f'ledger = "{s.space.contracts.ledger.address}"',
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


def tally(*args: str, fault: str | None = None, timeout: float = 60.0) -> Done:
    """``tally ARGS`` in a forked child: the CLI's own code in a real process (imports
    already loaded, so a run costs no interpreter start), its exit code and output.
    ``fault`` sets the witness's fault hook in the child (-9: it SIGKILLed itself)."""
    tmp = Path(tempfile.mkdtemp(prefix="tally-child-"))
    out = tmp / "child"

    def body() -> None:
        with open(f"{out}.out", "w") as o, open(f"{out}.err", "w") as e:
            os.dup2(o.fileno(), 1)
            os.dup2(e.fileno(), 2)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the child's own stdout
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        os.environ.pop(FAULT_ENV, None)
        if fault is not None:
            os.environ[FAULT_ENV] = fault
        from service.cli import app

        try:
            app(list(args))
        finally:
            sys.stdout.flush()
            sys.stderr.flush()

    child = FORK.Process(target=body)
    child.start()
    child.join(timeout=timeout)
    assert child.exitcode is not None, f"tally {' '.join(args)} did not finish"
    try:
        return Done(
            child.exitcode,
            Path(f"{out}.out").read_text(encoding="utf-8"),
            Path(f"{out}.err").read_text(encoding="utf-8"),
        )
    finally:
        shutil.rmtree(tmp)


def cosignatures(s: Served, signer: CosignatureV1Signer) -> dict[int, list[str]]:
    """Cosignature lines from ``signer`` on the space's current note, by the note's size."""
    text = s.note()
    verifier = NoteVerifier.from_vkey(s.vkey)
    cp, cosigned = open_checkpoint(text.encode(), verifier, [signer.verifier()])
    lines = [ln + "\n" for ln in text.splitlines() if ln.startswith(f"— {signer.name} ")]
    assert len(cosigned) == len(lines) <= 1, text
    return {cp.size: lines}


def wait_cosigned(s: Served, signer: CosignatureV1Signer, size: int, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        got = cosignatures(s, signer)
        if got.get(size):
            return got[size][0]
        assert time.monotonic() < deadline, f"space {s.name}: no cosignature for size {size}"
        time.sleep(0.2)


def fork_log(s: Served, at: int, *, anchored_size: int) -> bytes:
    """Rewrite entry ``at`` (its bytes and its leaf), rebuild every tile from the
    rewritten leaves and relabel the anchored checkpoint at ``anchored_size`` with the
    forked root: what an operator with write access to its own database can do. Returns
    the forked root at that size."""
    forged = receipt(s.space, 10_000 + at, units=1_000)
    data = forged.encode()
    with s.engine.begin() as conn:
        conn.execute(
            sa.update(LogEntry.__table__)  # type: ignore[attr-defined]
            .where(LogEntry.__table__.c.leaf_index == at)  # type: ignore[attr-defined]
            .values(data=data, entry_id="0x" + forged.id().hex(), units=1_000)
        )
        rows = conn.execute(sa.text("SELECT data FROM log_entries ORDER BY leaf_index")).all()
        conn.execute(sa.text("DELETE FROM merkle_tiles"))
        conn.execute(sa.text("DELETE FROM merkle_log_state"))
        tree = MerkleLog(SqlTileStorage(conn))
        tree.append(hashes=[leaf_hash(bytes(r.data)) for r in rows])
        root = tree.root(size=anchored_size)
        conn.execute(
            sa.update(AnchorRow.__table__)  # type: ignore[attr-defined]
            .where(AnchorRow.__table__.c.tree_size == anchored_size)  # type: ignore[attr-defined]
            .values(root="0x" + root.hex())
        )
    return root


def fake_anchor(s: Served, *, seq: int, tree_size: int) -> None:
    """An anchor row with a zero root and transaction, in the operator's database only (the
    chain never saw it): what a lying operator claims is anchored."""
    with s.engine.begin() as conn:
        conn.execute(
            sa.insert(AnchorRow.__table__).values(  # type: ignore[attr-defined]
                seq=seq,
                tree_size=tree_size,
                root="0x" + "00" * 32,
                chain_id=31337,
                contract=s.space.contracts.ledger.address,
                tx_hash="0x" + "00" * 32,
                block_number=0,
            )
        )


def start_witness(config: Path, key: Path, *args: str) -> BaseProcess:
    """``tally witness`` (the loop) in a forked child; SIGTERM ends it with exit code 0."""

    def body() -> None:
        os.environ.pop(FAULT_ENV, None)
        from service.cli import app

        app(["witness", "--config", str(config), "--key-file", str(key), *args])

    child = FORK.Process(target=body)
    child.start()
    return child


def metric(path: Path, name: str, origin: str) -> float | None:
    if not path.is_file():
        return None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(f'{name}{{origin="{origin}"}}'):
            return float(line.split()[-1])
    return None


def test_witness_cosigns_two_growing_logs_then_catches_a_split_view(
    spaces: dict[str, Served],
    witness_key: tuple[Path, CosignatureV1Signer],
    anvil: Anvil,
    tmp_path: Path,
) -> None:
    key, signer = witness_key
    a, b = spaces["a"], spaces["b"]
    config = write_config(tmp_path / "witness.toml", [a, b], anvil.url)
    origin_a = NoteVerifier.from_vkey(a.vkey).name
    proc = start_witness(config, key, "--interval", "0.3")
    sizes: dict[str, list[int]] = {"a": [], "b": []}
    try:
        # three checkpoints each (the first anchored by the fixture), each cosigned
        for step in range(3):
            for s in (a, b):
                size = s.grow(2 + step) if step else int(s.note().split("\n")[1])
                sizes[s.name].append(size)
                line = wait_cosigned(s, signer, size)
                text = s.note()  # the line verifies over the body the space serves
                _, cosigned = open_checkpoint(
                    text.encode(), NoteVerifier.from_vkey(s.vkey), [signer.verifier()]
                )
                assert [c.line() for c in cosigned] == [line]
        # A's operator rewrites anchored entry 2 and serves the fork at the cosigned size
        cosigned_size = sizes["a"][-1]
        fork_log(a, 2, anchored_size=cosigned_size)
        deadline = time.monotonic() + 30
        while metric(tmp_path / "witness.prom", "tally_witness_split_views_total", origin_a) != 1:
            assert time.monotonic() < deadline, "no split view caught"
            time.sleep(0.2)
        assert not cosignatures(a, signer)[cosigned_size]  # the forked note is not cosigned
        prom = (tmp_path / "witness.prom").read_text(encoding="utf-8")
        assert "# TYPE tally_witness_split_views_total counter" in prom
        assert metric(tmp_path / "witness.prom", "tally_witness_cosigned_size", origin_a) == (
            cosigned_size
        )
        # B is still witnessed while A is refused
        size_b = b.grow(3)
        wait_cosigned(b, signer, size_b)
    finally:
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGTERM)
        proc.join(timeout=30)
        assert proc.exitcode == 0

    # the forked log grows: the fork served at a larger size, with its own consistency proof
    with a.engine.begin() as conn:
        n = conn.execute(sa.text("SELECT COUNT(*) FROM log_entries")).scalar_one()
    ingest(a.engine, a.space, [receipt(a.space, 20_000 + k) for k in range(3)])  # type: ignore[arg-type]
    fake_anchor(a, seq=99, tree_size=n + 3)  # anchored in the operator's database only
    once = tally("witness", "--config", str(config), "--key-file", str(key), "--once")
    assert once.returncode == EXIT_SPLIT_VIEW, once.stdout + once.stderr
    assert "split_view" in once.stdout and "fork" in once.stdout, once.stdout

    status = tally("witness", "status", "--config", str(config), "--json")
    assert status.returncode == 0, status.stderr
    rows = {r["origin"]: r for r in json.loads(status.stdout)}
    assert rows[origin_a]["cosigned_size"] == cosigned_size
    assert rows[origin_a]["split_view_kinds"] == ["same-size", "fork"]
    assert rows[NoteVerifier.from_vkey(b.vkey).name]["split_views"] == 0

    proofs = sorted((tmp_path / "split-views").glob("*.json"))
    assert len(proofs) == 2
    for proof in proofs:
        done = tally("witness", "verify-proof", str(proof))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SPLIT VIEW" in done.stdout
    # a tampered proof does not verify
    doc = json.loads(proofs[0].read_text())
    doc["conflicting_note"] = doc["cosigned_note"]
    (tmp_path / "tampered.json").write_text(json.dumps(doc))
    done = tally("witness", "verify-proof", str(tmp_path / "tampered.json"))
    assert done.returncode == 1 and "split_view_proof_invalid" in done.stderr


def witness_once(config: Path, key: Path, fault: str | None = None) -> int:
    done = tally("witness", "--config", str(config), "--key-file", str(key), "--once", fault=fault)
    return done.returncode


def test_witness_killed_between_verify_and_store_neither_cosigns_twice_nor_skips(
    spaces: dict[str, Served],
    witness_key: tuple[Path, CosignatureV1Signer],
    crash_key: tuple[Path, CosignatureV1Signer],
    anvil: Anvil,
    tmp_path: Path,
) -> None:
    key, signer = crash_key
    s = spaces["b"]
    config = write_config(tmp_path / "witness.toml", [s], anvil.url)
    origin = NoteVerifier.from_vkey(s.vkey).name
    db = tmp_path / "witness.db"

    def stored() -> list[tuple[int, str, bool]]:
        store = WitnessStore(db)
        try:
            return [(c.size, c.cosignature, c.posted) for c in store.history(origin)]
        finally:
            store.close()

    # killed after verifying and signing, before storing: nothing stored, nothing posted
    first = s.grow(2)
    assert witness_once(config, key, "kill-after-verify") == -signal.SIGKILL
    assert stored() == [] and not cosignatures(s, signer)[first]
    assert witness_once(config, key) == EXIT_OK
    [(size, line, posted)] = stored()
    assert (size, posted) == (first, True)
    assert cosignatures(s, signer)[first] == [line]

    # killed after storing, before posting: the restart posts the stored bytes, signs nothing
    second = s.grow(3)
    assert witness_once(config, key, "kill-after-store") == -signal.SIGKILL
    assert [(c[0], c[2]) for c in stored()] == [(first, True), (second, False)]
    assert not cosignatures(s, signer)[second]
    assert witness_once(config, key) == EXIT_OK
    history = stored()
    assert [(c[0], c[2]) for c in history] == [(first, True), (second, True)]  # none skipped
    assert cosignatures(s, signer)[second] == [history[1][1]]  # the line stored before the kill
    # and a round with nothing new signs nothing
    assert witness_once(config, key) == EXIT_OK
    assert stored() == history


def test_witness_refuses_a_foreign_key_an_unanchored_checkpoint_and_a_rollback(
    spaces: dict[str, Served],
    witness_key: tuple[Path, CosignatureV1Signer],
    anvil: Anvil,
    tmp_path: Path,
) -> None:
    """Each refused with exit code 4 and nothing cosigned: a note under another key than
    the pinned one; a consistent checkpoint the operator's database claims is anchored
    but the ledger does not hold; a note older than the one cosigned (a rollback)."""
    key, _ = witness_key
    s = spaces["b"]
    impostor = NoteSigner(NoteVerifier.from_vkey(s.vkey).name, b"\x07" * 32)
    honest_vkey, s.vkey = s.vkey, impostor.vkey()
    wrong = write_config(tmp_path / "wrong.toml", [s], anvil.url)
    s.vkey = honest_vkey
    done = tally("witness", "--config", str(wrong), "--key-file", str(key), "--once")
    assert done.returncode == EXIT_REFUSED and "no signature" in done.stdout, done.stdout

    config = write_config(tmp_path / "witness.toml", [s], anvil.url)
    run = ["witness", "--config", str(config), "--key-file", str(key), "--once"]
    assert tally(*run).returncode == EXIT_OK
    cosigned = int(s.note().split("\n")[1])
    ingest(s.engine, s.space, [receipt(s.space, s.nonce + k + 1) for k in range(2)])  # type: ignore[arg-type]
    s.nonce += 2
    table = AnchorRow.__table__  # type: ignore[attr-defined]
    fake_anchor(s, seq=1_000, tree_size=cosigned + 2)
    try:
        done = tally(*run)
        assert done.returncode == EXIT_REFUSED, done.stdout
        assert f"size {cosigned + 2} is not a checkpoint of ledger" in done.stdout
    finally:
        with s.engine.begin() as conn:
            conn.execute(sa.delete(table).where(table.c.seq == 1_000))
    with s.engine.begin() as conn:
        latest = conn.execute(sa.select(table).order_by(table.c.seq.desc()).limit(1)).one()
        conn.execute(sa.delete(table).where(table.c.seq == latest.seq))
    try:
        assert int(s.note().split("\n")[1]) < cosigned
        done = tally(*run)
        assert done.returncode == EXIT_REFUSED and "rollback" in done.stdout, done.stdout
    finally:
        with s.engine.begin() as conn:
            conn.execute(sa.insert(table).values(**latest._asdict()))
    store = WitnessStore(tmp_path / "witness.db")
    assert [c.size for c in store.history(NoteVerifier.from_vkey(s.vkey).name)] == [cosigned]
    store.close()


def test_unreachable_space_is_a_transient_failure_not_a_refusal(
    spaces: dict[str, Served],
    witness_key: tuple[Path, CosignatureV1Signer],
    anvil: Anvil,
    tmp_path: Path,
) -> None:
    s = spaces["b"]
    gone = Served("gone", s.space, s.engine, ServeProcess(env={}, port=free_port()), s.vkey)
    config = write_config(tmp_path / "witness.toml", [gone], anvil.url)
    done = tally("witness", "--config", str(config), "--key-file", str(witness_key[0]), "--once")
    assert done.returncode == EXIT_UNAVAILABLE, done.stdout + done.stderr
    assert done.stdout.startswith("unavailable"), done.stdout
