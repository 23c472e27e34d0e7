"""``tally serve`` for real: a subprocess on a free port, 2 workers on PostgreSQL, anvil.

Concurrent clients (one per participant, each with its own token) post evidence
batches, some of them the same entries at the same time; every acknowledged entry
(accepted or duplicate, with its leaf index) must be in the log at that index, and the
log must be gap-free and duplicate-free, with a root that the entries themselves give.
Then the server is killed (SIGKILL to its process group) while a second wave is in
flight, restarted, and everything acknowledged before the kill must still be there.
The anchoring loop runs in the supervising process: the entries get receipts that an
auditor's check against the chain accepts.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from pydantic import SecretStr

from service.api.process import ServeProcess, write_network_file
from service.audit.receipt import audit_receipt
from service.chain.client import Chain
from service.chain.config import save_deployment
from service.chain.devnode import free_port
from service.cli.serve_cmd import check_serve_options
from service.errors import ConfigError
from service.evidence.commitment import leaf_data_for
from service.evidence.entries import SignedEntry
from service.evidence.merkle import leaf_hash, root_from_leaf_hashes
from service.settings import Settings
from tests.api.conftest import SECRET, sign_message
from tests.audit.forge import pin
from tests.evidence.test_log import agreement, receipt
from tests.space import Space, build_space

AG2 = b"\xa2" * 32
WAVE = 6  # batches per client and wave
BATCH = 12  # receipts per batch


def serve_env(
    tmp: Path,
    space: Space,
    chain: Chain,
    db_url: str,
    *,
    log_level: str = "WARNING",
    key_source: str = "dev-mnemonic",
) -> dict[str, str]:
    """The environment ``tally serve`` reads, for ``space`` on ``chain``'s node."""
    network = write_network_file(
        tmp / "anvil-test.toml",
        name="anvil-test",
        rpc_url=chain.network.rpc_url or "",
        chain_id=31337,
        key_source=key_source,
    )
    deployment = tmp / "deployment.json"
    save_deployment(space.contracts.deployment, deployment)
    return {
        "TALLY_ENV": "test",
        "TALLY_NETWORK": str(network),
        "TALLY_DEPLOYMENT_FILE": str(deployment),
        "TALLY_DATABASE_URL": db_url,
        "TALLY_DATA_DIR": str(tmp / "data"),
        "TALLY_JWT_SECRET": SECRET,
        "TALLY_RATE_LIMIT_PER_S": "0",
        "TALLY_SIWE_DOMAIN": "127.0.0.1",
        "TALLY_LOG_LEVEL": log_level,
    }


