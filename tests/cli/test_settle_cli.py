"""The settlement commands as a user runs them: a vault revert is one readable line on
stderr and exit 1 (the whole flow is in tests/settlement/test_rounds.py::
test_cli_round_from_evidence_to_audit)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.chain.client import Chain
from service.chain.config import save_deployment
from service.chain.deploy import deploy_tally
from service.errors import TransactionReverted
from service.settlement.rounds import explain_revert

ROOT = Path(__file__).resolve().parents[2]


def _tally(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        timeout=120,
        check=False,
    )


def test_settle_revert_is_one_readable_line(anvil_chain: Chain, tmp_path: Path) -> None:
    t = deploy_tally(anvil_chain, admin=anvil_chain.accounts[0], network="anvil")
    deployment = tmp_path / "deployment.json"
    save_deployment(t.deployment, deployment)
    opts = ("--rpc", anvil_chain.network.rpc_url or "", "--deployment", str(deployment))
    done = _tally("settle", "sweep", "7", *opts)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "error[transaction_reverted]: round 7 is None, not Finalized "
        "(SettlementVaultRoundNotFinalized)"
    ]
    assert done.stdout == ""
    bad = _tally("deposit", "5", "--for", "0x123", *opts)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("error[invalid_input]: --for: an address is 0x")


@pytest.mark.parametrize(
    ("name", "args", "text"),
    [
        ("SettlementVaultNoStanding", (3, "0x" + "ab" * 20), "has no standing in round 3"),
        ("SettlementVaultPeriodOverlap", (4, 10, 20), "starts at 10, before 20"),
        ("SettlementVaultRoundPending", (2,), "round 2 is still pending"),
        ("SettlementVaultInsufficientBalance", ("0x" + "cd" * 20, 9, 1), "must fund 9"),
        ("SettlementVaultDebitsMismatch", (5, 6), "the debits sum to 5, the total is 6"),
    ],
)
def test_vault_errors_read_as_sentences(name: str, args: tuple[object, ...], text: str) -> None:
    err = TransactionReverted("raw", error_name=name, error_args=args)
    said = explain_revert(err)
    assert text in said and said.endswith(f"({name})") and "\n" not in said
    unknown = TransactionReverted("x reverted: 0x", error_name=None)
    assert explain_revert(unknown) == "x reverted: 0x"
