"""The ODRL usage-terms profile: parsing (and refusing), narrowing, evaluation."""

from __future__ import annotations

import hashlib
import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from service.catalog.canonical import canonical_text, document_hash, parse_canonical
from service.catalog.terms import (
    PURPOSES,
    check_narrows,
    evaluate,
    parse_terms,
    purpose_nonce,
    purpose_of_nonce,
    window_index,
    windows,
)
from service.errors import (
    AgreementNotValid,
    PurposeNotPermitted,
    QuotaExceeded,
    TermsNotNarrower,
    TermsUnsupported,
)
from tests.catalog.helpers import DAY, T0, count, date, purpose, terms_doc


def test_parse_full_profile() -> None:
    doc = terms_doc(
        count(1000),
        count(100, window=DAY),
        date("gteq", "2026-01-01T00:00:00Z"),
        date("lt", "2026-07-01T00:00:00Z"),
        purpose("research", "insurance-pricing"),
        prohibitions=[
            {"action": "distribute"},
            {"action": "use", "constraint": [purpose("marketing")]},
        ],
    )
    t = parse_terms(canonical_text(doc))
    assert t.quota(0) == 1000 and t.quota(DAY) == 100
    assert t.not_before == T0 and t.not_after == 1_782_864_000
    assert t.purposes == {"research", "insurance-pricing"}
    assert t.prohibited_purposes == {"marketing"} and t.prohibited_actions == {"distribute"}
    assert t.compensate
    assert windows(t) == (0, DAY)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d["permission"][0].update(action="read"), "action must be use"),
        (
            lambda d: d["permission"][0]["constraint"].append(
                {"leftOperand": "spatial", "operator": "eq", "rightOperand": "CN"}
            ),
            "unsupported leftOperand 'spatial'",
        ),
        (
            lambda d: d["permission"][0]["constraint"].append(
                {"leftOperand": "count", "operator": "gteq", "rightOperand": 5}
            ),
            "count supports operators lteq, lt",
        ),
        (
            lambda d: d["permission"][0]["constraint"].append(purpose("astrology")),
            "unknown purpose 'astrology'",
        ),
        (
            lambda d: d["permission"][0]["constraint"].append(
                {
                    "leftOperand": "dateTime",
                    "operator": "eq",
                    "rightOperand": "2026-01-01T00:00:00Z",
                }
            ),
            "dateTime supports operators",
        ),
        (
            lambda d: d["permission"][0]["constraint"].append(
                date("gteq", "2026-01-01T00:00:00+08:00")
            ),
            "xsd:dateTime in UTC",
        ),
        (lambda d: d["permission"][0].update(refinement=[]), "unsupported key(s) refinement"),
        (lambda d: d.update(obligation=[]), "unsupported key(s) obligation"),
        (lambda d: d.update(profile="http://example.com/other"), "profile must be"),
        (lambda d: d["permission"].append({"action": "use"}), "exactly one permission"),
        (
            lambda d: d["permission"][0].update(duty=[{"action": "attribute"}]),
            "only the action compensate",
        ),
        (lambda d: d.update(prohibition=[{"action": "sing"}]), "unsupported action 'sing'"),
        (
            lambda d: d["permission"][0]["constraint"].append(
                {"or": [count(1), count(2)]}
            ),  # a logical constraint
            "unsupported key(s) or",
        ),
    ],
)
def test_parse_refuses_what_the_profile_does_not_support(mutate: object, needle: str) -> None:
    doc = terms_doc(count(10))
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(TermsUnsupported, match="terms: ") as info:
        parse_terms(canonical_text(doc))
    assert needle in info.value.message
    assert info.value.code == "terms_unsupported"


def test_parse_refuses_non_canonical_text() -> None:
    text = json.dumps(terms_doc(count(10)), indent=1)
    with pytest.raises(TermsUnsupported, match="canonical form"):
        parse_terms(text)
    with pytest.raises(TermsUnsupported, match="non-integer"):
        parse_terms(canonical_text(terms_doc(count(10))).replace("10", "10.5"))


