"""The settlement policy: a document whose canonical hash goes on chain with every round.

A policy says how each agreement's revenue is split. It is written in TOML or JSON (the
same keys); :func:`load_policy` reads a file, :func:`parse_policy` an already-parsed
mapping. Every error is an :class:`~service.errors.InvalidPolicy` that names the field
(``risk_multipliers.2``, ``agreements.0xab….method``, …).

Schema (version 1)::

    version = 1                          # required; the only version
    operator = "0x…"                     # required: receives the operator fee
    operator_fee_bps = 250               # required: integer in [0, 10000], per agreement
    method = "output"                    # required: the default method, one of
                                         #   output | cost | risk | shapley | mix | valuation
    default_quality_bps = 10000          # optional (10000): output-method quality for a
                                         #   provider without QualityAttestations
    evaluator = "0x…"                    # required when any agreement uses shapley or
                                         #   valuation: only CoalitionValues and
                                         #   ValuationResults signed by it count
    require_operator_countersign = false # optional (false): when true, a
                                         #   ContributionDeclaration counts only if it
                                         #   carries a second signature (an operator's;
                                         #   ingest and the audit check the role)
    default_risk_tier = "1"              # optional: tier of a provider that declared none

    [risk_multipliers]                   # required when risk is used (alone or in a mix)
    "1" = 1                              # tier (the declared uint, in decimal) ->
    "2" = "3/2"                          #   exact multiplier
    "3" = 2

    [mix]                                # required when method is mix
    output = "1/2"                       # method -> exact coefficient (need not sum to 1)
    cost = "1/2"

    [points]                             # optional: contribution points (积分) and the
    unit = "10000000000000000"           #   operator-fee rebate of high contributors
    threshold = 100                      #   (see service.settlement.points; written out
    fee_discount_bps = 5000              #   only when present: older hashes unchanged)

    [agreements."0x<64 hex>"]            # optional per-agreement override of any of
    method = "shapley"                   #   method, default_quality_bps, risk_multipliers,
                                         #   default_risk_tier, mix

Exact numbers (multipliers, mix coefficients) are non-negative integers or strings: a
fraction ``"3/2"`` or a decimal ``"1.5"``; floats are refused (``1.5`` written bare is a
binary float in TOML and JSON, not three halves). Booleans are not integers. Unknown keys
are errors, so a typo cannot silently fall back to a default.

Canonical form and hash. The parsed document is *normalized*: every top-level field
present with its default filled in (``evaluator`` and ``default_risk_tier`` only when
set), addresses and agreement ids in lower-case hex, exact numbers as reduced-fraction
strings (``"3/2"``, ``"2"``), overrides holding only the fields they set. The canonical
bytes are the RFC 8785 (JSON Canonicalization Scheme) serialization of that object, and

    policy_hash = SHA-256(canonical bytes)

(SHA-256, like entry ids: ``sha256sum policy.json`` of the round's written policy file
gives the on-chain ``policyHash``). The same policy in TOML or JSON, with keys in any
order or addresses in any case, has one hash.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Final, cast, get_args

import rfc8785

from service import jsonsafe
from service.errors import InvalidPolicy
from service.evidence.eip712 import parse_address
from service.settlement.methods import BASIC_METHODS, BPS, Method, MethodParams
from service.settlement.points import PointsRule

__all__ = [
    "POLICY_VERSION",
    "AgreementPolicy",
    "Policy",
    "canonical_policy_bytes",
    "load_policy",
    "parse_policy",
    "parse_policy_text",
    "policy_hash",
]

POLICY_VERSION: Final = 1
METHODS: Final[tuple[str, ...]] = get_args(Method)

_TOP_KEYS: Final = frozenset(
    {
        "version",
        "operator",
        "operator_fee_bps",
        "method",
        "default_quality_bps",
        "evaluator",
        "require_operator_countersign",
        "default_risk_tier",
        "risk_multipliers",
        "mix",
        "agreements",
        "points",
    }
)
_OVERRIDE_KEYS: Final = frozenset(
    {"method", "default_quality_bps", "risk_multipliers", "default_risk_tier", "mix"}
)
_AGREEMENT_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")
_TIER = re.compile(r"^(0|[1-9][0-9]*)$")
_FRACTION = re.compile(r"^[0-9]+/[1-9][0-9]*$")
_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")


# --- the parsed policy ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgreementPolicy:
    """The method and its parameters in force for one agreement."""

    method: Method
    params: MethodParams

    def uses(self, basic: str) -> bool:
        """Whether ``basic`` enters this agreement's weights (directly or in the mix)."""
        if self.method == "mix":
            return bool(self.params.mix.get(basic))
        return self.method == basic


