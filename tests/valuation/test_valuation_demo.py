"""``tally demo --providers N --valuation banzhaf``: settles by the evaluator's MSR Banzhaf
values, and the valuation files it writes pass ``tally audit valuation`` on its log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.cli import app


def _tally(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    try:
        app(list(args), prog_name="tally")
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return code, capsys.readouterr().out


@pytest.mark.slow
def test_demo_with_40_providers_settles_by_banzhaf_and_audits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--providers", "40", "--valuation", "banzhaf", "--receipts", "40",
            "--checkpoints", "1", "--audit-receipts", "5", "--out", str(out)]  # fmt: skip
    code, printed = _tally(capsys, *args)
    assert code == 0, printed[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["audit"]["log_consistent"] is True
    files = sorted(out.glob("valuation-0x*.json"))
    assert len(files) == 2  # one per insurer's agreement
    for path in files:
        doc = json.loads(path.read_text())
        assert doc["valuation"]["method"] == "msr-banzhaf"
        assert len(doc["values_bps"]) == 40
        code, verdict = _tally(
            capsys, "audit", "valuation", str(path), "--db", f"sqlite:///{out / 'tally.db'}"
        )
        assert code == 0 and verdict.startswith("PASS"), verdict


def test_demo_refuses_other_provider_counts_without_a_valuation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = _tally(capsys, "demo", "--providers", "40", "--out", str(tmp_path))
    assert code == 2
