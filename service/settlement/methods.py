"""Contribution weighting methods and the split of one agreement's revenue.

Pure functions over plain inputs (no database, no log): the settlement engine gathers, per
agreement and period, the facts from accepted evidence and the parameters from the policy, then
calls :func:`agreement_weights` and :func:`split_agreement`. Every weight is an exact
:class:`~fractions.Fraction` (or int); only the relative sizes within one method matter.

Methods (the policy's ``method``):

- ``output``: ``units served x quality multiplier``; the multiplier is the mean ``scoreBps`` of
  the provider's quality attestations in the period divided by 10,000, or the policy's
  ``default_quality_bps / 10,000`` when it has none.
- ``cost``: the provider's declared input cost.
- ``risk``: the multiplier the policy's table gives the provider's risk tier.
- ``shapley``: the provider's Shapley value in the agreement's coalition table, clipped at 0
  (see :mod:`service.settlement.shapley`).
- ``valuation``: the provider's value in the agreement's newest ``ValuationResult`` by the
  policy's evaluator (T13, :mod:`service.valuation`), in bps, clipped at 0: a provider whose
  data lowered the model's score (a negative value) gets weight 0, i.e. nothing, and is charged
  nothing; the rest is split in proportion to the positive values (the rule of ``shapley``).
  It is a method on its own: a ``mix`` does not combine it (yet).
- ``mix``: ``sum over methods m of alpha_m x (w_m,i / sum_j w_m,j)``: each method's weights are
  first normalized to shares of 1, then mixed with the policy's coefficients ``alpha_m``.

Addresses: accepted in any case, compared case-insensitively and returned in lower case (the
ordering key of the design). Maps of facts may hold other addresses too (a period's quality
scores for everyone, say): only the agreement's ``providers`` are read. A provider missing from
``units`` or ``costs`` counts 0; one missing from ``risk_tiers`` takes the policy's default
tier, and without a default that is an :class:`InvalidPolicy` error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal, TypeVar, get_args

from service.errors import InvalidPolicy, SettlementError
from service.settlement.apportion import Weight, apportion
from service.settlement.shapley import shapley_weights

__all__ = [
    "BASIC_METHODS",
    "BPS",
    "CoalitionTable",
    "ContributionInputs",
    "Method",
    "MethodParams",
    "ValuationValues",
    "agreement_weights",
    "cost_weights",
    "mix_weights",
    "operator_fee",
    "output_weights",
    "risk_weights",
    "shapley_method_weights",
    "split_agreement",
    "valuation_method_weights",
]

BPS = 10_000
"""Basis points in one whole: fees and quality scores are given in bps."""

Method = Literal["output", "cost", "risk", "shapley", "mix", "valuation"]
BASIC_METHODS: tuple[str, ...] = ("output", "cost", "risk", "shapley")
"""The methods a ``mix`` can combine (a mix of mixes is not a method)."""

_HEX = frozenset("0123456789abcdef")
_V = TypeVar("_V")


# --- helpers --------------------------------------------------------------------------------


def _address(value: str, what: str) -> str:
    """``value`` in lower case, if it is a 0x-prefixed 20-byte hex address."""
    lower = value.lower() if isinstance(value, str) else ""
    if len(lower) != 42 or not lower.startswith("0x") or not _HEX.issuperset(lower[2:]):
        raise SettlementError(f"{what} is not an address: {value!r}")
    return lower


def _providers(providers: Sequence[str]) -> list[str]:
    lowered = [_address(p, "provider") for p in providers]
    if len(set(lowered)) != len(lowered):
        raise SettlementError("a provider is listed twice in the agreement")
    return lowered


def _by_address(facts: Mapping[str, _V], what: str) -> dict[str, _V]:
    """``facts`` re-keyed by lower-case address; the same address twice is an error."""
    out: dict[str, _V] = {}
    for key, value in facts.items():
        lower = _address(key, f"a key of {what}")
        if lower in out:
            raise SettlementError(f"{what} lists {lower} twice (in different case)")
        out[lower] = value
    return out


def _non_negative_int(value: object, what: str) -> int:
    if type(value) is not int or value < 0:
        raise SettlementError(f"{what} must be a non-negative integer: {value!r}")
    return value


def _bps(value: object, what: str, error: type[SettlementError | InvalidPolicy]) -> int:
    if type(value) is not int or not 0 <= value <= BPS:
        raise error(f"{what} must be an integer number of basis points in [0, {BPS}]: {value!r}")
    return value


def _exact(value: object, what: str) -> Fraction:
    """A non-negative exact number from the policy (int or Fraction; never float)."""
    if type(value) is int or isinstance(value, Fraction):
        if value < 0:
            raise InvalidPolicy(f"{what} must not be negative: {value}")
        return Fraction(value)
    raise InvalidPolicy(f"{what} must be an int or a Fraction, not {type(value).__name__}")


def _weight(value: object, what: str) -> Fraction:
    """A non-negative exact weight computed upstream (int or Fraction; never float)."""
    if (type(value) is int or isinstance(value, Fraction)) and value >= 0:
        return Fraction(value)
    raise SettlementError(f"{what} must be a non-negative int or Fraction: {value!r}")


# --- the methods ----------------------------------------------------------------------------


def output_weights(
    *,
    providers: Sequence[str],
    units: Mapping[str, int],
    quality_scores: Mapping[str, Sequence[int]],
    default_quality_bps: int,
) -> dict[str, Fraction]:
    """``units[p] x mean(quality_scores[p]) / 10,000`` per provider (``output`` method).

    ``units``: units each provider served under the agreement in dual-signed receipts.
    ``quality_scores``: the ``scoreBps`` of each provider's quality attestations in the period
    (each in [0, 10,000]); a provider with none (or an empty list) gets ``default_quality_bps``.
    """
    default = _bps(default_quality_bps, "default_quality_bps", InvalidPolicy)
    units_by = _by_address(units, "units")
    scores_by = _by_address(quality_scores, "quality_scores")
    weights: dict[str, Fraction] = {}
    for p in _providers(providers):
        served = _non_negative_int(units_by.get(p, 0), f"units of {p}")
        scores = [_bps(s, f"a quality score of {p}", SettlementError) for s in scores_by.get(p, ())]
        mean_bps = Fraction(sum(scores), len(scores)) if scores else Fraction(default)
        weights[p] = served * mean_bps / BPS
    return weights


def cost_weights(*, providers: Sequence[str], costs: Mapping[str, int]) -> dict[str, Fraction]:
    """The declared input cost of each provider (``cost`` method); no declaration counts 0."""
    costs_by = _by_address(costs, "costs")
    return {
        p: Fraction(_non_negative_int(costs_by.get(p, 0), f"declared cost of {p}"))
        for p in _providers(providers)
    }


def risk_weights(
    *,
    providers: Sequence[str],
    risk_tiers: Mapping[str, str],
    multipliers: Mapping[str, Weight],
    default_tier: str | None = None,
) -> dict[str, Fraction]:
    """The policy's multiplier for each provider's declared risk tier (``risk`` method).

    A provider without a declaration takes ``default_tier``; an unknown tier, or a missing
    declaration without a default, is an :class:`InvalidPolicy` error.
    """
    table = {
        tier: _exact(m, f"risk multiplier of tier {tier!r}") for tier, m in multipliers.items()
    }
    tiers_by = _by_address(risk_tiers, "risk_tiers")
    weights: dict[str, Fraction] = {}
    for p in _providers(providers):
        tier = tiers_by.get(p, default_tier)
        if tier is None:
            raise InvalidPolicy(f"{p} declared no risk tier and the policy has no default tier")
        if tier not in table:
            raise InvalidPolicy(f"risk tier {tier!r} of {p} is not in the policy's table")
        weights[p] = table[tier]
    return weights


@dataclass(frozen=True, slots=True)
class CoalitionTable:
    """A ``CoalitionValues`` entry: ``values[m]`` is the value of the coalition of the
    ``providers[j]`` whose bit ``j`` is set in ``m``."""

    providers: tuple[str, ...]
    values: tuple[int, ...]


def shapley_method_weights(
    *, providers: Sequence[str], coalition: CoalitionTable
) -> dict[str, Fraction]:
    """Shapley values clipped at 0 (``shapley`` method).

    The table must cover exactly the agreement's providers (in any order): a provider left out
    of the evaluation, or an outsider in it, is a :class:`SettlementError`.
    """
    agreement = _providers(providers)
    table_providers = [_address(p, "coalition table provider") for p in coalition.providers]
    if sorted(agreement) != sorted(table_providers):
        raise SettlementError(
            "the coalition table's providers are not the agreement's providers",
            agreement=sorted(agreement),
            table=sorted(table_providers),
        )
    weights = shapley_weights(providers=table_providers, values=coalition.values)
    return {p: weights[p] for p in agreement}


@dataclass(frozen=True, slots=True)
class ValuationValues:
    """A ``ValuationResult`` entry's values: ``values[i]`` (bps, may be negative) of
    ``providers[i]``; ``leaf_index`` is the entry's place in the log (for the statement)."""

    providers: tuple[str, ...]
    values: tuple[int, ...]
    leaf_index: int = -1


