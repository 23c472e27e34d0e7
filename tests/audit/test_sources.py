"""The auditor over HTTP: `audit_log` / `tally audit log --api` against a real Tally API on
loopback, the same report as from the operator's database, forks that keep their tiles,
and a hostile API (a real proxy server rewriting answers) whose bad answers are named
failed checks, never crashes.

The served log: 12 entries, checkpoints at sizes 3, 6 and 10 on the module's anvil
deployment, behind an API whose pages hold at most 4 entries.
"""

from __future__ import annotations

import ast
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from service.audit.log import CompactRange, audit_log
from service.audit.login import sign_in
from service.audit.receipt import AuditReport
from service.audit.sources import ApiSource, ExportFileSource
from service.chain.config import save_deployment
from service.cli import app
from service.db import create_schema, make_engine
from service.errors import LogBoundElsewhere, LogUnavailable
from service.evidence.entries import SignedEntry
from service.evidence.merkle import leaf_hash, root_from_leaf_hashes
from service.evidence.sources import SqlLogSource, write_log_export
from tests.audit.http import Asked, HostileProxy, Reply, on, serve_api
from tests.audit.test_log import _build, _entries, ingest
from tests.evidence.test_log import receipt
from tests.space import Space, build_space

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = "/v1/evidence"  # the full entries an auditor reads (signed in)
CONSISTENCY = "/v1/log/proof/consistency"
CHECKPOINTS = "/v1/log/checkpoints"
PAGE = 4  # the served API's TALLY_PAGE_MAX
runner = CliRunner()


@dataclass
class Served:
    space: Space
    engine: Engine
    db: str
    tmp: Path
    api: str
    proxy: HostileProxy
    entries: list[SignedEntry]
    chain_opts: tuple[str, ...]
    token: str


