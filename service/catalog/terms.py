"""Usage terms: a small ODRL 2.2 profile, its parser and its evaluator (pure, no I/O).

A terms document is an ODRL 2.2 policy in JSON-LD, stored as RFC 8785 canonical JSON
(an Offer's ``terms`` field; SHA-256 of its bytes is an AgreementV2's ``termsHash``)::

    {"@context": ["http://www.w3.org/ns/odrl.jsonld", {"tally": "https://tally.dev/odrl#"}],
     "@type": "Set", "profile": "https://tally.dev/odrl/v1",
     "permission": [{"action": "use",
                     "constraint": [{"leftOperand": "count", "operator": "lteq",
                                     "rightOperand": 10000},
                                    {"leftOperand": "count", "operator": "lteq",
                                     "rightOperand": 500, "tally:window": 86400},
                                    {"leftOperand": "dateTime", "operator": "gteq",
                                     "rightOperand": "2026-01-01T00:00:00Z"},
                                    {"leftOperand": "purpose", "operator": "isAnyOf",
                                     "rightOperand": ["insurance-pricing", "research"]}],
                     "duty": [{"action": "compensate"}]}],
     "prohibition": [{"action": "distribute"}]}

What the profile supports (everything else is refused by :func:`parse_terms` with
:class:`TermsUnsupported`, code ``terms_unsupported``, naming the offending part):

- policy ``@type`` ``Set``, ``Offer`` or ``Agreement``; ``profile`` exactly :data:`PROFILE`;
  optional ``uid`` (a string). Exactly one permission.
- permission ``action`` ``use``; its constraints are all required (ODRL's implicit
  ``and``); no ``refinement``, no logical constraints (``or``, ``xone``, ``andSequence``).
- ``count`` ``lteq`` / ``lt`` an integer: units (the receipts' ``units``) in total over
  the agreement; with ``"tally:window": P`` (seconds) per window: a receipt counts in
  window ``periodStart // P`` (windows aligned to the unix epoch).
- ``dateTime`` ``gteq`` / ``gt`` / ``lteq`` / ``lt`` an xsd:dateTime in UTC
  (``YYYY-MM-DDThh:mm:ssZ``): the receipt's whole period ``[periodStart, periodEnd)``
  must satisfy it (``lt T``: periodEnd <= T; ``lteq T``: periodEnd <= T + 1).
- ``purpose`` ``eq`` a code, or ``isAnyOf`` a list of codes, from :data:`PURPOSES`.
- permission ``duty``: ``{"action": "compensate"}`` (the duty to pay; what is owed is
  the offer's pricing, billed by settlement, not checked per receipt).
- ``prohibition``: ``{"action": A}`` for A in :data:`PROHIBITABLE` (declared; an
  operator cannot see distribution, so ingest does not evaluate them), or
  ``{"action": "use", "constraint": [purpose isAnyOf/eq ...]}`` (evaluated: a receipt
  with such a purpose is refused).

A receipt's purpose: UsageReceipt has no purpose field and its EIP-712 type stays as it
is (settlement, clients and the docs read it); the purpose is carried, signed by both
parties, in the top 16 bits of the receipt's ``nonce``: ``nonce >> 48`` is the 1-based
position of the code in :data:`PURPOSES` (0: none declared). The low 48 bits stay a
counter, so nonces remain unique per consumer and agreement (:func:`purpose_nonce`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from service.catalog.canonical import parse_canonical
from service.errors import (
    AgreementNotValid,
    PurposeNotPermitted,
    QuotaExceeded,
    TermsNotNarrower,
    TermsUnsupported,
)

if TYPE_CHECKING:
    from service.evidence.entries import UsageReceipt

__all__ = [
    "CONTEXT",
    "PROFILE",
    "PROHIBITABLE",
    "PURPOSES",
    "PURPOSE_SHIFT",
    "Quota",
    "Terms",
    "check_narrows",
    "evaluate",
    "evaluate_receipt",
    "parse_terms",
    "purpose_code",
    "purpose_nonce",
    "purpose_of_nonce",
]

PROFILE: Final = "https://tally.dev/odrl/v1"
CONTEXT: Final = ["http://www.w3.org/ns/odrl.jsonld", {"tally": "https://tally.dev/odrl#"}]
POLICY_TYPES: Final = frozenset({"Set", "Offer", "Agreement"})
PURPOSES: Final = (
    "research",
    "service-provision",
    "risk-assessment",
    "insurance-pricing",
    "product-development",
    "model-training",
    "marketing",
    "regulatory-reporting",
    "fraud-detection",
)
"""Purpose codes; a receipt names one by its 1-based position (see the module docstring)."""
PROHIBITABLE: Final = frozenset(
    {"distribute", "commercialize", "derive", "reproduce", "sell", "transfer", "aggregate"}
)
PURPOSE_SHIFT: Final = 48
_COUNTER_MASK: Final = (1 << PURPOSE_SHIFT) - 1
_DATETIME: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@dataclass(frozen=True)
class Quota:
    """At most ``limit`` units in total (``window`` 0) or per ``window`` seconds."""

    window: int
    limit: int


@dataclass(frozen=True)
class Terms:
    """A parsed terms document: the limits the evaluator applies."""

    quotas: tuple[Quota, ...] = ()
    not_before: int | None = None  # periodStart >= not_before
    not_after: int | None = None  # periodEnd <= not_after
    purposes: frozenset[str] | None = None  # None: any purpose (or none)
    prohibited_purposes: frozenset[str] = frozenset()
    prohibited_actions: frozenset[str] = frozenset()
    compensate: bool = False
    document: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def quota(self, window: int) -> int | None:
        """The tightest limit for ``window`` (0: total), or None."""
        limits = [q.limit for q in self.quotas if q.window == window]
        return min(limits) if limits else None


# --- purposes in nonces ------------------------------------------------------------------


def purpose_code(purpose: str) -> int:
    """The 1-based code of a purpose (``ValueError`` for an unknown one)."""
    try:
        return PURPOSES.index(purpose) + 1
    except ValueError:
        raise ValueError(f"unknown purpose {purpose!r}; known: {', '.join(PURPOSES)}") from None


def purpose_nonce(purpose: str | None, counter: int) -> int:
    """A receipt nonce carrying ``purpose`` (None: no purpose) and a 48-bit counter."""
    if not 0 <= counter <= _COUNTER_MASK:
        raise ValueError(f"the nonce counter must be in [0, 2**48 - 1], got {counter}")
    code = 0 if purpose is None else purpose_code(purpose)
    return (code << PURPOSE_SHIFT) | counter


def purpose_of_nonce(nonce: int) -> str | None:
    """The purpose a receipt nonce carries; None for none; ``"#n"`` for an unknown code."""
    code = nonce >> PURPOSE_SHIFT
    if code == 0:
        return None
    if code <= len(PURPOSES):
        return PURPOSES[code - 1]
    return f"#{code}"


# --- parsing ---------------------------------------------------------------------------


def _fail(message: str) -> TermsUnsupported:
    return TermsUnsupported(f"terms: {message}")


def _keys(obj: Any, where: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _fail(f"{where} must be an object")
    extra = sorted(set(obj) - allowed)
    if extra:
        raise _fail(f"{where} has unsupported key(s) {', '.join(extra)}")
    missing = sorted(required - set(obj))
    if missing:
        raise _fail(f"{where} needs {', '.join(missing)}")
    return obj


def _list(obj: Any, where: str) -> list[Any]:
    if not isinstance(obj, list):
        raise _fail(f"{where} must be a list")
    return obj


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(f"{where} must be a non-negative integer")
    return value


def _time(value: Any, where: str) -> int:
    if not isinstance(value, str) or not _DATETIME.match(value):
        raise _fail(f"{where} must be an xsd:dateTime in UTC, YYYY-MM-DDThh:mm:ssZ")
    try:
        parsed = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise _fail(f"{where} is not a real date and time: {value}") from None
    return int(parsed.timestamp())


def _purposes(op: str, value: Any, where: str) -> frozenset[str]:
    if op == "eq":
        codes = [value]
    elif op == "isAnyOf":
        codes = _list(value, where)
        if not codes:
            raise _fail(f"{where} lists no purpose")
    else:
        raise _fail(f"{where}: purpose supports operators eq, isAnyOf, not {op!r}")
    for code in codes:
        if code not in PURPOSES:
            raise _fail(f"{where}: unknown purpose {code!r}; known: {', '.join(PURPOSES)}")
    return frozenset(codes)


_CONSTRAINT_KEYS = {"leftOperand", "operator", "rightOperand", "tally:window"}


def _constraint(c: Any, where: str, out: dict[str, Any]) -> None:
    c = _keys(c, where, _CONSTRAINT_KEYS, {"leftOperand", "operator", "rightOperand"})
    left, op, right = c["leftOperand"], c["operator"], c["rightOperand"]
    if "tally:window" in c and left != "count":
        raise _fail(f"{where}: tally:window applies to count only")
    if left == "count":
        if op not in ("lteq", "lt"):
            raise _fail(f"{where}: count supports operators lteq, lt, not {op!r}")
        limit = _int(right, f"{where}.rightOperand")
        if op == "lt":
            if limit == 0:
                raise _fail(f"{where}: count lt 0 allows nothing")
            limit -= 1
        window = _int(c.get("tally:window", 0), f"{where}.tally:window")
        if "tally:window" in c and window == 0:
            raise _fail(f"{where}: tally:window must be a positive number of seconds")
        out["quotas"].append(Quota(window, limit))
    elif left == "dateTime":
        t = _time(right, f"{where}.rightOperand")
        if op in ("gteq", "gt"):
            start = t if op == "gteq" else t + 1
            out["not_before"] = max(out["not_before"] or 0, start)
        elif op in ("lteq", "lt"):
            end = t + 1 if op == "lteq" else t
            out["not_after"] = end if out["not_after"] is None else min(out["not_after"], end)
        else:
            raise _fail(f"{where}: dateTime supports operators gteq, gt, lteq, lt, not {op!r}")
    elif left == "purpose":
        found = _purposes(op, right, where)
        prior = out["purposes"]
        out["purposes"] = found if prior is None else prior & found
    else:
        raise _fail(
            f"{where}: unsupported leftOperand {left!r} (supported: count, dateTime, purpose)"
        )


def parse_terms(text: str | dict[str, Any]) -> Terms:
    """Parse a terms document (canonical JSON text, or the decoded object).

    Raises :class:`TermsUnsupported` naming the first unsupported or malformed part.
    """
    if isinstance(text, str):
        try:
            doc = parse_canonical(text, what="terms")
        except ValueError as exc:
            raise _fail(str(exc)) from None
    else:
        doc = text
    doc = _keys(
        doc,
        "the policy",
        {"@context", "@type", "profile", "uid", "permission", "prohibition"},
        {"@context", "@type", "profile", "permission"},
    )
    if doc["@context"] != CONTEXT:
        raise _fail(f"@context must be {CONTEXT}")
    if doc["@type"] not in POLICY_TYPES:
        raise _fail(f"@type must be one of {', '.join(sorted(POLICY_TYPES))}")
    if doc["profile"] != PROFILE:
        raise _fail(f"profile must be {PROFILE}")
    if "uid" in doc and not isinstance(doc["uid"], str):
        raise _fail("uid must be a string")
    permissions = _list(doc["permission"], "permission")
    if len(permissions) != 1:
        raise _fail("exactly one permission (action use) is supported")
    perm = _keys(permissions[0], "permission[0]", {"action", "constraint", "duty"}, {"action"})
    if perm["action"] != "use":
        raise _fail(f"permission[0].action must be use, not {perm['action']!r}")
    out: dict[str, Any] = {"quotas": [], "not_before": None, "not_after": None, "purposes": None}
    for i, c in enumerate(_list(perm.get("constraint", []), "permission[0].constraint")):
        _constraint(c, f"permission[0].constraint[{i}]", out)
    compensate = False
    for i, d in enumerate(_list(perm.get("duty", []), "permission[0].duty")):
        d = _keys(d, f"permission[0].duty[{i}]", {"action"}, {"action"})
        if d["action"] != "compensate":
            raise _fail(f"permission[0].duty[{i}]: only the action compensate is supported")
        compensate = True
    actions: set[str] = set()
    banned: set[str] = set()
    for i, p in enumerate(_list(doc.get("prohibition", []), "prohibition")):
        where = f"prohibition[{i}]"
        p = _keys(p, where, {"action", "constraint"}, {"action"})
        if p["action"] == "use":
            cs = _list(p.get("constraint", []), f"{where}.constraint")
            if len(cs) != 1:
                raise _fail(f"{where}: a use prohibition takes exactly one purpose constraint")
            c = _keys(cs[0], f"{where}.constraint[0]", _CONSTRAINT_KEYS - {"tally:window"},
                      {"leftOperand", "operator", "rightOperand"})  # fmt: skip
            if c["leftOperand"] != "purpose":
                raise _fail(f"{where}: a use prohibition is constrained by purpose only")
            banned |= _purposes(c["operator"], c["rightOperand"], f"{where}.constraint[0]")
        elif p["action"] in PROHIBITABLE:
            if "constraint" in p:
                raise _fail(f"{where}: a {p['action']} prohibition takes no constraint")
            actions.add(p["action"])
        else:
            known = ", ".join(sorted(PROHIBITABLE | {"use"}))
            raise _fail(f"{where}: unsupported action {p['action']!r} (supported: {known})")
    nb, na = out["not_before"], out["not_after"]
    if nb is not None and na is not None and nb >= na:
        raise _fail("the dateTime constraints leave no time at all")
    return Terms(
        quotas=tuple(sorted(set(out["quotas"]), key=lambda q: (q.window, q.limit))),
        not_before=nb,
        not_after=na,
        purposes=out["purposes"],
        prohibited_purposes=frozenset(banned),
        prohibited_actions=frozenset(actions),
        compensate=compensate,
        document=doc,
    )


# --- narrowing and evaluation ----------------------------------------------------------


def check_narrows(offer: Terms, agreement: Terms) -> None:
    """Raise :class:`TermsNotNarrower` unless ``agreement`` allows no more than ``offer``.

    Every offer quota must be matched by an agreement quota of the same window with a
    limit no higher; the validity must lie inside the offer's; the allowed purposes must
    be a subset; every prohibition and the duty to pay must be kept.
    """
    for q in offer.quotas:
        mine = agreement.quota(q.window)
        if mine is None or mine > q.limit:
            what = "in total" if q.window == 0 else f"per {q.window} s"
            raise TermsNotNarrower(
                f"the offer allows {q.limit} units {what}; the agreement allows "
                f"{'no limit' if mine is None else mine}"
            )
    if offer.not_before is not None and (
        agreement.not_before is None or agreement.not_before < offer.not_before
    ):
        raise TermsNotNarrower("the agreement's terms start before the offer's")
    if offer.not_after is not None and (
        agreement.not_after is None or agreement.not_after > offer.not_after
    ):
        raise TermsNotNarrower("the agreement's terms end after the offer's")
    if offer.purposes is not None and (
        agreement.purposes is None or not agreement.purposes <= offer.purposes
    ):
        raise TermsNotNarrower("the agreement allows purposes the offer does not")
    if not offer.prohibited_purposes <= agreement.prohibited_purposes:
        raise TermsNotNarrower("the agreement drops a purpose prohibition of the offer")
    if not offer.prohibited_actions <= agreement.prohibited_actions:
        raise TermsNotNarrower("the agreement drops a prohibition of the offer")
    if offer.compensate and not agreement.compensate:
        raise TermsNotNarrower("the agreement drops the offer's duty to pay")


def evaluate(
    terms: Terms,
    *,
    units: int,
    period_start: int,
    period_end: int,
    nonce: int,
    used: dict[int, int],
) -> None:
    """Raise unless a receipt is allowed; ``used[w]`` = units already accepted in the
    receipt's window of ``w`` seconds (``used[0]``: in total), not counting this one.

    Order: validity (``agreement_not_valid``), purpose (``purpose_not_permitted``),
    quotas (``quota_exceeded``, with used / allowed in the message and detail).
    """
    if terms.not_before is not None and period_start < terms.not_before:
        raise AgreementNotValid(
            f"the receipt's period starts at {period_start}, before the terms allow "
            f"({terms.not_before})"
        )
    if terms.not_after is not None and period_end > terms.not_after:
        raise AgreementNotValid(
            f"the receipt's period ends at {period_end}, after the terms allow ({terms.not_after})"
        )
    purpose = purpose_of_nonce(nonce)
    if terms.purposes is not None and purpose not in terms.purposes:
        allowed = ", ".join(sorted(terms.purposes))
        raise PurposeNotPermitted(
            f"the receipt's purpose is {purpose or 'not declared'}; the terms allow {allowed}"
        )
    if purpose is not None and purpose in terms.prohibited_purposes:
        raise PurposeNotPermitted(f"the terms prohibit use for {purpose}")
    for q in terms.quotas:
        already = used.get(q.window, 0)
        if already + units > q.limit:
            what = "in total" if q.window == 0 else f"in this {q.window} s window"
            raise QuotaExceeded(
                f"quota exceeded {what}: {already} units used + {units} > {q.limit} allowed",
                used=already,
                requested=units,
                allowed=q.limit,
                window=q.window,
            )


def evaluate_receipt(terms: Terms, receipt: UsageReceipt, used: dict[int, int]) -> None:
    """:func:`evaluate` of a UsageReceipt's units, period and nonce: the operator's gate and
    the auditor's replay check a receipt the same way."""
    evaluate(
        terms,
        units=receipt.units,
        period_start=receipt.periodStart,
        period_end=receipt.periodEnd,
        nonce=receipt.nonce,
        used=used,
    )


def windows(terms: Terms) -> tuple[int, ...]:
    """The distinct quota windows of ``terms`` (0: total), ascending."""
    return tuple(sorted({q.window for q in terms.quotas}))


def window_index(window: int, period_start: int) -> int:
    """The index of the window a receipt starting at ``period_start`` counts in."""
    return 0 if window == 0 else period_start // window
