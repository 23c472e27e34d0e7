"""Tally's estimators against pyDVL 0.10 (``pydvl.valuation``) on the same utility and data.

The utility is the shipped KNN likelihood (:data:`service.valuation.examples.knn_utility`),
one training point per provider, wrapped as a pyDVL ``UtilityBase`` whose ``__call__`` scores
the sample's subset with the very same function. Agreement metrics:

- exact Shapley: equal (pyDVL's float sum to 1e-9 bps);
- KNN-Shapley (closed form, 50 providers): equal to float precision (1e-12 of a unit);
- permutation Shapley and MSR Banzhaf (12 providers): Tally's estimate and pyDVL's agree
  within 3 combined reported standard errors ``3 sqrt(se_tally^2 + se_pydvl^2)`` on >= 95% of
  providers (a 1-SE band holds only ~68% of the time even for two perfect estimators);
- rank correlation (Spearman) >= 0.9 with pyDVL's values on the 50-provider task.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from scipy.stats import spearmanr

from service.valuation.estimators import (
    Estimate,
    Game,
    exact_shapley,
    knn_shapley_of,
    leave_one_out,
    msr_banzhaf,
    permutation_shapley,
)
from service.valuation.examples import knn_utility
from service.valuation.utility import mask_utility

pydvl = pytest.importorskip("pydvl.valuation")
from pydvl.valuation import (  # noqa: E402
    Dataset,
    DeterministicUniformSampler,
    KNNShapleyValuation,
    LOOValuation,
    MaxUpdates,
    MSRBanzhafValuation,
    NoStopping,
    PermutationSampler,
    ShapleyValuation,
)
from pydvl.valuation.utility.base import UtilityBase  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402

SEED = bytes(range(32))
SAMPLES = 800  # MSR samples on 50 providers (pyDVL takes ~12 ms a sample here)


class SameUtility(UtilityBase):  # type: ignore[misc]
    """pyDVL's view of Tally's utility: the sample's subset are provider indices."""

    def __call__(self, sample: Any) -> float:
        subset = () if sample is None else tuple(sorted(int(i) for i in sample.subset))
        return float(knn_utility(subset))


def _data(n: int) -> Any:
    return Dataset(np.arange(n, dtype=float).reshape(-1, 1), np.zeros(n, dtype=np.int64))


def _fit(valuation: Any, n: int) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        valuation.fit(_data(n))
    return valuation.result


def _floats(values: tuple[Fraction, ...]) -> np.ndarray[Any, Any]:
    return np.array([float(v) for v in values])


def _game(n: int) -> Game:
    return Game(n=n, utility=mask_utility(knn_utility, n))


def _within_errors(mine: Estimate, theirs: Any, sigmas: float = 3.0) -> float:
    """Fraction of providers whose two estimates agree within ``sigmas`` combined SEs."""
    ours = _floats(mine.values)
    se = np.sqrt(np.array(mine.stderr_float()) ** 2 + np.asarray(theirs.stderr) ** 2)
    return float(np.mean(np.abs(ours - np.asarray(theirs.values)) <= sigmas * se))


def test_exact_shapley_equals_pydvl() -> None:
    n = 8
    mine = exact_shapley(_game(n))
    theirs = _fit(
        ShapleyValuation(
            SameUtility(), sampler=DeterministicUniformSampler(), is_done=NoStopping()
        ),
        n,
    )
    np.testing.assert_allclose(_floats(mine.values), theirs.values, rtol=0, atol=1e-9)


def test_leave_one_out_equals_pydvl() -> None:
    n = 10
    mine = leave_one_out(_game(n))
    theirs = _fit(LOOValuation(SameUtility()), n)
    np.testing.assert_allclose(_floats(mine.values), theirs.values, rtol=0, atol=1e-9)


def test_knn_shapley_equals_pydvl_to_float_precision() -> None:
    n = 50
    task = knn_utility.knn_task(n)
    mine = knn_shapley_of(task, n)
    valuation = KNNShapleyValuation(
        KNeighborsClassifier(n_neighbors=task.k), Dataset(task.x_test, task.y_test), progress=False
    )
    theirs = valuation.fit(Dataset(task.x_train, task.y_train)).result
    # Tally is in bps (x 10,000) of the same likelihood
    np.testing.assert_allclose(_floats(mine.values) / 10_000, theirs.values, rtol=0, atol=1e-12)


def test_knn_shapley_is_the_exact_shapley_of_the_knn_utility() -> None:
    n = 10
    task = knn_utility.knn_task(n)
    closed = knn_shapley_of(task, n)
    assert closed.values == exact_shapley(_game(n)).values  # exact rationals, equal


def test_permutation_shapley_within_standard_error_of_pydvl() -> None:
    n = 12
    mine = permutation_shapley(_game(n), seed=SEED, rel_tolerance=Fraction(1, 10))
    theirs = _fit(
        ShapleyValuation(
            SameUtility(),
            sampler=PermutationSampler(seed=7),
            is_done=MaxUpdates(mine.samples),
        ),
        n,
    )
    assert _within_errors(mine, theirs) >= 0.95
    exact = _floats(exact_shapley(_game(n)).values)
    assert (
        np.mean(np.abs(_floats(mine.values) - exact) <= 3 * np.array(mine.stderr_float())) >= 0.95
    )


def test_msr_banzhaf_within_standard_error_of_pydvl() -> None:
    n = 12
    mine = msr_banzhaf(_game(n), seed=SEED, rel_tolerance=Fraction(1, 5), min_samples=200)
    theirs = _fit(MSRBanzhafValuation(SameUtility(), is_done=MaxUpdates(mine.samples), seed=7), n)
    assert _within_errors(mine, theirs) >= 0.95


def test_permutation_shapley_ranks_like_pydvl_on_50_providers() -> None:
    n = 50
    mine = permutation_shapley(_game(n), seed=SEED, rel_tolerance=Fraction(1, 4))
    task = knn_utility.knn_task(n)
    valuation = KNNShapleyValuation(
        KNeighborsClassifier(n_neighbors=task.k), Dataset(task.x_test, task.y_test), progress=False
    )
    theirs = valuation.fit(Dataset(task.x_train, task.y_train)).result
    rho = spearmanr(_floats(mine.values), theirs.values).statistic
    assert rho >= 0.9, rho


def test_msr_banzhaf_ranks_like_pydvl_on_50_providers() -> None:
    n = 50
    mine = msr_banzhaf(_game(n), seed=SEED, rel_tolerance=Fraction(1, 100), max_samples=SAMPLES)
    theirs = _fit(MSRBanzhafValuation(SameUtility(), is_done=MaxUpdates(SAMPLES), seed=7), n)
    rho = spearmanr(_floats(mine.values), theirs.values).statistic
    assert rho >= 0.9, rho
    assert math.isfinite(rho)
