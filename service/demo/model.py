"""Contribution to a model's accuracy, measured for real (seeded, small, numpy only).

Each provider holds a block of features about the same insured EVs (battery health,
vehicle telemetry from either automaker, charging behaviour). An insurer's claim cost
depends on all of them. For every coalition of providers we fit a least-squares pricing
model on the coalition's features over a training set and score it on a held-out set:
the coalition's value is R² in basis points (0 for the empty coalition; clipped at 0).
These 2^n values are what the evaluator signs into the log as ``CoalitionValues``.
"""

from __future__ import annotations

import numpy as np

FEATURES_PER_PROVIDER = 3
SAMPLES = 4_000


def coalition_values(*, providers: int, seed: int) -> list[int]:
    """R² (bps) of the pricing model on every coalition; index = bitmask over providers."""
    rng = np.random.default_rng(seed)
    n = SAMPLES
    blocks = [rng.normal(size=(n, FEATURES_PER_PROVIDER)) for _ in range(providers)]
    # providers' data matter unequally, and two of them overlap (shared latent factor)
    strength = np.linspace(1.6, 0.5, providers)
    shared = rng.normal(size=n)
    if providers >= 3:
        blocks[1][:, 0] += 0.8 * shared
        blocks[2][:, 0] += 0.8 * shared
    signal = sum(
        strength[i] * (blocks[i] @ rng.uniform(0.5, 1.0, FEATURES_PER_PROVIDER))
        for i in range(providers)
    )
    y = signal + 0.9 * shared + rng.normal(scale=2.0, size=n)
    train, test = slice(0, n * 3 // 4), slice(n * 3 // 4, n)
    values = []
    for mask in range(1 << providers):
        cols = [blocks[i] for i in range(providers) if mask >> i & 1]
        if not cols:
            values.append(0)
            continue
        x = np.column_stack([np.ones(n), *cols])
        coef, *_ = np.linalg.lstsq(x[train], y[train], rcond=None)
        resid = y[test] - x[test] @ coef
        r2 = 1.0 - float(resid @ resid) / float(((y[test] - y[test].mean()) ** 2).sum())
        values.append(max(0, round(r2 * 10_000)))
    return values
