"""Exact Shapley values of providers from a table of coalition values.

The ``shapley`` settlement method pays providers by their marginal contribution to a model's
quality: an evaluator trains on every coalition's data and signs the table of results (a
``CoalitionValues`` log entry). ``values[m]`` is the value of the coalition whose members are
the providers ``providers[j]`` with bit ``j`` of ``m`` set; ``values[0]`` is the empty coalition
(e.g. the accuracy of a model trained on no provider's data) and need not be 0.

Shapley value of player ``i`` among ``n`` (the definition):

    phi_i = sum over S subset of N without i of  |S|! (n - 1 - |S|)! / n!  * (v(S + i) - v(S))

It is the average, over all ``n!`` orders in which players could join, of ``i``'s marginal
contribution when it joins. This module sums by coalition (``n * 2**(n-1)`` differences, not
``n!`` orders): for each player it adds up the differences per coalition size ``k`` with
integer arithmetic, then weights each size by the integer ``k! (n-1-k)!`` and divides once by
``n!``. The result is an exact :class:`~fractions.Fraction`; ``sum(phi) == v(N) - v(empty)``.

Limits: at most :data:`MAX_EXACT_PROVIDERS` (16) providers, i.e. 65,536 coalitions; more is a
:class:`SettlementError` (the table itself would be impractical to evaluate and sign; a
sampled estimate would need its own seeded, reproducible rule in the policy, not provided).

Negative Shapley values: a provider can lower the value of the coalitions it joins (noisy or
poisoned data), giving ``phi_i < 0``. A payout cannot be negative, so :func:`shapley_weights`
clips at zero: such a provider gets weight 0 (nothing, and is charged nothing) and the pool is
split among the others in proportion to their positive values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from service.errors import SettlementError

__all__ = ["MAX_EXACT_PROVIDERS", "shapley_values", "shapley_weights"]

MAX_EXACT_PROVIDERS = 16
"""Most providers an exact Shapley computation accepts (2**16 coalition values)."""


def _check(providers: Sequence[str], values: Sequence[int]) -> int:
    n = len(providers)
    if n > MAX_EXACT_PROVIDERS:
        raise SettlementError(
            f"Shapley values are computed exactly for at most {MAX_EXACT_PROVIDERS} providers, "
            f"got {n}",
            providers=n,
        )
    if len({p.lower() for p in providers}) != n:
        raise SettlementError("a provider is listed twice in the coalition table")
    if len(values) != 1 << n:
        raise SettlementError(
            f"{n} providers need {1 << n} coalition values (one per subset), got {len(values)}"
        )
    for m, v in enumerate(values):
        if type(v) is not int or v < 0:
            raise SettlementError(
                f"coalition value {m} must be a non-negative integer: {v!r}", coalition=m
            )
    return n


def shapley_values(*, providers: Sequence[str], values: Sequence[int]) -> dict[str, Fraction]:
    """Exact Shapley value of each provider (may be negative; see :func:`shapley_weights`).

    ``values`` has ``2**len(providers)`` entries; ``values[m]`` is the value of the coalition
    whose members are the providers at the set bits of ``m`` (bit ``j`` = ``providers[j]``).
    Raises :class:`SettlementError` for more than 16 providers, a table of the wrong length,
    a value that is not a non-negative int, or the same provider twice.
    """
    n = _check(providers, values)
    if n == 0:
        return {}
    size = [0] * (1 << n)  # |S| of every coalition
    for m in range(1, 1 << n):
        size[m] = size[m >> 1] + (m & 1)
    # Weight of a coalition of size k not containing i, times n!: k! (n - 1 - k)!.
    coefficient = [math.factorial(k) * math.factorial(n - 1 - k) for k in range(n)]
    n_factorial = math.factorial(n)

    result: dict[str, Fraction] = {}
    for i, provider in enumerate(providers):
        bit = 1 << i
        by_size = [0] * n  # sum of v(S + i) - v(S) over coalitions S of each size, i not in S
        for block in range(0, 1 << n, bit << 1):  # masks without bit i come in runs of `bit`
            for m in range(block, block + bit):
                by_size[size[m]] += values[m | bit] - values[m]
        numerator = sum(c * d for c, d in zip(coefficient, by_size, strict=True))
        result[provider] = Fraction(numerator, n_factorial)
    return result


def shapley_weights(*, providers: Sequence[str], values: Sequence[int]) -> dict[str, Fraction]:
    """Settlement weights from Shapley values: ``max(phi_i, 0)`` per provider.

    Clipping at zero is the documented rule for negative contributions (module doc). If no
    provider has a positive value (e.g. the table is constant), every weight is 0 and
    apportioning a positive pool by them is refused by :func:`~service.settlement.apportion`.
    """
    return {
        p: max(phi, Fraction(0))
        for p, phi in shapley_values(providers=providers, values=values).items()
    }