def valuation_method_weights(
    *, providers: Sequence[str], valuation: ValuationValues
) -> dict[str, Fraction]:
    """``max(value, 0)`` per provider (``valuation`` method; negative values clipped to 0).

    The entry must cover exactly the agreement's providers (in any order), like a coalition
    table; an outsider or a missing provider is a :class:`SettlementError`.
    """
    agreement = _providers(providers)
    valued = [_address(p, "valuation provider") for p in valuation.providers]
    if sorted(agreement) != sorted(valued) or len(valued) != len(valuation.values):
        raise SettlementError(
            "the valuation's providers are not the agreement's providers",
            agreement=sorted(agreement),
            valuation=sorted(valued),
        )
    by = dict(zip(valued, valuation.values, strict=True))
    return {p: Fraction(max(by[p], 0)) for p in agreement}


def mix_weights(
    *,
    providers: Sequence[str],
    components: Mapping[str, Mapping[str, Weight]],
    mix: Mapping[str, Weight],
) -> dict[str, Fraction]:
    """``sum_m mix[m] x components[m][p] / sum_q components[m][q]`` per provider (``mix``).

    ``components`` holds each mixed method's weights (from the functions above) and ``mix`` its
    coefficient; both must name the same methods, among :data:`BASIC_METHODS`. A method with a
    positive coefficient whose weights are all zero has no shares to mix: that is a
    :class:`SettlementError` naming it. Coefficients need not sum to 1.
    """
    if not mix:
        raise InvalidPolicy("a mix needs at least one method")
    for name in mix:
        if name not in BASIC_METHODS:
            raise InvalidPolicy(f"a mix can combine {', '.join(BASIC_METHODS)}, not {name!r}")
    if set(mix) != set(components):
        raise InvalidPolicy(
            f"the mix names {sorted(mix)} but weights were given for {sorted(components)}"
        )
    alphas = {name: _exact(a, f"mix coefficient of {name!r}") for name, a in mix.items()}
    if not any(alphas.values()):
        raise InvalidPolicy("every mix coefficient is zero")

    agreement = _providers(providers)
    weights = dict.fromkeys(agreement, Fraction(0))
    for name in sorted(alphas):  # fixed order (the sum is exact, so only for tidiness)
        alpha = alphas[name]
        if not alpha:
            continue
        by = _by_address(components[name], f"{name} weights")
        w = {p: _weight(by.get(p, 0), f"{name} weight of {p}") for p in agreement}
        total = sum(w.values(), Fraction(0))
        if total == 0:
            raise SettlementError(
                f"every provider's {name} weight is zero: no {name} shares to mix", method=name
            )
        for p in agreement:
            weights[p] += alpha * w[p] / total
    return weights


