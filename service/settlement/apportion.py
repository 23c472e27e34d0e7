"""Largest-remainder apportionment of an integer amount by exact rational weights.

``apportion(total=T, weights=w)`` gives each key ``floor(T * w_i / sum(w))``, then hands the
``T - sum(floors)`` units left over one each to the keys with the largest fractional remainders,
ties broken by ascending key in lower-case (for addresses: lower-case hex, the design's rule).
The result sums to ``T`` exactly and every amount is the floor or the ceiling of its exact share.

All arithmetic is on integers: the weights are brought to a common denominator once, so each
exact share is ``T * W_i / S`` with integers ``W_i`` and ``S`` and its floor and remainder come
from one ``divmod``. Floats are refused, not converted: ``0.1`` is not a tenth.

Choices (documented here because auditors must reproduce them):
- A negative weight is an error, not a zero: it means an upstream mistake.
- If every weight is zero (or there are none) and ``total > 0``, nobody is entitled to the money
  and :class:`SettlementError` is raised; paying it to someone by default (the operator, equal
  shares) would hide missing evidence. With ``total == 0`` every key simply gets 0.
- Keys that differ only in case are an error (their tie order would be undefined).
- Every key of ``weights`` appears in the result, zero-weight keys with 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction

from service.errors import SettlementError

__all__ = ["Weight", "apportion", "exact_shares"]

Weight = Fraction | int
"""An exact, non-negative weight. ``bool`` and ``float`` are refused."""


def _integer_weights(weights: Mapping[str, Weight]) -> tuple[list[str], list[int]]:
    """The keys, and the weights scaled by the lcm of their denominators to integers."""
    keys = list(weights)
    values = list(weights.values())
    denominators: set[int] = set()
    for key, w in zip(keys, values, strict=True):
        if type(w) is int:
            if w < 0:
                raise SettlementError(f"negative weight for {key}: {w}", key=key)
        elif isinstance(w, Fraction):
            if w < 0:
                raise SettlementError(f"negative weight for {key}: {w}", key=key)
            denominators.add(w.denominator)
        else:
            raise SettlementError(
                f"weight for {key} must be an int or a Fraction, not {type(w).__name__}: {w!r}",
                key=key,
            )
    lowered = {k.lower() for k in keys}
    if len(lowered) != len(keys):
        raise SettlementError("two keys differ only in case; their tie order is undefined")
    scale = math.lcm(*denominators) if denominators else 1
    scaled: list[int] = []
    for w in values:
        if isinstance(w, Fraction):
            scaled.append(w.numerator * (scale // w.denominator))
        else:
            scaled.append(w * scale)
    return keys, scaled


def _check_total(total: int) -> None:
    if type(total) is not int or total < 0:
        raise SettlementError(f"the amount to apportion must be a non-negative int: {total!r}")


def exact_shares(*, total: int, weights: Mapping[str, Weight]) -> dict[str, Fraction]:
    """Each key's exact share ``total * w / sum(w)`` (what a statement shows next to the payout).

    Same validation and same all-zero rule as :func:`apportion`.
    """
    _check_total(total)
    keys, ints = _integer_weights(weights)
    s = sum(ints)
    if s == 0:
        if total:
            raise SettlementError(f"cannot apportion {total}: every weight is zero")
        return dict.fromkeys(keys, Fraction(0))
    return {k: Fraction(total * w, s) for k, w in zip(keys, ints, strict=True)}


def apportion(*, total: int, weights: Mapping[str, Weight]) -> dict[str, int]:
    """Split ``total`` by ``weights`` with the largest-remainder method (see the module doc).

    Returns ``{key: amount}`` for every key of ``weights`` (input order), summing to ``total``.
    Raises :class:`SettlementError` on a negative or non-exact weight, a negative ``total``, or
    all-zero weights with ``total > 0``.
    """
    _check_total(total)
    keys, ints = _integer_weights(weights)
    s = sum(ints)
    if s == 0:
        if total:
            raise SettlementError(f"cannot apportion {total}: every weight is zero")
        return dict.fromkeys(keys, 0)

    floors: list[int] = []
    remainders: list[int] = []
    for w in ints:
        q, r = divmod(total * w, s)
        floors.append(q)
        remainders.append(r)
    left = total - sum(floors)  # = sum(remainders) / s: an integer in [0, number of keys)
    if left:
        # The `left` largest remainders: all those above the cut, then the ties at the cut by
        # ascending lower-case key. The cut is > 0: sum(remainders) = left * s, each r < s.
        cut = sorted(remainders, reverse=True)[left - 1]
        ties: list[int] = []
        for i, r in enumerate(remainders):
            if r > cut:
                floors[i] += 1
                left -= 1
            elif r == cut:
                ties.append(i)
        ties.sort(key=lambda i: keys[i].lower())
        for i in ties[:left]:
            floors[i] += 1
    return dict(zip(keys, floors, strict=True))
