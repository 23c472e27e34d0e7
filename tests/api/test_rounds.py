"""``/v1/rounds``, ``/v1/bills``, ``/v1/audit/rounds``: the settlement life cycle over HTTP.

Evidence -> anchor -> compute (dry run) -> propose (refused until the vault holds the
pool) -> statements, claims, bills -> finalize after the window -> a participant sends
the claim transaction the API prepared -> the auditor's recomputation matches. Numbers:
tests/settlement/test_engine.py's usage (R = 60 x 1000 = 60000; fee 1500; p0 39000,
p1 19500 under the output method at quality 0.6).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from service.api.context import ServiceContext
from service.chain.client import Chain
from service.chain.config import rpc_network, save_deployment
from service.chain.devnode import Anvil
from service.cli import app
from service.evidence.anchor import anchor_once
from service.settings import get_settings
from service.settlement.published import clear_cache
from tests.api.conftest import SignIn, TestClient, bearer, get_token, make_client
from tests.api.test_participants import index_once
from tests.settlement.test_engine import P0, P1, agreement, ingest_all, receipt, usage
from tests.settlement.test_rounds import WINDOW, balance, fund
from tests.space import Space, build_space

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def code(r: Any) -> str:
    value: str = r.json()["error"]["code"]
    return value


def policy_doc(space: Space, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "operator": space.operator.address,
        "operator_fee_bps": 250,
        "method": "output",
        "default_quality_bps": 6000,
    }
    doc.update(over)
    return doc


def prepare(client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn) -> None:
    h = sign_in(space.consumers[0])
    items = [e.to_json() for e in [agreement(space), *usage(space)]]
    assert client.post("/v1/evidence", json={"entries": items}, headers=h).json()["accepted"] == 4
    anchor_once(
        engine=ctx.engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )


def round_body(space: Space, round_id: int = 1, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "round_id": round_id,
        "period_start": P0,
        "period_end": P1,
        "policy": policy_doc(space),
    }
    body.update(over)
    return body


def test_round_life_cycle_over_http(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn, engine: Engine
) -> None:
    prepare(client, ctx, space, sign_in)
    op, auditor = sign_in(space.operator), sign_in(space.auditor)
    p0, p1 = space.providers[0], space.providers[1]
    consumer = sign_in(space.consumers[0])

    # compute: operator only
    assert client.post("/v1/rounds", json=round_body(space)).status_code == 401
    r = client.post("/v1/rounds", json=round_body(space), headers=consumer)
    assert (r.status_code, code(r)) == (403, "role_required")
    r = client.post("/v1/rounds", json=round_body(space), headers=op)
    assert r.status_code == 200, r.text
    statement = r.json()["statement"]
    assert r.json()["status"] == "draft" and statement["total"] == "60000"
    payouts = {p["account"]: p["payout"] for p in statement["participants"]}
    assert payouts == {p0.address: "39000", p1.address: "19500", space.operator.address: "1500"}

    # public reads
    listed = client.get("/v1/rounds").json()
    assert listed["total"] == 1 and listed["rounds"][0]["status"] == "draft"
    detail = client.get("/v1/rounds/1").json()
    assert detail["status"] == "draft" and detail["on_chain"] is None
    assert detail["computed"]["policy"]["operator_fee_bps"] == 250
    r = client.get("/v1/rounds/99")
    assert (r.status_code, code(r)) == (404, "round_not_found")

    # propose: refused until the consumer's balance on the vault holds its bill, then on chain
    r = client.post("/v1/rounds/1/propose", headers=op)
    assert (r.status_code, code(r)) == (409, "insufficient_balance")
    assert space.consumers[0].address in r.json()["error"]["message"]
    fund(space, 60000)
    r = client.post("/v1/rounds/1/propose", headers=consumer)
    assert (r.status_code, code(r)) == (403, "role_required")
    r = client.post("/v1/rounds/1/propose", headers=op)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "Proposed" and r.json()["tx_hash"].startswith("0x")
    assert r.json()["on_chain"]["payout_root"] == statement["payout_root"]
    assert r.json()["on_chain"]["period"] == {"start": P0, "end": P1}
    r = client.post("/v1/rounds", json=round_body(space), headers=op)
    assert (r.status_code, code(r)) == (409, "round_exists")

    # statements: own, or any for staff
    mine = client.get(f"/v1/rounds/1/statement/{p0.address}", headers=sign_in(p0))
    assert mine.status_code == 200
    assert mine.json()["participant"]["payout"] == "39000"
    assert mine.json()["source"] == "computed here"
    r = client.get(f"/v1/rounds/1/statement/{p0.address}", headers=sign_in(p1))
    assert (r.status_code, code(r)) == (403, "role_required")
    bill_part = client.get(f"/v1/rounds/1/statement/{space.consumers[0].address}", headers=auditor)
    assert bill_part.json()["bill"]["total"] == "60000" and bill_part.json()["participant"] is None
    r = client.get(f"/v1/rounds/1/statement/{space.providers[2].address}", headers=auditor)
    assert (r.status_code, code(r)) == (404, "statement_not_found")
    assert client.get(f"/v1/rounds/1/statement/{p0.address}").status_code == 401

    # finalize: the vault refuses inside the window, then after it
    r = client.post("/v1/rounds/1/finalize", headers=op)
    assert (r.status_code, code(r)) == (409, "transaction_reverted")
    space.chain.increase_time(WINDOW)
    r = client.post("/v1/rounds/1/finalize", headers=op)
    assert r.status_code == 200 and r.json()["status"] == "Finalized"
    r = client.post("/v1/rounds/1/cancel", headers=op)
    assert (r.status_code, code(r)) == (409, "transaction_reverted")

    # the claim, ready to send: p1 sends it as it comes and is paid
    h1 = sign_in(p1)
    c = client.get(f"/v1/rounds/1/claims/{p1.address}", headers=h1).json()
    assert (c["amount"], c["claimed"], c["status"]) == ("19500", False, "Finalized")
    tx = {"to": c["transaction"]["to"], "data": c["transaction"]["data"], "from": p1.address}
    gas = space.chain.w3.eth.estimate_gas(tx)  # type: ignore[arg-type]
    sent = space.chain.w3.eth.send_transaction(tx | {"gas": gas})  # type: ignore[arg-type]
    assert space.chain.w3.eth.wait_for_transaction_receipt(sent)["status"] == 1
    assert balance(space, p1.address) == 19500
    assert client.get(f"/v1/rounds/1/claims/{p1.address}", headers=h1).json()["claimed"] is True
    r = client.get(f"/v1/rounds/1/claims/{space.consumers[0].address}", headers=auditor)
    assert (r.status_code, code(r)) == (404, "claim_not_found")
    r = client.get(f"/v1/rounds/1/claims/{p0.address}", headers=h1)
    assert (r.status_code, code(r)) == (403, "role_required")

    # the auditor's recomputation from the anchored log matches the vault
    audit = client.get("/v1/audit/rounds/1", headers=auditor)
    assert audit.status_code == 200 and audit.json()["ok"] is True, audit.json()["verdict"]
    r = client.get("/v1/audit/rounds/1", headers=h1)
    assert (r.status_code, code(r)) == (403, "role_required")
    r = client.get("/v1/audit/rounds/7", headers=auditor)
    assert (r.status_code, code(r)) == (404, "round_not_found")
    assert client.get("/v1/audit/rounds/1").status_code == 401


def test_cancel_a_proposed_round(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn
) -> None:
    prepare(client, ctx, space, sign_in)
    op = sign_in(space.operator)
    client.post("/v1/rounds", json=round_body(space, 5), headers=op)
    fund(space, 60000)
    assert client.post("/v1/rounds/5/propose", headers=op).status_code == 200
    assert client.post("/v1/rounds/5/cancel", headers=sign_in(space.auditor)).status_code == 403
    r = client.post("/v1/rounds/5/cancel", headers=op)
    assert r.status_code == 200 and r.json()["status"] == "Cancelled"
    index_once(ctx, space)  # the list now reads the status from the indexer's mirror
    (listed,) = client.get("/v1/rounds").json()["rounds"]
    assert (listed["round_id"], listed["status"]) == (5, "Cancelled")
    assert listed["period"] == {"start": P0, "end": P1}
    r = client.post("/v1/rounds/6/propose", headers=op)
    assert (r.status_code, code(r)) == (404, "round_not_found")


def test_compute_refuses_bad_inputs_with_codes(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn
) -> None:
    op = sign_in(space.operator)
    r = client.post("/v1/rounds", json=round_body(space), headers=op)
    assert (r.status_code, code(r)) == (404, "checkpoint_not_found")  # nothing anchored
    prepare(client, ctx, space, sign_in)
    r = client.post("/v1/rounds", json=round_body(space, policy={"version": 1}), headers=op)
    assert (r.status_code, code(r)) == (422, "policy_invalid")
    r = client.post("/v1/rounds", json=round_body(space, checkpoint_seq=9), headers=op)
    assert (r.status_code, code(r)) == (404, "checkpoint_not_found")
    r = client.post("/v1/rounds", json=round_body(space, period_start=1, period_end=2), headers=op)
    assert (r.status_code, code(r)) == (422, "nothing_to_settle")
    r = client.post("/v1/rounds", json=round_body(space, round_id=0), headers=op)
    assert (r.status_code, code(r)) == (422, "validation_error")
    assert r.json()["error"]["fields"][0]["path"] == "body.round_id"


def test_bills_of_a_consumer(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn
) -> None:
    c0 = space.consumers[0]
    h = sign_in(c0)
    r = client.get(f"/v1/bills/{c0.address}", params={"from": P0, "to": P1}, headers=h)
    assert (r.status_code, code(r)) == (404, "checkpoint_not_found")
    prepare(client, ctx, space, sign_in)
    r = client.get(f"/v1/bills/{c0.address}", params={"from": P0, "to": P1}, headers=h)
    assert r.status_code == 200
    bill = r.json()
    assert bill["total"] == "60000" and bill["agreements"][0]["units"] == 60
    assert bill["checkpoint"] == {"seq": 0, "size": 4}
    other = sign_in(space.consumers[1])
    r = client.get(f"/v1/bills/{c0.address}", params={"from": P0, "to": P1}, headers=other)
    assert (r.status_code, code(r)) == (403, "role_required")
    own = client.get(
        f"/v1/bills/{space.consumers[1].address}", params={"from": P0, "to": P1}, headers=other
    )
    assert own.json()["total"] == "0"
    r = client.get(f"/v1/bills/{c0.address}", params={"from": P0}, headers=h)
    assert (r.status_code, code(r)) == (422, "validation_error")
    assert client.get(f"/v1/bills/{c0.address}", params={"from": P0, "to": P1}).status_code == 401


def test_bills_take_iso_dates_like_the_cli(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn
) -> None:
    c0 = space.consumers[0]
    h = sign_in(c0)
    prepare(client, ctx, space, sign_in)
    unix = client.get(f"/v1/bills/{c0.address}", params={"from": P0, "to": P1}, headers=h)
    iso = {
        "from": datetime.fromtimestamp(P0, tz=UTC).isoformat(),
        "to": datetime.fromtimestamp(P1, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    r = client.get(f"/v1/bills/{c0.address}", params=iso, headers=h)
    assert r.status_code == 200 and r.json() == unix.json()
    assert r.json()["total"] == "60000"
    for bad in ("yesterday", "-5", str(2**64), "2026-13-01", "9" * 65):
        r = client.get(f"/v1/bills/{c0.address}", params={"from": bad, "to": P1}, headers=h)
        assert r.status_code in (400, 422), (bad, r.text)
        assert code(r) in ("invalid_input", "validation_error"), (bad, r.text)


# --- rounds proposed outside the API: served from their published statement --------------


@pytest.fixture
def rpc_space(anvil: Anvil) -> Iterator[Space]:
    """A fresh deployment on anvil (the CLI and the API each connect to it)."""
    chain = Chain.connect(rpc_network(anvil.url, chain_id=31337))
    snap = chain.snapshot()
    yield build_space(chain)
    chain.revert(snap)
    clear_cache()


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def serve_dir(directory: Path) -> type[BaseHTTPRequestHandler]:
    class Files(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, directory=str(directory), **kw)

        def log_message(self, *args: Any) -> None:
            pass

    return Files


class RedirectToFile(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", "file:///etc/passwd")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class CliRound:
    """The operator's command line on ``space`` (anvil) and database ``db``."""

    def __init__(self, space: Space, db: str, tmp_path: Path, monkeypatch: Any) -> None:
        self.space, self.db = space, db
        self.deployment = tmp_path / "deployment.json"
        save_deployment(space.contracts.deployment, self.deployment)
        self.opts = (
            "--rpc",
            space.chain.network.rpc_url or "",
            "--deployment",
            str(self.deployment),
        )
        self.data = tmp_path / "cli-data"
        monkeypatch.setenv("TALLY_DATA_DIR", str(self.data))
        get_settings.cache_clear()
        self.policy = tmp_path / "policy.json"
        self.policy.write_text(json.dumps(policy_doc(space)))

    def run(self, *args: str) -> str:
        result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout

    def propose(self, round_id: int, start: int, end: int, *extra: str) -> dict[str, Any]:
        self.run("anchor", *self.opts, "--db", self.db)
        bills = json.loads(
            self.run("bill", "--from", str(start), "--to", str(end), "--db", self.db, "--json")
        )
        for bill in bills["bills"]:
            self.run("deposit", bill["total"], "--mint", "--for", bill["consumer"], *self.opts)
        out: dict[str, Any] = json.loads(
            self.run(
                "settle",
                "run",
                "--round",
                str(round_id),
                "--from",
                str(start),
                "--to",
                str(end),
                "--policy",
                str(self.policy),
                "--db",
                self.db,
                "--propose",
                "--json",
                *extra,
                *self.opts,
            )
        )
        return out


