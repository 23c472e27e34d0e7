"""Reduced receipts (T15): a holder discloses chosen fields; the audit proves those against
the anchored log, says what stays hidden, and names the check each attack fails."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import Session

from service.audit.receipt import (
    CHAIN_CHECKS,
    OFFLINE_CHECKS,
    REDUCED_OFFLINE_CHECKS,
    AuditReport,
    audit_receipt,
)
from service.chain.client import Chain
from service.db import create_schema, make_engine
from service.errors import InvalidInput
from service.evidence import commitment
from service.evidence.anchor import anchor_once
from service.evidence.receipts import build_receipt, reduce_receipt
from tests.audit.forge import pin
from tests.evidence.test_log import agreement, attestation, ingest, receipt
from tests.space import Space

Doc = dict[str, Any]
PERIOD = ["units", "periodStart", "periodEnd"]
SIGNERS = ["consumer", "provider"]


@dataclass
class Log:
    space: Space
    agreement: Doc  # full v2 receipts
    receipt: Doc  # UsageReceipt, 10 units, leaf 1
    other: Doc  # another UsageReceipt (nonce 2, 25 units), leaf 2
    attestation: Doc  # QualityAttestation (one signer, no signer field)


@pytest.fixture(scope="module")
def log(_space: Space, _embedded: Chain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Log]:
    space = _space
    snap = _embedded.snapshot()
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('disclose')}/tally.db")
    create_schema(engine)
    attest = attestation(space)
    batch = [agreement(space), receipt(space, 1), receipt(space, 2, units=25), attest]
    results = ingest(engine, space, batch)
    assert all(r.status == "accepted" and r.salt for r in results)  # type: ignore[attr-defined]
    row = anchor_once(
        engine=engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )
    assert row is not None
    with Session(engine) as s:
        docs = [build_receipt(session=s, eid="0x" + e.id().hex()) for e in batch]
    assert all(d["version"] == 2 and d["form"] == "full" for d in docs)
    yield Log(space, *docs)
    engine.dispose()
    _embedded.revert(snap)


def _names(report: AuditReport) -> list[str]:
    return [c.name for c in report.checks]


def _failed(report: AuditReport) -> str | None:
    first = report.first_failure
    return None if first is None else first.name


def _offline(doc: Doc) -> AuditReport:
    return audit_receipt(doc, chain=None, trusted=None)


def _b64(obj: Any) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- the honest forms ----------------------------------------------------------------------


def test_full_v2_receipt_passes_online_with_the_legacy_check_names(log: Log) -> None:
    report = audit_receipt(log.receipt, chain=log.space.chain, trusted=pin(log.space))
    assert report.ok, report.verdict
    assert _names(report) == [*OFFLINE_CHECKS, *CHAIN_CHECKS]
    assert report.form == "full" and report.fields is None
    assert "commitment leaf 0x02" in next(c.detail for c in report.checks if c.name == "leaf")


def test_reduced_signed_receipt_passes_online_and_names_proven_and_hidden_fields(
    log: Log,
) -> None:
    small = reduce_receipt(log.receipt, [*PERIOD, *SIGNERS])
    assert {"entry", "entry_id", "salt", "signatures"}.isdisjoint(small)
    report = audit_receipt(small, chain=log.space.chain, trusted=pin(log.space))
    assert report.ok, report.verdict
    assert _names(report) == [*REDUCED_OFFLINE_CHECKS, *CHAIN_CHECKS]
    skipped = {c.name: c.detail for c in report.skipped}
    assert skipped == {"entry_id": "skipped: hidden in a reduced receipt"}
    assert report.fields is not None
    assert report.fields["proven"] == ["consumer", "provider", "units", "periodStart", "periodEnd"]
    assert report.fields["hidden"] == ["agreementId", "detailHash", "nonce"]
    assert report.fields["values"]["units"] == 10
    assert "hides agreementId, detailHash, nonce" in report.verdict
    out = report.to_json()
    assert out["form"] == "reduced" and out["fields"]["proven"][2] == "units"
    # the hidden values are nowhere in the document
    text = json.dumps(small)
    assert log.receipt["entry"]["detailHash"] not in text and log.receipt["salt"] not in text


def test_reduced_unsigned_receipt_hides_the_parties_and_names_no_signer(log: Log) -> None:
    small = reduce_receipt(log.receipt, PERIOD, signed=False)
    assert "signed" not in small and "signers_digest" in small
    report = audit_receipt(small, chain=log.space.chain, trusted=pin(log.space))
    assert report.ok, report.verdict
    skipped = [c.name for c in report.skipped]
    assert skipped == ["signer_fields", "signatures", "entry_id", "roles"]
    assert report.fields is not None and "consumer" in report.fields["hidden"]
    assert log.receipt["entry"]["consumer"] not in json.dumps(small)


def test_reduced_attestation_needs_no_signer_field(log: Log) -> None:
    small = reduce_receipt(log.attestation, ["scoreBps"])
    report = audit_receipt(small, chain=log.space.chain, trusted=pin(log.space))
    assert report.ok, report.verdict
    assert report.fields is not None and report.fields["proven"] == ["scoreBps"]


def test_reduced_agreement_proves_the_price_to_its_parties(log: Log) -> None:
    small = reduce_receipt(log.agreement, ["consumer", "providers", "unitPrice"])
    report = _offline(small)
    assert report.ok, report.verdict
    assert report.fields is not None and report.fields["values"]["unitPrice"] == str(3 * 10**15)


# --- reduce_receipt refuses ----------------------------------------------------------------


def test_reduce_refuses_hiding_a_signer_field_in_the_signed_form(log: Log) -> None:
    with pytest.raises(InvalidInput, match="must disclose consumer, provider"):
        reduce_receipt(log.receipt, PERIOD)
    with pytest.raises(InvalidInput, match="must disclose providers"):
        reduce_receipt(log.agreement, ["consumer", "unitPrice"])


def test_reduce_refuses_unknown_fields_and_legacy_or_reduced_documents(log: Log) -> None:
    with pytest.raises(InvalidInput, match="has no field 'price'"):
        reduce_receipt(log.receipt, ["price", *SIGNERS])
    legacy = {k: v for k, v in log.receipt.items() if k not in ("form", "salt")} | {"version": 1}
    with pytest.raises(InvalidInput, match="version-1 receipt"):
        reduce_receipt(legacy, PERIOD)
    small = reduce_receipt(log.receipt, [*PERIOD, *SIGNERS])
    with pytest.raises(InvalidInput, match="only a full version-2 receipt"):
        reduce_receipt(small, PERIOD)


# --- attacks -------------------------------------------------------------------------------


def _small(log: Log) -> Doc:
    return reduce_receipt(log.receipt, [*PERIOD, *SIGNERS])


def _disclosure_of(doc: Doc, name: str) -> int:
    return next(
        i for i, d in enumerate(doc["disclosures"]) if commitment.parse_disclosure(d).name == name
    )


def test_tampered_disclosed_value_fails_disclosures(log: Log) -> None:
    doc = _small(log)
    at = _disclosure_of(doc, "units")
    opened = commitment.parse_disclosure(doc["disclosures"][at])
    assert opened.value == 10
    doc["disclosures"][at] = commitment.make_disclosure(opened.salt, "units", 1_000_000)
    report = audit_receipt(doc, chain=log.space.chain, trusted=pin(log.space))
    assert _failed(report) == "disclosures"
    assert "does not open the digest committed for it" in report.verdict


def test_tampered_field_digest_to_match_a_changed_value_fails_inclusion(log: Log) -> None:
    doc = _small(log)
    at = _disclosure_of(doc, "units")
    salt = commitment.parse_disclosure(doc["disclosures"][at]).salt
    forged = commitment.make_disclosure(salt, "units", 1_000_000)
    doc["disclosures"][at] = forged
    # units is the 4th field of a UsageReceipt
    doc["field_digests"][3] = "0x" + commitment.disclosure_digest(forged).hex()
    report = audit_receipt(doc, chain=log.space.chain, trusted=pin(log.space))
    assert _failed(report) == "inclusion"


def test_disclosure_reused_from_another_receipt_fails_disclosures(log: Log) -> None:
    doc = _small(log)
    other = reduce_receipt(log.other, [*PERIOD, *SIGNERS])  # 25 units, another entry
    doc["disclosures"][_disclosure_of(doc, "units")] = other["disclosures"][
        _disclosure_of(other, "units")
    ]
    report = _offline(doc)
    assert _failed(report) == "disclosures"
    # and with the other entry's digest carried along, the leaf is not the anchored one
    doc["field_digests"][3] = other["field_digests"][3]
    assert _failed(_offline(doc)) == "inclusion"


def test_hiding_a_field_the_signature_check_needs_fails_signer_fields(log: Log) -> None:
    full_small = _small(log)
    doc = copy.deepcopy(full_small)  # hand-built: consumer dropped from a signed form
    doc["disclosures"].pop(_disclosure_of(doc, "consumer"))
    report = audit_receipt(doc, chain=log.space.chain, trusted=pin(log.space))
    assert _failed(report) == "signer_fields"
    assert "consumer hidden" in report.verdict
    assert next(c for c in report.checks if c.name == "signatures").ok is None


def test_swapped_field_digests_order_fails(log: Log) -> None:
    doc = _small(log)
    d = doc["field_digests"]
    d[3], d[4] = d[4], d[3]  # units <-> periodStart: both disclosed
    assert _failed(_offline(doc)) == "disclosures"
    doc = _small(log)
    d = doc["field_digests"]
    d[0], d[6] = d[6], d[0]  # agreementId <-> detailHash: both hidden
    report = _offline(doc)
    assert _failed(report) == "inclusion"


def test_disclosure_with_a_wrong_field_name_fails_disclosures(log: Log) -> None:
    doc = _small(log)
    at = _disclosure_of(doc, "units")
    salt = commitment.parse_disclosure(doc["disclosures"][at]).salt
    doc["disclosures"][at] = commitment.make_disclosure(salt, "unitz", 10)
    report = _offline(doc)
    assert _failed(report) == "disclosures" and "'unitz', not a field" in report.verdict
    doc = _small(log)
    doc["disclosures"].append(doc["disclosures"][_disclosure_of(doc, "units")])
    assert "disclosed twice" in _offline(doc).verdict


@pytest.mark.parametrize(
    "garbage",
    [
        "A" * (commitment.MAX_DISCLOSURE_CHARS + 1),
        "not base64!",
        "x",
        _b64({"salt": "s", "name": "units"}),
        _b64(["s", "units"]),
        base64.urlsafe_b64encode(b"\xff\xfe\x00").decode().rstrip("="),
        base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).decode().rstrip("="),
        12345,
        None,
    ],
    ids=["huge", "alphabet", "one-char", "object", "two-items", "not-utf8", "deep", "int", "null"],
)
def test_huge_or_garbage_disclosure_fails_disclosures(log: Log, garbage: Any) -> None:
    doc = _small(log)
    doc["disclosures"][0] = garbage
    report = _offline(doc)
    assert _failed(report) == "disclosures", report.verdict
    assert not report.ok


def test_too_many_or_too_few_field_digests_fail(log: Log) -> None:
    doc = _small(log)
    doc["field_digests"].append(doc["field_digests"][0])
    assert _failed(_offline(doc)) == "disclosures"
    doc = _small(log)
    doc["field_digests"] = doc["field_digests"] * 10
    assert _failed(_offline(doc)) == "document"


def test_signature_of_another_entry_fails_signatures(log: Log) -> None:
    doc = _small(log)
    other = reduce_receipt(log.other, [*PERIOD, *SIGNERS])
    doc["signed"] = other["signed"]  # valid signatures, over another struct hash
    report = _offline(doc)
    assert _failed(report) == "inclusion"  # the signers digest is committed in the leaf
    doc = _small(log)
    doc["signed"]["struct_hash"] = other["signed"]["struct_hash"]
    assert _failed(_offline(doc)) == "signatures"


def test_reduced_document_carrying_entry_or_salt_is_malformed(log: Log) -> None:
    for key in ("entry", "salt", "entry_id"):
        doc = _small(log) | {key: log.receipt[key]}
        report = _offline(doc)
        assert _failed(report) == "document" and key in report.verdict


def test_commitment_salt_changed_fails_inclusion(log: Log) -> None:
    doc = _small(log)
    doc["commitment_salt"] = "0x" + "00" * 32
    assert _failed(_offline(doc)) == "inclusion"
