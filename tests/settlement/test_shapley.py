"""Exact Shapley values: hand-computed games, the axioms, and the n! definition for small n."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import SettlementError
from service.settlement.shapley import MAX_EXACT_PROVIDERS, shapley_values, shapley_weights


def table(n: int, v: Callable[[frozenset[int]], int]) -> list[int]:
    """values[m] = v(set of the bit positions of m)."""
    return [v(frozenset(j for j in range(n) if m >> j & 1)) for m in range(1 << n)]


def by_permutations(players: Sequence[str], values: Sequence[int]) -> dict[str, Fraction]:
    """The definition: each player's marginal contribution averaged over all n! join orders."""
    n = len(players)
    total = dict.fromkeys(players, 0)
    for order in itertools.permutations(range(n)):
        mask = 0
        for j in order:
            total[players[j]] += values[mask | 1 << j] - values[mask]
            mask |= 1 << j
    return {p: Fraction(t, math.factorial(n)) for p, t in total.items()}


# --- hand-computed --------------------------------------------------------------------------


def test_shapley_glove_game() -> None:
    # Players: L holds a left glove, R1 and R2 a right glove each; a coalition is worth 1 (here
    # 10,000 bps) if it can make a pair. Of the 6 join orders, L completes a pair whenever it is
    # not first (4 orders): 4/6. R1 completes one only in the order L, R1, R2: 1/6; same for R2.
    players = ["L", "R1", "R2"]
    values = table(3, lambda s: 10_000 if 0 in s and (1 in s or 2 in s) else 0)
    assert shapley_values(providers=players, values=values) == {
        "L": Fraction(20_000, 3),
        "R1": Fraction(5_000, 3),
        "R2": Fraction(5_000, 3),
    }


def test_shapley_two_players_by_hand() -> None:
    # v({}) = 5000 (baseline accuracy), v({A}) = 7000, v({B}) = 6000, v({A, B}) = 9000.
    # phi_A = 1/2 (v(A) - v()) + 1/2 (v(AB) - v(B)) = 1/2 (2000 + 3000) = 2500
    # phi_B = 1/2 (v(B) - v()) + 1/2 (v(AB) - v(A)) = 1/2 (1000 + 2000) = 1500
    # and 2500 + 1500 = 4000 = v(AB) - v().
    result = shapley_values(providers=["A", "B"], values=[5000, 7000, 6000, 9000])
    assert result == {"A": 2500, "B": 1500}


def test_shapley_negative_value_clipped_to_zero_weight() -> None:
    # v() = 0, v(A) = 100, v(B) = 0, v(AB) = 60: B's data makes A's model worse.
    # phi_A = 1/2 (100 - 0) + 1/2 (60 - 0) = 80;  phi_B = 1/2 (0 - 0) + 1/2 (60 - 100) = -20.
    values = [0, 100, 0, 60]
    assert shapley_values(providers=["A", "B"], values=values) == {"A": 80, "B": -20}
    assert shapley_weights(providers=["A", "B"], values=values) == {"A": 80, "B": 0}


def test_shapley_bit_j_is_provider_j() -> None:
    # Only coalitions holding providers[2] are worth anything: it is a dictator.
    values = table(4, lambda s: 7 if 2 in s else 0)
    result = shapley_values(providers=["p0", "p1", "p2", "p3"], values=values)
    assert result == {"p0": 0, "p1": 0, "p2": 7, "p3": 0}


def test_shapley_sixteen_providers_additive_game() -> None:
    # An additive game v(S) = sum of c_i over S: each player's value is exactly its c_i.
    n = MAX_EXACT_PROVIDERS
    c = [(i * 37) % 101 for i in range(n)]
    players = [f"p{i}" for i in range(n)]
    result = shapley_values(providers=players, values=table(n, lambda s: sum(c[i] for i in s)))
    assert result == {f"p{i}": c[i] for i in range(n)}


def test_shapley_no_providers() -> None:
    assert shapley_values(providers=[], values=[5]) == {}


# --- refused input --------------------------------------------------------------------------


def test_shapley_more_than_sixteen_providers_is_an_error() -> None:
    with pytest.raises(SettlementError, match="at most 16"):
        shapley_values(providers=[f"p{i}" for i in range(17)], values=[0] * (1 << 17))