def test_statement_served_for_round_proposed_outside_api(
    rpc_space: Space, engine: Engine, db_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    space = rpc_space
    ingest_all(engine, space, [agreement(space), *usage(space)])
    cli = CliRound(space, db_url, tmp_path, monkeypatch)
    try:
        made = cli.propose(1, P0, P1)  # file:// URI of the statement the CLI wrote
        assert made["proposed"]["statement_uri"].startswith("file://")
        client, _ = make_client(space, engine, data_dir=tmp_path / "api")  # not the CLI's
        with client:
            p0, p1 = space.providers[0], space.providers[1]
            h0 = bearer(get_token(client, p0))
            r = client.get(f"/v1/rounds/1/statement/{p0.address}", headers=h0)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["source"] == f"published at {made['proposed']['statement_uri']}"
            # the round names its claim file (T15): payouts and proofs, no usage lines
            assert body["participant"]["payout"] == "39000"
            assert body["participant"]["lines"] is None
            assert body["payout_root"] == made["payout_root"]
            c = client.get(f"/v1/rounds/1/claims/{p0.address}", headers=h0).json()
            assert (c["amount"], c["status"], c["claimed"]) == ("39000", "Proposed", False)
            consumer = space.consumers[0]
            hc = bearer(get_token(client, consumer))
            r = client.get(f"/v1/rounds/1/statement/{consumer.address}", headers=hc)
            assert (r.status_code, code(r)) == (404, "statement_not_found")  # no bills in it

            # round 2 over the next period, published over HTTP (loopback)
            space.chain.increase_time(WINDOW)
            cli.run("settle", "finalize", "1", *cli.opts)
            ingest_all(engine, space, [receipt(space, 20, provider=1, units=7, start=P1 + 60)])
            with http_server(serve_dir(cli.data / "rounds")) as base:
                uri = f"{base}/2/statement.json"
                made2 = cli.propose(2, P1, P1 + 86_400, "--statement-uri", uri)
                assert made2["proposed"]["statement_uri"] == uri
                h1 = bearer(get_token(client, p1))
                r = client.get(f"/v1/rounds/2/claims/{p1.address}", headers=h1)
                assert r.status_code == 200, r.text
                assert r.json()["source"] == f"published at {uri}"
                # R = 7 x 1000 = 7000; fee 175; p1 alone gets 6825
                assert r.json()["amount"] == "6825"
            # cached by root: served after the server is gone too
            r = client.get(f"/v1/rounds/2/claims/{p1.address}", headers=h1)
            assert r.status_code == 200 and r.json()["amount"] == "6825"
            # the claim transaction the API prepared pays once the round is final
            space.chain.increase_time(WINDOW)
            cli.run("settle", "finalize", "2", *cli.opts)
            tx = r.json()["transaction"]
            sent = space.chain.w3.eth.send_transaction(
                {"to": tx["to"], "data": tx["data"], "from": p1.address}  # type: ignore[typeddict-item]
            )
            assert space.chain.w3.eth.wait_for_transaction_receipt(sent)["status"] == 1
            assert balance(space, p1.address) == 6825
    finally:
        get_settings.cache_clear()


def test_statement_uri_with_wrong_payouts_is_refused(
    rpc_space: Space, engine: Engine, db_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    space = rpc_space
    ingest_all(engine, space, [agreement(space), *usage(space)])
    cli = CliRound(space, db_url, tmp_path, monkeypatch)
    tampered = tmp_path / "tampered.json"
    try:
        # the operator proposes the honest root but publishes a statement that pays p0 more
        honest = cli.data / "rounds" / "1" / "statement.json"
        made = cli.propose(1, P0, P1, "--statement-uri", tampered.as_uri())
        doc = json.loads(honest.read_text())
        shift = {space.providers[0].address: 10, space.providers[1].address: -10}
        for part in doc["participants"]:
            part["payout"] = str(int(part["payout"]) + shift.get(part["account"], 0))
        tampered.write_text(json.dumps(doc))
        assert made["proposed"]["statement_uri"] == tampered.as_uri()
        client, _ = make_client(space, engine, data_dir=tmp_path / "api")
        with client:
            auditor = bearer(get_token(client, space.auditor))
            p0 = space.providers[0].address
            for path in (f"/v1/rounds/1/statement/{p0}", f"/v1/rounds/1/claims/{p0}"):
                r = client.get(path, headers=auditor)
                assert (r.status_code, code(r)) == (409, "round_mismatch"), r.text
                assert "not what was proposed, not served" in r.json()["error"]["message"]
            # a URI whose server redirects (here to a local file) is not followed
            space.chain.increase_time(WINDOW)
            cli.run("settle", "finalize", "1", *cli.opts)
            ingest_all(engine, space, [receipt(space, 20, provider=1, units=7, start=P1 + 60)])
            with http_server(RedirectToFile) as base:
                cli.propose(2, P1, P1 + 86_400, "--statement-uri", f"{base}/s.json")
                r = client.get(f"/v1/rounds/2/claims/{space.providers[1].address}", headers=auditor)
                assert (r.status_code, code(r)) == (409, "statement_unavailable")
                assert "redirects are not followed" in r.json()["error"]["message"]
            # no statement at all
            r = client.get(f"/v1/rounds/3/claims/{p0}", headers=auditor)
            assert (r.status_code, code(r)) == (404, "round_not_found")
    finally:
        get_settings.cache_clear()
