"""`tally receipt disclose` writes a reduced receipt; `tally audit receipt` prints what it
proves and hides; bad input is one readable line and a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner, Result

from service.chain.client import Chain
from service.cli import app
from service.db import create_schema, make_engine
from service.evidence.anchor import anchor_once
from service.evidence.receipts import build_receipt
from tests.evidence.test_log import agreement, ingest, receipt
from tests.space import Space

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _tally(*runs: list[str]) -> list[tuple[int, str]]:
    """``python -m service.cli`` (the real entry point: its error line) once per argument
    list, all at once; exit code and stdout + stderr of each."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args],
            cwd=ROOT,
            env={**os.environ, "COLUMNS": "200"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for args in runs
    ]
    return [(p.wait(timeout=120), p.communicate()[0]) for p in procs]


def _invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def full(
    _space: Space, _embedded: Chain, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A full version-2 receipt file of the embedded data space."""
    snap = _embedded.snapshot()
    folder = tmp_path_factory.mktemp("disclose")
    engine = make_engine(f"sqlite:///{folder}/tally.db")
    create_schema(engine)
    batch = [agreement(_space), receipt(_space, 1, units=42)]
    ingest(engine, _space, batch)
    anchor_once(
        engine=engine, chain=_space.chain, ledger=_space.contracts.ledger, operator=_space.operator
    )
    with Session(engine) as s:
        doc = build_receipt(session=s, eid="0x" + batch[1].id().hex())
    engine.dispose()
    _embedded.revert(snap)
    path = folder / "full.json"
    path.write_text(json.dumps(doc))
    yield path


def test_disclose_writes_a_reduced_receipt_that_audits_and_names_its_fields(
    full: Path, tmp_path: Path
) -> None:
    small = tmp_path / "small.json"
    done = _invoke(
        "receipt", "disclose", str(full), "--fields",
        "units,periodStart,periodEnd,consumer,provider", "--out", str(small),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert f"written to {small}" in done.output
    doc = json.loads(small.read_text())
    assert doc["form"] == "reduced" and "signed" in doc and "entry" not in doc
    audit = _invoke("audit", "receipt", str(small), "--offline")
    assert audit.exit_code == 0, audit.output
    lines = audit.output.splitlines()
    assert lines[0].startswith("proven fields: consumer=") and "units=42" in lines[0]
    assert lines[1] == "hidden fields: agreementId, detailHash, nonce"
    assert lines[2].startswith("PASS reduced receipt (leaf 1)")
    as_json = json.loads(_invoke("audit", "receipt", str(small), "--offline", "--json").output)
    assert as_json["form"] == "reduced" and as_json["fields"]["values"]["units"] == 42


def test_disclose_the_issues_command_adds_the_signer_fields(full: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.json"
    done = _invoke(
        "receipt", "disclose", str(full), "--fields", "units,periodStart,periodEnd",
        "--out", str(small),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "consumer, provider added: they name the signers" in done.output
    audit = _invoke("audit", "receipt", str(small), "--offline")
    assert audit.exit_code == 0, audit.output
    assert audit.output.splitlines()[1] == "hidden fields: agreementId, detailHash, nonce"


def test_disclose_without_signatures_to_stdout(full: Path) -> None:
    done = _invoke("receipt", "disclose", str(full), "--fields", "units", "--no-signatures")
    assert done.exit_code == 0, done.output
    doc = json.loads(done.output)
    assert "signers_digest" in doc and "signed" not in doc and len(doc["disclosures"]) == 1


def test_disclose_bad_input_is_one_line_and_exit_1(full: Path, tmp_path: Path) -> None:
    doc = json.loads(full.read_text())
    legacy = tmp_path / "v1.json"
    legacy.write_text(json.dumps({**doc, "version": 1}))
    garbage = tmp_path / "junk.json"
    garbage.write_text("{not json")
    small = tmp_path / "small.json"
    made = _invoke("receipt", "disclose", str(full), "--fields", "units", "--no-signatures",
                   "--out", str(small))  # fmt: skip
    assert made.exit_code == 0, made.output
    cases = [
        ([str(full), "--fields", "units,price,consumer,provider"], "has no field 'price'"),
        ([str(full), "--fields", " , "], "--fields names at least one field"),
        ([str(legacy), "--fields", "units"], "a version-1 receipt (a legacy leaf"),
        ([str(small), "--fields", "units"], "only a full version-2 receipt"),
        ([str(garbage), "--fields", "units"], "is not JSON"),
        ([str(tmp_path / "missing.json"), "--fields", "units"], "no receipt file"),
    ]
    runs = [["receipt", "disclose", *args] for args, _ in cases] + [["receipt", "0x1234"]]
    messages = [m for _, m in cases] + ["an entry id is 0x followed by 64 hex digits"]
    for (code, output), message in zip(_tally(*runs), messages, strict=True):
        assert code == 1 and message in output, (message, output)
        assert len(output.strip().splitlines()) == 1, output