@pytest.mark.parametrize(
    ("providers", "values"),
    [
        (["A", "B"], [0, 1, 2]),  # wrong length
        (["A", "B"], [0, 1, 2, 3, 4]),
        (["A", "B"], [0, -1, 2, 3]),  # negative
        (["A", "B"], [0, 1.5, 2, 3]),  # not an int
        (["A", "B"], [0, True, 2, 3]),
        (["A", "a"], [0, 1, 2, 3]),  # the same provider twice
    ],
)
def test_shapley_refuses_bad_tables(providers: list[str], values: list[object]) -> None:
    with pytest.raises(SettlementError):
        shapley_values(providers=providers, values=values)  # type: ignore[arg-type]


# --- properties -----------------------------------------------------------------------------


@st.composite
def games(draw: st.DrawFn, min_n: int = 1, max_n: int = 6) -> tuple[list[str], list[int]]:
    n = draw(st.integers(min_n, max_n))
    values = draw(st.lists(st.integers(0, 10_000), min_size=1 << n, max_size=1 << n))
    return [f"p{i}" for i in range(n)], values


@settings(max_examples=150, deadline=None)
@given(games(max_n=5))
def test_shapley_equals_permutation_definition(game: tuple[list[str], list[int]]) -> None:
    players, values = game
    assert shapley_values(providers=players, values=values) == by_permutations(players, values)


@settings(max_examples=150, deadline=None)
@given(games(max_n=8))
def test_shapley_efficiency(game: tuple[list[str], list[int]]) -> None:
    players, values = game
    assert sum(shapley_values(providers=players, values=values).values()) == (
        values[-1] - values[0]
    )


@settings(max_examples=150, deadline=None)
@given(games(min_n=2, max_n=7), st.data())
def test_shapley_symmetry(game: tuple[list[str], list[int]], data: st.DataObject) -> None:
    # Make players i and j interchangeable: v'(S) = v(S) + v(S with i and j swapped).
    players, values = game
    n = len(players)
    i, j = data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True))

    def swap(m: int) -> int:
        bi, bj = m >> i & 1, m >> j & 1
        return m & ~(1 << i | 1 << j) | bi << j | bj << i

    symmetric = [values[m] + values[swap(m)] for m in range(1 << n)]
    result = shapley_values(providers=players, values=symmetric)
    assert result[players[i]] == result[players[j]]


@settings(max_examples=150, deadline=None)
@given(games(max_n=6), st.data())
def test_shapley_null_player(game: tuple[list[str], list[int]], data: st.DataObject) -> None:
    # Insert a player k whose presence never changes the value: it gets 0, and the others get
    # exactly what they get in the game without k.
    players, values = game
    n = len(players)
    k = data.draw(st.integers(0, n))

    def without_k(m: int) -> int:
        low = m & ((1 << k) - 1)
        return low | (m >> (k + 1)) << k

    extended = [values[without_k(m)] for m in range(1 << (n + 1))]
    names = [*players[:k], "null", *players[k:]]
    result = shapley_values(providers=names, values=extended)
    assert result["null"] == 0
    assert {p: result[p] for p in players} == shapley_values(providers=players, values=values)


@settings(max_examples=150, deadline=None)
@given(games(max_n=7), st.data())
def test_shapley_additivity(game: tuple[list[str], list[int]], data: st.DataObject) -> None:
    players, v = game
    w = data.draw(st.lists(st.integers(0, 10_000), min_size=len(v), max_size=len(v)))
    phi_v = shapley_values(providers=players, values=v)
    phi_w = shapley_values(providers=players, values=w)
    phi_sum = shapley_values(providers=players, values=[a + b for a, b in zip(v, w, strict=True)])
    assert phi_sum == {p: phi_v[p] + phi_w[p] for p in players}


@settings(max_examples=100, deadline=None)
@given(games(max_n=6))
def test_shapley_weights_are_clipped_values(game: tuple[list[str], list[int]]) -> None:
    players, values = game
    phi = shapley_values(providers=players, values=values)
    weights = shapley_weights(providers=players, values=values)
    assert weights == {p: max(x, Fraction(0)) for p, x in phi.items()}
    assert all(w >= 0 for w in weights.values())
