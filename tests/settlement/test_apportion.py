"""Largest-remainder apportionment: hand-computed cases and the defining properties."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import SettlementError, TallyError
from service.settlement.apportion import apportion, exact_shares

A = "0x" + "0a" * 20
B = "0x" + "0b" * 20
C = "0x" + "0c" * 20


# --- hand-computed --------------------------------------------------------------------------


def test_apportion_equal_thirds_tie_goes_to_lowest_address() -> None:
    # 10 / 3 = 3 remainder 1/3 each; the one unit left goes to the lowest address.
    assert apportion(total=10, weights={C: 1, B: 1, A: 1}) == {A: 4, B: 3, C: 3}


def test_apportion_largest_remainder_wins_over_address() -> None:
    # 5 by 1:2 -> 5/3 = 1 + 2/3 and 10/3 = 3 + 1/3: the leftover unit goes to A (2/3 > 1/3).
    assert apportion(total=5, weights={A: 1, B: 2}) == {A: 2, B: 3}
    # Swap the weights: B now holds the 2/3 remainder, even though A's address is lower.
    assert apportion(total=5, weights={A: 2, B: 1}) == {A: 3, B: 2}


def test_apportion_fraction_weights() -> None:
    # 100 by 1/2 : 1/3 : 1/6 -> 50, 33 + 1/3, 16 + 2/3: floors 99, C has the largest remainder.
    weights = {A: Fraction(1, 2), B: Fraction(1, 3), C: Fraction(1, 6)}
    assert apportion(total=100, weights=weights) == {A: 50, B: 33, C: 17}


def test_apportion_mixed_int_and_fraction_weights() -> None:
    # 7 by 1 : 1/2 -> 14/3 = 4 + 2/3 and 7/3 = 2 + 1/3: A takes the leftover unit.
    assert apportion(total=7, weights={A: 1, B: Fraction(1, 2)}) == {A: 5, B: 2}


def test_apportion_tie_order_is_lowercase_hex_not_raw_string() -> None:
    upper = "0x" + "BB" * 20  # as a raw string "0xBB…" < "0xaa…" ('B' < 'a'), in hex it is larger
    lower = "0x" + "aa" * 20
    assert apportion(total=1, weights={upper: 1, lower: 1}) == {upper: 0, lower: 1}


def test_apportion_zero_weight_gets_zero_and_is_listed() -> None:
    assert apportion(total=9, weights={A: 0, B: 1, C: 2}) == {A: 0, B: 3, C: 6}


def test_apportion_huge_amounts_are_exact() -> None:
    total = 2**255 + 1
    # 2**255 + 1 by 1:1 -> 2**254 + 1/2 each; the odd unit goes to A.
    assert apportion(total=total, weights={A: 10**40, B: 10**40}) == {A: 2**254 + 1, B: 2**254}


def test_apportion_total_zero_with_zero_weights_pays_nothing() -> None:
    assert apportion(total=0, weights={A: 0, B: 0}) == {A: 0, B: 0}
    assert apportion(total=0, weights={}) == {}


def test_exact_shares_from_definition() -> None:
    assert exact_shares(total=10, weights={A: 1, B: 3}) == {A: Fraction(5, 2), B: Fraction(15, 2)}


# --- refused input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weights"),
    [
        (1, {A: 0, B: 0}),  # money but nobody entitled
        (1, {}),
        (10, {A: -1, B: 2}),
        (10, {A: Fraction(-1, 2), B: 2}),
        (10, {A: 0.5, B: 1}),  # floats are not exact
        (10, {A: True}),
        (-1, {A: 1}),
        (1.0, {A: 1}),
        (10, {"0x" + "ab" * 20: 1, "0x" + "AB" * 20: 1}),  # same key twice in different case
    ],
)
def test_apportion_refuses(total: object, weights: dict[str, object]) -> None:
    with pytest.raises(SettlementError) as excinfo:
        apportion(total=total, weights=weights)  # type: ignore[arg-type]
    assert isinstance(excinfo.value, TallyError)


# --- properties -----------------------------------------------------------------------------

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
weights_st = st.one_of(
    st.integers(0, 10**6),
    st.integers(0, 3),  # small integers: many exact ties
    st.fractions(min_value=0, max_value=10**4, max_denominator=1000),
)


@st.composite
def problems(draw: st.DrawFn) -> tuple[int, dict[str, Fraction | int]]:
    keys = draw(st.lists(addresses, min_size=1, max_size=30, unique=True))
    # Some keys in upper case: ties must still be broken by the lower-case hex.
    keys = [k.upper().replace("0X", "0x") if draw(st.booleans()) else k for k in keys]
    weights = {k: draw(weights_st) for k in keys}
    if not any(weights.values()):
        weights[keys[0]] = 1
    total = draw(st.one_of(st.integers(0, 100), st.integers(0, 10**30)))
    return total, weights


def shares_by_definition(total: int, weights: dict[str, Fraction | int]) -> dict[str, Fraction]:
    s = sum(Fraction(w) for w in weights.values())
    return {k: total * Fraction(w) / s for k, w in weights.items()}


@settings(max_examples=300, deadline=None)
@given(problems())
def test_apportion_properties(problem: tuple[int, dict[str, Fraction | int]]) -> None:
    total, weights = problem
    result = apportion(total=total, weights=weights)
    shares = shares_by_definition(total, weights)

    assert set(result) == set(weights)
    assert sum(result.values()) == total
    for k, amount in result.items():
        # The floor or the ceiling of the exact share: within one unit.
        assert math.floor(shares[k]) <= amount <= math.ceil(shares[k])
        assert abs(amount - shares[k]) < 1

    # Largest remainder, ties by ascending lower-case key: whoever got the extra unit ranks
    # above whoever did not.
    rem = {k: shares[k] - math.floor(shares[k]) for k in weights}
    up = [k for k in weights if result[k] == math.floor(shares[k]) + 1]
    down = [k for k in weights if result[k] == math.floor(shares[k]) and rem[k] != 0]
    for i in up:
        for j in down:
            assert (rem[i], j.lower()) > (rem[j], i.lower()), (i, j)


@settings(max_examples=100, deadline=None)
@given(problems(), st.randoms(use_true_random=False))
def test_apportion_independent_of_input_order(
    problem: tuple[int, dict[str, Fraction | int]], rng: random.Random
) -> None:
    total, weights = problem
    items = list(weights.items())
    rng.shuffle(items)
    assert apportion(total=total, weights=dict(items)) == apportion(total=total, weights=weights)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(addresses, min_size=1, max_size=40, unique=True),
    st.integers(0, 1000),
    st.integers(1, 10**6),
)
def test_apportion_equal_weights_extra_units_to_lowest_addresses(
    keys: list[str], total: int, weight: int
) -> None:
    n = len(keys)
    result = apportion(total=total, weights=dict.fromkeys(keys, weight))
    lowest = sorted(keys)[: total % n]
    for k in keys:
        assert result[k] == total // n + (1 if k in lowest else 0)


@settings(max_examples=100, deadline=None)
@given(problems(), st.integers(1, 10**6))
def test_apportion_invariant_under_scaling_weights(
    problem: tuple[int, dict[str, Fraction | int]], factor: int
) -> None:
    total, weights = problem
    scaled = {k: w * factor for k, w in weights.items()}
    assert apportion(total=total, weights=scaled) == apportion(total=total, weights=weights)
