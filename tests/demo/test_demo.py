"""`tally demo` runs the scenario and its audit passes; the summary says what happened."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from service.cli import app


def test_demo_on_embedded_chain(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--receipts",
            "120",
            "--checkpoints",
            "3",
            "--audit-receipts",
            "30",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["network"] == "embedded"
    assert set(summary["contracts"]) >= {
        "ParticipantRegistry",
        "EvidenceLedger",
        "SettlementVault",
        "DemoToken",
    }
    assert summary["evidence"]["receipts"] == 120
    assert summary["evidence"]["entries"] == 122  # + one agreement per insurer
    sizes = [c["tree_size"] for c in summary["evidence"]["checkpoints"]]
    assert len(sizes) >= 2 and sizes == sorted(set(sizes)) and sizes[-1] == 122
    audit = summary["audit"]
    assert audit["receipts_checked"] == 30 and audit["receipts_valid"] == 30
    assert audit["log_consistent"] is True
    assert len(list((out / "receipts").glob("0x*.json"))) == 24
    deployment = json.loads((out / "deployment.json").read_text())
    assert (
        deployment["contracts"]["EvidenceLedger"]["address"]
        == summary["contracts"]["EvidenceLedger"]
    )
