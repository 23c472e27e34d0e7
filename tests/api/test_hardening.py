"""Attacks on a running ``tally serve`` (real processes) and on the request path.

- A body of 100,000 nested ``[`` used to kill the server with SIGSEGV (exit 139): it is
  now 400 ``json_too_deep`` on every POST route and the server keeps serving.
- A token signed with the placeholder ``TALLY_JWT_SECRET`` used to pass on anvil: the
  server now refuses to start with the placeholder off the embedded network.
- ``/metrics`` is the operator's; the embedded network says loudly that its state is
  lost on restart; the rate limit holds across two workers (PostgreSQL).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from jwt.warnings import InsecureKeyLengthWarning

from service.api import auth
from service.api.main import create_app
from service.api.process import ServeProcess
from service.chain.client import Chain
from service.chain.devnode import free_port
from service.jsonsafe import MAX_DEPTH
from service.settings import Settings
from tests.api.conftest import SECRET, TestClient, api_settings
from tests.api.test_serve import serve_env, token
from tests.space import build_space

HOSTILE = b"[" * 100_000  # 100 KB; the crash needed about 65,000 levels
PLACEHOLDER = Settings.model_fields["jwt_secret"].default.get_secret_value()


def code(r: Any) -> str:
    value: str = r.json()["error"]["code"]
    return value


def post_routes() -> list[str]:
    """Every POST path of the app, path parameters filled in."""
    schema = create_app(settings=api_settings()).openapi()
    paths = [re.sub(r"\{[^}]+\}", "1", p) for p, ops in schema["paths"].items() if "post" in ops]
    assert "/v1/auth/challenge" in paths and "/v1/evidence" in paths
    return sorted(paths)


@pytest.fixture(scope="module")
def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("serve-embedded")
    env = {
        "TALLY_ENV": "test",
        "TALLY_NETWORK": "embedded",
        "TALLY_DATABASE_URL": f"sqlite:///{tmp}/tally.db",
        "TALLY_DATA_DIR": str(tmp / "data"),
        "TALLY_JWT_SECRET": SECRET,
        "TALLY_RATE_LIMIT_PER_S": "0",
        "TALLY_LOG_LEVEL": "WARNING",
    }
    server = ServeProcess(env=env, port=free_port(), log_path=tmp / "serve.log").start()
    try:
        yield server
    finally:
        server.stop()


# --- one request must not kill the server -------------------------------------------------


def test_deeply_nested_body_does_not_kill_server(embedded_server: ServeProcess) -> None:
    url = embedded_server.url
    routes = post_routes()
    with httpx.Client(base_url=url, timeout=30.0) as http:
        for path in routes:
            r = http.post(path, content=HOSTILE, headers={"content-type": "application/json"})
            assert (r.status_code, code(r)) == (400, "json_too_deep"), path
            assert f"deeper than {MAX_DEPTH} levels" in r.json()["error"]["message"]
        # the same inside a valid-looking prefix, sent chunked, and as UTF-16
        for body in (
            b'{"address": ' + HOSTILE,
            iter([HOSTILE[:50_000], HOSTILE[50_000:]]),
            ("[" * 100_000).encode("utf-16"),
        ):
            r = http.post("/v1/auth/challenge", content=body)
            assert (r.status_code, code(r)) == (400, "json_too_deep")
        assert embedded_server.proc is not None and embedded_server.proc.poll() is None
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").status_code == 200
        # and it still does its work
        r = http.post("/v1/auth/challenge", json={"address": "0x" + "ab" * 20})
        assert r.status_code == 200 and "Sign in to the Tally API" in r.json()["message"]
    print(f"\n{len(routes)} POST routes answered 400 json_too_deep to {len(HOSTILE)} nested '['")


def test_serve_on_embedded_warns_that_state_is_lost_on_restart(
    embedded_server: ServeProcess,
) -> None:
    assert embedded_server.log_path is not None
    log = embedded_server.log_path.read_text(encoding="utf-8")
    lines = [ln for ln in log.splitlines() if "embedded network" in ln]
    assert len(lines) == 1, log[-2000:]
    assert " WARNING " in lines[0] and "lost on restart" in lines[0]


def test_metrics_of_a_real_server_need_the_operator(embedded_server: ServeProcess) -> None:
    r = httpx.get(embedded_server.url + "/metrics")
    assert (r.status_code, code(r)) == (401, "unauthenticated")
    assert "tally_http_requests_total" not in r.text


# --- the depth check on the request path (TestClient) ---------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_json_body_at_the_depth_limit_passes_and_one_deeper_is_refused(
    client: TestClient,
) -> None:
    def nested(depth: int) -> bytes:
        # an object whose "address" holds depth - 1 nested lists
        return b'{"address": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"

    r = client.post("/v1/auth/challenge", content=nested(MAX_DEPTH))
    assert (r.status_code, code(r)) == (422, "validation_error")  # parsed; a list is no address
    r = client.post("/v1/auth/challenge", content=nested(MAX_DEPTH + 1))
    assert (r.status_code, code(r)) == (400, "json_too_deep")
    # brackets inside a string are text, not nesting
    r = client.post("/v1/auth/challenge", json={"address": "[" * 100_000})
    assert (r.status_code, code(r)) == (422, "validation_error")
    r = client.post("/v1/auth/challenge", content=json.dumps({"address": '\\"[' * 1000}))
    assert r.status_code == 422


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_long_forged_token_is_refused_unread(client: TestClient) -> None:
    header = "W" * 5_000  # base64 of '[[[...': would be parsed before the signature check
    r = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {header}.e30.sig"})
    assert (r.status_code, code(r)) == (401, "invalid_token")


# --- the token key on a real network ---------------------------------------------------


@pytest.mark.anvil
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_forged_token_with_placeholder_secret_is_refused_on_anvil(
    anvil_chain: Chain, db_url: str, tmp_path: Path
) -> None:
    space = build_space(anvil_chain, challenge_window_s=60)
    env = serve_env(tmp_path, space, anvil_chain, db_url)
    # the placeholder (the default) on anvil: tally serve does not start
    server = ServeProcess(env={**env, "TALLY_JWT_SECRET": PLACEHOLDER}, port=free_port())
    done = subprocess.run(
        server.command(),
        env={**os.environ, **server.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error[config_invalid]: TALLY_JWT_SECRET must be a real secret")
    assert "'anvil-test'" in last and PLACEHOLDER not in done.stderr
    # with a real key it serves, and a token signed with the placeholder is worth nothing
    server = ServeProcess(env=env, port=free_port(), log_path=tmp_path / "serve.log").start()
    try:
        with pytest.warns(InsecureKeyLengthWarning):  # PyJWT knows a weak key when it sees one
            forged = auth.issue_token(
                address=space.operator.address, secret=PLACEHOLDER, ttl_s=600, issuer="127.0.0.1"
            )
        with httpx.Client(base_url=server.url, timeout=30.0) as http:
            for path in ("/v1/auth/me", "/v1/auth/api-keys", "/metrics"):
                r = http.get(path, headers={"Authorization": f"Bearer {forged.token}"})
                assert (r.status_code, code(r)) == (401, "invalid_token"), path
            genuine = token(http, space.operator)  # a signed-in operator still gets in
            assert http.get("/v1/auth/me", headers=genuine).json()["roles"] == ["operator"]
    finally:
        server.stop()


# --- one rate limit for all workers ----------------------------------------------------

PATH = "/v1/log/checkpoints"


def answered_by_worker(metrics_dir: Path, route: str) -> dict[str, float]:
    """Requests to ``route`` each worker counted (prometheus-client multiprocess files)."""
    from prometheus_client.mmap_dict import MmapedDict

    out: dict[str, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _metric, sample, labels, _help = json.loads(key)
            if sample == "tally_http_requests_total" and labels.get("route") == route:
                out[path.stem] = out.get(path.stem, 0.0) + value
    return out


@pytest.mark.anvil
@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_rate_limit_is_shared_by_two_workers(
    anvil_chain: Chain, db_url: str, tmp_path: Path
) -> None:
    burst = 10
    space = build_space(anvil_chain, challenge_window_s=60)
    env = {
        **serve_env(tmp_path, space, anvil_chain, db_url),
        "TALLY_RATE_LIMIT_PER_S": "0.001",  # one token back per 1,000 s: none in this test
        "TALLY_RATE_LIMIT_BURST": str(burst),
    }
    server = ServeProcess(
        env=env, port=free_port(), workers=2, index=False, log_path=tmp_path / "serve.log"
    ).start()
    try:
        metrics_dir = next((tmp_path / "data" / "prometheus").iterdir())

        # No keep-alive: every request is a fresh connection, which either worker may
        # accept. Rounds of 20 concurrent requests until both workers have answered (each
        # counts its requests in a file named by its pid), 20 rounds at most.
        fresh = httpx.Limits(max_keepalive_connections=0)
        statuses: list[int] = []
        retry_after: list[int] = []
        per_worker: dict[str, float] = {}
        started = time.monotonic()
        with (
            httpx.Client(base_url=server.url, timeout=30.0, limits=fresh) as http,
            ThreadPoolExecutor(max_workers=10) as pool,
        ):
            for _ in range(20):
                for r in pool.map(lambda _: http.get(PATH), range(20)):
                    statuses.append(r.status_code)
                    if r.status_code == 429:
                        retry_after.append(int(r.headers["Retry-After"]))
                per_worker = answered_by_worker(metrics_dir, PATH)
                if len(per_worker) == 2:
                    break
        elapsed = time.monotonic() - started
        for _ in range(20):  # a worker counts a request just after it answered it
            if sum(per_worker.values()) == len(statuses):
                break
            time.sleep(0.1)
            per_worker = answered_by_worker(metrics_dir, PATH)
        assert len(per_worker) == 2, per_worker
        assert sum(per_worker.values()) == len(statuses)
        # With a bucket per worker, two workers that both answered would allow 11 or more.
        sent = len(statuses)
        assert statuses.count(200) == burst and statuses.count(429) == sent - burst, statuses
        assert min(retry_after) >= 1
        print(
            f"\n2 workers (answered {sorted(int(n) for n in per_worker.values())}), burst "
            f"{burst}: {sent} requests -> {statuses.count(200)} x 200, "
            f"{statuses.count(429)} x 429 in {elapsed:.2f}s"
        )
    finally:
        server.stop()
