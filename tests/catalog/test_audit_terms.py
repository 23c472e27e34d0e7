"""The auditor re-evaluates usage terms from the log (``tally audit log``'s ``terms``
check): a receipt that broke its terms, let through by the operator, is named."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from service.audit.log import audit_log
from service.audit.terms import TermsAudit
from service.catalog.gate import TermsGate
from service.evidence.anchor import anchor_once
from service.evidence.directory import ChainDirectory
from service.evidence.entries import SignedEntry
from service.evidence.log import append_entries
from service.evidence.sources import SqlLogSource
from tests.catalog.helpers import (
    DAY,
    T0,
    agreement,
    count,
    offer,
    purpose,
    receipt,
    resign,
    terms_doc,
)
from tests.space import Space

TERMS = terms_doc(count(20), purpose("research"))


def test_terms_audit_names_receipts_that_broke_their_terms() -> None:
    audit = TermsAudit()
    entries = [
        offer(terms=TERMS),
        agreement(terms=TERMS),
        receipt(1, units=15, purpose_code="research"),
        receipt(2, units=10, purpose_code="research"),  # 25 > 20
        receipt(3, units=1, purpose_code="marketing"),
        receipt(4, units=1, purpose_code="research", agreement="no-terms"),
    ]
    for i, e in enumerate(entries):
        audit.feed(i, e.encode())
    assert audit.checked == 3
    assert len(audit.problems) == 2
    assert audit.problems[0].startswith("leaf 3 (UsageReceipt 0x")
    assert "quota_exceeded: quota exceeded in total: 15 units used + 10 > 20" in audit.problems[0]
    assert "leaf 4" in audit.problems[1] and "purpose_not_permitted" in audit.problems[1]


def test_terms_audit_uses_narrowed_documents_only_when_their_hash_matches() -> None:
    from service.catalog.canonical import canonical_text

    narrowed = terms_doc(count(5), purpose("research"))
    entries = [
        offer(terms=TERMS),
        agreement(terms=narrowed),
        receipt(1, units=6, purpose_code="research"),
    ]
    blind = TermsAudit()
    forged = TermsAudit(documents=lambda h: canonical_text(TERMS))  # the wrong document
    sees = TermsAudit(documents=lambda h: canonical_text(narrowed))
    for audit in (blind, forged, sees):
        for i, e in enumerate(entries):
            audit.feed(i, e.encode())
    assert blind.problems == forged.problems == [] and len(blind.unchecked) == 1
    assert "unchecked" in blind.summary()
    assert len(sees.problems) == 1 and "6 > 5" in sees.problems[0]


def _ingest(engine: Engine, space: Space, entries: list[SignedEntry]) -> list[str]:
    directory = ChainDirectory(space.chain, space.contracts.registry)
    results = append_entries(
        engine=engine,
        domain=space.domain,
        directory=directory,
        entries=[resign(e, space.domain) for e in entries],
    )
    return [r.code or r.status for r in results]


def _audit(engine: Engine, space: Space) -> object:
    anchor_once(
        engine=engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )
    return audit_log(chain=space.chain, ledger=space.contracts.ledger, proofs=SqlLogSource(engine))


def test_audit_log_passes_an_honest_log_with_terms(engine: Engine, space: Space) -> None:
    setup = [offer(terms=TERMS), agreement(terms=TERMS)]
    more = [
        receipt(1, units=15, purpose_code="research"),
        receipt(2, units=10, purpose_code="research"),
    ]
    assert _ingest(engine, space, setup + more) == ["accepted"] * 3 + ["quota_exceeded"]
    report = _audit(engine, space)
    assert report.ok, report.verdict  # type: ignore[attr-defined]
    (check,) = [c for c in report.checks if c.name == "terms"]  # type: ignore[attr-defined]
    assert check.ok is True and "1 receipt(s) under usage terms re-evaluated" in check.detail


def test_operator_lets_through_an_over_quota_receipt(
    engine: Engine, space: Space, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack: a patched gate accepts what the terms forbid. The log is consistent
    and anchored, so only the terms re-evaluation catches it, naming the receipt."""
    ok = [offer(terms=TERMS), agreement(terms=TERMS), receipt(1, units=15, purpose_code="research")]
    assert _ingest(engine, space, ok) == ["accepted"] * 3
    monkeypatch.setattr(TermsGate, "check", lambda self, signed: None)
    late = receipt(2, units=10, purpose_code="research", start=T0 + DAY)
    assert _ingest(engine, space, [late]) == ["accepted"]
    report = _audit(engine, space)
    assert not report.ok  # type: ignore[attr-defined]
    failed = report.first_failure  # type: ignore[attr-defined]
    assert failed.name == "terms"
    assert f"leaf 3 (UsageReceipt 0x{resign(late, space.domain).id().hex()}" in failed.detail
    assert "quota_exceeded" in failed.detail and "15 units used + 10 > 20" in failed.detail


def test_operator_lets_through_a_receipt_beyond_narrowed_terms_audited_over_the_api(
    engine: Engine, space: Space, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Narrowed terms are not log entries: the auditor fetches them (SQL source, or the
    public API through ``ApiSource``), checks their hash, and re-evaluates with them."""
    from sqlmodel import Session

    from service.audit.sources import ApiSource
    from service.catalog.index import register_terms
    from tests.audit.http import serve_api

    narrowed = terms_doc(count(8), purpose("research"))
    with Session(engine) as s:
        register_terms(session=s, document=narrowed)
    setup = [offer(terms=TERMS), agreement(terms=narrowed)]
    assert (
        _ingest(engine, space, [*setup, receipt(1, units=5, purpose_code="research")])
        == ["accepted"] * 3
    )
    monkeypatch.setattr(TermsGate, "check", lambda self, signed: None)
    assert _ingest(engine, space, [receipt(2, units=5, purpose_code="research")]) == ["accepted"]
    report = _audit(engine, space)  # the SQL source serves the registered document
    assert report.first_failure.name == "terms"  # type: ignore[attr-defined]
    assert "5 units used + 5 > 8 allowed" in report.first_failure.detail  # type: ignore[attr-defined]
    from service.audit.login import sign_in

    with (
        serve_api(space, engine) as url,
        ApiSource(url, token=sign_in(url, space.auditor)) as source,
    ):
        over_api = audit_log(chain=space.chain, ledger=space.contracts.ledger, proofs=source)
    failed = over_api.first_failure
    assert failed is not None and failed.name == "terms"
    assert "leaf 3 " in failed.detail and "5 units used + 5 > 8 allowed" in failed.detail
