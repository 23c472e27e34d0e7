"""API benchmark: ``tally serve`` on loopback next to a bare FastAPI app, in one run.

:func:`bench_api` starts anvil, deploys a data space (the demo's cast: four providers,
two insurers), starts ``tally serve`` (``workers`` processes; anchoring every second)
and measures, at ``concurrency`` concurrent clients (asyncio + httpx, one keep-alive
connection each, opened before the clock starts):

- ``post_evidence``: ``POST /v1/evidence`` with batches of ``batch`` dual-signed usage
  receipts (signed beforehand; every entry must come back ``accepted``);
- ``get_receipt``: ``GET /v1/receipts/{id}`` of random anchored receipts of one consumer,
  signed in as that consumer (a receipt is served to its parties and staff); each answer
  is a full receipt document with its inclusion proof;
- ``noop_post`` and ``noop_get``: the same requests (the same batch bodies; a GET) to a
  bare FastAPI app whose endpoints do nothing, under uvicorn with the same workers.

Each figure: requests, errors, requests per second (over the wall time of the whole
load), p50 and p99 latency in milliseconds; ``post_evidence`` also gives entries per
second. The load generator runs on the same machine and takes CPU from the servers;
``cpus`` in the result says how many there were. ``serve_peak_rss_mib``: the peak
resident set (``VmHWM``) of each ``tally serve`` process (supervisor and workers, by
pid) after both loads.

``python -m service.bench.api [--requests N] [--concurrency 32] [--workers 2] [--db URL]
[--json FILE]``; several workers need a PostgreSQL URL (``--db`` or
``TALLY_BENCH_DATABASE_URL``), one worker defaults to a SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI, Request

from service.api.process import ServeProcess, write_network_file
from service.chain.client import Chain
from service.chain.config import rpc_network, save_deployment
from service.chain.devnode import Anvil, free_port
from service.errors import ConfigError
from service.evidence.eip712 import Domain, keccak256
from service.evidence.entries import Agreement, SignedEntry, UsageReceipt, entry_id, sign_entry

# --- the bare app the API is compared with ---------------------------------------------------

noop_app = FastAPI()


@noop_app.get("/noop")
def noop_get() -> dict[str, str]:
    return {}


@noop_app.post("/noop")
async def noop_post(request: Request) -> dict[str, str]:
    await request.body()  # receive the same bytes the API receives, then do nothing
    return {}


# --- load ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    first_error: str | None = None  # "<method> <path>: <status> <body start>"

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else lat * 99
        out: dict[str, Any] = {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "rps": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(q[49], 2),
            "p99_ms": round(q[98], 2),
        }
        if self.first_error is not None:
            out["first_error"] = self.first_error
        return out


async def _load(
    url: str,
    requests: list[tuple[str, str, bytes | None]],
    *,
    concurrency: int,
    headers: dict[str, str],
    ok: set[int],
    warm_path: str,
) -> LoadResult:
    """Send ``requests`` (method, path, body) with ``concurrency`` clients; each client
    takes the next request when its previous one is answered. Every client opens its
    connection with one ``GET warm_path`` before the clock starts."""
    queue: asyncio.Queue[tuple[str, str, bytes | None]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    latencies: list[float] = []
    errors = 0
    first_error: str | None = None
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [
        httpx.AsyncClient(base_url=url, limits=limits, timeout=120.0) for _ in range(concurrency)
    ]

    async def drain(http: httpx.AsyncClient) -> None:
        nonlocal errors, first_error
        while True:
            try:
                method, path, body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            try:
                r = await http.request(method, path, content=body, headers=headers)
                status, text = r.status_code, r.text[:300]
            except httpx.HTTPError as exc:
                status, text = 0, f"{type(exc).__name__}: {exc}"[:300]
            latencies.append((time.perf_counter() - started) * 1000)
            if status not in ok:
                errors += 1
                if first_error is None:
                    first_error = f"{method} {path}: {status} {text}"

    try:
        await asyncio.gather(*(http.get(warm_path) for http in clients))
        started = time.perf_counter()
        await asyncio.gather(*(drain(http) for http in clients))
        seconds = time.perf_counter() - started
    finally:
        await asyncio.gather(*(http.aclose() for http in clients))
    return LoadResult(len(requests), errors, seconds, latencies, first_error)


def run_load(
    url: str,
    requests: list[tuple[str, str, bytes | None]],
    *,
    concurrency: int,
    headers: dict[str, str] | None = None,
    ok: frozenset[int] = frozenset({200}),
    warm_path: str = "/healthz",
) -> LoadResult:
    return asyncio.run(
        _load(
            url,
            requests,
            concurrency=concurrency,
            headers=headers or {},
            ok=set(ok),
            warm_path=warm_path,
        )
    )


# --- the data space --------------------------------------------------------------------------

PERIOD_START = 1_735_689_600  # 2025-01-01
PERIOD_END = PERIOD_START + 365 * 86_400


def _register(chain: Chain) -> tuple[Any, LocalAccount, list[LocalAccount], list[LocalAccount]]:
    from service.chain.deploy import deploy_tally
    from service.evidence.directory import CONSUMER, PROVIDER

    a = chain.accounts
    operator, providers, consumers = a[0], a[2:6], a[6:8]
    contracts = deploy_tally(chain, admin=operator, challenge_window_s=60)
    reg = contracts.registry
    for acct, roles in [(p, PROVIDER) for p in providers] + [(c, CONSUMER) for c in consumers]:
        identity = keccak256(f"did:bench:{acct.address}".encode())
        chain.transact(
            reg.functions.register(acct.address, roles, identity, "urn:bench"), sender=operator
        )
    return contracts, operator, providers, consumers


def _agreement(
    domain: Domain, consumer: LocalAccount, providers: list[LocalAccount]
) -> SignedEntry:
    ps = sorted(providers, key=lambda p: p.address.lower())
    entry = Agreement(
        agreementId=keccak256(f"bench/{consumer.address}".encode()),
        assetId=keccak256(b"bench-asset"),
        consumer=consumer.address,
        providers=tuple(p.address for p in ps),
        unitPrice=10**15,
        policyHash=b"\x00" * 32,
        validFrom=PERIOD_START,
        validUntil=PERIOD_END,
    )
    return sign_entry(entry, domain, [bytes(consumer.key), *(bytes(p.key) for p in ps)])


def _receipts(
    domain: Domain,
    agreement: SignedEntry,
    consumer: LocalAccount,
    providers: list[LocalAccount],
    count: int,
    first_nonce: int,
) -> list[SignedEntry]:
    rng = random.Random(first_nonce)
    out = []
    assert isinstance(agreement.entry, Agreement)
    for n in range(first_nonce, first_nonce + count):
        provider = providers[n % len(providers)]
        start = PERIOD_START + rng.randrange(0, 300 * 86_400)
        entry = UsageReceipt(
            agreementId=agreement.entry.agreementId,
            consumer=consumer.address,
            provider=provider.address,
            units=rng.randrange(1, 500),
            periodStart=start,
            periodEnd=start + 3_600,
            detailHash=keccak256(f"bench-call/{n}".encode()),
            nonce=n,
        )
        out.append(sign_entry(entry, domain, [bytes(consumer.key), bytes(provider.key)]))
    return out


def _body(entries: list[SignedEntry]) -> bytes:
    return json.dumps({"entries": [e.to_json() for e in entries]}).encode()


def _sign_in(url: str, account: LocalAccount) -> dict[str, str]:
    with httpx.Client(base_url=url, timeout=30.0) as http:
        message = http.post("/v1/auth/challenge", json={"address": account.address}).json()
        text = message["message"]
        signed = Account.sign_message(encode_defunct(text=text), private_key=account.key)
        r = http.post(
            "/v1/auth/token",
            json={"message": text, "signature": "0x" + bytes(signed.signature).hex()},
        )
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _wait_anchored(url: str, size: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        latest = httpx.get(url + "/v1/log/checkpoints", params={"limit": 1}).json()["latest"]
        if latest is not None and latest["tree_size"] >= size:
            return
        time.sleep(0.5)
    raise ConfigError(f"the log was not anchored up to {size} within {timeout_s}s")


# --- the run ---------------------------------------------------------------------------------


def group_peak_rss_mib(pgid: int) -> dict[str, float] | None:
    """Peak resident set (``VmHWM``) of each live process in group ``pgid`` (``tally
    serve``'s supervisor and workers), by pid; None where ``/proc`` is not there."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    out: dict[str, float] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:  # field 5: process group
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out[entry.name] = round(int(line.split()[1]) / 1024, 1)
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we read it
    return out


def bench_api(
    *,
    requests: int = 320,
    receipt_requests: int = 6_400,
    concurrency: int = 32,
    batch: int = 100,
    workers: int = 2,
    database_url: str | None = None,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the whole benchmark (see the module docstring) and return its figures.

    ``requests``: evidence batches posted; ``receipt_requests``: receipts fetched (the
    no-op endpoints get the same numbers of requests).
    """
    url_db = database_url or os.environ.get("TALLY_BENCH_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="tally-bench-", dir=work_dir) as tmp_name:
        tmp = Path(tmp_name)
        if url_db is None:
            if workers > 1:
                raise ConfigError(
                    "several workers need PostgreSQL: pass database_url (--db) or set "
                    "TALLY_BENCH_DATABASE_URL"
                )
            url_db = f"sqlite:///{tmp}/bench.db"
        anvil = Anvil().start()
        servers: list[ServeProcess] = []
        try:
            chain = Chain.connect(rpc_network(anvil.url, chain_id=31337))
            contracts, _operator, providers, consumers = _register(chain)
            deployment = tmp / "deployment.json"
            save_deployment(contracts.deployment, deployment)
            network = write_network_file(
                tmp / "bench.toml", name="bench", rpc_url=anvil.url, chain_id=31337
            )
            env = {
                "TALLY_ENV": "test",
                "TALLY_NETWORK": str(network),
                "TALLY_DEPLOYMENT_FILE": str(deployment),
                "TALLY_DATABASE_URL": url_db,
                "TALLY_DATA_DIR": str(tmp / "data"),
                "TALLY_RATE_LIMIT_PER_S": "0",
                "TALLY_SIWE_DOMAIN": "127.0.0.1",
                "TALLY_LOG_LEVEL": "WARNING",
                "TALLY_JWT_SECRET": "bench-" + os.urandom(16).hex(),
                "TALLY_MAX_BATCH": str(max(batch, 1_000)),
            }
            api = ServeProcess(
                env=env,
                port=free_port(),
                workers=workers,
                anchor_every_s=1.0,
                index=False,
                log_path=tmp / "serve.log",
            ).start()
            servers.append(api)
            domain = Domain(chain_id=chain.chain_id, verifying_contract=contracts.ledger.address)
            headers = _sign_in(api.url, consumers[0])

            agreements = [_agreement(domain, c, providers) for c in consumers]
            r = httpx.post(
                api.url + "/v1/evidence",
                content=_body(agreements),
                headers=headers | {"content-type": "application/json"},
                timeout=60.0,
            )
            r.raise_for_status()

            signing_started = time.perf_counter()
            bodies: list[bytes] = []
            own_ids: list[str] = []  # consumers[0]'s receipts: the ones it may read
            for i in range(requests):
                c = i % len(consumers)
                entries = _receipts(
                    domain, agreements[c], consumers[c], providers, batch, first_nonce=i * batch
                )
                bodies.append(_body(entries))
                if c == 0:
                    own_ids += ["0x" + entry_id(e.encode()).hex() for e in entries[:20]]
            signing_s = time.perf_counter() - signing_started

            json_headers = headers | {"content-type": "application/json"}
            post = run_load(
                api.url,
                [("POST", "/v1/evidence", b) for b in bodies],
                concurrency=concurrency,
                headers=json_headers,
            )
            size = 2 + requests * batch
            log = httpx.get(api.url + "/v1/log/checkpoints", params={"limit": 1}).json()["log"]
            if log["tree_size"] != size:
                raise ConfigError(f"expected {size} entries in the log, found {log['tree_size']}")
            _wait_anchored(api.url, size)
            rng = random.Random(7)
            # a receipt is served to its parties (and staff): consumers[0] reads its own
            get_paths = [f"/v1/receipts/{rng.choice(own_ids)}" for _ in range(receipt_requests)]
            get = run_load(
                api.url,
                [("GET", path, None) for path in get_paths],
                concurrency=concurrency,
                headers=headers,
            )
            assert api.proc is not None
            serve_rss = group_peak_rss_mib(api.proc.pid)  # after both loads, before the stop
            api.stop()

            noop_proc = _NoopProcess(
                env={}, port=free_port(), workers=workers, log_path=tmp / "noop.log"
            ).start()
            try:
                noop_url = noop_proc.url
                noop_post_result = run_load(
                    noop_url,
                    [("POST", "/noop", b) for b in bodies],
                    concurrency=concurrency,
                    headers={"content-type": "application/json"},
                    warm_path="/noop",
                )
                noop_get_result = run_load(
                    noop_url,
                    [("GET", "/noop", None)] * receipt_requests,
                    concurrency=concurrency,
                    headers=headers,  # the same bearer header, ignored
                    warm_path="/noop",
                )
            finally:
                noop_proc.stop()
        finally:
            for server in servers:
                server.stop()
            anvil.stop()

    post_summary = post.summary()
    post_summary["entries_per_s"] = round(requests * batch / post.seconds, 1)
    post_summary["batch"] = batch
    return {
        "benchmark": "api",
        "cpus": os.cpu_count(),
        "workers": workers,
        "concurrency": concurrency,
        "database": url_db.split(":", 1)[0],
        "signing_seconds": round(signing_s, 2),
        "post_evidence": post_summary,
        "serve_peak_rss_mib": serve_rss,
        "noop_post": noop_post_result.summary() | {"body_bytes": len(bodies[0])},
        "get_receipt": get.summary(),
        "noop_get": noop_get_result.summary(),
    }


class _NoopProcess(ServeProcess):
    """The bare app under uvicorn: same workers, same loopback, no access log."""

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "service.bench.api:noop_app",
            *self.listen_options(),
            "--no-access-log",
            "--log-level",
            "warning",
        ]

    def wait_ready(self, *, timeout_s: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/noop", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        raise ConfigError("the no-op app did not start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the HTTP API against a no-op app.")
    parser.add_argument("--requests", type=int, default=320, help="evidence batches to post")
    parser.add_argument("--receipts", type=int, default=6_400, help="receipt GETs")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--db", default=None, help="database URL (PostgreSQL for workers > 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    result = bench_api(
        requests=args.requests,
        receipt_requests=args.receipts,
        concurrency=args.concurrency,
        batch=args.batch,
        workers=args.workers,
        database_url=args.db,
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
