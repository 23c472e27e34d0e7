"""Valuation methods over a utility that scores coalitions of providers in integer bps.

A coalition is a bitmask over the ``n`` providers (bit ``i`` = provider ``i`` in the canonical,
ascending-address order). The utility ``v(mask) -> int`` is called through a :class:`Game`,
which memoizes results, counts distinct coalitions and enforces the call budget.

Determinism (why these values are reproducible bit for bit): the utility returns integers,
every estimator sums integers and divides once in exact rational arithmetic
(:class:`~fractions.Fraction`), and the sampling methods draw from
:class:`~service.valuation.stream.SeedStream`. No floating-point sum appears between the
utility's integers and the result, so the order of summation cannot change a bit; the only
rounding is the last step, each value to the nearest integer bps (ties to even, Python's
``round`` on a Fraction), each standard error up to the next integer bps. The utility itself
must be deterministic given its inputs (the shipped examples are); the auditor re-runs it.

Methods (ids are the ``method`` field of a ``ValuationResult`` entry):

1. ``exact-shapley``: every coalition, Shapley by definition (:mod:`service.settlement.shapley`;
   Shapley 1953). At most 16 providers.
2. ``permutation-shapley``: Monte Carlo over permutations, Castro, Gómez & Tejada (2009),
   "Polynomial calculation of the Shapley value based on sampling", Computers & Operations
   Research 36(5); with the optional truncation of Ghorbani & Zou (2019), "Data Shapley:
   Equitable valuation of data for machine learning", ICML (TMC-Shapley).
3. ``msr-banzhaf``: Banzhaf values by maximum sample reuse, Wang & Jia (2023), "Data Banzhaf:
   A robust data valuation framework for machine learning", AISTATS.
4. ``leave-one-out``: ``v(N) - v(N - i)`` (Cook 1977's deletion diagnostics, the baseline of
   every data valuation paper).
5. ``knn-shapley``: exact Shapley of the KNN likelihood utility, Jia et al. (2019), "Efficient
   task-specific data valuation for nearest neighbor algorithms", PVLDB 12(11): the recursive
   closed form, O(N log N) per test point (the sort), no utility calls.

Stopping rule of the sampling methods: after at least ``min_samples`` samples, stop as soon as
every provider's standard error is at most ``rel_tolerance x |mean value|`` (the mean over
providers of the current estimates); or when the next sample would exceed the budget of
``max_utility_calls`` distinct coalitions (status ``budget``); or after ``max_samples``.
The comparison is exact (squared, in rationals).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
from numpy.typing import NDArray

from service.errors import TallyError
from service.settlement.shapley import MAX_EXACT_PROVIDERS, shapley_values
from service.valuation.stream import SeedStream

if TYPE_CHECKING:
    from service.valuation.examples import KnnTask

__all__ = [
    "METHOD_IDS",
    "Estimate",
    "Game",
    "UtilityBudgetExceeded",
    "ValuationError",
    "exact_shapley",
    "knn_shapley",
    "knn_shapley_of",
    "leave_one_out",
    "msr_banzhaf",
    "permutation_shapley",
]

MethodName = Literal[
    "exact-shapley", "permutation-shapley", "msr-banzhaf", "leave-one-out", "knn-shapley"
]
METHOD_IDS: Final[Mapping[str, int]] = {
    "exact-shapley": 1,
    "permutation-shapley": 2,
    "msr-banzhaf": 3,
    "leave-one-out": 4,
    "knn-shapley": 5,
}
"""Method name -> the ``method`` id of a ValuationResult entry."""

MAX_UTILITY_ABS: Final = 10**12
"""Largest magnitude a utility score may have (bps; far above any real score)."""


class ValuationError(TallyError):
    """A valuation cannot be computed as asked (bad utility output, too many providers, ...)."""

    code = "valuation_invalid"
    status = 422


class UtilityBudgetExceeded(ValuationError):
    """The method needs more distinct utility calls than ``--max-utility-calls`` allows."""

    code = "utility_budget_exceeded"


@dataclass
class Game:
    """The utility as the estimators see it: memoized, counted, budgeted.

    ``utility(mask)`` returns the coalition's score in integer bps. ``cache`` holds results
    known before the run (a resumed run's cache file): they count towards ``calls`` like fresh
    ones, so a resumed run stops where an uninterrupted one would. ``on_new`` is told of every
    fresh result (to persist it); ``on_call`` of every distinct call (progress).
    """

    n: int
    utility: Callable[[int], int]
    max_calls: int | None = None
    cache: dict[int, int] = field(default_factory=dict)
    on_new: Callable[[int, int], None] | None = None
    on_call: Callable[[int], None] | None = None
    _seen: set[int] = field(default_factory=set)
    fresh: int = 0

    @property
    def calls(self) -> int:
        """Distinct coalitions this run has asked for (fresh or from the cache)."""
        return len(self._seen)

    def room(self, more: int) -> bool:
        """Whether ``more`` further distinct calls fit in the budget."""
        return self.max_calls is None or self.calls + more <= self.max_calls

    def __call__(self, mask: int) -> int:
        if mask not in self._seen:
            if not self.room(1):
                raise UtilityBudgetExceeded(
                    f"the budget of {self.max_calls} utility calls is spent", calls=self.calls
                )
            self._seen.add(mask)
            if self.on_call is not None:
                self.on_call(self.calls)
        if mask in self.cache:
            return self.cache[mask]
        score = self.utility(mask)
        if type(score) is not int or abs(score) > MAX_UTILITY_ABS:
            raise ValuationError(
                f"the utility must return an integer score in bps, got {score!r} "
                f"for coalition 0x{mask:x}"
            )
        self.cache[mask] = score
        self.fresh += 1
        if self.on_new is not None:
            self.on_new(mask, score)
        return score


@dataclass(frozen=True)
class Estimate:
    """Per-provider values (exact rationals, in bps) and what it took to get them."""

    values: tuple[Fraction, ...]
    stderrs: tuple[Fraction, ...]
    """The *squared* standard error of each value (0 for exact methods), in bps squared: a
    square root is not rational, so it stays squared until :meth:`stderr_bps` rounds it."""
    samples: int
    calls: int
    status: Literal["exact", "converged", "budget", "max_samples"]

    def values_bps(self) -> list[int]:
        """Each value rounded to the nearest integer bps (ties to even)."""
        return [round(v) for v in self.values]

    def stderr_bps(self) -> list[int]:
        """Each standard error rounded up to an integer bps: ``ceil(sqrt(se**2))``."""
        return [_ceil_sqrt(s) for s in self.stderrs]

    def stderr_float(self) -> list[float]:
        """Standard errors as floats (display and comparison in tests only)."""
        return [math.sqrt(s) for s in self.stderrs]


def _ceil_sqrt(square: Fraction) -> int:
    """The smallest integer ``r`` with ``r**2 >= square`` (exact)."""
    if square <= 0:
        return 0
    r = math.isqrt(square.numerator // square.denominator)
    while Fraction(r * r) < square:
        r += 1
    return r


# --- exact methods ----------------------------------------------------------------------------


def exact_shapley(game: Game) -> Estimate:
    """Exact Shapley values from all ``2**n`` coalitions (Shapley 1953; n <= 16).

    Reuses :func:`service.settlement.shapley.shapley_values`, which wants non-negative values:
    the table is shifted by its minimum first (Shapley values depend only on differences).
    """
    n = game.n
    if n > MAX_EXACT_PROVIDERS:
        raise ValuationError(
            f"exact Shapley is computed for at most {MAX_EXACT_PROVIDERS} providers, got {n}; "
            "use permutation-shapley, msr-banzhaf or knn-shapley"
        )
    if not game.room(1 << n):
        raise UtilityBudgetExceeded(
            f"exact Shapley of {n} providers needs {1 << n} utility calls, "
            f"the budget is {game.max_calls}"
        )
    table = [game(mask) for mask in range(1 << n)]
    low = min(table)
    names = [str(i) for i in range(n)]
    phi = shapley_values(providers=names, values=[v - low for v in table])
    zero = tuple(Fraction(0) for _ in range(n))
    return Estimate(tuple(phi[s] for s in names), zero, 1 << n, game.calls, "exact")


def leave_one_out(game: Game) -> Estimate:
    """``v(N) - v(N - i)`` per provider: n + 1 utility calls."""
    n = game.n
    if not game.room(n + 1):
        raise UtilityBudgetExceeded(
            f"leave-one-out of {n} providers needs {n + 1} utility calls, "
            f"the budget is {game.max_calls}"
        )
    full = (1 << n) - 1
    top = game(full)
    values = tuple(Fraction(top - game(full & ~(1 << i))) for i in range(n))
    return Estimate(values, tuple(Fraction(0) for _ in range(n)), 1, game.calls, "exact")


# --- sampling methods -------------------------------------------------------------------------


def _converged(
    values: Sequence[Fraction], squares: Sequence[Fraction], rel_tolerance: Fraction
) -> bool:
    """``max_i se_i <= rel_tolerance x |mean_i values_i|``, compared squared, exactly."""
    mean = abs(sum(values, Fraction(0)) / len(values))
    bound = (rel_tolerance * mean) ** 2
    return all(s <= bound for s in squares)


def _variance_of_mean(total: int, square_total: int, count: int) -> Fraction:
    """Squared standard error of a mean of ``count`` integers (sample variance / count)."""
    if count < 2:
        return Fraction(0)
    return Fraction(count * square_total - total * total, count * count * (count - 1))


def permutation_shapley(
    game: Game,
    *,
    seed: bytes,
    rel_tolerance: Fraction,
    min_samples: int = 8,
    max_samples: int = 1_000_000,
    truncation_bps: int = 0,
) -> Estimate:
    """Shapley values by permutation sampling (Castro et al. 2009; TMC of Ghorbani & Zou 2019).

    Each sample is a permutation from the seeded stream; walking it, a provider's marginal
    contribution is ``v(S + i) - v(S)`` for the providers before it ``S``. The estimate is the
    mean marginal contribution, its standard error the sample standard deviation over
    ``sqrt(samples)``. ``truncation_bps`` > 0 is TMC: once ``|v(N) - v(S)| <= truncation_bps``
    the rest of the permutation is given marginal 0 without calling the utility (biased, cheaper).
    Stops by the rule in the module docstring.
    """
    n = game.n
    stream = SeedStream(seed)
    full = (1 << n) - 1
    empty_value = game(0)
    full_value = game(full) if truncation_bps > 0 else None
    totals = [0] * n
    squares = [0] * n
    samples = 0
    status: Literal["converged", "budget", "max_samples"] = "max_samples"
    while samples < max_samples:
        if not game.room(n):  # a permutation may need up to n new coalitions
            status = "budget"
            break
        order = stream.shuffled(n)
        mask, previous = 0, empty_value
        for i in order:
            if full_value is not None and abs(full_value - previous) <= truncation_bps:
                break  # every later marginal is 0: adds nothing to totals or squares
            mask |= 1 << i
            current = game(mask)
            marginal = current - previous
            totals[i] += marginal
            squares[i] += marginal * marginal
            previous = current
        samples += 1
        if samples >= min_samples:
            values = [Fraction(t, samples) for t in totals]
            errors = [
                _variance_of_mean(t, s, samples) for t, s in zip(totals, squares, strict=True)
            ]
            if _converged(values, errors, rel_tolerance):
                status = "converged"
                break
    if samples == 0:
        raise UtilityBudgetExceeded(
            f"the budget of {game.max_calls} utility calls does not fit one permutation"
        )
    values = [Fraction(t, samples) for t in totals]
    errors = [_variance_of_mean(t, s, samples) for t, s in zip(totals, squares, strict=True)]
    return Estimate(tuple(values), tuple(errors), samples, game.calls, status)


def msr_banzhaf(
    game: Game,
    *,
    seed: bytes,
    rel_tolerance: Fraction,
    min_samples: int = 16,
    max_samples: int = 1_000_000,
) -> Estimate:
    """Banzhaf values by maximum sample reuse (Wang & Jia 2023).

    Each sample is a coalition ``S`` with every provider in it by a fair coin from the seeded
    stream; ``v(S)`` is one utility call and is reused for every provider: the estimate of
    provider ``i`` is ``mean{v(S) : i in S} - mean{v(S) : i not in S}``, its squared standard
    error ``var_in / n_in + var_out / n_out``. A provider on only one side so far has no
    estimate yet (value 0, and the run does not count as converged). Stops by the rule in the
    module docstring.
    """
    n = game.n
    stream = SeedStream(seed)
    count_in, sum_in, sq_in = [0] * n, [0] * n, [0] * n
    sum_all = sq_all = 0
    samples = 0
    status: Literal["converged", "budget", "max_samples"] = "max_samples"

    def estimate() -> tuple[list[Fraction], list[Fraction], bool]:
        values, errors, complete = [], [], True
        for i in range(n):
            k_in, k_out = count_in[i], samples - count_in[i]
            if k_in == 0 or k_out == 0:
                values.append(Fraction(0))
                errors.append(Fraction(0))
                complete = False
                continue
            s_out, q_out = sum_all - sum_in[i], sq_all - sq_in[i]
            values.append(Fraction(sum_in[i], k_in) - Fraction(s_out, k_out))
            errors.append(
                _variance_of_mean(sum_in[i], sq_in[i], k_in)
                + _variance_of_mean(s_out, q_out, k_out)
            )
            complete = complete and k_in >= 2 and k_out >= 2
        return values, errors, complete

    while samples < max_samples:
        if not game.room(1):
            status = "budget"
            break
        mask = stream.bits(n)
        value = game(mask)
        samples += 1
        sum_all += value
        sq_all += value * value
        for i in range(n):
            if mask >> i & 1:
                count_in[i] += 1
                sum_in[i] += value
                sq_in[i] += value * value
        if samples >= min_samples:
            values, errors, complete = estimate()
            if complete and _converged(values, errors, rel_tolerance):
                status = "converged"
                break
    if samples == 0:
        raise UtilityBudgetExceeded(f"the budget of {game.max_calls} utility calls is zero")
    values, errors, _ = estimate()
    return Estimate(tuple(values), tuple(errors), samples, game.calls, status)


# --- KNN-Shapley ------------------------------------------------------------------------------


def knn_shapley(
    *,
    x_train: NDArray[np.float64],
    y_train: NDArray[np.int64],
    owner: Sequence[int],
    x_test: NDArray[np.float64],
    y_test: NDArray[np.int64],
    k: int,
    n_providers: int,
    scale: int = 10_000,
) -> Estimate:
    """Exact KNN-Shapley (Jia et al. 2019, Theorem 1), in exact rationals, in bps.

    The game is the KNN likelihood of the right label averaged over test points:
    ``u(S) = scale / T x sum_t (1/K) #{j among the min(K, |S|) nearest of S to t : y_j = y_t}``.
    Per test point, training points sorted by distance (ties by index, a stable sort) give
    ``s_N = 1[y_N = y_t] / max(K, N)`` (the paper's ``1/N`` assumes ``N >= K``; with fewer
    points than K the game is additive and each point is worth ``1/K``) and
    ``s_j = s_{j+1} + (1[y_j = y_t] - 1[y_{j+1} = y_t]) / K x min(K, j) / j`` from the
    farthest to the nearest (positions ``j`` 1-based) - the recursion
    pyDVL's ``KNNShapleyValuation`` runs in floats. Distances are floats (numpy, Euclidean);
    only their order is used. A provider's value is the sum of its points' values (``owner[j]``
    is the provider of point ``j``): the Shapley value of the point game, aggregated, which is
    the provider game's Shapley value when each provider holds one point.
    """
    n_points = len(y_train)
    if n_points == 0 or len(owner) != n_points or k < 1:
        raise ValuationError("KNN-Shapley needs training points, one owner each, and K >= 1")
    # exact integers over one common denominator D (faster than Fractions, same numbers)
    denominator = math.lcm(max(k, n_points), k, *range(k, n_points))
    step = [denominator // max(k, j) for j in range(n_points)]
    point_totals = [0] * n_points
    for t in range(len(y_test)):
        diff = x_train - x_test[t]
        distance = np.einsum("ij,ij->i", diff, diff)
        order = [int(j) for j in np.argsort(distance, kind="stable")]
        match = [int(y_train[j] == y_test[t]) for j in order]
        s = match[-1] * (denominator // max(k, n_points))
        point_totals[order[-1]] += s
        for j in range(n_points - 1, 0, -1):  # j is the 1-based position of order[j - 1]
            s += (match[j - 1] - match[j]) * step[j]
            point_totals[order[j - 1]] += s
    point_values = [Fraction(v, denominator) for v in point_totals]
    factor = Fraction(scale, len(y_test))
    values = [Fraction(0)] * n_providers
    for j, p in enumerate(owner):
        values[p] += point_values[j] * factor
    zero = tuple(Fraction(0) for _ in range(n_providers))
    return Estimate(tuple(values), zero, 1, 0, "exact")


def knn_shapley_of(task: KnnTask, n_providers: int) -> Estimate:
    """:func:`knn_shapley` of a utility's ``knn_task(n)`` arrays, for ``n_providers``.

    One place unpacks the task, so the CLI, the bench and the tests value the same arrays.
    """
    return knn_shapley(
        x_train=task.x_train,
        y_train=task.y_train,
        owner=task.owner,
        x_test=task.x_test,
        y_test=task.y_test,
        k=task.k,
        n_providers=n_providers,
    )
