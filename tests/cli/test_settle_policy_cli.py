"""`tally settle policy FILE`: the hash every Agreement names before a round exists."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from service.cli import app
from service.settlement.policy import load_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policy.toml"


def tally(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the `tally` app in process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        app(list(args), prog_name="tally")
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_settle_policy_prints_the_example_policy_hash(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = tally(capsys, "settle", "policy", str(EXAMPLE))
    assert (code, err) == (0, "")
    assert out == load_policy(EXAMPLE).hash_hex + "\n"  # one line, for $(...)


def test_settle_policy_json_holds_the_document_it_hashes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = tally(capsys, "settle", "policy", str(EXAMPLE), "--json")
    assert code == 0
    doc = json.loads(out)
    policy = load_policy(EXAMPLE)
    assert doc["canonical"] == json.loads(policy.canonical_bytes)
    assert doc["policy_hash"] == "0x" + hashlib.sha256(policy.canonical_bytes).hexdigest()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("version = 1\nmethod = 'output'\n", "operator"),  # a required field missing
        ("version = 1\noperator = 'nope'\noperator_fee_bps = 0\nmethod = 'output'\n", "nope"),
        ("not toml = = =\n", "not valid TOML"),
    ],
)
def test_settle_policy_bad_file_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, needle: str
) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text(text)
    code, out, err = tally(capsys, "settle", "policy", str(bad))
    assert (code, out) == (1, "")
    assert err.startswith("error[policy_invalid]: ") and err.count("\n") == 1
    assert needle in err


def test_settle_policy_missing_file_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = tally(capsys, "settle", "policy", "no-such-policy.toml")
    assert (code, out) == (1, "")
    assert err == "error[policy_invalid]: no policy file no-such-policy.toml\n"
