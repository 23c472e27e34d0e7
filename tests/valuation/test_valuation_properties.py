"""Axioms of the exact methods (hypothesis, bounded): efficiency, symmetry, null player,
additivity; and the determinism of the sampling methods (same seed, same integers)."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from service.valuation.estimators import (
    Game,
    exact_shapley,
    knn_shapley_of,
    msr_banzhaf,
    permutation_shapley,
)
from service.valuation.examples import knn_utility
from service.valuation.stream import SeedStream
from service.valuation.utility import mask_utility

BOUNDED = settings(max_examples=40, deadline=None)
SCORES = st.integers(min_value=-10_000, max_value=10_000)


@st.composite
def tables(draw: st.DrawFn, low: int = 1, high: int = 5) -> list[int]:
    n = draw(st.integers(min_value=low, max_value=high))
    return draw(st.lists(SCORES, min_size=1 << n, max_size=1 << n))


def _n(table: list[int]) -> int:
    return len(table).bit_length() - 1


def _shapley(table: list[int]) -> tuple[Fraction, ...]:
    return exact_shapley(Game(n=_n(table), utility=table.__getitem__)).values


@BOUNDED
@given(tables())
def test_efficiency_values_sum_to_the_grand_coalition_gain(table: list[int]) -> None:
    assert sum(_shapley(table)) == table[-1] - table[0]


@BOUNDED
@given(tables(low=2), st.data())
def test_symmetric_players_get_equal_values(table: list[int], data: st.DataObject) -> None:
    n = _n(table)
    i, j = data.draw(st.sampled_from([(a, b) for a in range(n) for b in range(n) if a < b]))
    # make i and j interchangeable: v(S + i) = v(S + j) for every S without both
    for m in range(1 << n):
        if m >> i & 1 and not m >> j & 1:
            table[m ^ (1 << i) ^ (1 << j)] = table[m]
    phi = _shapley(table)
    assert phi[i] == phi[j]


@BOUNDED
@given(tables(low=2), st.data())
def test_null_player_gets_zero(table: list[int], data: st.DataObject) -> None:
    n = _n(table)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    for m in range(1 << n):
        if m >> i & 1:
            table[m] = table[m ^ (1 << i)]
    assert _shapley(table)[i] == 0


@BOUNDED
@given(
    st.integers(min_value=1, max_value=4).flatmap(
        lambda n: st.tuples(*(st.lists(SCORES, min_size=1 << n, max_size=1 << n) for _ in range(2)))
    )
)
def test_additivity_value_of_a_sum_is_the_sum_of_values(pair: tuple[list[int], list[int]]) -> None:
    u, w = pair
    both = [a + b for a, b in zip(u, w, strict=True)]
    assert _shapley(both) == tuple(a + b for a, b in zip(_shapley(u), _shapley(w), strict=True))


@settings(max_examples=10, deadline=None)
@given(st.integers(min_value=2, max_value=30))
def test_knn_shapley_is_efficient(n: int) -> None:
    task = knn_utility.knn_task(n)
    values = knn_shapley_of(task, n).values
    assert sum(values) == knn_utility(tuple(range(n))) - knn_utility(())


@settings(max_examples=10, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_sampling_methods_are_deterministic_in_the_seed(seed: bytes) -> None:
    n = 8

    def run() -> tuple[list[int], list[int], list[int], list[int]]:
        game = Game(n=n, utility=mask_utility(knn_utility, n))
        p = permutation_shapley(game, seed=seed, rel_tolerance=Fraction(1, 2), max_samples=40)
        game = Game(n=n, utility=mask_utility(knn_utility, n))
        b = msr_banzhaf(game, seed=seed, rel_tolerance=Fraction(1, 2), max_samples=60)
        return p.values_bps(), p.stderr_bps(), b.values_bps(), b.stderr_bps()

    assert run() == run()


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(min_value=1, max_value=300))
def test_stream_draws_in_range_and_permutations_are_permutations(seed: bytes, n: int) -> None:
    stream = SeedStream(seed)
    assert all(0 <= stream.below(n) < n for _ in range(20))
    assert sorted(stream.shuffled(n)) == list(range(n))
    assert 0 <= stream.bits(n) < 1 << n


def test_stream_is_the_documented_sha256_counter_mode() -> None:
    import hashlib

    seed = b"\x07" * 32
    first = hashlib.sha256(b"TALLY-VALUATION-STREAM-V1" + seed + bytes(8)).digest()
    assert SeedStream(seed).take(32) == first
