"""The utilities shipped for the demo and the tests: scikit-learn models on generated data.

A utility is any callable ``f(train_provider_subset) -> int``: given the indices of the
providers whose data trains the model (a sorted tuple of ints, indices into the agreement's
providers in ascending address order), it returns the model's score on a held-out test set in
integer basis points. ``tally evaluate --utility module:attribute`` loads it. Optionally it has

- ``manifest() -> bytes``: a canonical description of its data (hashes of the arrays, library
  versions), hashed into the ValuationResult's ``utilityHash`` with the module's source;
- ``knn_task(n)``: the arrays the closed-form ``knn-shapley`` method needs.

The data here is generated (nothing is downloaded): a two-class problem in 4 dimensions,
:data:`CAPACITY` providers, each holding a shard of training points; a seeded fifth of the
providers hold noisy labels (so some values are negative), others duplicate a neighbour's
region (so values differ in size). The arrays are built once per process from a fixed numpy
seed; their bytes are hashed in :meth:`ShardedTask.manifest`, so an auditor whose numpy draws
other numbers fails the utility-hash check instead of silently disagreeing.

- :data:`knn_utility`: KNN likelihood of the right label (K = 5, 20 test points), one point per
  provider - the game KNN-Shapley values exactly (Jia et al. 2019).
- :data:`logreg_utility`: accuracy of a scikit-learn ``LogisticRegression`` (newton-cholesky,
  deterministic) on 200 test points, 6 points per provider - a real fit per call.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

import numpy as np
import sklearn  # type: ignore[import-untyped]
from numpy.typing import NDArray

__all__ = ["CAPACITY", "KnnTask", "ShardedTask", "knn_utility", "logreg_utility"]

CAPACITY: Final = 64
"""Most providers the shipped utilities hold data for."""
DIMENSIONS: Final = 4
DATA_SEED: Final = 20_260_101


@dataclass(frozen=True)
class KnnTask:
    """What :func:`~service.valuation.estimators.knn_shapley` needs for ``n`` providers."""

    x_train: NDArray[np.float64]
    y_train: NDArray[np.int64]
    owner: list[int]
    x_test: NDArray[np.float64]
    y_test: NDArray[np.int64]
    k: int


class ShardedTask:
    """Generated two-class data split into :data:`CAPACITY` provider shards."""

    def __init__(self, *, kind: str, points_per_provider: int, test_points: int, k: int) -> None:
        self.kind = kind
        self.points_per_provider = points_per_provider
        self.test_points = test_points
        self.k = k

    @cached_property
    def _data(
        self,
    ) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
        rng = np.random.default_rng(DATA_SEED)
        direction = rng.normal(size=DIMENSIONS)
        direction /= np.linalg.norm(direction)

        def sample(count: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
            x = rng.normal(size=(count, DIMENSIONS))
            y = (x @ direction + 0.3 * rng.normal(size=count) > 0).astype(np.int64)
            return x, y

        m = self.points_per_provider
        x_train, y_train = sample(CAPACITY * m)
        noisy = rng.permutation(CAPACITY)[: CAPACITY // 5]
        for p in noisy:
            y_train[p * m : (p + 1) * m] = 1 - y_train[p * m : (p + 1) * m]
        x_test, y_test = sample(self.test_points)
        return x_train, y_train, x_test, y_test

    def rows(self, subset: Sequence[int]) -> NDArray[np.int64]:
        m = self.points_per_provider
        return np.array([p * m + j for p in subset for j in range(m)], dtype=np.int64)

    def manifest(self) -> bytes:
        """Canonical JSON: the task's parameters, the SHA-256 of every array, library versions."""
        x_train, y_train, x_test, y_test = self._data
        doc: dict[str, Any] = {
            "kind": self.kind,
            "points_per_provider": self.points_per_provider,
            "test_points": self.test_points,
            "k": self.k,
            "capacity": CAPACITY,
            "arrays": {
                name: hashlib.sha256(
                    np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
                ).hexdigest()
                for name, a in (
                    ("x_train", x_train),
                    ("y_train", y_train),
                    ("x_test", x_test),
                    ("y_test", y_test),
                )
            },
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def check(self, subset: Sequence[int]) -> None:
        if any(not 0 <= p < CAPACITY for p in subset):
            raise ValueError(f"the shipped utilities hold data for providers 0..{CAPACITY - 1}")


class KnnLikelihood(ShardedTask):
    """``10,000 x mean over test points of (1/K) #right labels among the K nearest of S``.

    With fewer than K points in S all of them count (and the sum is still over K): the utility
    of Jia et al. (2019) that KNN-Shapley values exactly. 20 test points and K = 5 make every
    score a multiple of 100 bps, an exact integer.
    """

    def __init__(self) -> None:
        super().__init__(kind="knn-likelihood", points_per_provider=1, test_points=20, k=5)

    @cached_property
    def _order(self) -> NDArray[np.int64]:
        from sklearn.neighbors import NearestNeighbors  # type: ignore[import-untyped]

        x_train, _, x_test, _ = self._data
        finder = NearestNeighbors(n_neighbors=len(x_train)).fit(x_train)
        _, order = finder.kneighbors(x_test)
        return np.asarray(order, dtype=np.int64)

    def __call__(self, subset: Sequence[int]) -> int:
        self.check(subset)
        _, y_train, _, y_test = self._data
        member = np.zeros(len(y_train), dtype=bool)
        member[self.rows(subset)] = True
        inside = member[self._order]  # (T, N): nearest first
        rank = np.cumsum(inside, axis=1)
        chosen = inside & (rank <= self.k)
        right = (y_train[self._order] == y_test[:, None]) & chosen
        count = int(right.sum())
        return 10_000 * count // (self.k * self.test_points)

    def knn_task(self, n: int) -> KnnTask:
        """The first ``n`` providers' points and the test set (one point per provider)."""
        x_train, y_train, x_test, y_test = self._data
        rows = self.rows(range(n))
        owner = [int(r) // self.points_per_provider for r in rows]
        return KnnTask(x_train[rows], y_train[rows], owner, x_test, y_test, self.k)


class LogisticAccuracy(ShardedTask):
    """Test accuracy (bps) of ``LogisticRegression`` fit on the coalition's points.

    A coalition with no points, or with one class only, predicts its majority class (class 0
    when empty). 200 test points make every accuracy a multiple of 50 bps.
    """

    def __init__(self) -> None:
        super().__init__(kind="logistic-accuracy", points_per_provider=6, test_points=200, k=0)

    def __call__(self, subset: Sequence[int]) -> int:
        from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

        self.check(subset)
        x_train, y_train, x_test, y_test = self._data
        rows = self.rows(subset)
        labels = y_train[rows]
        if len(rows) == 0 or len(set(labels.tolist())) < 2:
            guess = int(labels[0]) if len(rows) else 0
            predicted = np.full(len(y_test), guess)
        else:
            model = LogisticRegression(solver="newton-cholesky")  # exact Newton: 2 ms a fit
            predicted = model.fit(x_train[rows], labels).predict(x_test)
        right = int((predicted == y_test).sum())
        return 10_000 * right // self.test_points


knn_utility: Final = KnnLikelihood()
logreg_utility: Final = LogisticAccuracy()