def test_canonical_text_is_rfc8785_and_hash_is_sha256_of_it() -> None:
    doc = {"b": [1, "ü", {"z": 1, "a": 2}], "a": "x"}
    text = canonical_text(doc)
    # independent implementation: JCS for these values is sorted keys, no spaces, UTF-8
    assert text == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert text.encode() == rfc8785.dumps(doc)
    assert document_hash(doc) == hashlib.sha256(text.encode()).digest()
    assert parse_canonical(text, what="x") == doc


def _t(*constraints: dict[str, object], prohibitions: list[object] | None = None) -> object:
    return parse_terms(terms_doc(*constraints, prohibitions=prohibitions))


def test_narrowing_accepts_tighter_terms() -> None:
    offer = _t(count(1000), count(100, DAY), purpose("research", "insurance-pricing"))
    mine = _t(count(500), count(50, DAY), purpose("research"), date("gteq", "2026-02-01T00:00:00Z"))
    check_narrows(offer, mine)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "mine",
    [
        [count(2000), count(100, DAY), purpose("research")],  # more units in total
        [count(1000), purpose("research")],  # drops the daily quota
        [count(1000), count(100, 7 * DAY), purpose("research")],  # another window
        [count(1000), count(100, DAY)],  # drops the purpose constraint
        [count(1000), count(100, DAY), purpose("research", "marketing")],  # adds a purpose
    ],
)
def test_narrowing_refuses_looser_terms(mine: list[dict[str, object]]) -> None:
    offer = _t(count(1000), count(100, DAY), purpose("research", "insurance-pricing"))
    with pytest.raises(TermsNotNarrower):
        check_narrows(offer, _t(*mine))  # type: ignore[arg-type]


def test_narrowing_keeps_prohibitions_and_validity() -> None:
    offer = _t(date("lt", "2026-06-01T00:00:00Z"), prohibitions=[{"action": "distribute"}])
    with pytest.raises(TermsNotNarrower, match="drops a prohibition"):
        check_narrows(offer, _t(date("lt", "2026-06-01T00:00:00Z")))  # type: ignore[arg-type]
    with pytest.raises(TermsNotNarrower, match="end after"):
        check_narrows(offer, _t(prohibitions=[{"action": "distribute"}]))  # type: ignore[arg-type]


def test_evaluate_rejects_with_stable_codes_and_numbers() -> None:
    t = parse_terms(
        terms_doc(count(100), date("gteq", "2026-01-01T00:00:00Z"), purpose("research"))
    )
    ok = purpose_nonce("research", 1)
    evaluate(t, units=40, period_start=T0, period_end=T0 + 60, nonce=ok, used={0: 60})
    with pytest.raises(QuotaExceeded) as info:
        evaluate(t, units=41, period_start=T0, period_end=T0 + 60, nonce=ok, used={0: 60})
    assert info.value.detail["used"] == 60 and info.value.detail["allowed"] == 100
    assert "60 units used + 41 > 100 allowed" in info.value.message
    with pytest.raises(AgreementNotValid):
        evaluate(t, units=1, period_start=T0 - 1, period_end=T0 + 60, nonce=ok, used={})
    with pytest.raises(PurposeNotPermitted, match="marketing"):
        evaluate(
            t, units=1, period_start=T0, period_end=T0 + 1, nonce=purpose_nonce("marketing", 1),
            used={},
        )  # fmt: skip
    with pytest.raises(PurposeNotPermitted, match="not declared"):
        evaluate(t, units=1, period_start=T0, period_end=T0 + 1, nonce=1, used={})


def test_prohibited_purpose_is_refused_without_a_permission_list() -> None:
    t = parse_terms(
        terms_doc(prohibitions=[{"action": "use", "constraint": [purpose("marketing")]}])
    )
    evaluate(t, units=1, period_start=T0, period_end=T0 + 1, nonce=1, used={})
    with pytest.raises(PurposeNotPermitted, match="prohibit"):
        evaluate(
            t, units=1, period_start=T0, period_end=T0 + 1, nonce=purpose_nonce("marketing", 9),
            used={},
        )  # fmt: skip