@pytest.fixture(scope="module")
def served(anvil_space: Space, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    space = anvil_space
    tmp = tmp_path_factory.mktemp("sources")
    db = f"sqlite:///{tmp}/tally.db"
    engine = make_engine(db)
    create_schema(engine)
    entries = _entries(space)
    _build(engine, space, entries, anchor=True)
    deployment = tmp / "deployment.json"
    save_deployment(space.contracts.deployment, deployment)
    chain_opts = ("--rpc", space.chain.network.rpc_url or "", "--deployment", str(deployment))
    with serve_api(space, engine, page_max=PAGE) as api:
        proxy = HostileProxy(api)
        token = sign_in(api, space.auditor)
        yield Served(space, engine, db, tmp, api, proxy, entries, chain_opts, token)
        proxy.close()
    engine.dispose()


@pytest.fixture
def hostile(served: Served) -> Iterator[HostileProxy]:
    served.proxy.attack = None
    served.proxy.hits.clear()
    yield served.proxy
    served.proxy.attack = None


def _audit(served: Served, url: str | None = None, **options: Any) -> AuditReport:
    options = {"retries": 1, "backoff_s": 0.0, "token": served.token, **options}
    with ApiSource(url or served.proxy.url, **options) as source:
        return audit_log(
            chain=served.space.chain, ledger=served.space.contracts.ledger, proofs=source
        )


AUDITOR_KEY = "TALLY_TEST_AUDITOR_KEY"


def _cli(*args: str, key: str | None = None) -> Any:
    """``tally`` in process; with ``--api`` it signs in with the module's auditor key."""
    env = {"COLUMNS": "200", AUDITOR_KEY: key or _auditor_key()}
    extra = ["--key-env", AUDITOR_KEY] if "--api" in args else []
    return runner.invoke(app, [*args, *extra], env=env)


def _auditor_key() -> str:
    from service.chain.keys import dev_account

    return "0x" + bytes(dev_account(1).key).hex()  # build_space's auditor: dev account 1


def _report(result: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def _checks(doc: dict[str, Any], *names: str) -> list[tuple[str, bool | None, str]]:
    """The report's checks, each source's name replaced by SOURCE."""
    out = []
    for c in doc["checks"]:
        detail = c["detail"]
        for name in names:
            detail = detail.replace(name, "SOURCE")
        out.append((c["check"], c["ok"], detail))
    return out


def _failed(report: AuditReport) -> tuple[str, str]:
    first = report.first_failure
    assert first is not None, report.verdict
    return first.name, first.detail


# --- the same report over HTTP as from the database ----------------------------------------


def test_cli_audit_log_api_and_db_give_the_same_report(
    anvil_space: Space, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    space = build_space(anvil_space.chain)  # a ledger of its own for this database
    _build(engine, space, _entries(space), anchor=True)
    deployment = tmp_path / "deployment.json"
    save_deployment(space.contracts.deployment, deployment)
    chain_opts = ("--rpc", space.chain.network.rpc_url or "", "--deployment", str(deployment))
    with serve_api(space, engine, page_max=PAGE) as api:
        by_api = _cli("audit", "log", *chain_opts, "--api", api, "--json")
        plain = _cli("audit", "log", *chain_opts, "--api", api)
    by_db = _cli("audit", "log", *chain_opts, "--db", db_url, "--json")
    assert by_api.exit_code == 0 and by_db.exit_code == 0, (by_api.output, by_db.output)
    api_doc, db_doc = _report(by_api), _report(by_db)
    assert api_doc["ok"] is True and db_doc["ok"] is True
    assert _checks(api_doc) == _checks(db_doc)
    names = [c["check"] for c in api_doc["checks"]]
    assert names == [
        "checkpoint 0 root",
        "checkpoint 0 entries",
        "checkpoint 1 consistency",
        "checkpoint 1 root",
        "checkpoint 1 entries",
        "checkpoint 2 consistency",
        "checkpoint 2 root",
        "checkpoint 2 entries",
        "head",
    ]
    assert api_doc["subject"].startswith(f"log API {api} against ")
    assert plain.exit_code == 0 and plain.stdout.startswith("PASS")
    assert "3 checkpoint(s) up to size 10" in plain.stdout


def test_api_source_follows_the_servers_pages(served: Served, hostile: HostileProxy) -> None:
    report = _audit(served)
    assert report.ok, report.verdict
    assert hostile.entry_pages() == [0, 4, 8]  # 4 + 4 + 2 entries: up to the last checkpoint
    with ApiSource(served.api, token=served.token) as source:
        got = list(source.entries(size=12))
        assert [i for i, _ in got] == list(range(12))
        assert [data for _, data in got] == [e.encode() for e in served.entries]
        size, root = source.head()
        assert size == 12 and root == root_from_leaf_hashes(
            [leaf_hash(e.encode()) for e in served.entries]
        )
        assert source.root(6) == SqlLogSource(served.engine).root(6)
        assert source.consistency_proof(3, 10) == SqlLogSource(served.engine).consistency_proof(
            3, 10
        )
        assert len(source.inclusion_proof(5, 10)) == 4
    with ApiSource(
        served.api, progress=True, token=served.token
    ) as shown:  # the progress bar changes nothing
        assert list(shown.entries(size=12)) == got
    with pytest.raises(LogUnavailable, match="must start with http"):
        ApiSource("file:///etc/passwd")


def test_export_file_serves_the_tree_its_entries_make(served: Served, tmp_path: Path) -> None:
    export = tmp_path / "log.jsonl"
    write_log_export(engine=served.engine, seq=2, out=export)  # the 10 anchored entries
    report = audit_log(
        chain=served.space.chain,
        ledger=served.space.contracts.ledger,
        proofs=ExportFileSource(export),
    )
    assert report.ok, report.verdict
    assert report.checks[-1].name == "head" and "size 10 -> 10" in report.checks[-1].detail


def test_api_of_another_deployment_is_refused(served: Served) -> None:
    with ApiSource(served.api) as source:
        source.check_deployment(
            chain_id=served.space.chain.chain_id, ledger=served.space.contracts.ledger.address
        )
        with pytest.raises(LogBoundElsewhere, match="anchors on chain"):
            source.check_deployment(chain_id=served.space.chain.chain_id, ledger="0x" + "11" * 20)


# --- forks: the operator rewrites anchored entries ----------------------------------------


def _fork_db(served: Served, name: str, change: Callable[[Engine], None]) -> Engine:
    """A copy of the operator's database, changed by ``change``: what a forked API serves."""
    path = served.tmp / f"{name}.db"
    with sqlite3.connect(served.tmp / "tally.db") as src, sqlite3.connect(path) as dst:
        src.backup(dst)  # the WAL too, not just the main file
    engine = make_engine(f"sqlite:///{path}")
    change(engine)
    return engine


def _set_data(leaf: int, data: bytes) -> Callable[[Engine], None]:
    def change(engine: Engine) -> None:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE log_entries SET data = :data WHERE leaf_index = :leaf"),
                {"data": data, "leaf": leaf},
            )

    return change


def test_fork_rewritten_entry_bytes_with_tiles_kept_fails_at_its_checkpoint(
    served: Served,
) -> None:
    doctored = receipt(served.space, 4, units=1_000).encode()  # leaf 4: in checkpoint 1
    fork = _fork_db(served, "bytes-fork", _set_data(4, doctored))
    with serve_api(served.space, fork, page_max=PAGE) as api:
        result = _cli("audit", "log", *served.chain_opts, "--api", api)
        report = _cli("audit", "log", *served.chain_opts, "--api", api, "--json")
    assert result.exit_code == 1
    assert result.stdout.startswith("FAIL") and "check 'checkpoint 1 entries' failed" in (
        result.stdout
    )
    checks = {c["check"]: c for c in _report(report)["checks"]}
    # the tiles still prove every checkpoint: only the entries show the rewrite
    assert checks["checkpoint 0 entries"]["ok"] is True
    for passed in ("checkpoint 1 consistency", "checkpoint 1 root", "checkpoint 2 root", "head"):
        assert checks[passed]["ok"] is True, passed
    assert checks["checkpoint 1 entries"]["ok"] is False
    assert "among leaves 3 .. 5 was rewritten" in checks["checkpoint 1 entries"]["detail"]
    assert checks["checkpoint 2 entries"]["ok"] is False
    # the operator's own check over SQL sees it too
    db = str(fork.url)
    by_db = _cli("audit", "log", *served.chain_opts, "--db", db)
    assert by_db.exit_code == 1 and "check 'checkpoint 1 entries' failed" in by_db.stdout
    fork.dispose()


def test_fork_rewritten_entry_and_tiles_fails_at_its_checkpoint(
    served: Served, tmp_path: Path
) -> None:
    doctored = list(served.entries)
    doctored[7] = receipt(served.space, 7, units=999)  # leaf 7: in checkpoint 2
    fork = make_engine(f"sqlite:///{tmp_path}/rebuilt.db")
    create_schema(fork)
    assert all(r.ok for r in ingest(fork, served.space, doctored))  # type: ignore[attr-defined]
    with serve_api(served.space, fork, page_max=PAGE) as api:
        result = _cli("audit", "log", *served.chain_opts, "--api", api, "--json")
    assert result.exit_code == 1
    doc = _report(result)
    assert doc["first_failure"]["check"] == "checkpoint 2 consistency"
    assert doc["first_failure"]["seq"] == 2
    checks = {c["check"]: c["ok"] for c in doc["checks"]}
    assert checks["checkpoint 1 entries"] is True and checks["checkpoint 1 root"] is True
    assert checks["checkpoint 2 root"] is False and checks["checkpoint 2 entries"] is False
    fork.dispose()


def test_entry_bytes_that_do_not_decode_are_a_named_failure(served: Served) -> None:
    fork = _fork_db(served, "junk-fork", _set_data(8, b"TALLY-ENTRY-V1 junk"))
    with serve_api(served.space, fork, page_max=PAGE) as api:
        report = _audit(served, api)
    assert _failed(report)[0] == "checkpoint 2 entries"
    decode = [c for c in report.checks if c.name == "checkpoint 2 decode"]
    assert len(decode) == 1 and decode[0].ok is False
    assert decode[0].detail.startswith("not a canonical entry: leaf 8 (0x")
    assert not any(c.name.endswith("decode") for c in report.checks if c.seq in (0, 1))
    fork.dispose()


# --- a hostile API: every bad answer is a named failed check -------------------------------


def _page_doc(change: Callable[[Asked, dict[str, Any]], Any], start: int | None = None) -> Any:
    """An attack on the entries page starting at ``start`` (every page when None)."""

    def attack(asked: Asked, reply: Reply) -> Reply:
        if start is not None and asked.query.get("start") != start:
            return reply
        return reply.with_doc(change(asked, reply.doc()))

    return on(ENTRIES, attack)


def _more_entries(asked: Asked, doc: dict[str, Any]) -> Any:
    doc["entries"].append(doc["entries"][-1])
    return doc


def _drop_last(asked: Asked, doc: dict[str, Any]) -> Any:
    doc["entries"].pop()
    return doc


def _stop_early(asked: Asked, doc: dict[str, Any]) -> Any:
    return {**doc, "entries": [], "end": doc["start"], "next": None}


def _next_to(delta: int) -> Callable[[Asked, dict[str, Any]], Any]:
    def change(asked: Asked, doc: dict[str, Any]) -> Any:
        return {**doc, "next": doc["start"] + delta}

    return change


def _swap(asked: Asked, doc: dict[str, Any]) -> Any:
    e = doc["entries"]
    e[0], e[1] = e[1], e[0]
    return doc


def _index_as_text(asked: Asked, doc: dict[str, Any]) -> Any:
    doc["entries"][0]["leaf_index"] = str(doc["entries"][0]["leaf_index"])
    return doc


def _data_as_number(asked: Asked, doc: dict[str, Any]) -> Any:
    doc["entries"][1]["data"] = 12345
    return doc


def _entries_as_object(asked: Asked, doc: dict[str, Any]) -> Any:
    return {**doc, "entries": {"0": doc["entries"][0]}}


def _page_as_list(asked: Asked, doc: dict[str, Any]) -> Any:
    return [doc]


ATTACKS = {
    "page_with_more_entries_than_asked": (
        _page_doc(_more_entries, start=8),
        "checkpoint 2 entries",
        "holds 3 entries, more than the 2 asked",
    ),
    "page_with_fewer_entries_than_it_says": (
        _page_doc(_drop_last, start=0),
        "checkpoint 0 entries",
        "says it ends at 4 but holds 3 entries",
    ),
    "page_that_stops_before_the_log_ends": (
        _page_doc(_stop_early, start=4),
        "checkpoint 1 entries",
        "ends at leaf 4 with no next page, though the log has 12 entries",
    ),
    "next_that_goes_backwards": (
        _page_doc(_next_to(-4), start=4),
        "checkpoint 1 entries",
        "'next' (0) goes back or loops to leaf 4",
    ),
    "next_that_loops_on_its_page": (
        _page_doc(_next_to(0), start=4),
        "checkpoint 1 entries",
        "'next' (4) goes back or loops to leaf 4",
    ),
    "next_that_skips_leaves": (
        _page_doc(_next_to(5), start=0),
        "checkpoint 0 entries",
        "'next' (5) skips the leaves after 4",
    ),
    "leaves_out_of_order": (
        _page_doc(_swap, start=0),
        "checkpoint 0 entries",
        "entry 0 of the page is leaf 1, not 0",
    ),
    "leaf_index_of_the_wrong_type": (
        _page_doc(_index_as_text, start=0),
        "checkpoint 0 entries",
        "'leaf_index' is '0', not a non-negative integer",
    ),
    "entry_data_of_the_wrong_type": (
        _page_doc(_data_as_number, start=0),
        "checkpoint 0 entries",
        "leaf 1 data is not a 0x-prefixed hex string",
    ),
    "entries_as_an_object": (
        _page_doc(_entries_as_object, start=4),
        "checkpoint 1 entries",
        "'entries' is not a list",
    ),
    "page_as_a_list": (
        _page_doc(_page_as_list, start=0),
        "checkpoint 0 entries",
        "the answer is a JSON list, not an object",
    ),
    "page_not_json": (
        on(ENTRIES, lambda a, r: Reply(200, b"<html>maintenance</html>")),
        "checkpoint 0 entries",
        "the answer is not JSON",
    ),
    "page_nested_too_deep": (
        on(ENTRIES, lambda a, r: Reply(200, b"[" * 100_000)),
        "checkpoint 0 entries",
        "nests deeper than 64 levels",
    ),
    "root_of_the_wrong_type": (
        on(CONSISTENCY, lambda a, r: r.with_doc({**r.doc(), "root_to": 7})),
        "checkpoint 0 root",
        "root_to is '7', not 0x and 64 hex digits",
    ),
    "root_of_the_wrong_length": (
        on(CONSISTENCY, lambda a, r: r.with_doc({**r.doc(), "root_to": "0x" + "ab" * 31})),
        "checkpoint 0 root",
        "not 0x and 64 hex digits",
    ),
    "proof_for_other_sizes": (
        on(CONSISTENCY, lambda a, r: r.with_doc({**r.doc(), "to": r.doc()["to"] + 1})),
        "checkpoint 0 root",
        "the proof is not for the sizes asked",
    ),
    "proof_one_hash_short": (
        on(
            CONSISTENCY,
            lambda a, r: (
                r.with_doc({**r.doc(), "proof": r.doc()["proof"][:-1]})
                if a.query["from"] != a.query["to"]
                else r
            ),
        ),
        "checkpoint 1 consistency",
        "the log's proof does not link root",
    ),
    "proof_of_absurd_length": (
        on(
            CONSISTENCY,
            lambda a, r: (
                r.with_doc({**r.doc(), "proof": ["0x" + "00" * 32] * 200})
                if a.query["from"] != a.query["to"]
                else r
            ),
        ),
        "checkpoint 1 consistency",
        "'proof' is not a list of at most 128 hashes",
    ),
    "error_status_with_an_error_code": (
        on(
            CONSISTENCY,
            lambda a, r: Reply(404, b'{"error": "tree_size_not_found", "message": "no"}'),
        ),
        "checkpoint 0 root",
        "HTTP 404 tree_size_not_found: no",
    ),
    "answers_500_after_every_retry": (
        on(ENTRIES, lambda a, r: Reply(500, b"{}")),
        "checkpoint 0 entries",
        "HTTP 500 (2 tries)",
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_is_a_named_failed_check(served: Served, hostile: HostileProxy, attack: str) -> None:
    hostile.attack, name, says = ATTACKS[attack]
    report = _audit(served)
    assert not report.ok
    first, detail = _failed(report)
    assert first == name, (first, detail)
    assert says in detail, detail
    if first != "checkpoint 1 consistency":  # a proof that does not verify is the log's
        assert served.proxy.url in detail  # the source and the request are named
    assert report.verdict.startswith("FAIL") and f"check '{name}' failed" in report.verdict


def test_attack_huge_body_is_cut_off(served: Served, hostile: HostileProxy) -> None:
    hostile.attack = on(ENTRIES, lambda a, r: Reply(200, r.body + b" " * 2_000_000))
    report = _audit(served, max_body_bytes=1_000_000)
    assert _failed(report) == (
        "checkpoint 0 entries",
        f"checkpoint 0: cannot read the entries: API {served.proxy.url}: GET {ENTRIES}?start=0"
        "&end=10: the answer is larger than 1000000 bytes",
    )


def test_attack_slow_answers_time_out(served: Served, hostile: HostileProxy) -> None:
    def slow(asked: Asked, reply: Reply) -> Reply:
        import time

        time.sleep(1.0)
        return reply

    hostile.attack = on(ENTRIES, slow)
    report = _audit(served, timeout_s=0.2)
    name, detail = _failed(report)
    assert name == "checkpoint 0 entries" and detail.endswith("timed out (2 tries)")
    assert hostile.entry_pages() == [0, 0]  # one retry, then given up


def test_attack_500s_are_retried_a_bounded_number_of_times(
    served: Served, hostile: HostileProxy
) -> None:
    hostile.attack = on(ENTRIES, lambda a, r: Reply(503, b"busy"))
    report = _audit(served, retries=3)
    assert _failed(report)[1].endswith("HTTP 503 (4 tries)")
    assert hostile.entry_pages() == [0, 0, 0, 0]
    skipped = [
        c for c in report.checks if c.name in ("checkpoint 1 entries", "checkpoint 2 entries")
    ]
    assert [c.ok for c in skipped] == [None, None]  # nothing more is read from a broken stream


def test_transient_503_and_429_are_retried_and_pass(served: Served, hostile: HostileProxy) -> None:
    answers = [Reply(503, b""), Reply(429, b"", {"Retry-After": "1"})]
    waits: list[float] = []

    def flaky(asked: Asked, reply: Reply) -> Reply:
        return answers.pop(0) if answers else reply

    hostile.attack = on(ENTRIES, flaky)
    with ApiSource(
        hostile.url, retries=2, backoff_s=0.25, sleep=waits.append, token=served.token
    ) as source:
        report = audit_log(
            chain=served.space.chain, ledger=served.space.contracts.ledger, proofs=source
        )
    assert report.ok, report.verdict
    assert waits == [0.25, 1.0]  # backoff, then the server's Retry-After
    assert hostile.entry_pages() == [0, 0, 0, 4, 8]


def _cli_line(served: Served, api: str) -> subprocess.CompletedProcess[str]:
    tally = Path(sys.executable).parent / "tally"
    return subprocess.run(
        [str(tally), "audit", "log", *served.chain_opts, "--api", api, "--key-env", AUDITOR_KEY],
        capture_output=True,
        env=os.environ | {AUDITOR_KEY: _auditor_key()},
        text=True,
        timeout=120,
        check=False,
    )


def test_attack_head_of_the_wrong_type_is_one_cli_error_line(
    served: Served, hostile: HostileProxy
) -> None:
    def bad_head(asked: Asked, reply: Reply) -> Reply:
        doc = reply.doc()
        doc["log"]["tree_size"] = "12"
        return reply.with_doc(doc)

    hostile.attack = on(CHECKPOINTS, bad_head)
    done = _cli_line(served, hostile.url)
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "log_unavailable" in lines[0] or "'tree_size' is '12'" in lines[0], lines[0]
    assert "'tree_size' is '12', not a non-negative integer" in lines[0]


def test_unreachable_api_is_one_cli_error_line(served: Served) -> None:
    result = _cli("audit", "log", *served.chain_opts, "--api", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert isinstance(result.exception, LogUnavailable)
    assert "POST /v1/auth/challenge: ConnectError" in str(result.exception)


# --- resuming an interrupted download -----------------------------------------------------


def test_failed_download_resumes_from_the_cache(
    served: Served, hostile: HostileProxy, tmp_path: Path
) -> None:
    hostile.attack = on(ENTRIES, lambda a, r: Reply(500, b"") if a.query["start"] >= 8 else r)
    failed = _audit(served, cache=tmp_path)
    assert _failed(failed)[0] == "checkpoint 2 entries"
    assert hostile.entry_pages() == [0, 4, 8, 8]
    hostile.attack = None
    hostile.hits.clear()
    resumed = _audit(served, cache=tmp_path)
    assert resumed.ok, resumed.verdict
    assert hostile.entry_pages() == [8]  # only what the failed run did not get
    hostile.hits.clear()
    assert _audit(served, cache=tmp_path).ok and hostile.entry_pages() == []


def test_edited_cache_page_is_downloaded_again(
    served: Served, hostile: HostileProxy, tmp_path: Path
) -> None:
    assert _audit(served, cache=tmp_path).ok
    (page,) = tmp_path.glob("*/4.json")
    doc = json.loads(page.read_text())
    index, data, salt = doc["entries"][1]
    doc["entries"][1] = [index, data[:-2] + ("00" if data[-2:] != "00" else "01"), salt]
    page.write_text(json.dumps(doc))
    (tmp_path / page.parent.name / "8.json").write_text("{torn")
    hostile.hits.clear()
    report = _audit(served, cache=tmp_path)
    assert report.ok, report.verdict
    assert hostile.entry_pages() == [4, 8]


def test_cli_cache_needs_api(served: Served, tmp_path: Path) -> None:
    result = _cli("audit", "log", *served.chain_opts, "--cache", str(tmp_path))
    assert result.exit_code == 1 and "--cache" in str(result.exception)
    both = _cli("audit", "log", *served.chain_opts, "--api", served.api, "--db", served.db)
    assert both.exit_code == 1 and "not both" in str(both.exception)


# --- pieces -------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=8), max_size=70))
def test_compact_range_root_is_the_merkle_root_at_every_size(leaves: list[bytes]) -> None:
    tree = CompactRange()
    hashes = [leaf_hash(leaf) for leaf in leaves]
    assert tree.root() == root_from_leaf_hashes([])
    for n, h in enumerate(hashes, start=1):
        tree.append(h)
        assert tree.size == n and tree.root() == root_from_leaf_hashes(hashes[:n])


DATABASE_MODULES = ("sqlalchemy", "sqlmodel", "service.db", "service.evidence.models",
                    "service.evidence.tiles", "service.evidence.sources")  # fmt: skip


def test_audit_modules_import_no_database_code() -> None:
    for path in sorted((ROOT / "service" / "audit").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert not name.startswith(DATABASE_MODULES), f"{path.name} imports {name}"
