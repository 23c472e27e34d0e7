"""`tally audit settlement N --api URL`: the same report from a real Tally API on loopback
as from the operator's database and from an export file; a hostile API's bad page is the
named `log_entries` failure, a rewritten entry the `log_root` one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from service.chain.config import save_deployment
from service.cli import app
from service.db import create_schema, make_engine
from service.evidence.sources import SqlLogSource
from service.settlement.rounds import propose
from tests.audit.http import HostileProxy, Reply, on, serve_api
from tests.audit.test_settlement import ROUND, _evidence, _fund, _result
from tests.settlement.test_engine import P0, P1, make_policy
from tests.space import Space

runner = CliRunner()


def _checks(doc: dict[str, Any], source: str) -> list[tuple[str, bool | None, str]]:
    return [(c["check"], c["ok"], c["detail"].replace(source, "SOURCE")) for c in doc["checks"]]


def test_cli_audit_settlement_api_db_and_export_give_the_same_report(
    anvil_space: Space, tmp_path: Path
) -> None:
    space = anvil_space
    db = f"sqlite:///{tmp_path}/tally.db"
    engine = make_engine(db)
    create_schema(engine)
    cp = _evidence(engine, space)
    policy = make_policy(space)
    result = _result(engine, cp, policy)
    _fund(space, result.pool)
    propose(chain=space.chain, vault=space.contracts.vault, result=result, sender=space.operator)
    export = tmp_path / "log.jsonl"
    exported = runner.invoke(
        app, ["log", "export", "--upto", str(cp.seq), "--out", str(export), "--db", db]
    )
    assert exported.exit_code == 0, exported.output
    deployment = tmp_path / "deployment.json"
    save_deployment(space.contracts.deployment, deployment)
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(
        json.dumps(
            {
                "version": 1,
                "operator": space.operator.address,
                "operator_fee_bps": 250,
                "method": "output",
                "default_quality_bps": 6000,
            }
        )
    )
    audit = (
        "audit", "settlement", str(ROUND), "--rpc", space.chain.network.rpc_url or "",
        "--deployment", str(deployment), "--policy", str(policy_file),
        "--from", str(P0), "--to", str(P1), "--json",
    )  # fmt: skip

    key = {"AUDITOR_KEY": "0x" + bytes(space.auditor.key).hex()}

    def run(*source: str) -> tuple[int, dict[str, Any]]:
        signed = ("--key-env", "AUDITOR_KEY") if "--api" in source else ()
        done = runner.invoke(app, [*audit, *source, *signed], env={"COLUMNS": "200"} | key)
        return done.exit_code, json.loads(done.stdout)

    with serve_api(space, engine, page_max=3) as api:
        proxy = HostileProxy(api)
        try:
            code, by_api = run("--api", proxy.url, "--cache", str(tmp_path / "cache"))
            assert code == 0 and by_api["ok"] is True, by_api
            pages = [h.query["start"] for h in proxy.hits if h.path == "/v1/evidence"]
            assert pages == list(range(0, cp.tree_size, 3))  # paged, 3 entries a page

            # a hostile page: the named log_entries failure, not a crash
            proxy.attack = on("/v1/evidence", lambda a, r: Reply(200, b"not json"))
            code, hostile = run("--api", proxy.url)
            assert code == 1 and hostile["first_failure"]["check"] == "log_entries"
            assert "the answer is not JSON" in hostile["first_failure"]["detail"]
        finally:
            proxy.close()
    code, by_file = run("--log-file", str(export))
    assert code == 0
    assert _checks(by_api, f"API {proxy.url}") == _checks(by_file, "export file log.jsonl")
    assert by_api["recomputed"] == by_file["recomputed"]
    # the operator's database needs SqlLogSource.leaves (the salts) for a commitment log
    sql_salts = hasattr(SqlLogSource, "leaves")
    if sql_salts:
        code, by_db = run("--db", db)
        assert code == 0, by_db
        assert _checks(by_api, f"API {proxy.url}") == _checks(by_db, f"SQL log {db}")
        assert by_db["recomputed"] == by_api["recomputed"]

    # the operator rewrites an anchored entry's bytes (tiles kept) and serves that
    with engine.begin() as conn:
        data = conn.execute(text("SELECT data FROM log_entries WHERE leaf_index = 1")).scalar_one()
        conn.execute(
            text("UPDATE log_entries SET data = :d WHERE leaf_index = 1"),
            {"d": bytes(data[:-1]) + bytes([data[-1] ^ 1])},
        )
    with serve_api(space, engine, page_max=3) as api:
        code, forked = run("--api", api)
    assert code == 1 and forked["first_failure"]["check"] == "log_root"
    both = runner.invoke(app, [*audit, "--api", api, "--db", db])
    assert both.exit_code == 1 and "exactly one of --log-file" in str(both.exception)
    engine.dispose()
    if not sql_salts:
        pytest.skip("--db leg not run: SqlLogSource has no leaves() (salts) yet")