# --- one entry point per agreement ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContributionInputs:
    """The facts about one agreement in one period, from accepted evidence."""

    providers: tuple[str, ...]
    units: Mapping[str, int] = field(default_factory=dict)
    quality_scores: Mapping[str, Sequence[int]] = field(default_factory=dict)
    costs: Mapping[str, int] = field(default_factory=dict)
    risk_tiers: Mapping[str, str] = field(default_factory=dict)
    coalition: CoalitionTable | None = None
    valuation: ValuationValues | None = None


@dataclass(frozen=True, slots=True)
class MethodParams:
    """The policy's parameters for the weighting methods."""

    default_quality_bps: int = BPS
    risk_multipliers: Mapping[str, Weight] = field(default_factory=dict)
    default_risk_tier: str | None = None
    mix: Mapping[str, Weight] = field(default_factory=dict)


def agreement_weights(
    *, method: Method, inputs: ContributionInputs, params: MethodParams
) -> dict[str, Fraction]:
    """Each provider's weight under ``method`` (lower-case address -> exact weight)."""
    if method == "mix":
        components = {
            name: _basic_weights(name, inputs, params)
            for name in params.mix
            if name in BASIC_METHODS  # mix_weights names any other
        }
        return mix_weights(providers=inputs.providers, components=components, mix=params.mix)
    return _basic_weights(method, inputs, params)