@given(
    code=st.integers(0, len(PURPOSES)),
    counter=st.integers(0, 2**48 - 1),
)
@settings(max_examples=200)
def test_purpose_nonce_round_trips(code: int, counter: int) -> None:
    p = None if code == 0 else PURPOSES[code - 1]
    nonce = purpose_nonce(p, counter)
    assert purpose_of_nonce(nonce) == p
    assert nonce & (2**48 - 1) == counter and nonce < 2**63


@given(
    total=st.integers(0, 300),
    daily=st.integers(0, 100),
    receipts=st.lists(
        st.tuples(st.integers(0, 60), st.integers(0, 5 * DAY - 1)), min_size=0, max_size=40
    ),
)
@settings(max_examples=150, deadline=None)
def test_accepted_units_never_exceed_any_quota(
    total: int, daily: int, receipts: list[tuple[int, int]]
) -> None:
    """Replaying receipts through the evaluator with the counters ingest keeps: what is
    accepted never exceeds a quota, and a receipt is refused only if it would have."""
    t = parse_terms(terms_doc(count(total), count(daily, DAY)))
    used: dict[tuple[int, int], int] = {}
    for units, offset in receipts:
        start = T0 + offset
        keys = {w: (w, window_index(w, start)) for w in windows(t)}
        now = {w: used.get(k, 0) for w, k in keys.items()}
        fits = now[0] + units <= total and now[DAY] + units <= daily
        try:
            evaluate(t, units=units, period_start=start, period_end=start + 1, nonce=0, used=now)
        except QuotaExceeded:
            assert not fits
            continue
        assert fits
        for k in keys.values():
            used[k] = used.get(k, 0) + units
    assert sum(v for (w, _), v in used.items() if w == 0) <= total
    assert all(v <= daily for (w, _), v in used.items() if w == DAY)


limits = st.integers(0, 10_000)


@given(
    total=limits,
    daily=limits,
    codes=st.sets(st.sampled_from(PURPOSES), min_size=1),
    cut_total=st.integers(0, 10_000),
    cut_daily=st.integers(0, 10_000),
    keep=st.integers(0, 8),
)
@settings(max_examples=150)
def test_narrowing_is_exactly_never_allowing_more(
    total: int, daily: int, codes: set[str], cut_total: int, cut_daily: int, keep: int
) -> None:
    """A candidate with lower-or-equal limits and a subset of purposes narrows the
    offer; raising any limit or adding a purpose does not."""
    offer = _t(count(total), count(daily, DAY), purpose(*sorted(codes)))
    subset = sorted(codes)[: max(1, keep % (len(codes) + 1))]
    tighter = (min(total, cut_total), min(daily, cut_daily))
    check_narrows(offer, _t(count(tighter[0]), count(tighter[1], DAY), purpose(*subset)))  # type: ignore[arg-type]
    with pytest.raises(TermsNotNarrower):
        check_narrows(offer, _t(count(total + 1), count(daily, DAY), purpose(*subset)))  # type: ignore[arg-type]
    with pytest.raises(TermsNotNarrower):
        check_narrows(offer, _t(count(total), count(daily + 1, DAY), purpose(*subset)))  # type: ignore[arg-type]
    extra = [p for p in PURPOSES if p not in codes]
    if extra:
        with pytest.raises(TermsNotNarrower):
            check_narrows(offer, _t(count(total), count(daily, DAY), purpose(*subset, extra[0])))  # type: ignore[arg-type]


def test_receipt_with_an_unknown_purpose_code_is_refused() -> None:
    """A nonce whose top bits name no purpose of the profile (a forged code)."""
    t = parse_terms(terms_doc(purpose(*PURPOSES)))
    forged = (len(PURPOSES) + 5) << 48
    assert purpose_of_nonce(forged) == f"#{len(PURPOSES) + 5}"
    with pytest.raises(PurposeNotPermitted, match="#14"):
        evaluate(t, units=1, period_start=T0, period_end=T0 + 1, nonce=forged, used={})
