"""`tally anchor`, `tally receipt` and `tally audit receipt|log` on the real app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from typer.testing import CliRunner, Result

from service.chain.client import Chain
from service.chain.config import save_deployment
from service.cli import app
from service.db import create_schema, make_engine
from service.errors import ConfigError, EntryNotFound
from service.evidence.anchor import anchor_once
from service.evidence.merkle import leaf_hash
from service.evidence.receipts import build_receipt
from service.evidence.tiles import MerkleLog, SqlTileStorage
from service.settings import get_settings
from tests.evidence.test_log import agreement, ingest, receipt
from tests.space import Space

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _tally(*runs: list[str]) -> list[tuple[int, str, str]]:
    """Run ``python -m service.cli`` (the real entry point) once per argument list, all
    at once; (exit code, stdout, stderr) of each."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args],
            cwd=ROOT,
            env={**os.environ, "COLUMNS": "200"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in runs
    ]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        done.append((proc.returncode, out, err))
    return done


def _invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


@dataclass
class Files:
    good: Path
    tampered: Path  # one proof hash changed


@pytest.fixture(scope="module")
def files(
    _space: Space, _embedded: Chain, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Files]:
    """A receipt of the embedded data space, and a tampered copy."""
    snap = _embedded.snapshot()
    folder = tmp_path_factory.mktemp("cli")
    engine = make_engine(f"sqlite:///{folder}/tally.db")
    create_schema(engine)
    batch = [agreement(_space), receipt(_space, 1), receipt(_space, 2)]
    ingest(engine, _space, batch)
    anchor_once(
        engine=engine,
        chain=_space.chain,
        ledger=_space.contracts.ledger,
        operator=_space.operator,
    )
    with Session(engine) as s:
        doc = build_receipt(session=s, eid="0x" + batch[1].id().hex())
    engine.dispose()
    _embedded.revert(snap)
    good = folder / "receipt.json"
    good.write_text(json.dumps(doc))
    bad = json.loads(json.dumps(doc))
    bad["inclusion_proof"][0] = "0x" + "ab" * 32
    tampered = folder / "tampered.json"
    tampered.write_text(json.dumps(bad))
    yield Files(good, tampered)


def test_tally_audit_receipt_offline_exit_codes_and_one_line_verdicts(files: Files) -> None:
    good, tampered = _tally(
        ["audit", "receipt", str(files.good), "--offline"],
        ["audit", "receipt", str(files.tampered), "--offline"],
    )
    code, out, err = good
    assert code == 0, err
    (line,) = out.splitlines()
    assert line.startswith("PASS receipt 0x") and "OFFLINE" in line
    code, out, err = tampered
    assert code == 1
    (line,) = out.splitlines()
    assert line.startswith("FAIL receipt 0x") and "check 'inclusion' failed" in line


def test_audit_receipt_json_parses(files: Files) -> None:
    good = _invoke("audit", "receipt", str(files.good), "--offline", "--json")
    assert good.exit_code == 0, good.output
    report = json.loads(good.stdout)
    assert report["ok"] is True and report["offline"] is True
    assert [c["check"] for c in report["checks"]][:5] == [
        "document",
        "signatures",
        "entry_id",
        "leaf",
        "inclusion",
    ]
    assert [c["ok"] for c in report["checks"]] == [True] * 5 + [None] * 6
    bad = _invoke("audit", "receipt", str(files.tampered), "--offline", "--json")
    assert bad.exit_code == 1
    report = json.loads(bad.stdout)
    assert report["ok"] is False and report["first_failure"]["check"] == "inclusion"


def test_audit_receipt_verbose_lists_every_check(files: Files) -> None:
    done = _invoke("audit", "receipt", str(files.good), "--offline", "-v")
    assert done.exit_code == 0
    lines = done.stdout.splitlines()
    assert [line.split()[1].rstrip(":") for line in lines[:-1]] == [
        "document",
        "signatures",
        "entry_id",
        "leaf",
        "inclusion",
        "chain_id",
        "deployment",
        "checkpoint",
        "contract_inclusion",
        "anchor_tx",
        "roles",
    ]
    assert lines[-1].startswith("PASS")