@dataclass(frozen=True)
class Policy:
    """A validated policy. Build it with :func:`parse_policy` or :func:`load_policy`."""

    operator: str
    """Fee recipient, lower-case hex."""
    operator_fee_bps: int
    default: AgreementPolicy
    evaluator: str | None = None
    """Lower-case hex; the only signer whose CoalitionValues count."""
    require_operator_countersign: bool = False
    overrides: Mapping[str, AgreementPolicy] = field(default_factory=dict)
    """Lower-case agreement id (0x + 64 hex) -> the policy for that agreement."""
    document: Mapping[str, Any] = field(default_factory=dict)
    """The normalized document (what is canonicalized and hashed)."""
    points: PointsRule | None = None
    """Contribution points and fee rebates (:mod:`service.settlement.points`); None: off."""

    def for_agreement(self, agreement_id: str) -> AgreementPolicy:
        """The method and parameters for ``agreement_id`` (0x hex, any case)."""
        return self.overrides.get(agreement_id.lower(), self.default)

    @property
    def canonical_bytes(self) -> bytes:
        """RFC 8785 canonical JSON of the normalized document."""
        return canonical_policy_bytes(self.document)

    @property
    def hash(self) -> bytes:
        """``SHA-256(canonical bytes)``: the round's ``policyHash`` on chain (32 bytes)."""
        return hashlib.sha256(self.canonical_bytes).digest()

    @property
    def hash_hex(self) -> str:
        return "0x" + self.hash.hex()


def canonical_policy_bytes(document: Mapping[str, Any]) -> bytes:
    """RFC 8785 serialization of a normalized policy document."""
    try:
        out: bytes = rfc8785.dumps(document)
    except rfc8785.CanonicalizationError as err:  # pragma: no cover - normalized docs are safe
        raise InvalidPolicy(f"the policy cannot be canonicalized: {err}") from None
    return out


def policy_hash(policy: Policy | Mapping[str, Any]) -> bytes:
    """The on-chain policy hash of a policy (or of a document, parsed first)."""
    parsed = policy if isinstance(policy, Policy) else parse_policy(policy)
    return parsed.hash


# --- field validators -------------------------------------------------------------------------


def _fail(where: str, message: str) -> InvalidPolicy:
    return InvalidPolicy(f"policy field '{where}': {message}", field=where)


