"""Weighting methods and the per-agreement split, on cases computed by hand from the definitions."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import InvalidPolicy, SettlementError
from service.settlement.methods import (
    CoalitionTable,
    ContributionInputs,
    MethodParams,
    agreement_weights,
    cost_weights,
    mix_weights,
    operator_fee,
    output_weights,
    risk_weights,
    shapley_method_weights,
    split_agreement,
)

A = "0x" + "0a" * 20
B = "0x" + "0b" * 20
C = "0x" + "0c" * 20
OP = "0x" + "ff" * 20


# --- output ---------------------------------------------------------------------------------


def test_output_weights_units_times_mean_quality() -> None:
    # A: 100 units, scores 8000 and 9000 -> mean 8500 bps -> 100 x 0.85 = 85
    # B: 50 units, no attestation -> policy default 6000 bps -> 50 x 0.6 = 30
    # C: no units -> 0 (its score does not matter)
    weights = output_weights(
        providers=[A, B, C],
        units={A: 100, B: 50},
        quality_scores={A: [8000, 9000], C: [10_000]},
        default_quality_bps=6000,
    )
    assert weights == {A: 85, B: 30, C: 0}


def test_output_then_split_by_hand() -> None:
    # Revenue 1000, fee 250 bps: fee = floor(1000 x 250 / 10000) = 25, rest 975 split 85 : 30.
    # A: 975 x 85/115 = 82875/115 = 720 + 75/115;  B: 975 x 30/115 = 29250/115 = 254 + 40/115.
    # Floors 720 + 254 = 974; the last unit goes to the larger remainder (A).
    weights = {A: Fraction(85), B: Fraction(30), C: Fraction(0)}
    payouts = split_agreement(revenue=1000, fee_bps=250, operator=OP, weights=weights)
    assert payouts == {A: 721, B: 254, C: 0, OP: 25}


def test_output_quality_mean_is_exact() -> None:
    # Mean of 1, 2, 2 bps is 5/3 bps: 3 units x 5/3 / 10000 = 1/2000.
    weights = output_weights(
        providers=[A], units={A: 3}, quality_scores={A: [1, 2, 2]}, default_quality_bps=0
    )
    assert weights == {A: Fraction(1, 2000)}


@pytest.mark.parametrize(
    ("units", "scores", "default", "error"),
    [
        ({A: -1}, {}, 10_000, SettlementError),
        ({A: 1.5}, {}, 10_000, SettlementError),
        ({A: 1}, {A: [10_001]}, 10_000, SettlementError),
        ({A: 1}, {A: [-1]}, 10_000, SettlementError),
        ({A: 1}, {}, 10_001, InvalidPolicy),
        ({A: 1, A.upper().replace("0X", "0x"): 2}, {}, 10_000, SettlementError),
    ],
)
def test_output_weights_refuse_bad_input(
    units: dict[str, object], scores: dict[str, list[int]], default: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        output_weights(
            providers=[A],
            units=units,  # type: ignore[arg-type]
            quality_scores=scores,
            default_quality_bps=default,
        )


# --- cost and risk --------------------------------------------------------------------------


def test_cost_then_split_by_hand() -> None:
    # Costs 300 : 100, revenue 1001, no fee: 750.75 and 250.25 -> A gets the leftover unit.
    weights = cost_weights(providers=[A, B, C], costs={A: 300, B: 100})
    assert weights == {A: 300, B: 100, C: 0}
    assert split_agreement(revenue=1001, fee_bps=0, operator=OP, weights=weights) == {
        A: 751,
        B: 250,
        C: 0,
        OP: 0,
    }


def test_risk_weights_from_tier_table() -> None:
    multipliers = {"low": 1, "medium": Fraction(3, 2), "high": 2}
    weights = risk_weights(
        providers=[A, B, C],
        risk_tiers={A: "low", B: "high"},
        multipliers=multipliers,
        default_tier="medium",
    )
    assert weights == {A: 1, B: 2, C: Fraction(3, 2)}
    # Revenue 900 by 1 : 2 : 3/2 (sum 9/2): 200, 400, 300 exactly.
    assert split_agreement(revenue=900, fee_bps=0, operator=OP, weights=weights) == {
        A: 200,
        B: 400,
        C: 300,
        OP: 0,
    }


def test_risk_weights_refuse_unknown_or_missing_tier() -> None:
    with pytest.raises(InvalidPolicy, match="not in the policy"):
        risk_weights(providers=[A], risk_tiers={A: "extreme"}, multipliers={"low": 1})
    with pytest.raises(InvalidPolicy, match="no default"):
        risk_weights(providers=[A], risk_tiers={}, multipliers={"low": 1})
    with pytest.raises(InvalidPolicy):
        risk_weights(providers=[A], risk_tiers={A: "low"}, multipliers={"low": 1.5})
    with pytest.raises(InvalidPolicy):
        risk_weights(providers=[A], risk_tiers={A: "low"}, multipliers={"low": -1})


# --- shapley --------------------------------------------------------------------------------


def test_shapley_method_uses_the_tables_provider_order() -> None:
    # The table lists B first: bit 0 = B, bit 1 = A. v() = 5000, v(B) = 6000, v(A) = 7000,
    # v(AB) = 9000 (the two-player game of test_shapley): phi_A = 2500, phi_B = 1500.
    table = CoalitionTable(providers=(B, A), values=(5000, 6000, 7000, 9000))
    assert shapley_method_weights(providers=[A, B], coalition=table) == {A: 2500, B: 1500}


def test_shapley_method_negative_value_gets_nothing() -> None:
    # phi_A = 80, phi_B = -20 (see test_shapley): B's weight is 0, A takes the whole rest.
    table = CoalitionTable(providers=(A, B), values=(0, 100, 0, 60))
    weights = shapley_method_weights(providers=[A, B], coalition=table)
    assert split_agreement(revenue=1000, fee_bps=100, operator=OP, weights=weights) == {
        A: 990,
        B: 0,
        OP: 10,
    }


def test_shapley_method_refuses_a_table_of_other_providers() -> None:
    table = CoalitionTable(providers=(A, C), values=(0, 1, 2, 3))
    with pytest.raises(SettlementError, match="not the agreement's providers"):
        shapley_method_weights(providers=[A, B], coalition=table)


def test_shapley_method_all_negative_or_zero_cannot_be_split() -> None:
    table = CoalitionTable(providers=(A, B), values=(10, 10, 10, 10))
    weights = shapley_method_weights(providers=[A, B], coalition=table)
    assert weights == {A: 0, B: 0}
    with pytest.raises(SettlementError, match="every weight is zero"):
        split_agreement(revenue=100, fee_bps=0, operator=OP, weights=weights)


# --- mix ------------------------------------------------------------------------------------


def test_mix_by_hand() -> None:
    # output: A 30 units, B 10 units, default quality 100% -> shares 3/4, 1/4
    # cost:   A 5, B 5 -> shares 1/2, 1/2
    # mix 1/2 output + 1/2 cost: A = 3/8 + 1/4 = 5/8, B = 1/8 + 1/4 = 3/8
    # revenue 800, no fee: A 500, B 300.
    inputs = ContributionInputs(providers=(A, B), units={A: 30, B: 10}, costs={A: 5, B: 5})
    params = MethodParams(mix={"output": Fraction(1, 2), "cost": Fraction(1, 2)})
    weights = agreement_weights(method="mix", inputs=inputs, params=params)
    assert weights == {A: Fraction(5, 8), B: Fraction(3, 8)}
    assert split_agreement(revenue=800, fee_bps=0, operator=OP, weights=weights) == {
        A: 500,
        B: 300,
        OP: 0,
    }


def test_mix_coefficients_need_not_sum_to_one() -> None:
    # 3 x (3/4, 1/4) + 1 x (1/2, 1/2) = (11/4, 5/4) -> shares 11/16, 5/16 of 1600: 1100, 500.
    weights = mix_weights(
        providers=[A, B],
        components={"output": {A: 30, B: 10}, "cost": {A: 5, B: 5}},
        mix={"output": 3, "cost": 1},
    )
    assert weights == {A: Fraction(11, 4), B: Fraction(5, 4)}
    payouts = split_agreement(revenue=1600, fee_bps=0, operator=OP, weights=weights)
    assert payouts == {A: 1100, B: 500, OP: 0}


def test_mix_with_risk_and_shapley() -> None:
    # risk: A low (1), B high (3) -> 1/4, 3/4;  shapley (two-player game): 2500, 1500 -> 5/8, 3/8
    # coefficients 1 and 1: A = 1/4 + 5/8 = 7/8, B = 3/4 + 3/8 = 9/8.
    inputs = ContributionInputs(
        providers=(A, B),
        risk_tiers={A: "low", B: "high"},
        coalition=CoalitionTable(providers=(A, B), values=(5000, 7000, 6000, 9000)),
    )
    params = MethodParams(risk_multipliers={"low": 1, "high": 3}, mix={"risk": 1, "shapley": 1})
    weights = agreement_weights(method="mix", inputs=inputs, params=params)
    assert weights == {A: Fraction(7, 8), B: Fraction(9, 8)}


def test_mix_refuses_bad_mixes() -> None:
    zero_cost = {"output": {A: 1, B: 1}, "cost": {A: 0, B: 0}}
    with pytest.raises(SettlementError, match="cost weight is zero"):
        mix_weights(providers=[A, B], components=zero_cost, mix={"output": 1, "cost": 1})
    # ... but a zero coefficient leaves that method out.
    assert mix_weights(providers=[A, B], components=zero_cost, mix={"output": 1, "cost": 0}) == {
        A: Fraction(1, 2),
        B: Fraction(1, 2),
    }
    with pytest.raises(InvalidPolicy):
        mix_weights(providers=[A], components={"mix": {A: 1}}, mix={"mix": 1})
    with pytest.raises(InvalidPolicy):
        mix_weights(providers=[A], components={"cost": {A: 1}}, mix={"cost": 0})
    with pytest.raises(InvalidPolicy):
        mix_weights(providers=[A], components={"cost": {A: 1}}, mix={"cost": 0.5})
    with pytest.raises(InvalidPolicy):
        mix_weights(providers=[A], components={"cost": {A: 1}}, mix={"output": 1})
    with pytest.raises(InvalidPolicy):
        mix_weights(providers=[A], components={}, mix={})
    with pytest.raises(SettlementError):
        mix_weights(providers=[A], components={"cost": {A: 0.5}}, mix={"cost": 1})


def test_agreement_weights_dispatch_and_unknown_method() -> None:
    inputs = ContributionInputs(providers=(A, B), units={A: 2, B: 1}, costs={A: 1, B: 4})
    params = MethodParams()
    assert agreement_weights(method="output", inputs=inputs, params=params) == {A: 2, B: 1}
    assert agreement_weights(method="cost", inputs=inputs, params=params) == {A: 1, B: 4}
    with pytest.raises(SettlementError, match="coalition"):
        agreement_weights(method="shapley", inputs=inputs, params=params)
    with pytest.raises(InvalidPolicy, match="not 'mix'"):
        agreement_weights(method="mix", inputs=inputs, params=MethodParams(mix={"mix": 1}))
    with pytest.raises(InvalidPolicy, match="unknown settlement method"):
        agreement_weights(method="equal", inputs=inputs, params=params)  # type: ignore[arg-type]


# --- split ----------------------------------------------------------------------------------


def test_operator_fee_is_floored() -> None:
    assert operator_fee(revenue=999, fee_bps=100) == 9  # 9.99
    assert operator_fee(revenue=10_000, fee_bps=1) == 1
    assert operator_fee(revenue=9_999, fee_bps=1) == 0
    assert operator_fee(revenue=7, fee_bps=10_000) == 7


def test_split_operator_who_is_also_a_provider_gets_both() -> None:
    # 1000 at 500 bps: fee 50; 950 split 1 : 1 -> 475 each; the operator is A.
    payouts = split_agreement(revenue=1000, fee_bps=500, operator=A, weights={A: 1, B: 1})
    assert payouts == {A: 525, B: 475}


def test_split_returns_lowercase_addresses() -> None:
    upper_a = "0x" + "0A" * 20
    payouts = split_agreement(revenue=3, fee_bps=0, operator=OP.upper(), weights={upper_a: 1})
    assert payouts == {A: 3, OP: 0}


def test_split_zero_revenue_with_zero_weights_pays_nothing() -> None:
    assert split_agreement(revenue=0, fee_bps=100, operator=OP, weights={A: 0}) == {A: 0, OP: 0}


def test_split_full_fee_needs_no_weights() -> None:
    assert split_agreement(revenue=500, fee_bps=10_000, operator=OP, weights={}) == {OP: 500}


@pytest.mark.parametrize(
    ("revenue", "fee_bps", "operator", "error"),
    [
        (-1, 0, OP, SettlementError),
        (1.0, 0, OP, SettlementError),
        (100, 10_001, OP, InvalidPolicy),
        (100, -1, OP, InvalidPolicy),
        (100, 0, "operator", SettlementError),
    ],
)
def test_split_refuses_bad_input(
    revenue: object, fee_bps: int, operator: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        split_agreement(
            revenue=revenue,  # type: ignore[arg-type]
            fee_bps=fee_bps,
            operator=operator,
            weights={A: 1},
        )


addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())


@settings(max_examples=200, deadline=None)
@given(
    revenue=st.integers(0, 10**24),
    fee_bps=st.integers(0, 10_000),
    operator=addresses,
    weights=st.dictionaries(
        addresses,
        st.one_of(st.integers(0, 1000), st.fractions(0, 1000, max_denominator=100)),
        min_size=1,
        max_size=10,
    ).filter(lambda d: any(d.values())),
)
def test_split_properties(
    revenue: int, fee_bps: int, operator: str, weights: dict[str, Fraction | int]
) -> None:
    payouts = split_agreement(revenue=revenue, fee_bps=fee_bps, operator=operator, weights=weights)
    fee = revenue * fee_bps // 10_000
    assert sum(payouts.values()) == revenue
    assert set(payouts) == set(weights) | {operator}
    assert all(v >= 0 for v in payouts.values())
    rest = revenue - fee
    s = sum(Fraction(w) for w in weights.values())
    for p, w in weights.items():
        own = payouts[p] - (fee if p == operator else 0)
        assert abs(own - rest * Fraction(w) / s) < 1
    if operator not in weights:
        assert payouts[operator] == fee
