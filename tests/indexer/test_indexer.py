"""The indexer against a real anvil, on SQLite and PostgreSQL (the ``engine`` fixture).

Mirror = node, event for event; re-running changes nothing; confirmations; reorgs of
depth 1..5 with and without replacement transactions; kill -9 mid-range; a node that
refuses large ranges; the CLI; a second indexer on the same cursor.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import Engine
from typer.testing import CliRunner
from web3 import Web3

from service.chain.client import PROCESS_NONCES, Chain
from service.chain.config import save_deployment
from service.chain.deploy import TallyContracts, deploy_tally
from service.chain.devnode import Anvil
from service.errors import ConfigError, IndexerConflict, IndexerRpcError
from service.evidence.merkle import consistency_proof, leaf_hash, root_from_leaf_hashes
from service.indexer import handlers
from service.indexer.cli import index_app
from service.indexer.runner import Indexer
from service.indexer.scanner import Batch
from service.indexer.source import RpcSource
from service.indexer.store import T_BLOCKS, T_CURSORS, T_REORGS, Cursor
from service.settlement.payout_tree import PayoutTree, build_payout_tree
from tests.indexer.helpers import (
    ARBITER_ROLE,
    AUDITOR_ROLE,
    MIRROR_TABLES,
    UNIT,
    Bulk,
    Scenario,
    anchor_checkpoints,
    dump,
    fresh_index,
    mirror_events,
    node_logs,
    reference_events,
    rows,
)

pytestmark = pytest.mark.anvil
ROOT = Path(__file__).resolve().parents[2]
STATUS = {1: "proposed", 2: "disputed", 3: "cancelled", 4: "finalized", 5: "closed"}


def wipe(engine: Engine) -> None:
    with engine.begin() as conn:
        for t in (*MIRROR_TABLES, T_CURSORS, T_BLOCKS, T_REORGS):
            conn.execute(delete(t))


# --- the mirror -------------------------------------------------------------------------


def test_mirror_equals_node_and_derived_state_matches_contracts(
    engine: Engine, scenario: Scenario, make_indexer: Callable[..., Indexer]
) -> None:
    dep, chain, acc = scenario.deployment, scenario.chain, scenario.accounts
    summary = make_indexer(scenario.url, dep).run()
    head = chain.w3.eth.block_number

    # event for event, decoded independently by web3
    expected = reference_events(chain, dep, head)
    assert mirror_events(engine) == expected
    names = {e[5] for e in expected}
    every = {
        "ParticipantRegistered", "ParticipantUpdated", "ParticipantSuspended",
        "ParticipantReinstated", "RoleGranted", "RoleRevoked", "CheckpointAnchored",
        "Deposited", "RoundProposed", "RoundChallenged", "RoundCancelled", "RoundFinalized",
        "Claimed", "RoundSwept", "Paused", "Unpaused", "Transfer", "Approval",
        "OwnershipTransferred", "RoundDebited", "DisputeResolved", "RoundRefunded",
        "WithdrawalRequested", "Withdrawn",
    }  # fmt: skip
    assert every <= names
    assert summary.events == len(expected) and summary.cursor == head
    for row in rows(engine, handlers.T_EVENTS):
        for key in ("block_hash", "tx_hash", "address"):
            assert row[key] == row[key].lower() and row[key].startswith("0x")

    # derived tables agree with the contracts' own views
    reg, ledger, vault = (
        scenario.contracts.registry,
        scenario.contracts.ledger,
        scenario.contracts.vault,
    )
    parts = {p["account"]: p for p in rows(engine, handlers.T_PARTICIPANTS)}
    assert set(parts) == {acc[k].lower() for k in ("provider", "consumer", "service")}
    for account, p in parts.items():
        roles, status, registered, identity, uri = chain.call(
            reg.functions.participant(Web3.to_checksum_address(account))
        )
        assert (p["roles"], p["suspended"], p["registered_block"]) == (
            roles,
            status == 2,
            registered,
        )
        assert (p["identity_hash"], p["metadata_uri"]) == ("0x" + identity.hex(), uri)
    assert (
        parts[acc["consumer"].lower()]["suspended"]
        and not parts[acc["service"].lower()]["suspended"]
    )

    members = {(m["role"], m["account"]) for m in rows(engine, handlers.T_ROLES)}
    admin = acc["admin"].lower()
    operator = "0x" + chain.call(reg.functions.OPERATOR_ROLE()).hex()
    assert members == {
        ("0x" + "00" * 32, admin),
        (operator, admin),
        ("0x" + AUDITOR_ROLE.hex(), acc["auditor"].lower()),
        ("0x" + ARBITER_ROLE.hex(), acc["temp"].lower()),
    }
    assert {m["role_name"] for m in rows(engine, handlers.T_ROLES)} == {
        "DEFAULT_ADMIN_ROLE",
        "OPERATOR_ROLE",
        "AUDITOR_ROLE",
        "ARBITER_ROLE",
    }

    cps = sorted(rows(engine, handlers.T_CHECKPOINTS), key=lambda c: c["seq"])
    assert [c["seq"] for c in cps] == [0, 1, 2]
    for c in cps:
        size, root, block, _ts = chain.call(ledger.functions.checkpoint(c["seq"]))
        assert (c["tree_size"], c["root_hash"], c["block_number"]) == (
            size,
            "0x" + root.hex(),
            block,
        )

    deposits = sorted(
        rows(engine, handlers.T_DEPOSITS), key=lambda d: (d["block_number"], d["log_index"])
    )
    consumer = acc["consumer"].lower()
    assert [(d["account"], d["payer"], d["amount"]) for d in deposits] == [
        (consumer, consumer, 300 * UNIT), (consumer, consumer, 200 * UNIT),
        (consumer, admin, 2**64 * 7),
    ]  # fmt: skip

    # balances per account: what the vault's balanceOf and pendingWithdrawal say
    balances = {b["account"]: b for b in rows(engine, handlers.T_BALANCES)}
    assert set(balances) == {consumer}
    for account, b in balances.items():
        who = Web3.to_checksum_address(account)
        assert b["balance"] == chain.call(vault.functions.balanceOf(who))
        assert (b["withdrawal_amount"], b["withdrawal_available_at"]) == tuple(
            chain.call(vault.functions.pendingWithdrawal(who))
        )
    assert balances[consumer]["deposited"] == 500 * UNIT + 2**64 * 7
    changes = [c["event"] for c in rows(engine, handlers.T_BALANCE_CHANGES)]
    assert sorted(set(changes)) == [
        "RoundDebited", "RoundRefunded", "WithdrawalRequested", "Withdrawn"
    ]  # fmt: skip
    assert changes.count("RoundDebited") == 4 and changes.count("RoundRefunded") == 3

    rounds = {r["round_id"]: r for r in rows(engine, handlers.T_ROUNDS)}
    assert set(rounds) == {1, 2, 3, 4}
    for rid, r in rounds.items():
        root, policy, total, paid, status, seq, deadline, _fin, start, end, _uri = chain.call(
            vault.functions.round(rid)
        )
        assert r["status"] == STATUS[status]
        assert (r["payout_root"], r["policy_hash"], r["total"], r["claimed_total"]) == (
            "0x" + root.hex(), "0x" + policy.hex(), total, paid
        )  # fmt: skip
        assert (r["evidence_seq"], r["challenge_deadline"]) == (seq, deadline)
        assert (r["period_start"], r["period_end"]) == (start, end)
    assert [rounds[i]["status"] for i in (1, 2, 3, 4)] == [
        "closed", "cancelled", "cancelled", "proposed"
    ]  # fmt: skip
    assert (rounds[1]["claimed_total"], rounds[1]["claim_count"], rounds[1]["swept_total"]) == (
        90 * UNIT,
        2,
        10 * UNIT,
    )
    assert (rounds[2]["challenger"], rounds[2]["finding_hash"]) == (consumer, "0x" + "98" * 32)
    assert (rounds[2]["arbiter"], rounds[2]["ruling_hash"], rounds[2]["upheld"]) == (
        acc["temp"].lower(),
        "0x" + "56" * 32,
        True,
    )

    def history(rid: int) -> list[str]:
        hs = sorted(
            rows(engine, handlers.T_HISTORY, round_id=rid),
            key=lambda h: (h["block_number"], h["log_index"]),
        )
        return [h["status"] for h in hs]

    assert history(1) == ["proposed", "finalized", "closed"]  # the last: RoundSwept
    # rejected, challenged again, upheld (DisputeResolved), then RoundCancelled
    assert history(2) == [
        "proposed", "disputed", "proposed", "disputed", "cancelled", "cancelled"
    ]  # fmt: skip
    claims = rows(engine, handlers.T_CLAIMS)
    assert sorted((c["account"], c["amount"]) for c in claims) == sorted(
        [(acc["provider"].lower(), 70 * UNIT), (acc["consumer"].lower(), 20 * UNIT)]
    )

    # re-running changes nothing; a rebuild from chain_events gives the same tables
    before = dump(engine)
    again = make_indexer(scenario.url, dep).run()
    assert (again.blocks, again.events, again.reorgs) == (0, 0, [])
    assert dump(engine) == before
    store = make_indexer(scenario.url, dep).store
    store.rebuild()
    assert dump(engine) == before
    with engine.begin() as conn:  # in small pages, too
        n = handlers.rebuild_all(conn, store.chain_id, store.addresses, batch=7)
    assert n == len(expected) and dump(engine) == before


def test_confirmations_hold_back_the_newest_blocks(
    engine: Engine, scenario: Scenario, make_indexer: Callable[..., Indexer]
) -> None:
    dep, chain = scenario.deployment, scenario.chain
    head = chain.w3.eth.block_number
    summary = make_indexer(scenario.url, dep, confirmations=4).run()
    assert summary.cursor == head - 4 and summary.safe_head == head - 4
    everything = reference_events(chain, dep, head)
    assert any(e[0] > head - 4 for e in everything)  # the scenario's last events wait
    assert mirror_events(engine) == [e for e in everything if e[0] <= head - 4]
    make_indexer(scenario.url, dep).run()  # 0 confirmations: the rest, nothing doubled
    assert mirror_events(engine) == everything


# --- reorgs -----------------------------------------------------------------------------


def _state_changing_tail(chain: Chain, t: TallyContracts, tree: PayoutTree, k: int) -> None:
    """Five blocks, each changing derived state: a deposit, a participant, a claim, a
    role, a checkpoint (valid whatever earlier reorgs dropped)."""
    acc = chain.accounts
    admin, prov, auditor = acc[0], acc[1], acc[5]
    reg, vault, ledger = t.registry, t.vault, t.ledger
    chain.transact(vault.functions.deposit(UNIT + k), sender=admin)
    active = chain.call(reg.functions.isActive(prov.address))
    flip = reg.functions.suspend if active else reg.functions.reinstate
    chain.transact(flip(prov.address), sender=admin)
    index = next(i for i in range(len(tree)) if not chain.call(vault.functions.isClaimed(7, i)))
    e = tree.entries[index]
    chain.transact(
        vault.functions.claim(7, e.index, e.account, e.amount, list(e.proof)), sender=admin
    )
    held = chain.call(reg.functions.hasRole(AUDITOR_ROLE, auditor.address))
    role = reg.functions.revokeRole if held else reg.functions.grantRole
    chain.transact(role(AUDITOR_ROLE, auditor.address), sender=admin)
    size = chain.call(ledger.functions.checkpoint(chain.call(ledger.functions.count()) - 1))[0]
    hashes = [leaf_hash(f"entry {i}".encode()) for i in range(size + 2)]
    anchor = ledger.functions.anchor(
        size + 2, root_from_leaf_hashes(hashes), consistency_proof(hashes, size)
    )
    chain.transact(anchor, sender=admin)


def test_reorgs_of_depth_1_to_5_roll_back_to_a_fresh_index(
    engine: Engine,
    node: Anvil,
    rpc_chain: Chain,
    make_indexer: Callable[..., Indexer],
    tmp_path: Path,
) -> None:
    """Reorgs one after another on one incrementally indexed mirror: each drops the
    newest ``depth`` blocks (every one of which changed derived state), with or without
    replacement transactions (the first orphaned block's own transaction again, in a new
    block, and a new one)."""
    chain = rpc_chain
    acc = chain.accounts
    admin = acc[0]
    t = deploy_tally(chain, admin=admin, challenge_window_s=0, network="anvil")
    reg, vault = t.registry, t.vault
    for who, roles in ((acc[1], 1), (acc[2], 2)):
        chain.transact(reg.functions.register(who.address, roles, b"\x01" * 32, "u"), sender=admin)
    anchor_checkpoints(chain, t.ledger, admin, [2])
    chain.transact(t.token.functions.mint(admin.address, 1000 * UNIT), sender=admin)
    chain.transact(t.token.functions.approve(vault.address, 2**256 - 1), sender=admin)
    chain.transact(vault.functions.deposit(500 * UNIT), sender=admin)
    payees = {Web3.to_checksum_address(bytes([9, i]) * 10): (i + 1) * UNIT for i in range(16)}
    tree = build_payout_tree(round_id=7, payouts=payees)
    debits = [(admin.address, tree.total)]
    propose = vault.functions.propose(7, tree.root, tree.total, 0, b"\x07" * 32, 0, 1, debits, "s")
    chain.transact(propose, sender=admin)
    chain.transact(vault.functions.finalize(7), sender=admin)
    dep = t.deployment
    rpc = chain.w3.provider.make_request
    make_indexer(node.url, dep).run()

    k = 0
    for depth in range(1, 6):
        for replace in (False, True):
            k += 1
            _state_changing_tail(chain, t, tree, k)
            head = chain.w3.eth.block_number
            assert make_indexer(node.url, dep).run().reorgs == []
            assert mirror_events(engine)[-1][0] == head
            replacements: list[list[Any]] = []
            if replace:
                first = chain.w3.eth.get_block(head - depth + 1)
                orig_hash = "0x" + first["transactions"][0].hex()
                orig = rpc("eth_getRawTransactionByHash", [orig_hash])["result"]
                nonce = chain.w3.eth.get_transaction_count(admin.address, head - depth)
                newcomer = Web3.to_checksum_address(bytes([k]) * 20)
                new_tx = reg.functions.register(newcomer, 4, b"\x05" * 32, "new").build_transaction(
                    {"from": admin.address, "nonce": nonce + 1, "gas": 400_000,
                     "maxFeePerGas": 10**9, "maxPriorityFeePerGas": 0}
                )  # fmt: skip
                signed = "0x" + admin.sign_transaction(new_tx).raw_transaction.hex()
                replacements = [[orig, 0], [signed, 0]]
            assert rpc("anvil_reorg", [depth, replacements]).get("error") is None
            assert chain.w3.eth.block_number == head
            PROCESS_NONCES.forget(node.url, chain.chain_id)  # the fork dropped sent nonces
            chain = Chain.connect(chain.network)

            summary = make_indexer(node.url, dep).run()
            case = (depth, replace)
            assert [(r["depth"], r["ancestor_block"]) for r in summary.reorgs] == [
                (depth, head - depth)
            ], case
            recorded = rows(engine, T_REORGS)
            assert len(recorded) == k and recorded[-1]["depth"] == depth, case
            if replace:
                tx_hashes = {e[2] for e in mirror_events(engine) if e[0] == head - depth + 1}
                assert orig_hash in tx_hashes, case
            # raw and derived tables equal a fresh index of the canonical chain: no
            # orphaned row left, none missing, derived state as it is at the new head
            fresh = fresh_index(node.url, dep, tmp_path / f"fresh-{k}.db")
            assert dump(engine) == fresh, case

    head = chain.w3.eth.block_number
    assert mirror_events(engine) == reference_events(chain, dep, head)
    for n, h in {(e[0], e[1]) for e in mirror_events(engine)}:
        assert h == "0x" + chain.w3.eth.get_block(n)["hash"].hex()


# --- crash safety -----------------------------------------------------------------------


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "service.indexer", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _in_write_transaction(db_url: str, engine: Engine) -> bool:
    """Whether another process holds an open write transaction on the database."""
    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:  # locked: the indexer is mid-range
            return True
        finally:
            conn.close()
    with engine.connect() as conn:
        n = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
            )
        ).scalar_one()
    return bool(n)


def test_kill_9_mid_range_then_restart_loses_and_doubles_nothing(
    db_url: str, engine: Engine, bulk: Bulk, node: Anvil, tmp_path: Path
) -> None:
    cmd = _cli(
        "--rpc", node.url, "--deployment", str(bulk.deployment_file), "--db", db_url,
        "--once", "--max-range", "2", "--quiet",
    )  # fmt: skip
    dep = bulk.contracts.deployment
    kills_mid_transaction = 0
    previous = -1
    for _ in range(2):
        proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                cursor = _cursor(engine)
                if (
                    cursor is not None
                    and cursor > previous + 6
                    and _in_write_transaction(db_url, engine)
                ):
                    proc.send_signal(signal.SIGKILL)
                    kills_mid_transaction += 1
                    break
                time.sleep(0.005)
        finally:
            proc.kill()
            _, err = proc.communicate()
        assert proc.returncode in (-signal.SIGKILL, 0), err.decode()
        cursor = _cursor(engine)
        assert cursor is not None and cursor > previous
        previous = cursor
        # the invariant a crash must keep: nothing above the cursor, nothing half-written
        with engine.connect() as conn:
            above = conn.execute(
                select(func.count())
                .select_from(handlers.T_EVENTS)
                .where(handlers.T_EVENTS.c.block_number > cursor)
            ).scalar_one()
        assert above == 0
    assert kills_mid_transaction >= 2
    done = subprocess.run([*cmd, "--max-range", "40"], env=_env(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert _cursor(engine) == bulk.head
    logs = node_logs(node.url, dep, bulk.head)
    assert len(mirror_events(engine)) == len(logs) >= bulk.population.events
    assert dump(engine) == fresh_index(node.url, dep, tmp_path / "fresh.db")


def _cursor(engine: Engine) -> int | None:
    with engine.connect() as conn:
        value = conn.execute(select(func.max(T_CURSORS.c.block_number))).scalar()
    return None if value is None else int(value)


# --- a node that refuses large ranges ---------------------------------------------------


class _Proxy(BaseHTTPRequestHandler):
    upstream = ""
    max_blocks = 1 << 30
    mode = "error"  # or "slow": answer too late instead of an error
    refused: list[int]
    served: list[int]
    fail_first = 0
    poison = -1  # a block whose logs it never serves

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        if cls.fail_first > 0:
            cls.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        calls = body if isinstance(body, list) else [body]
        for call in calls:
            if call.get("method") == "eth_getLogs":
                flt = call["params"][0]
                lo, hi = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
                size = hi - lo + 1
                if size > cls.max_blocks or lo <= cls.poison <= hi:
                    cls.refused.append(size)
                    if cls.mode == "slow":
                        time.sleep(0.6)
                        return
                    message = f"block range too large (max {cls.max_blocks})"
                    error = {"code": -32005, "message": message}
                    answer = {"jsonrpc": "2.0", "id": call["id"], "error": error}
                    self._send(json.dumps(answer).encode())
                    return
                cls.served.append(size)
        upstream = requests.post(
            cls.upstream,
            data=json.dumps(body),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        self._send(upstream.content)

    def _send(self, payload: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@contextlib.contextmanager
def refusing_proxy(
    upstream: str, max_blocks: int, *, mode: str = "error", fail_first: int = 0, poison: int = -1
) -> Iterator[type[_Proxy]]:
    handler = type("Handler", (_Proxy,), {
        "upstream": upstream, "max_blocks": max_blocks, "mode": mode, "refused": [], "served": [],
        "fail_first": fail_first, "poison": poison,
    })  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.upstream = upstream
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("mode", ["error", "slow"])
def test_node_refusing_large_ranges_is_still_fully_indexed(
    mode: str, engine: Engine, bulk: Bulk, node: Anvil, tmp_path: Path
) -> None:
    dep = bulk.contracts.deployment
    with refusing_proxy(node.url, 7, mode=mode, fail_first=2) as proxy:
        source = RpcSource(proxy.url, timeout_s=0.3)  # type: ignore[attr-defined]
        source.backoff.base_s = 0.01
        indexer = Indexer(
            source=source, engine=engine, deployment=dep, network="anvil", max_range=500
        )
        summary = indexer.run()
    assert summary.cursor == bulk.head
    assert proxy.refused and max(proxy.served) <= 7
    assert summary.range_refusals >= len(proxy.refused) > 0
    assert dump(engine) == fresh_index(node.url, dep, tmp_path / "fresh.db")


def test_a_block_the_node_never_serves_stops_the_indexer_without_skipping_it(
    engine: Engine, bulk: Bulk, node: Anvil
) -> None:
    dep = bulk.contracts.deployment
    poison = dep.deploy_block + 40
    with refusing_proxy(node.url, 1 << 30, poison=poison) as proxy:
        source = RpcSource(proxy.url)  # type: ignore[attr-defined]
        indexer = Indexer(
            source=source, engine=engine, deployment=dep, network="anvil", max_range=16
        )
        indexer.scanner.sleep = lambda _s: None
        with pytest.raises(IndexerRpcError, match=f"block {poison}"):
            indexer.run()
    assert _cursor(engine) == poison - 1  # everything before it, nothing from it on
    assert mirror_events(engine)[-1][0] < poison
    assert len(proxy.refused) >= 8 and 1 in proxy.refused  # split down to the one block


# --- the command line -------------------------------------------------------------------


def test_cli_once_json_status_and_follow_stops_cleanly_on_sigterm(
    db_url: str, engine: Engine, node: Anvil, rpc_chain: Chain, tmp_path: Path
) -> None:
    chain = rpc_chain
    admin = chain.accounts[0]
    t = deploy_tally(chain, admin=admin, network="anvil")
    for i in (1, 2, 3):
        register = t.registry.functions.register(chain.accounts[i].address, i, bytes(32), "u")
        chain.transact(register, sender=admin)
    chain.mine(3)
    head = chain.w3.eth.block_number
    dep_file = tmp_path / "deployment.json"
    save_deployment(t.deployment, dep_file)
    common = ["--rpc", node.url, "--deployment", str(dep_file), "--db", db_url]

    runner = CliRunner()
    once = runner.invoke(index_app, [*common, "--once", "--json", "--confirmations", "2"])
    assert once.exit_code == 0, once.output
    summary = json.loads(once.stdout)
    assert (summary["to_block"], summary["head"], summary["confirmations"]) == (head - 2, head, 2)
    assert (
        summary["events"] == sum(summary["events_by_type"].values()) == len(mirror_events(engine))
    )
    assert summary["events_by_type"]["ParticipantRegistered"] == 3 and summary["reorgs"] == []
    assert summary["blocks"] == head - 2 - t.deployment.deploy_block + 1

    st = runner.invoke(index_app, ["status", *common, "--json"])
    assert st.exit_code == 0, st.output
    status = json.loads(st.stdout)
    assert status["cursor"]["block"] == head - 2 and (status["head"], status["lag"]) == (head, 2)
    assert status["events"]["ParticipantRegistered"] == 3
    table = runner.invoke(index_app, ["status", *common])
    assert table.exit_code == 0 and "lag" in table.stdout and "2 blocks" in table.stdout

    before = dump(engine)
    rebuilt = runner.invoke(index_app, ["rebuild", *common])
    assert rebuilt.exit_code == 0 and "rebuilt the derived tables" in rebuilt.stdout
    assert dump(engine) == before

    offline = ["--rpc", "http://127.0.0.1:9", *common[2:]]  # nothing listens there
    down = runner.invoke(index_app, ["status", *offline, "--json"])
    assert down.exit_code == 0, down.output
    assert json.loads(down.stdout)["cursor"]["block"] == head - 2
    assert json.loads(down.stdout)["head"] is None

    bad = runner.invoke(index_app, [*common[:2], "--db", db_url])  # --rpc needs --deployment
    assert isinstance(bad.exception, ConfigError) and "--deployment" in str(bad.exception)

    follow = subprocess.Popen(
        _cli(*common, "--follow", "--poll-interval", "0.1", "--json"),
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait(lambda: _cursor(engine) == head)
        late = t.registry.functions.register(chain.accounts[8].address, 1, bytes(32), "late")
        receipt = chain.transact(late, sender=admin)
        _wait(lambda: _cursor(engine) == receipt["blockNumber"])
        assert mirror_events(engine)[-1][5] == "ParticipantRegistered"
        follow.send_signal(signal.SIGTERM)
        out, err = follow.communicate(timeout=30)
    finally:
        follow.kill()
    assert follow.returncode == 0, err.decode()
    final = json.loads(out)
    assert final["stopped_by_signal"] and final["to_block"] == receipt["blockNumber"]
    assert final["events_by_type"] == {"ParticipantRegistered": 1}


def _wait(predicate: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


# --- two writers ------------------------------------------------------------------------


def test_a_second_indexer_cannot_move_the_cursor_under_the_first(
    engine: Engine, scenario: Scenario, make_indexer: Callable[..., Indexer]
) -> None:
    first = make_indexer(scenario.url, scenario.deployment)
    first.run()
    before = dump(engine)
    head = scenario.chain.w3.eth.block_number
    stale = Cursor(head - 3, "0x" + "ab" * 32)
    batch = Batch(start=head - 2, end=head, end_hash="0x" + "cd" * 32, events=[], blocks=[])
    with pytest.raises(IndexerConflict):
        first.store.commit(batch, expected=stale)
    with pytest.raises(IndexerConflict):
        first.store.commit(batch, expected=None)  # "no cursor yet": there is one
    assert dump(engine) == before
