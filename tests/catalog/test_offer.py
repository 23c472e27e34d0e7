"""Offer and OfferWithdrawal entries: encoding (against eth_account / eth_abi), parsing,
and the catalog rules ingest applies to them and to AgreementV2s under an offer."""

from __future__ import annotations

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account.messages import encode_typed_data
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from service.catalog.canonical import canonical_text, document_hash
from service.catalog.index import register_terms
from service.catalog.models import OfferRow, OfferVersionRow, TermsRow
from service.errors import InvalidEntry
from service.evidence.entries import Offer, decode_entry, parse_entry
from service.evidence.models import LogEntry
from tests.catalog.helpers import (
    ACCOUNTS,
    DOMAIN,
    PROVIDERS,
    agreement,
    codes,
    count,
    h,
    ingest,
    offer,
    purpose,
    terms_doc,
    withdrawal,
)


def test_offer_hash_and_bytes_match_eth_account_and_eth_abi() -> None:
    signed = offer(description="数据 with ünïcode and a long text " * 20)
    e = signed.entry
    assert isinstance(e, Offer)
    typed = e.typed_data(DOMAIN)
    typed["message"] = {**typed["message"], "offerId": e.offerId, "metadataHash": e.metadataHash}
    reference = encode_typed_data(full_message=typed)
    assert reference.body == e.struct_hash()
    assert reference.header == DOMAIN.separator
    data = signed.encode()
    n = int.from_bytes(data[131:135], "big")
    message = data[135 : 135 + n]
    types = list(e.eip712_type.field_types)
    assert message == abi_encode(types, list(e.eip712_values()))
    assert abi_decode(types, message)[3] == e.title
    assert decode_entry(data) == signed
    assert decode_entry(data).encode() == data


def test_offer_parse_refuses_bad_fields() -> None:
    good = offer().entry.message()
    bad = [
        {**good, "terms": '{"b":1, "a":2}'},  # not canonical
        {**good, "pricing": "[1,2]"},  # not an object
        {**good, "keywords": "ev, battery"},  # untrimmed item
        {**good, "keywords": "ev,ev"},
        {**good, "title": "x" * 257},
        {**good, "title": " "},
        {**good, "version": 0},
        {**good, "providers": list(reversed(good["providers"]))},
        {**good, "validUntil": good["validFrom"]},
        {**good, "title": 7},
    ]
    for item in bad:
        with pytest.raises(InvalidEntry):
            parse_entry("Offer", item)


def test_decode_refuses_a_string_that_is_not_utf8() -> None:
    data = bytearray(offer(title="EV battery telemetry").encode())
    at = bytes(data).index(b"EV battery telemetry")
    data[at] = 0xFF
    with pytest.raises(InvalidEntry):
        decode_entry(bytes(data))


def _count(engine: Engine, table: type) -> int:
    with Session(engine) as s:
        return int(s.exec(select(func.count()).select_from(table)).one())


def test_offer_versions_and_withdrawal(engine: Engine) -> None:
    assert codes(ingest(engine, [offer(), offer(version=2, title="EV battery v2")])) == [
        "accepted",
        "accepted",
    ]
    with Session(engine) as s:
        row = s.get(OfferRow, "0x" + h("offer: battery").hex())
        assert row is not None and row.version == 2 and row.title == "EV battery v2"
    # same or lower version, changed providers: refused, nothing changes
    before = _count(engine, LogEntry)
    assert codes(ingest(engine, [offer(version=2, title="again")])) == ["offer_invalid"]
    assert codes(ingest(engine, [offer(version=1, title="older")])) == ["offer_invalid"]
    solo = offer(version=3, providers=[PROVIDERS[0]])
    assert codes(ingest(engine, [solo])) == ["offer_invalid"]
    assert _count(engine, LogEntry) == before
    # withdrawal names the latest version; then agreements are refused
    assert codes(ingest(engine, [withdrawal(version=1)])) == ["offer_invalid"]
    assert codes(ingest(engine, [withdrawal(version=2)])) == ["accepted"]
    assert codes(ingest(engine, [withdrawal(version=2)])) == ["duplicate"]
    assert codes(ingest(engine, [agreement(version=2)])) == ["unknown_offer"]
    with Session(engine) as s:
        assert s.get(OfferRow, "0x" + h("offer: battery").hex()).withdrawn  # type: ignore[union-attr]
        assert len(s.exec(select(OfferVersionRow)).all()) == 3


def test_offer_needs_registered_providers_and_supported_terms(engine: Engine) -> None:
    stranger = offer("x", providers=[ACCOUNTS[7]])
    spatial = terms_doc({"leftOperand": "spatial", "operator": "eq", "rightOperand": "CN"})
    results = ingest(engine, [stranger, offer("y", terms=spatial), offer("z", pricing='{"a":1}')])
    assert codes(results) == ["unknown_participant", "terms_unsupported", "offer_invalid"]
    assert "spatial" in (results[1].message or "")
    assert _count(engine, LogEntry) == 0 and _count(engine, TermsRow) == 0


def test_agreement_under_offer_rules(engine: Engine) -> None:
    assert codes(ingest(engine, [offer()])) == ["accepted"]
    other_terms = terms_doc(count(5000))
    out = ingest(
        engine,
        [
            agreement(version=7),  # no such version
            agreement(terms_hash=bytes(32)),  # under an offer, terms must be named
            agreement(terms=other_terms),  # not registered
            agreement(validUntil=1_900_000_000),  # beyond the offer's period
        ],
    )
    assert codes(out) == ["unknown_offer", "terms_not_narrower", "unknown_terms", "offer_invalid"]
    with Session(engine) as s:
        register_terms(session=s, document=other_terms)  # looser: 5000 > 1000
        register_terms(session=s, document=terms_doc(count(10), purpose("research")))
    assert codes(ingest(engine, [agreement(terms=other_terms)])) == ["terms_not_narrower"]
    narrowed = terms_doc(count(10), purpose("research"))
    results = ingest(engine, [agreement(terms=narrowed), agreement(agreement="a2")])
    assert codes(results) == ["accepted", "accepted"]
    assert document_hash(narrowed).hex() != document_hash(terms_doc(count(1000))).hex()
    assert canonical_text(narrowed)  # registered documents are canonical JSON
