"""Policy method ``valuation``: what it needs, and the clipping rule in the pure weights."""

from __future__ import annotations

from fractions import Fraction

import pytest

from service.errors import InvalidPolicy, SettlementError
from service.settlement.methods import (
    ContributionInputs,
    MethodParams,
    ValuationValues,
    agreement_weights,
)
from service.settlement.policy import parse_policy

OPERATOR = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
EVALUATOR = "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f"
A, B, C = ("0x" + c * 40 for c in "abc")


def test_valuation_policy_needs_an_evaluator() -> None:
    doc = {"version": 1, "operator": OPERATOR, "operator_fee_bps": 0, "method": "valuation"}
    with pytest.raises(InvalidPolicy, match="valuation method needs the evaluator"):
        parse_policy(doc)
    assert parse_policy({**doc, "evaluator": EVALUATOR}).default.method == "valuation"


def test_valuation_cannot_be_mixed() -> None:
    with pytest.raises(InvalidPolicy, match="not 'valuation'"):
        parse_policy(
            {
                "version": 1,
                "operator": OPERATOR,
                "operator_fee_bps": 0,
                "method": "mix",
                "evaluator": EVALUATOR,
                "mix": {"output": "1/2", "valuation": "1/2"},
            }
        )


def _weights(
    values: tuple[int, ...], providers: tuple[str, ...] = (A, B, C)
) -> dict[str, Fraction]:
    return agreement_weights(
        method="valuation",
        inputs=ContributionInputs(
            providers=(A, B, C), valuation=ValuationValues(providers=providers, values=values)
        ),
        params=MethodParams(),
    )


def test_negative_values_are_clipped_to_zero() -> None:
    assert _weights((300, -50, 100)) == {A: 300, B: 0, C: 100}


def test_a_valuation_of_other_providers_is_refused() -> None:
    with pytest.raises(SettlementError, match="not the agreement's providers"):
        _weights((1, 2, 3), (A, B, "0x" + "d" * 40))


def test_no_valuation_for_the_period_is_an_error() -> None:
    with pytest.raises(SettlementError, match="needs the agreement's ValuationResult"):
        agreement_weights(
            method="valuation", inputs=ContributionInputs(providers=(A, B)), params=MethodParams()
        )
