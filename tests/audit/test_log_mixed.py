"""A log that mixes leaf versions (T15 migration): entries appended before T15 keep their
legacy leaves (the canonical bytes), later ones are commitments; `tally audit log`
verifies every anchored checkpoint end to end, over the API (signed in as an auditor)
and from a `tally log export` file, and a salt changed in either is a named failure.

The log: an Agreement and 5 receipts as legacy leaves, anchored (size 6); 6 more receipts
with commitments, anchored (size 12); one more pending (13).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from service.chain.config import save_deployment
from service.cli import app
from service.db import create_schema, make_engine
from service.evidence.anchor import anchor_once
from service.evidence.directory import ChainDirectory
from service.evidence.log import append_entries
from service.evidence.merkle import leaf_hash
from service.evidence.models import EntryCommitment
from tests.audit.http import serve_api
from tests.evidence.test_log import agreement, receipt
from tests.space import Space, build_space

runner = CliRunner()
KEY_ENV = "TALLY_TEST_AUDITOR_KEY"

pytestmark = pytest.mark.skipif(
    "commitments" not in inspect.signature(append_entries).parameters,
    reason="append_entries(..., commitments=False) (legacy leaves) is not there yet",
)


def _append(engine: Engine, space: Space, entries: list[Any], *, commitments: bool) -> None:
    directory = ChainDirectory(space.chain, space.contracts.registry)
    results = append_entries(
        engine=engine,
        domain=space.domain,
        directory=directory,
        entries=entries,
        commitments=commitments,  # type: ignore[call-arg]
    )
    assert all(r.status == "accepted" for r in results), results


def _anchor(engine: Engine, space: Space) -> None:
    assert anchor_once(
        engine=engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )


def _mixed_log(anvil_space: Space, tmp_path: Path) -> tuple[Space, Engine, str, tuple[str, ...]]:
    space = build_space(anvil_space.chain)  # a ledger of its own
    db = f"sqlite:///{tmp_path}/mixed.db"
    engine = make_engine(db)
    create_schema(engine)
    _append(
        engine,
        space,
        [agreement(space), *(receipt(space, n) for n in range(1, 6))],
        commitments=False,
    )
    _anchor(engine, space)
    _append(engine, space, [receipt(space, n) for n in range(6, 12)], commitments=True)
    _anchor(engine, space)
    _append(engine, space, [receipt(space, 12)], commitments=True)
    deployment = tmp_path / "deployment.json"
    save_deployment(space.contracts.deployment, deployment)
    chain_opts = ("--rpc", space.chain.network.rpc_url or "", "--deployment", str(deployment))
    return space, engine, db, chain_opts


def _cli(space: Space, *args: str) -> Any:
    env = {"COLUMNS": "200", KEY_ENV: "0x" + bytes(space.auditor.key).hex()}
    return runner.invoke(app, list(args), env=env)


def test_mixed_log_passes_audit_log_over_the_api_and_from_an_export(
    anvil_space: Space, tmp_path: Path
) -> None:
    space, engine, db, chain_opts = _mixed_log(anvil_space, tmp_path)
    with Session(engine) as session:  # both leaf versions: 6 legacy, then 7 commitments
        salted = session.exec(select(EntryCommitment.leaf_index)).all()
    assert sorted(salted) == list(range(6, 13))
    with serve_api(space, engine, page_max=4) as api:
        by_api = _cli(
            space, "audit", "log", *chain_opts, "--api", api, "--key-env", KEY_ENV, "--json"
        )
    assert by_api.exit_code == 0, by_api.output
    doc = json.loads(by_api.stdout)
    assert doc["ok"] is True
    passed = {c["check"] for c in doc["checks"] if c["ok"]}
    assert {"checkpoint 0 entries", "checkpoint 1 entries", "checkpoint 1 consistency"} <= passed

    export = tmp_path / "log.jsonl"
    done = runner.invoke(app, ["log", "export", "--upto", "1", "--out", str(export), "--db", db])
    assert done.exit_code == 0, done.output
    lines = [json.loads(line) for line in export.read_text().splitlines()[1:]]
    assert [line["salt"] is None for line in lines] == [True] * 6 + [False] * 6
    by_file = _cli(space, "audit", "log", *chain_opts, "--log-file", str(export), "--json")
    assert by_file.exit_code == 0, by_file.output
    assert json.loads(by_file.stdout)["ok"] is True

    # a pre-T15 export (no salt keys at all) of the legacy part still loads as legacy leaves
    old = tmp_path / "old.jsonl"
    header = json.loads(export.read_text().splitlines()[0])
    old_lines = [json.dumps(header)] + [
        json.dumps({k: v for k, v in line.items() if k != "salt"}) for line in lines[:6]
    ]
    old.write_text("\n".join(old_lines) + "\n")
    from service.audit.sources import ExportFileSource

    src = ExportFileSource(old)
    assert [leaf_hash(bytes.fromhex(line["data"])) for line in lines[:6]] == src._leaf_hashes()

    # an operator that hands out a wrong salt for one commitment leaf (leaf 8) is caught at
    # the first checkpoint covering it
    lines[8]["salt"] = "00" * 32
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([json.dumps(header), *(json.dumps(line) for line in lines)]) + "\n")
    failed = _cli(space, "audit", "log", *chain_opts, "--log-file", str(bad), "--json")
    assert failed.exit_code == 1
    report = json.loads(failed.stdout)
    assert report["first_failure"]["seq"] == 1  # the file's tree is its leaves': no longer 1's
    checks = {c["check"]: c["ok"] for c in report["checks"]}
    assert checks["checkpoint 0 entries"] is True and checks["checkpoint 1 entries"] is False
    engine.dispose()


def test_audit_log_api_needs_an_auditor_key_one_line(anvil_space: Space, tmp_path: Path) -> None:
    space, engine, _, chain_opts = _mixed_log(anvil_space, tmp_path)
    provider = "0x" + bytes(space.providers[2].key).hex()
    with serve_api(space, engine, page_max=4) as api:
        env = {"COLUMNS": "200", KEY_ENV: provider}
        done = runner.invoke(
            app, ["audit", "log", *chain_opts, "--api", api, "--key-env", KEY_ENV], env=env
        )
    assert done.exit_code == 1
    assert done.exception is not None
    message = str(done.exception)
    assert "holds no auditor role" in message and space.providers[2].address in message
    assert "\n" not in message
    engine.dispose()