def token(http: httpx.Client, acct: LocalAccount) -> dict[str, str]:
    message = http.post("/v1/auth/challenge", json={"address": acct.address}).json()["message"]
    r = http.post(
        "/v1/auth/token", json={"message": message, "signature": sign_message(acct, message)}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def batches(space: Space, wave: int) -> list[list[SignedEntry]]:
    """Four clients' batches: client i uses consumer i % 2; clients 2 and 3 repeat the
    batches of clients 0 and 1 (the same entries, posted concurrently)."""
    out: list[list[SignedEntry]] = []
    for c in range(2):
        aid = b"\xa1" * 32 if c == 0 else AG2
        for b in range(WAVE):
            nonce0 = 1 + (wave * WAVE + b) * BATCH
            out.append(
                [
                    receipt(space, nonce0 + k, provider=k % 2, agreementId=aid)
                    if c == 0
                    else _receipt2(space, nonce0 + k, k % 2)
                    for k in range(BATCH)
                ]
            )
    return out


def _receipt2(space: Space, nonce: int, provider: int) -> SignedEntry:
    from service.evidence.entries import UsageReceipt, sign_entry

    r = UsageReceipt(
        agreementId=AG2,
        consumer=space.consumers[1].address,
        provider=space.providers[provider].address,
        units=3,
        periodStart=1_700_000_100,
        periodEnd=1_700_000_200,
        detailHash=b"\x0e" * 32,
        nonce=nonce,
    )
    keys = [space.key(space.consumers[1]), space.key(space.providers[provider])]
    return sign_entry(r, space.domain, keys)


def post_all(
    url: str,
    headers: dict[str, str],
    work: list[list[SignedEntry]],
    acked: dict[str, int],
    lock: threading.Lock,
    stop: threading.Event | None = None,
) -> None:
    with httpx.Client(base_url=url, timeout=30.0) as http:
        for batch in work:
            if stop is not None and stop.is_set():
                return
            try:
                r = http.post(
                    "/v1/evidence", json={"entries": [e.to_json() for e in batch]}, headers=headers
                )
            except httpx.HTTPError:
                return  # the server went away: nothing more is acknowledged
            assert r.status_code == 200, r.text
            for item in r.json()["results"]:
                assert item["status"] in ("accepted", "duplicate"), item
                with lock:
                    previous = acked.setdefault(item["entry_id"], item["leaf_index"])
                assert previous == item["leaf_index"], item


def read_log(url: str, auditor: LocalAccount) -> list[dict[str, Any]]:
    """Every full entry with its salt, from the staff route (the public log since T15
    serves only leaf data), signed in as the auditor."""
    entries: list[dict[str, Any]] = []
    start: int | None = 0
    with httpx.Client(base_url=url, timeout=30.0) as http:
        headers = token(http, auditor)
        while start is not None:
            r = http.get("/v1/evidence", params={"start": start}, headers=headers)
            assert r.status_code == 200, r.text
            page = r.json()
            entries.extend(page["entries"])
            start = page["next"]
    return entries


def check_log(url: str, acked: dict[str, int], auditor: LocalAccount) -> list[dict[str, Any]]:
    log = read_log(url, auditor)
    assert [e["leaf_index"] for e in log] == list(range(len(log)))  # gap-free
    ids = [e["entry_id"] for e in log]
    assert len(set(ids)) == len(ids)  # no entry twice
    at = {e["entry_id"]: e["leaf_index"] for e in log}
    missing = {eid: i for eid, i in acked.items() if at.get(eid) != i}
    assert not missing, f"{len(missing)} acknowledged entries are not at their leaf"
    with httpx.Client(base_url=url) as http:
        head = http.get("/v1/log/checkpoints").json()["log"]
    leaves = [leaf_hash(leaf_data_for(_bytes(e["data"]), _bytes(e["salt"]))) for e in log]
    assert all(e["salt"] is not None for e in log)  # every entry since T15 is a commitment
    assert head == {"tree_size": len(log), "root": "0x" + root_from_leaf_hashes(leaves).hex()}
    return log


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else bytes.fromhex(value.removeprefix("0x"))


def metric(url: str, name: str, status: str, headers: dict[str, str]) -> float:
    text = httpx.get(url + "/metrics", headers=headers).text
    for line in text.splitlines():
        if line.startswith(f'{name}{{status="{status}"}}'):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.anvil
@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_two_workers_keep_every_acknowledged_entry_across_a_kill(
    anvil_chain: Chain, db_url: str, tmp_path: Path
) -> None:
    space = build_space(anvil_chain, challenge_window_s=60)
    env = serve_env(tmp_path, space, anvil_chain, db_url)
    server = ServeProcess(
        env=env,
        port=free_port(),
        workers=2,
        anchor_every_s=0.5,
        index=True,
        log_path=tmp_path / "serve.log",
    ).start()
    try:
        url = server.url
        with httpx.Client(base_url=url, timeout=30.0) as http:
            clients = [
                token(http, a)
                for a in (
                    space.consumers[0],
                    space.consumers[1],
                    space.providers[0],
                    space.providers[1],
                )
            ]
            second = agreement(
                space,
                agreementId=AG2,
                consumer=space.consumers[1].address,
            )
            second = _resign(space, second, space.consumers[1])
            r = http.post(
                "/v1/evidence",
                json={"entries": [agreement(space).to_json(), second.to_json()]},
                headers=clients[0],
            )
            assert [x["status"] for x in r.json()["results"]] == ["accepted", "accepted"]
        acked: dict[str, int] = {}
        lock = threading.Lock()
        work = batches(space, wave=0)
        per_client = [work[:WAVE], work[WAVE:], work[:WAVE], work[WAVE:]]  # 2 and 3 repeat
        with ThreadPoolExecutor(max_workers=4) as pool:
            for f in [
                pool.submit(post_all, url, h, w, acked, lock)
                for h, w in zip(clients, per_client, strict=True)
            ]:
                f.result()
        assert len(acked) == 2 * WAVE * BATCH
        check_log(url, acked, space.auditor)
        # the workers' metrics are aggregated: whichever worker answers counts everything
        with httpx.Client(base_url=url, timeout=30.0) as http:
            op = token(http, space.operator)
        assert metric(url, "tally_evidence_items_total", "accepted", op) == 2 * WAVE * BATCH + 2
        assert metric(url, "tally_evidence_items_total", "duplicate", op) == 2 * WAVE * BATCH

        # second wave, killed in flight
        stop = threading.Event()
        work = batches(space, wave=1)
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [
                pool.submit(post_all, url, h, w, acked, lock, stop)
                for h, w in zip(clients, [work[:WAVE], work[WAVE:]] * 2, strict=True)
            ]
            deadline = time.monotonic() + 20
            while len(acked) < 2 * WAVE * BATCH + BATCH * 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            server.kill()
            stop.set()
            for f in futures:
                f.result()
        assert len(acked) > 2 * WAVE * BATCH
    finally:
        server.kill()

    server = ServeProcess(
        env=env,
        port=free_port(),
        workers=2,
        anchor_every_s=0.5,
        index=False,
        log_path=tmp_path / "serve2.log",
    ).start()
    try:
        log = check_log(server.url, acked, space.auditor)
        assert len(log) >= len(acked) + 2  # + the agreements
        # the anchoring loop catches up; a receipt from before the kill audits on chain
        eid = next(iter(acked))
        with httpx.Client(base_url=server.url, timeout=30.0) as http:
            staff = token(http, space.auditor)  # receipts go to parties and staff only
        deadline = time.monotonic() + 30
        while True:
            r = httpx.get(f"{server.url}/v1/receipts/{eid}", headers=staff)
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert r.status_code == 200, r.text
        report = audit_receipt(r.json(), chain=anvil_chain, trusted=pin(space))
        assert report.ok, report.verdict
    finally:
        server.stop()


def _resign(space: Space, signed: SignedEntry, consumer: LocalAccount) -> SignedEntry:
    from service.evidence.entries import sign_entry

    keys = [space.key(consumer), *(space.key(p) for p in space.providers[:2])]
    return sign_entry(signed.entry, space.domain, keys)


def test_serve_refuses_several_workers_without_postgres_or_with_the_embedded_chain(
    tmp_path: Path,
) -> None:
    sqlite = Settings(
        env="test",
        database_url=f"sqlite:///{tmp_path}/x.db",
        network="anvil",
        jwt_secret=SecretStr(SECRET),
    )
    with pytest.raises(ConfigError, match="needs PostgreSQL"):
        check_serve_options(sqlite, workers=2)
    check_serve_options(sqlite, workers=1)
    embedded = Settings(
        env="test", database_url="postgresql+psycopg://u@127.0.0.1/x", network="embedded"
    )
    with pytest.raises(ConfigError, match="embedded chain lives inside one process"):
        check_serve_options(embedded, workers=2)


def test_serve_takes_network_deployment_and_db_options_like_the_other_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from service.cli import app

    for name in ("NETWORK", "DEPLOYMENT_FILE", "DATABASE_URL", "JWT_SECRET"):
        monkeypatch.delenv(f"TALLY_{name}", raising=False)  # restored after the test
    runner = CliRunner()
    # --network anvil: off the embedded network the placeholder secret is refused
    done = runner.invoke(app, ["serve", "--network", "anvil"])
    assert done.exit_code == 1 and "TALLY_JWT_SECRET" in str(done.exception)
    monkeypatch.setenv("TALLY_JWT_SECRET", SECRET)
    # --db: two workers on the SQLite file given are refused for that file's backend
    db = f"sqlite:///{tmp_path}/x.db"
    deployment = tmp_path / "d.json"
    args = ["--network", "anvil", "--db", db, "--deployment", str(deployment), "--workers", "2"]
    done = runner.invoke(app, ["serve", *args])
    assert done.exit_code == 1 and "needs PostgreSQL" in str(done.exception)
    # the environment is what the options set, for the workers uvicorn would start
    assert os.environ["TALLY_DATABASE_URL"] == db and os.environ["TALLY_NETWORK"] == "anvil"
    assert os.environ["TALLY_DEPLOYMENT_FILE"] == str(deployment)


def test_serve_refuses_a_log_of_another_deployment_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started on a database whose log belongs to another ledger, `tally serve` says so
    before any worker starts (it used to die in the worker with a traceback)."""
    from typer.testing import CliRunner

    from service.chain.config import Deployment, save_deployment
    from service.cli import app
    from service.db import create_schema, make_engine
    from service.errors import DeploymentNotFound, LogBoundElsewhere
    from service.evidence.binding import bind_log

    for name in ("NETWORK", "DEPLOYMENT_FILE", "DATABASE_URL"):
        monkeypatch.delenv(f"TALLY_{name}", raising=False)  # restored after the test
    monkeypatch.setenv("TALLY_JWT_SECRET", SECRET)
    db = f"sqlite:///{tmp_path}/tally.db"
    engine = make_engine(db)
    create_schema(engine)
    bind_log(engine=engine, chain_id=31337, ledger="0x" + "11" * 20)
    engine.dispose()
    contract = {"address": "0x" + "22" * 20, "block": 1, "tx_hash": "0x" + "33" * 32}
    deployment = Deployment.model_validate(
        {
            "network": "anvil",
            "chain_id": 31337,
            "deploy_block": 1,
            "contracts": {"EvidenceLedger": {**contract, "artifact_sha256": "44" * 32}},
        }
    )
    path = tmp_path / "d.json"
    save_deployment(deployment, path)
    runner = CliRunner()
    args = ["serve", "--network", "anvil", "--db", db]
    done = runner.invoke(app, [*args, "--deployment", str(path)])
    assert done.exit_code == 1 and isinstance(done.exception, LogBoundElsewhere), done.output
    assert "0x" + "11" * 20 in str(done.exception)
    done = runner.invoke(app, [*args, "--deployment", str(tmp_path / "none.json")])
    assert done.exit_code == 1 and isinstance(done.exception, DeploymentNotFound), done.output
