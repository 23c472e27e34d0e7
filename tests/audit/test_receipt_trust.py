"""The pinned deployment over the CLI (a real anvil node) and the API (`POST /v1/audit/receipt`):
a receipt anchored on a ledger of the forger's own, or signed by unregistered keys, never
passes (T9 item 12)."""

from __future__ import annotations

import json
from pathlib import Path

from eth_account import Account
from sqlalchemy.engine import Engine
from typer.testing import CliRunner, Result

from service.api.routes.audit import _HISTORIES
from service.chain.client import Chain
from service.chain.config import save_deployment
from service.cli import app
from tests.api.conftest import bearer, get_token, make_client
from tests.audit.forge import anchor_alone, foreign_ledger, usage
from tests.space import Space, build_space

runner = CliRunner()


def _invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def test_cli_receipt_anchored_on_foreign_ledger_fails(anvil_space: Space, tmp_path: Path) -> None:
    space = anvil_space
    url = space.chain.network.rpc_url or ""
    forged = foreign_ledger(space.chain, space.outsider, (Account.create(), Account.create()))
    doc_path = tmp_path / "forged.json"
    doc_path.write_text(json.dumps(forged.doc))
    deployment = tmp_path / "deployment.json"
    save_deployment(space.contracts.deployment, deployment)

    unpinned = _invoke("audit", "receipt", str(doc_path), "--rpc", url)
    assert unpinned.exit_code == 1
    (line,) = unpinned.stdout.splitlines()
    assert line.startswith("FAIL") and "check 'deployment' failed" in line
    assert "pin a deployment (--deployment FILE or --ledger ADDRESS)" in line

    pinned = _invoke(
        "audit", "receipt", str(doc_path), "--rpc", url, "--deployment", str(deployment)
    )
    assert pinned.exit_code == 1
    (line,) = pinned.stdout.splitlines()
    assert "check 'deployment' failed" in line and forged.ledger.address in line

    by_ledger = _invoke(
        "audit", "receipt", str(doc_path), "--rpc", url, "--ledger", space.contracts.ledger.address
    )
    assert by_ledger.exit_code == 1 and "check 'deployment' failed" in by_ledger.stdout

    # trusting the forger's ledger is the auditor's own choice: then it passes
    fooled = _invoke(
        "audit", "receipt", str(doc_path), "--rpc", url, "--ledger", forged.ledger.address
    )
    assert fooled.exit_code == 0 and fooled.stdout.startswith("PASS"), fooled.output


def test_cli_receipt_pin_options_are_checked(anvil_space: Space, tmp_path: Path) -> None:
    doc_path = tmp_path / "r.json"
    doc_path.write_text("{}")
    url = anvil_space.chain.network.rpc_url or ""
    both = _invoke(
        "audit", "receipt", str(doc_path), "--rpc", url,
        "--deployment", str(tmp_path / "d.json"), "--ledger", "0x" + "11" * 20,
    )  # fmt: skip
    assert both.exit_code == 1 and "not both" in str(both.exception)
    offline = _invoke("audit", "receipt", str(doc_path), "--offline", "--ledger", "0x" + "11" * 20)
    assert offline.exit_code == 1 and "--offline" in str(offline.exception)
    bad = _invoke("audit", "receipt", str(doc_path), "--rpc", url, "--ledger", "0x1234")
    assert bad.exit_code == 1 and "--ledger" in str(bad.exception)


def test_api_receipt_anchored_on_foreign_ledger_fails(chain: Chain, engine: Engine) -> None:
    space = build_space(chain)
    a = chain.accounts
    forged = foreign_ledger(chain, a[10], (a[11], a[12]))
    client, _ = make_client(space, engine)
    with client:
        h = bearer(get_token(client, space.consumers[0]))
        r = client.post("/v1/audit/receipt", json=forged.doc, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is False and body["first_failure"]["check"] == "deployment"
    assert (
        forged.ledger.address in body["verdict"] and "this server's deployment" in body["verdict"]
    )


def test_api_receipt_signed_by_unregistered_keys_fails(chain: Chain, engine: Engine) -> None:
    space = build_space(chain)
    signed = usage(space.domain, chain.accounts[11], chain.accounts[12])
    doc = anchor_alone(chain, space.contracts.ledger, signed, space.operator)
    client, ctx = make_client(space, engine)
    with client:
        h = bearer(get_token(client, space.consumers[0]))
        r = client.post("/v1/audit/receipt", json=doc, headers=h)
        fetched = _HISTORIES[ctx.chain].requests
        again = client.post("/v1/audit/receipt", json=doc, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is False and body["first_failure"]["check"] == "roles"
    assert chain.accounts[11].address in body["first_failure"]["detail"]
    # the registry's logs are fetched once per server, not once per request
    assert again.json() == body and _HISTORIES[ctx.chain].requests == fetched