def _basic_weights(
    method: str, inputs: ContributionInputs, params: MethodParams
) -> dict[str, Fraction]:
    if method == "output":
        return output_weights(
            providers=inputs.providers,
            units=inputs.units,
            quality_scores=inputs.quality_scores,
            default_quality_bps=params.default_quality_bps,
        )
    if method == "cost":
        return cost_weights(providers=inputs.providers, costs=inputs.costs)
    if method == "risk":
        return risk_weights(
            providers=inputs.providers,
            risk_tiers=inputs.risk_tiers,
            multipliers=params.risk_multipliers,
            default_tier=params.default_risk_tier,
        )
    if method == "shapley":
        if inputs.coalition is None:
            raise SettlementError("the shapley method needs the agreement's coalition values")
        return shapley_method_weights(providers=inputs.providers, coalition=inputs.coalition)
    if method == "valuation":
        if inputs.valuation is None:
            raise SettlementError(
                "the valuation method needs the agreement's ValuationResult for the period "
                "(tally evaluate) signed by the policy's evaluator"
            )
        return valuation_method_weights(providers=inputs.providers, valuation=inputs.valuation)
    raise InvalidPolicy(
        f"unknown settlement method {method!r} (known: {', '.join(get_args(Method))})"
    )


# --- the split ------------------------------------------------------------------------------


def operator_fee(*, revenue: int, fee_bps: int) -> int:
    """``floor(revenue x fee_bps / 10,000)``: the operator's cut of one agreement's revenue."""
    _non_negative_int(revenue, "revenue")
    _bps(fee_bps, "operator_fee_bps", InvalidPolicy)
    return revenue * fee_bps // BPS


def split_agreement(
    *, revenue: int, fee_bps: int, operator: str, weights: Mapping[str, Weight]
) -> dict[str, int]:
    """Split one agreement's revenue: the operator's fee off the top, the rest by ``weights``.

    Returns lower-case address -> amount for every provider in ``weights`` and the operator
    (zero amounts included; an operator who is also a provider gets both), summing to
    ``revenue`` exactly. The rest is apportioned by largest remainder, ties by ascending
    address (:func:`~service.settlement.apportion.apportion`); a positive rest with all-zero
    weights is a :class:`SettlementError`.
    """
    fee = operator_fee(revenue=revenue, fee_bps=fee_bps)
    op = _address(operator, "operator")
    payouts = apportion(total=revenue - fee, weights=_by_address(weights, "weights"))
    payouts[op] = payouts.get(op, 0) + fee
    return payouts
