"""``/healthz``, ``/readyz``, ``/metrics``; the error shape for unknown routes and
methods and for unexpected failures (nothing internal leaks); rate and page limits."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from service.api.context import ServiceContext, make_context
from service.api.limits import Limiter, RateLimiter, SqlRateLimiter, make_limiter
from service.api.main import create_app
from service.chain.client import Chain
from service.chain.config import rpc_network
from service.chain.devnode import free_port
from service.db import make_engine
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
    op = sign_in(space.operator)
    before = client.get("/metrics", headers=op).text
    h = sign_in(space.consumers[0])
    items = [agreement(space).to_json(), receipt(space, 1).to_json(), receipt(space, 1).to_json()]
    client.post("/v1/evidence", json={"entries": items}, headers=h)
    client.get("/v1/evidence/0x" + "ab" * 32)
    text = client.get("/metrics", headers=op).text
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


# --- /metrics is the operator's -----------------------------------------------------------


def test_metrics_refuse_anonymous_and_non_operators(
    client: TestClient, space: Space, sign_in: SignIn
) -> None:
    r = client.get("/metrics")
    assert (r.status_code, code(r)) == (401, "unauthenticated")
    assert "tally_http_requests_total" not in r.text
    for who in (space.consumers[0], space.auditor):
        r = client.get("/metrics", headers=sign_in(who))
        assert (r.status_code, code(r)) == (403, "role_required")
    r = client.get("/metrics", headers=sign_in(space.operator))
    assert r.status_code == 200 and "tally_http_requests_total" in r.text


def test_metrics_scraper_uses_an_operator_api_key_as_bearer(
    client: TestClient, space: Space, sign_in: SignIn
) -> None:
    op = sign_in(space.operator)
    key = client.post("/v1/auth/api-keys", json={"label": "prometheus"}, headers=op).json()[
        "api_key"
    ]
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        r = client.get("/metrics", headers=headers)
        assert r.status_code == 200 and "tally_log_size" in r.text
    r = client.get("/metrics", headers={"Authorization": "Bearer tly_" + "x" * 43})
    assert (r.status_code, code(r)) == (401, "invalid_token")


# --- the rate limit's store ---------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_rate_limit_on_sqlite_lives_in_the_process(ctx: ServiceContext) -> None:
    assert isinstance(ctx.limiter, RateLimiter)  # one worker on SQLite: exact, no writes


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_rate_limit_buckets_in_postgres_are_shared_by_every_limiter(
    engine: Engine, db_url: str
) -> None:
    # two engines, as two worker processes have: one bucket per caller between them
    other = make_engine(db_url)
    try:
        a = make_limiter(engine=engine, rate_per_s=0.001, burst=5)
        b = make_limiter(engine=other, rate_per_s=0.001, burst=5)
        assert isinstance(a, SqlRateLimiter) and isinstance(b, SqlRateLimiter)
        allowed = [lim.take("ip:10.0.0.1") is None for lim in (a, b) * 6]
        assert allowed == [True] * 5 + [False] * 7
        wait = a.take("ip:10.0.0.1")
        assert wait is not None and 900 < wait <= 1000  # one token per 1000 s
        assert b.take("0xAnotherCaller") is None  # buckets are per caller
        # concurrent takes of one caller: the row lock lets exactly `burst` through
        results: list[bool] = []
        lock = threading.Lock()

        def hammer(lim: Limiter) -> None:
            for _ in range(10):
                ok = lim.take("ip:10.0.0.2") is None
                with lock:
                    results.append(ok)

        threads = [threading.Thread(target=hammer, args=(lim,)) for lim in (a, b) * 3]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert (len(results), results.count(True)) == (60, 5)
    finally:
        other.dispose()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_rate_limit_buckets_refill_and_idle_ones_are_pruned(engine: Engine) -> None:
    ticks = [0.0]
    lim = SqlRateLimiter(engine=engine, rate_per_s=20.0, burst=2, clock=lambda: ticks[0])
    assert [lim.take("k") is None for _ in range(3)] == [True, True, False]
    time.sleep(0.06)  # the database's clock refills: 20/s -> one token after 50 ms
    assert lim.take("k") is None
    with engine.begin() as conn:
        conn.execute(text("UPDATE api_rate_buckets SET at = at - 3600"))
    ticks[0] = 61.0  # the next allowed take prunes buckets idle past burst/rate
    assert lim.take("fresh") is None
    with engine.connect() as conn:
        keys = conn.execute(text("SELECT key FROM api_rate_buckets")).scalars().all()
    assert keys == ["fresh"]
    with engine.connect() as conn:  # unlogged: a take never waits for a WAL flush
        persistence = conn.execute(
            text("SELECT relpersistence FROM pg_class WHERE relname = 'api_rate_buckets'")
        ).scalar()
    assert persistence == "u"