def _int(value: object, where: str, *, low: int, high: int) -> int:
    if type(value) is not int:
        raise _fail(where, f"must be an integer, got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise _fail(where, f"must be in [{low}, {high}], got {value}")
    return value


def _address(value: object, where: str) -> str:
    try:
        address = parse_address(value)
    except ValueError as err:
        raise _fail(where, str(err)) from None
    if int(address, 16) == 0:
        raise _fail(where, "the zero address cannot be paid or sign")
    return address.lower()


def _exact(value: object, where: str) -> Fraction:
    if type(value) is int:
        if value < 0:
            raise _fail(where, f"must not be negative, got {value}")
        return Fraction(value)
    if isinstance(value, float):
        raise _fail(
            where,
            f"{value!r} is a binary float; write an integer or a string such as "
            f'"3/2" or "{value}" so the number is exact',
        )
    if isinstance(value, str):
        text = value.strip()
        if _FRACTION.match(text) or _DECIMAL.match(text):
            return Fraction(text)
        raise _fail(where, f'must be an integer, "p/q" or a decimal string like "1.5": {value!r}')
    raise _fail(where, f"must be a non-negative exact number, got {type(value).__name__}")


def _exact_str(value: Fraction) -> str:
    return str(value)  # "3/2" or "2": reduced


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, f"must be a table (object), got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise _fail(where, f"keys must be strings, got {key!r}")
    return value


def _method(value: object, where: str) -> Method:
    if value not in METHODS:
        raise _fail(where, f"must be one of {', '.join(METHODS)}, got {value!r}")
    return cast(Method, value)


def _multipliers(value: object, where: str) -> dict[str, Fraction]:
    table = _table(value, where)
    out: dict[str, Fraction] = {}
    for tier, m in table.items():
        if not _TIER.match(tier):
            raise _fail(
                f"{where}.{tier}",
                "a risk tier is the declared value in decimal (0, 1, 2, …, no leading zeros)",
            )
        out[tier] = _exact(m, f"{where}.{tier}")
    return out


def _mix(value: object, where: str) -> dict[str, Fraction]:
    table = _table(value, where)
    out: dict[str, Fraction] = {}
    for name, coefficient in table.items():
        if name not in BASIC_METHODS:
            raise _fail(
                f"{where}.{name}", f"a mix combines {', '.join(BASIC_METHODS)}, not {name!r}"
            )
        out[name] = _exact(coefficient, f"{where}.{name}")
    # an empty table is what the canonical form holds for a policy that mixes nothing;
    # a policy whose method is mix is refused without coefficients by _check_usable
    if out and not any(out.values()):
        raise _fail(where, "every mix coefficient is zero")
    return out


def _tier_name(value: object, where: str) -> str:
    if type(value) is int and value >= 0:
        return str(value)
    if isinstance(value, str) and _TIER.match(value):
        return value
    raise _fail(where, f"must be a risk tier (a decimal integer), got {value!r}")


def _params(
    doc: Mapping[str, Any], where: str, base: MethodParams | None
) -> tuple[MethodParams, dict[str, Any]]:
    """Method parameters from ``doc`` over ``base``; also their normalized document form."""
    prefix = f"{where}." if where else ""
    normalized: dict[str, Any] = {}
    quality = base.default_quality_bps if base else BPS
    if "default_quality_bps" in doc:
        quality = _int(doc["default_quality_bps"], f"{prefix}default_quality_bps", low=0, high=BPS)
        normalized["default_quality_bps"] = quality
    multipliers: Mapping[str, Fraction | int] = base.risk_multipliers if base else {}
    if "risk_multipliers" in doc:
        table = _multipliers(doc["risk_multipliers"], f"{prefix}risk_multipliers")
        multipliers = table
        normalized["risk_multipliers"] = {k: _exact_str(v) for k, v in table.items()}
    tier = base.default_risk_tier if base else None
    if "default_risk_tier" in doc:
        tier = _tier_name(doc["default_risk_tier"], f"{prefix}default_risk_tier")
        normalized["default_risk_tier"] = tier
    mix: Mapping[str, Fraction | int] = base.mix if base else {}
    if "mix" in doc:
        coefficients = _mix(doc["mix"], f"{prefix}mix")
        mix = coefficients
        normalized["mix"] = {k: _exact_str(v) for k, v in coefficients.items()}
    params = MethodParams(
        default_quality_bps=quality,
        risk_multipliers=dict(multipliers),
        default_risk_tier=tier,
        mix=dict(mix),
    )
    return params, normalized


def _check_usable(rule: AgreementPolicy, where: str, evaluator: str | None) -> None:
    """Cross-field rules: what the method in force needs must be in the policy."""
    prefix = f"{where}." if where else ""
    params = rule.params
    if rule.method == "mix" and not params.mix:
        raise _fail(f"{prefix}mix", "method mix needs a [mix] table of coefficients")
    if rule.uses("risk"):
        if not params.risk_multipliers:
            raise _fail(f"{prefix}risk_multipliers", "the risk method needs a multiplier table")
        tier = params.default_risk_tier
        if tier is not None and tier not in params.risk_multipliers:
            raise _fail(
                f"{prefix}default_risk_tier", f"tier {tier!r} is not in the risk_multipliers table"
            )
    if rule.uses("shapley") and evaluator is None:
        raise _fail("evaluator", "the shapley method needs the evaluator whose values count")
    if rule.uses("valuation") and evaluator is None:
        raise _fail("evaluator", "the valuation method needs the evaluator whose values count")


# --- parsing ----------------------------------------------------------------------------------


def _points(value: object) -> PointsRule:
    body = _table(value, "points")
    known = {"unit", "threshold", "fee_discount_bps"}
    extra = sorted(set(body) - known)
    if extra:
        raise _fail(f"points.{extra[0]}", f"unknown field (known: {', '.join(sorted(known))})")
    if "unit" not in body:
        raise _fail("points.unit", "is required: the revenue (token smallest units) per point")
    raw = body["unit"]
    if type(raw) is int or (isinstance(raw, str) and raw.isascii() and raw.isdigit()):
        unit = int(raw)
    else:
        raise _fail("points.unit", f"must be a positive integer or decimal string, got {raw!r}")
    if not 1 <= unit < 2**256:
        raise _fail("points.unit", f"must be in [1, 2**256), got {unit}")
    threshold = _int(body.get("threshold", 0), "points.threshold", low=0, high=2**63 - 1)
    discount = _int(body.get("fee_discount_bps", 0), "points.fee_discount_bps", low=0, high=BPS)
    return PointsRule(unit=unit, threshold=threshold, fee_discount_bps=discount)


def parse_policy(document: Mapping[str, Any]) -> Policy:
    """Validate a parsed policy document (from TOML or JSON) and normalize it."""
    doc = _table(document, "(policy)")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise _fail(unknown[0], f"unknown field (known: {', '.join(sorted(_TOP_KEYS))})")
    for required in ("version", "operator", "operator_fee_bps", "method"):
        if required not in doc:
            raise _fail(required, "is required")
    version = _int(doc["version"], "version", low=POLICY_VERSION, high=POLICY_VERSION)
    operator = _address(doc["operator"], "operator")
    fee = _int(doc["operator_fee_bps"], "operator_fee_bps", low=0, high=BPS)
    method = _method(doc["method"], "method")
    evaluator = _address(doc["evaluator"], "evaluator") if "evaluator" in doc else None
    countersign = doc.get("require_operator_countersign", False)
    if type(countersign) is not bool:
        raise _fail("require_operator_countersign", f"must be true or false, got {countersign!r}")

    params, normalized_params = _params(doc, "", None)
    default = AgreementPolicy(method=method, params=params)
    _check_usable(default, "", evaluator)

    overrides: dict[str, AgreementPolicy] = {}
    normalized_overrides: dict[str, Any] = {}
    for raw_id, override in _table(doc.get("agreements", {}), "agreements").items():
        where = f"agreements.{raw_id}"
        if not _AGREEMENT_ID.match(raw_id):
            raise _fail(where, "an agreement id is 0x followed by 64 hex digits")
        agreement_id = raw_id.lower()
        if agreement_id in overrides:
            raise _fail(where, "the same agreement is listed twice (in different case)")
        body = _table(override, where)
        extra = sorted(set(body) - _OVERRIDE_KEYS)
        if extra:
            raise _fail(
                f"{where}.{extra[0]}",
                f"unknown override field (known: {', '.join(sorted(_OVERRIDE_KEYS))})",
            )
        if not body:
            raise _fail(where, "an override must set at least one field")
        o_method = _method(body["method"], f"{where}.method") if "method" in body else method
        o_params, o_normalized = _params(body, where, params)
        rule = AgreementPolicy(method=o_method, params=o_params)
        _check_usable(rule, where, evaluator)
        overrides[agreement_id] = rule
        if "method" in body:
            o_normalized["method"] = o_method
        normalized_overrides[agreement_id] = o_normalized

    normalized: dict[str, Any] = {
        "version": version,
        "operator": operator,
        "operator_fee_bps": fee,
        "method": method,
        "default_quality_bps": params.default_quality_bps,
        "require_operator_countersign": countersign,
        "risk_multipliers": {
            k: _exact_str(Fraction(v)) for k, v in params.risk_multipliers.items()
        },
        "mix": {k: _exact_str(Fraction(v)) for k, v in params.mix.items()},
        "agreements": normalized_overrides,
    }
    if evaluator is not None:
        normalized["evaluator"] = evaluator
    points = _points(doc["points"]) if "points" in doc else None
    if points is not None:
        normalized["points"] = points.document()
    if params.default_risk_tier is not None:
        normalized["default_risk_tier"] = params.default_risk_tier
    del normalized_params  # the top level is written out in full above
    return Policy(
        operator=operator,
        operator_fee_bps=fee,
        default=default,
        evaluator=evaluator,
        require_operator_countersign=countersign,
        overrides=overrides,
        document=normalized,
        points=points,
    )


def load_policy(source: Path | str) -> Policy:
    """Read and validate a policy file: ``.toml`` as TOML, anything else as JSON."""
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidPolicy(f"no policy file {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidPolicy(f"cannot read policy file {path}: {err}") from None
    return parse_policy_text(text, toml=path.suffix.lower() == ".toml", name=path.name)


def parse_policy_text(text: str, *, toml: bool, name: str = "policy") -> Policy:
    """Parse and validate policy text (TOML when ``toml``, else JSON)."""
    document: Any
    if toml:
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise InvalidPolicy(f"{name} is not valid TOML: {err}") from None
    else:
        try:
            document = jsonsafe.loads(text, what=name)
        except json.JSONDecodeError as err:
            raise InvalidPolicy(f"{name} is not valid JSON: {err}") from None
    if not isinstance(document, dict):
        raise InvalidPolicy(f"{name} must hold a table (JSON object) at the top")
    return parse_policy(document)
