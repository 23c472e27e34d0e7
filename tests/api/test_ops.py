"""``/healthz``, ``/readyz``, ``/metrics``; the error shape for unknown routes and
methods and for unexpected failures (nothing internal leaks); rate and page limits."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from service.api.context import ServiceContext, make_context
from service.api.main import create_app
from service.chain.client import Chain
from service.chain.config import rpc_network
from service.chain.devnode import free_port
from tests.api.conftest import SignIn, TestClient, api_settings, make_client
from tests.evidence.test_log import agreement, receipt
from tests.space import Space


def code(r: Any) -> str:
    value: str = r.json()["error"]["code"]
    return value


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample (0 if absent)."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^([a-z_]+)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return 0.0


def test_healthz_and_readyz(client: TestClient, space: Space) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    checks = r.json()["checks"]
    assert r.json()["ready"] is True and checks["database"]["ok"] is True
    assert checks["chain"]["chain_id"] == space.chain.chain_id
    assert checks["anchoring"] == {
        "log_size": 0,
        "anchored_size": 0,
        "lag_entries": 0,
        "lag_seconds": 0.0,
    }
    assert checks["indexer"]["lag_blocks"] is None  # never indexed here


def test_readyz_is_503_when_the_chain_node_is_gone(
    space: Space, engine: Engine, anvil: Any
) -> None:
    chain = Chain.connect(rpc_network(anvil.url, chain_id=31337))
    chain.w3.provider.endpoint_uri = f"http://127.0.0.1:{free_port()}"  # type: ignore[attr-defined]
    ctx = make_context(
        settings=api_settings(), engine=engine, chain=space.chain, contracts=space.contracts
    )
    ctx.chain = chain
    with TestClient(create_app(context=ctx)) as client:
        r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["ready"] is False and r.json()["checks"]["chain"]["ok"] is False
    assert r.json()["checks"]["database"]["ok"] is True


def test_metrics_count_requests_and_ingest(
    client: TestClient, space: Space, sign_in: SignIn
) -> None:
    before = client.get("/metrics").text
    h = sign_in(space.consumers[0])
    items = [agreement(space).to_json(), receipt(space, 1).to_json(), receipt(space, 1).to_json()]
    client.post("/v1/evidence", json={"entries": items}, headers=h)
    client.get("/v1/evidence/0x" + "ab" * 32)
    text = client.get("/metrics").text
    for status, n in [("accepted", 2), ("duplicate", 1)]:
        delta = sample(text, "tally_evidence_items_total", status=status) - sample(
            before, "tally_evidence_items_total", status=status
        )
        assert delta == n
    route = {"method": "GET", "route": "/v1/evidence/{entry_id}", "status": "404"}
    assert (
        sample(text, "tally_http_requests_total", **route)
        - sample(before, "tally_http_requests_total", **route)
        == 1
    )
    assert sample(text, "tally_log_size") == 2.0
    assert sample(text, "tally_anchor_lag_entries") == 2.0
    assert sample(text, "tally_indexer_lag_blocks") == -1.0
    assert "tally_http_request_duration_seconds_bucket" in text


def test_unknown_routes_and_methods_use_the_error_shape(client: TestClient) -> None:
    r = client.get("/v1/nothing")
    assert (r.status_code, code(r)) == (404, "not_found")
    r = client.delete("/v1/evidence")
    assert (r.status_code, code(r)) == (405, "method_not_allowed")


def test_unexpected_failures_leak_nothing(space: Space, engine: Engine) -> None:
    client, _ = make_client(space, engine)
    app = client.app

    @app.get("/boom")  # type: ignore[attr-defined,untyped-decorator]
    def boom() -> None:
        raise RuntimeError("SELECT secret FROM keys WHERE password='hunter2'")

    with TestClient(app, raise_server_exceptions=False) as c:  # type: ignore[arg-type]
        r = c.get("/boom")
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "internal_error", "message": "internal error"}}
    assert "hunter2" not in r.text and "Traceback" not in r.text


def test_rate_limit_answers_429_with_retry_after(space: Space, engine: Engine) -> None:
    client, _ = make_client(space, engine, rate_limit_per_s=0.5, rate_limit_burst=3)
    with client:
        codes = [client.get("/v1/log/checkpoints").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = client.get("/v1/log/entries")
        assert (r.status_code, code(r)) == (429, "rate_limited")
        assert 1 <= int(r.headers["Retry-After"]) <= 2
        # ops endpoints are not limited
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_rate_limit_is_per_address(space: Space, engine: Engine) -> None:
    client, ctx = make_client(space, engine)
    with client:
        from tests.api.conftest import bearer, get_token

        a = bearer(get_token(client, space.consumers[0]))
        b = bearer(get_token(client, space.consumers[1]))
        ctx.limiter.rate, ctx.limiter.burst = 0.01, 2
        assert [client.get("/v1/log/entries", headers=a).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        assert client.get("/v1/log/entries", headers=b).status_code == 200


def test_context_is_the_one_given(ctx: ServiceContext, client: TestClient) -> None:
    assert client.app.state.ctx is ctx  # type: ignore[attr-defined]


def test_database_down_is_503_not_a_leak(space: Space) -> None:
    from service.db import make_engine

    dead = make_engine(f"postgresql+psycopg://tally:secret@127.0.0.1:{free_port()}/x", pool=False)
    ctx = make_context(
        settings=api_settings(), engine=dead, chain=space.chain, contracts=space.contracts
    )
    with TestClient(create_app(context=ctx)) as client:
        r = client.get("/v1/log/checkpoints")
        assert (r.status_code, code(r)) == (503, "database_unavailable")
        assert "secret" not in r.text and "psycopg" not in r.text
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["database"] == {"ok": False}
