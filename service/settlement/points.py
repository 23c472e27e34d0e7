"""Contribution points (积分): integer points providers accrue per settled round.

Optional per space: a policy with a ``[points]`` table (:mod:`service.settlement.policy`)::

    [points]
    unit = "10000000000000000"   # revenue per point (token smallest units; > 0)
    threshold = 100              # points on an agreement that make a high contributor
    fee_discount_bps = 5000      # share of the operator fee rebated to high contributors

Rules (all integers, computed by settlement, never entered by hand; an auditor's
recomputation gives the same points):

- an agreement's points pool is ``floor(R / unit)`` for its revenue ``R`` in the round;
  it is split among the agreement's providers by the *same* contribution weights as the
  money, with the same largest-remainder rule (:func:`service.settlement.apportion.apportion`);
- a provider with at least ``threshold`` points on an agreement is a high contributor
  there and gets back ``floor(fee x fee_discount_bps x w_p / (10000 x W))`` of that
  agreement's operator fee (``w_p`` its weight, ``W`` the sum of the weights): the
  operator receives the fee less the rebates, so the round's total is unchanged.

Points are shown per provider and agreement in the statement (``points`` on each
provider line, ``fee_rebate`` beside it) and summed per participant; a cumulative
balance over rounds is the sum of the statements' points.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from service.settlement.apportion import apportion

__all__ = ["PointsRule", "agreement_points", "fee_rebates"]

BPS = 10_000


@dataclass(frozen=True, slots=True)
class PointsRule:
    unit: int
    threshold: int
    fee_discount_bps: int

    def document(self) -> dict[str, object]:
        return {
            "unit": str(self.unit),
            "threshold": self.threshold,
            "fee_discount_bps": self.fee_discount_bps,
        }


def agreement_points(
    rule: PointsRule, *, revenue: int, weights: Mapping[str, Fraction]
) -> dict[str, int]:
    """``floor(revenue / unit)`` points split by ``weights`` (largest remainder)."""
    pool = revenue // rule.unit
    if not pool or not any(weights.values()):
        return dict.fromkeys(weights, 0)
    return apportion(total=pool, weights=dict(weights))


def fee_rebates(
    rule: PointsRule,
    *,
    fee: int,
    points: Mapping[str, int],
    weights: Mapping[str, Fraction],
) -> dict[str, int]:
    """Each high contributor's rebate of the operator fee (0 for the others)."""
    total = sum(weights.values(), Fraction(0))
    out: dict[str, int] = {}
    for p, w in weights.items():
        high = rule.threshold <= points.get(p, 0) and points.get(p, 0) > 0
        if not high or not total:
            out[p] = 0
            continue
        share = Fraction(fee * rule.fee_discount_bps, BPS) * w / total
        out[p] = share.numerator // share.denominator
    return out
