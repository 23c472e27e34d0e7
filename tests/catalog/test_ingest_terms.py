"""Terms enforced at ingest: quota, validity and purpose rejections change nothing; the
counters are rebuilt from the log to the same values."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from service.catalog.index import rebuild
from service.catalog.models import OfferRow, UsageCounterRow
from service.evidence.models import LogEntry
from service.evidence.tiles import SqlTileStorage
from tests.catalog.helpers import (
    DAY,
    T0,
    codes,
    count,
    date,
    ingest,
    offer,
    purpose,
    receipt,
    terms_doc,
    withdrawal,
)
from tests.catalog.helpers import agreement as agreement_v2

TERMS = terms_doc(
    count(100),
    count(40, DAY),
    date("gteq", "2026-01-01T00:00:00Z"),
    date("lt", "2026-03-01T00:00:00Z"),
    purpose("research", "insurance-pricing"),
    prohibitions=[{"action": "distribute"}],
)


def _state(engine: Engine) -> tuple[int, bytes, list[tuple[str, int, int, int]]]:
    with Session(engine) as s:
        state = SqlTileStorage(s).read_state()
        counters = [
            (r.agreement_id, r.window, r.idx, r.units)
            for r in s.exec(select(UsageCounterRow).order_by(UsageCounterRow.window))  # type: ignore[arg-type]
        ]
    return state.size, state.root, sorted(counters)


def _setup(engine: Engine) -> None:
    assert codes(ingest(engine, [offer(terms=TERMS), agreement_v2(terms=TERMS)])) == [
        "accepted",
        "accepted",
    ]


def test_receipt_over_quota_is_rejected_with_used_and_allowed(engine: Engine) -> None:
    _setup(engine)
    day1, day2 = T0 + 3600, T0 + DAY + 3600
    first = ingest(
        engine,
        [
            receipt(1, units=30, purpose_code="research", start=day1),
            receipt(2, units=15, purpose_code="research", start=day1),  # 45 > 40 a day
            receipt(3, units=10, purpose_code="research", start=day1),  # 40: fits
        ],
    )
    assert codes(first) == ["accepted", "quota_exceeded", "accepted"]
    assert "30 units used + 15 > 40 allowed" in (first[1].message or "")
    before = _state(engine)
    assert codes(ingest(engine, [receipt(4, units=1, purpose_code="research", start=day1)])) == [
        "quota_exceeded"
    ]
    assert _state(engine) == before  # a rejection changes nothing
    more = [
        receipt(5 + i, units=20, purpose_code="research", start=day2 + i * DAY) for i in range(4)
    ]
    results = ingest(engine, more)  # 40 + 20 + 20 + 20 = 100, then 120 > 100 in total
    assert codes(results) == ["accepted", "accepted", "accepted", "quota_exceeded"]
    assert "in total: 100 units used + 20 > 100 allowed" in (results[3].message or "")


def test_receipt_outside_terms_validity_is_rejected(engine: Engine) -> None:
    _setup(engine)
    late = T0 + 60 * DAY  # 2026-03-02: inside the agreement, after the terms' end
    before = _state(engine)
    out = ingest(engine, [receipt(1, units=1, purpose_code="research", start=late)])
    assert codes(out) == ["agreement_not_valid"]
    assert _state(engine) == before


def test_receipt_with_wrong_or_missing_purpose_is_rejected(engine: Engine) -> None:
    _setup(engine)
    before = _state(engine)
    out = ingest(
        engine,
        [receipt(1, units=1, purpose_code="marketing"), receipt(2, units=1, purpose_code=None)],
    )
    assert codes(out) == ["purpose_not_permitted", "purpose_not_permitted"]
    assert "marketing" in (out[0].message or "")
    assert _state(engine) == before
    ok = ingest(engine, [receipt(3, units=1, purpose_code="insurance-pricing")])
    assert codes(ok) == ["accepted"]


def test_receipts_of_an_agreement_without_terms_are_unconstrained(engine: Engine) -> None:
    _setup(engine)
    plain = agreement_v2(agreement="plain", offerId=bytes(32), offerVersion=0, terms_hash=bytes(32))
    assert codes(ingest(engine, [plain])) == ["accepted"]
    out = ingest(engine, [receipt(1, units=10_000, agreement="plain")])
    assert codes(out) == ["accepted"]


def test_rebuild_from_the_log_gives_the_same_catalog_and_counters(engine: Engine) -> None:
    _setup(engine)
    ingest(engine, [offer("other"), withdrawal("other")])
    ingest(engine, [receipt(i, units=7, purpose_code="research") for i in range(1, 5)])
    with Session(engine) as s:
        offers = sorted(r.model_dump_json() for r in s.exec(select(OfferRow)))
    before = _state(engine)
    with Session(engine) as s:
        replayed = rebuild(session=s)
        s.commit()
        assert replayed == 8
        assert sorted(r.model_dump_json() for r in s.exec(select(OfferRow))) == offers
        assert len(s.exec(select(LogEntry)).all()) == 8  # every entry is a catalog one
    assert _state(engine) == before
