"""The real ``tally`` command (a subprocess, warnings switched on) against hostile files.

A JSON file of 100,000 nested ``[`` used to crash the file readers' process like the
server's (SIGSEGV). Each reader now answers with one line, ``error[json_too_deep]: ...``,
and exit code 1. And nothing but a command's own output reaches the user: no library
warning on stderr (the Starlette test client was imported on every command's path).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.errors import JsonTooDeep

TALLY = str(Path(sys.executable).parent / "tally")
HOSTILE = "hostile.json"
COMMANDS = {
    "receipt": ["audit", "receipt", HOSTILE, "--offline"],
    "policy": ["settle", "run", "--round", "1", "--from", "2026-01-01", "--to", "2026-02-01",
               "--policy", HOSTILE],
    "payouts": ["claim", "--round", "1", "--all", "--payouts", HOSTILE],
    "audit payouts": ["audit", "settlement", "1", "--rpc", "http://127.0.0.1:9", "--log-file",
                      "log.json", "--policy", "policy.json", "--payouts", HOSTILE],
    "help": ["--help"],
    "serve help": ["serve", "--help"],
}  # fmt: skip


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Done]:
    """Every command once, all at once (a process each), warnings on, in a folder with
    the hostile file: 100,000 nested '['."""
    cwd = tmp_path_factory.mktemp("hostile")
    (cwd / HOSTILE).write_text("[" * 100_000, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONWARNINGS": "default",
        "TALLY_DATA_DIR": str(cwd / "data"),
        "COLUMNS": "200",
    }
    procs = {
        name: subprocess.Popen(
            [TALLY, *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in COMMANDS.items()
    }
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=180)
        out[name] = Done(proc.returncode, stdout, stderr)
    return out


def one_line_error(done: Done) -> None:
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error[json_too_deep]: {HOSTILE} nests deeper than 64 levels"
    ]  # one line, and no warning


def test_audit_receipt_hostile_file_one_line_error(runs: dict[str, Done]) -> None:
    one_line_error(runs["receipt"])


def test_settle_run_hostile_policy_file_one_line_error(runs: dict[str, Done]) -> None:
    one_line_error(runs["policy"])


def test_claim_hostile_payout_file_one_line_error(runs: dict[str, Done]) -> None:
    one_line_error(runs["payouts"])


def test_audit_settlement_hostile_payout_file_one_line_error(runs: dict[str, Done]) -> None:
    one_line_error(runs["audit payouts"])


def test_audit_settlement_hostile_export_file_is_refused(tmp_path: Path) -> None:
    # the operator's log export, which the auditor reads line by line
    from service.audit.settlement import ExportFileSource

    path = tmp_path / "log-export.jsonl"
    path.write_text("[" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(JsonTooDeep, match=r"log-export\.jsonl line 1 nests deeper than 64"):
        ExportFileSource(path).header()


def test_cli_prints_no_warnings(runs: dict[str, Done]) -> None:
    for name in ("help", "serve help"):
        done = runs[name]
        assert done.returncode == 0, done.stderr
        assert done.stderr == "", f"tally {name} printed: {done.stderr[:500]}"
        assert "Usage" in done.stdout
    assert "GET /metrics (Prometheus) needs the operator role" in runs["serve help"].stdout