def test_audit_receipt_needs_exactly_one_of_rpc_network_offline(files: Files) -> None:
    none = _invoke("audit", "receipt", str(files.good))
    assert none.exit_code == 1 and isinstance(none.exception, ConfigError)
    assert "exactly one of --rpc URL, --network NAME or --offline" in str(none.exception)
    both = _invoke("audit", "receipt", str(files.good), "--offline", "--rpc", "http://x")
    assert both.exit_code == 1 and isinstance(both.exception, ConfigError)


def test_audit_receipt_of_a_file_that_is_not_json(tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    done = _invoke("audit", "receipt", str(junk), "--offline")
    assert done.exit_code == 1 and "not JSON" in str(done.exception)


# --- operator and auditor on a real node ---------------------------------------------------


def _json_out(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_anchor_receipt_and_audits_against_anvil(
    anvil_space: Space, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = anvil_space
    url = space.chain.network.rpc_url or ""
    db = f"sqlite:///{tmp_path}/tally.db"
    deployment = tmp_path / "deployment.json"
    save_deployment(space.contracts.deployment, deployment)
    engine = make_engine(db)
    create_schema(engine)
    batch = [agreement(space), receipt(space, 1), receipt(space, 2)]
    ingest(engine, space, batch)
    target = "0x" + batch[2].id().hex()
    place = ("--rpc", url, "--deployment", str(deployment), "--db", db)

    assert "not anchored" in str(_invoke("receipt", target, "--db", db).exception)
    done = _invoke("anchor", *place)
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("anchored checkpoint 0: size 3, root 0x")
    again = _invoke("anchor", *place)
    assert again.exit_code == 0 and again.stdout.startswith("nothing to anchor")

    out = tmp_path / "r.json"
    written = _invoke("receipt", target, "--out", str(out), "--db", db)
    assert written.exit_code == 0, written.output
    doc = json.loads(out.read_text())
    assert doc["entry_id"] == target and doc["anchor"]["checkpoint_seq"] == 0
    # the database also comes from TALLY_DATABASE_URL
    monkeypatch.setenv("TALLY_DATABASE_URL", db)
    get_settings.cache_clear()
    try:
        assert _json_out(_invoke("receipt", target)) == doc
    finally:
        monkeypatch.delenv("TALLY_DATABASE_URL")
        get_settings.cache_clear()
    missing = _invoke("receipt", "0x" + "00" * 32, "--db", db)
    assert missing.exit_code == 1 and isinstance(missing.exception, EntryNotFound)

    online = _invoke("audit", "receipt", str(out), "--rpc", url, "--deployment", str(deployment))
    assert online.exit_code == 0, online.output
    assert online.stdout.startswith("PASS") and "all 11 checks hold" in online.stdout

    report = _json_out(_invoke("audit", "log", *place, "--json"))
    assert report["ok"] is True
    assert [c["check"] for c in report["checks"]] == [
        "checkpoint 0 root",
        "checkpoint 0 entries",
        "head",
    ]

    # the operator rewrites entry 1 and rebuilds its log: the auditor sees checkpoint 0 break
    forged = make_engine(f"sqlite:///{tmp_path}/forged.db")
    create_schema(forged)
    doctored = [batch[0], receipt(space, 1, units=500), batch[2]]
    with forged.begin() as conn:
        MerkleLog(SqlTileStorage(conn)).append(hashes=[leaf_hash(e.encode()) for e in doctored])
    broken = _invoke(
        "audit", "log", "--rpc", url, "--deployment", str(deployment),
        "--db", f"sqlite:///{tmp_path}/forged.db",
    )  # fmt: skip
    assert broken.exit_code == 1
    assert broken.stdout.startswith("FAIL") and "check 'checkpoint 0 root' failed" in broken.stdout
    forged.dispose()
    engine.dispose()
