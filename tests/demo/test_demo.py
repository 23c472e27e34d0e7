"""`tally demo` runs the scenario and its audit passes; the summary says what happened."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from service.cli import app
from service.evidence.eip712 import keccak256


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
    # + per insurer: one agreement, 4 quality attestations, 4 cost declarations, 1 coalition
    # table; + the catalog: 3 offers, 3 agreements, 10 + 8 + 4 receipts, 1 revenue declaration
    assert summary["catalog"]["entries"] == 3 + 3 + 22 + 1
    assert summary["evidence"]["entries"] == 120 + 2 * 10 + 29
    sizes = [c["tree_size"] for c in summary["evidence"]["checkpoints"]]
    assert len(sizes) >= 2 and sizes == sorted(set(sizes)) and sizes[-1] == 169
    audit = summary["audit"]
    assert audit["receipts_checked"] == 30 and audit["receipts_valid"] == 30
    assert audit["log_consistent"] is True
    assert len(list((out / "receipts").glob("0x*.json"))) == 24
    deployment = json.loads((out / "deployment.json").read_text())
    assert (
        deployment["contracts"]["EvidenceLedger"]["address"]
        == summary["contracts"]["EvidenceLedger"]
    )

    settlement = summary["settlement"]
    payouts = {a: int(v) for a, v in settlement["payouts"].items()}
    deposits = {a: int(v) for a, v in settlement["deposits"].items()}
    assert sum(payouts.values()) == int(settlement["pool"]) == sum(deposits.values())
    assert int(settlement["operator_fee"]) == payouts[summary["participants"][0]["address"].lower()]
    assert len(payouts) == 5  # four providers and the operator
    wrong = {a: int(v) for a, v in summary["rejected_round"]["payouts"].items()}
    assert sum(wrong.values()) == sum(payouts.values()) and wrong != payouts
    assert summary["rejected_round"]["caught"] is True
    assert "FAIL" in summary["rejected_round"]["auditor_finding"]
    # the auditor challenged with the hash of its published report; the arbiter upheld it
    dispute = summary["rejected_round"]["dispute"]
    finding = Path(dispute["finding_file"]).read_bytes()
    assert json.loads(finding)["ok"] is False
    assert dispute["finding_hash"] == "0x" + keccak256(finding).hex()
    assert (dispute["upheld"], dispute["status_after"]) == (True, "Cancelled")
    assert dispute["arbiter"] == next(
        p["address"] for p in summary["participants"] if p["name"] == "dispute arbiter"
    )
    assert {a: int(v) for a, v in dispute["refunded"].items()} == deposits  # debits came back
    claimed = {c["account"].lower(): int(c["amount"]) for c in summary["claims"]}
    assert claimed == payouts and all(c["gas_used"] > 0 for c in summary["claims"])
    assert summary["vault"] == {"balance": "0", "unallocated": "0"}
    assert audit["settlement_match"] is True

    # the catalog: three offers under three pricing models, billed by their formulas
    catalog = summary["catalog"]
    titles = {o["title"]: o["pricing"] for o in catalog["offers"]}
    assert set(titles) == {
        "EV battery telemetry",
        "EV charging sessions",
        "EV risk score, premium share",
    }
    assert titles["EV battery telemetry"].startswith("tiered")
    assert titles["EV charging sessions"].startswith("free trial")
    assert titles["EV risk score, premium share"].startswith("revenue share")
    billed = sorted(
        (b["pricing"], int(b["amount"]))
        for b in catalog["bills"].values()
        if b["pricing"] != "unit_price"
    )
    assert billed == [
        ("free_trial", 300 * 10**15),  # 800 units, 500 free, 300 x 0.001
        ("revenue_share", 6 * 10**18),  # 5% of the declared 120 tokens
        ("tiered", 4 * 10**18),  # 1000 x 0.003 + 500 x 0.002
    ]
    # the two receipts the terms refuse, with the terms' codes
    assert [(r["offer"], r["status"], r["code"]) for r in catalog["rejected"]] == [
        ("battery-telemetry", "rejected", "quota_exceeded"),
        ("charging-sessions", "rejected", "purpose_not_permitted"),
    ]
    assert "Catalog: data products offered" in result.output
    assert "bills by pricing model" in result.output
