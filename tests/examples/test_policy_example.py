"""The shipped example policy parses, uses every method, and its canonical form hashes stably."""

from __future__ import annotations

from pathlib import Path

from service.settlement.methods import BASIC_METHODS
from service.settlement.policy import load_policy, parse_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policy.toml"


def test_example_policy_parses_and_mixes_every_parameterised_method() -> None:
    policy = load_policy(EXAMPLE)
    assert policy.default.method == "mix"
    # Every basic method is either mixed or configured (risk needs its multipliers).
    assert set(policy.default.params.mix) | {"risk"} == set(BASIC_METHODS)
    assert policy.default.params.risk_multipliers
    assert policy.evaluator is not None


def test_example_policy_canonical_form_round_trips() -> None:
    policy = load_policy(EXAMPLE)
    again = parse_policy(policy.document)
    assert again.hash == policy.hash
