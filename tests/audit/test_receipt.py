"""`audit_receipt`: an untampered receipt passes; changing any field fails the right check."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from sqlmodel import Session

from service.audit.receipt import CHAIN_CHECKS, OFFLINE_CHECKS, AuditReport, audit_receipt
from service.audit.trust import TrustedDeployment
from service.chain.client import Chain
from service.db import create_schema, make_engine
from service.evidence.anchor import anchor_once
from service.evidence.directory import CONSUMER, PROVIDER
from service.evidence.eip712 import SECP256K1_N, Domain
from service.evidence.entries import SignedEntry, sign_entry
from service.evidence.receipts import build_receipt
from tests.audit.forge import anchor_alone, foreign_ledger, one_leaf_receipt, usage
from tests.audit.forge import pin as _pin
from tests.evidence.test_log import agreement, attestation, ingest, receipt
from tests.space import Space, build_space

Doc = dict[str, Any]


@dataclass
class Anchored:
    """Receipts of a log with two checkpoints (sizes 4 and 8) on the embedded chain."""

    space: Space
    agreement: Doc  # leaf 0, checkpoint 0 (size 4)
    receipt: Doc  # a UsageReceipt at leaf 5, checkpoint 1 (size 8)
    attestation: Doc  # a QualityAttestation (one signer) at leaf 3, checkpoint 0
    second_tx: str  # the tx that anchored checkpoint 1


@pytest.fixture(scope="module")
def anchored(
    _space: Space, _embedded: Chain, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Anchored]:
    space = _space
    snap = _embedded.snapshot()
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('audit')}/tally.db")
    create_schema(engine)
    attest = attestation(space)
    first = [agreement(space), receipt(space, 1), receipt(space, 2), attest]
    second = [receipt(space, n) for n in range(3, 7)]

    def anchor() -> str:
        row = anchor_once(
            engine=engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
        )
        assert row is not None
        return row.tx_hash

    assert all(r.ok for r in ingest(engine, space, first))  # type: ignore[attr-defined]
    anchor()
    assert all(r.ok for r in ingest(engine, space, second))  # type: ignore[attr-defined]
    second_tx = anchor()
    with Session(engine) as s:
        docs = [
            build_receipt(session=s, eid="0x" + e.id().hex())
            for e in (first[0], second[1], first[3])
        ]
    assert [(d["leaf_index"], d["tree_size"]) for d in docs] == [(0, 4), (5, 8), (3, 4)]
    yield Anchored(space, docs[0], docs[1], docs[2], second_tx)
    engine.dispose()
    _embedded.revert(snap)


def _names(report: AuditReport) -> list[str]:
    return [c.name for c in report.checks]


def _failed(report: AuditReport) -> str | None:
    first = report.first_failure
    return None if first is None else first.name


# --- untampered --------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["agreement", "receipt", "attestation"])
def test_untampered_receipt_passes_online(anchored: Anchored, which: str) -> None:
    report = audit_receipt(
        getattr(anchored, which), chain=anchored.space.chain, trusted=_pin(anchored.space)
    )
    assert report.ok, report.verdict
    assert _names(report) == [*OFFLINE_CHECKS, *CHAIN_CHECKS]
    assert all(c.ok is True for c in report.checks)
    assert report.verdict.startswith("PASS receipt 0x")
    assert "checks hold" in report.verdict and "OFFLINE" not in report.verdict


def test_untampered_receipt_passes_offline_and_says_so(anchored: Anchored) -> None:
    report = audit_receipt(anchored.receipt, chain=None, trusted=None)
    assert report.ok and report.offline
    assert [c.name for c in report.checks if c.ok is True] == list(OFFLINE_CHECKS)
    assert [c.name for c in report.skipped] == list(CHAIN_CHECKS)
    assert "OFFLINE" in report.verdict and report.verdict.startswith("PASS")
    assert report.to_json()["first_failure"] is None


# --- tampering: every field ----------------------------------------------------------------


def _flip(hex_str: str, at: int = -1) -> str:
    """Change one hex digit (at ``at``) of a 0x string."""
    chars = list(hex_str)
    chars[at] = "0" if chars[at] != "0" else "1"
    return "".join(chars)


def _bad_checksum(address: str) -> str:
    """The address with the case of one letter swapped: a wrong EIP-55 checksum."""
    at = next(i for i, c in enumerate(address) if i > 1 and c.isalpha())
    return address[:at] + address[at].swapcase() + address[at + 1 :]


def _set(path: str, value: Any) -> Callable[[Doc, Anchored], None]:
    def mutate(doc: Doc, a: Anchored) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        key: Any = int(last) if isinstance(target, list) else last
        target[key] = value(target[key], a) if callable(value) else value

    return mutate


def _entry(field: str, value: Any) -> Callable[[Doc, Anchored], None]:
    return _set(f"entry.{field}", value)


# (case id, which receipt, mutation, first check expected to fail online)
CASES: list[tuple[str, str, Callable[[Doc, Anchored], None], str]] = [
    # every field of the UsageReceipt message: the parties signed something else
    ("receipt.agreementId", "receipt", _entry("agreementId", lambda v, a: _flip(v)), "signatures"),
    (
        "receipt.consumer",
        "receipt",
        _entry("consumer", lambda v, a: a.space.consumers[1].address),
        "signatures",
    ),
    (
        "receipt.provider",
        "receipt",
        _entry("provider", lambda v, a: a.space.providers[1].address),
        "signatures",
    ),
    ("receipt.units", "receipt", _entry("units", lambda v, a: v + 1), "signatures"),
    ("receipt.periodStart", "receipt", _entry("periodStart", lambda v, a: v + 1), "signatures"),
    ("receipt.periodEnd", "receipt", _entry("periodEnd", lambda v, a: v + 1), "signatures"),
    ("receipt.detailHash", "receipt", _entry("detailHash", lambda v, a: _flip(v)), "signatures"),
    ("receipt.nonce", "receipt", _entry("nonce", lambda v, a: v + 1), "signatures"),
    # every field of the Agreement message
    (
        "agreement.agreementId",
        "agreement",
        _entry("agreementId", lambda v, a: _flip(v)),
        "signatures",
    ),
    ("agreement.assetId", "agreement", _entry("assetId", lambda v, a: _flip(v)), "signatures"),
    (
        "agreement.consumer",
        "agreement",
        _entry("consumer", lambda v, a: a.space.consumers[1].address),
        "signatures",
    ),
    (
        "agreement.providers",
        "agreement",
        _entry(
            "providers",
            lambda v, a: sorted([v[0], a.space.providers[2].address], key=str.lower),
        ),
        "signatures",
    ),
    (
        "agreement.unitPrice",
        "agreement",
        _entry("unitPrice", lambda v, a: str(int(v) + 1)),
        "signatures",
    ),
    (
        "agreement.policyHash",
        "agreement",
        _entry("policyHash", lambda v, a: _flip(v)),
        "signatures",
    ),
    ("agreement.validFrom", "agreement", _entry("validFrom", lambda v, a: v - 1), "signatures"),
    ("agreement.validUntil", "agreement", _entry("validUntil", lambda v, a: v + 1), "signatures"),
    # the attestation's message (its one signer is the consumer)
    (
        "attestation.scoreBps",
        "attestation",
        _entry("scoreBps", lambda v, a: v - 1),
        "signatures",
    ),
    # the envelope
    ("entry_type", "receipt", _set("entry_type", "Agreement"), "document"),
    ("entry_id", "receipt", _set("entry_id", lambda v, a: _flip(v)), "entry_id"),
    ("leaf_index+1", "receipt", _set("leaf_index", lambda v, a: v + 1), "inclusion"),
    ("leaf_index-1", "receipt", _set("leaf_index", lambda v, a: v - 1), "inclusion"),
    ("leaf_index=size", "receipt", _set("leaf_index", lambda v, a: 8), "inclusion"),
    ("tree_size-2", "receipt", _set("tree_size", lambda v, a: v - 2), "inclusion"),
    # Leaf 5's path in a tree of 7 has the same shape as in a tree of 8 (its last proof
    # hash would be "leaf 6" instead of node (6, 7)): the proof verifies, offline cannot
    # tell, and only the checkpoint on chain pins the size.
    ("tree_size-1", "receipt", _set("tree_size", lambda v, a: v - 1), "checkpoint"),
    ("tree_size+1", "receipt", _set("tree_size", lambda v, a: v + 1), "inclusion"),
    ("root", "receipt", _set("root", lambda v, a: _flip(v)), "inclusion"),
    ("proof.drop", "receipt", _set("inclusion_proof", lambda v, a: v[:-1]), "inclusion"),
    ("proof.extra", "receipt", _set("inclusion_proof", lambda v, a: [*v, v[0]]), "inclusion"),
    (
        "proof.swap",
        "receipt",
        _set("inclusion_proof", lambda v, a: [v[1], v[0], *v[2:]]),
        "inclusion",
    ),
    # where the checkpoint sits on chain
    ("anchor.checkpoint_seq", "receipt", _set("anchor.checkpoint_seq", 0), "checkpoint"),
    ("anchor.checkpoint_seq.unknown", "receipt", _set("anchor.checkpoint_seq", 7), "checkpoint"),
    (
        "anchor.contract",
        "receipt",
        _set("anchor.contract", lambda v, a: a.space.contracts.registry.address),
        "signatures",
    ),
    ("anchor.chain_id", "receipt", _set("anchor.chain_id", 1), "signatures"),
    (
        "anchor.block_number",
        "receipt",
        _set("anchor.block_number", lambda v, a: v - 1),
        "checkpoint",
    ),
    ("anchor.tx_hash", "receipt", _set("anchor.tx_hash", lambda v, a: _flip(v)), "anchor_tx"),
    (
        "anchor.tx_hash.other",
        "agreement",
        _set("anchor.tx_hash", lambda v, a: a.second_tx),
        "anchor_tx",
    ),
    # shape
    ("missing.root", "receipt", lambda d, a: d.pop("root"), "document"),
    ("leaf_index.string", "receipt", _set("leaf_index", lambda v, a: str(v)), "document"),
    ("version", "receipt", _set("version", 3), "document"),
    ("root.short", "receipt", _set("root", lambda v, a: v[:-2]), "document"),
    ("entry.invalid", "receipt", _entry("periodEnd", lambda v, a: 1), "document"),
    (
        "anchor.contract.checksum",
        "receipt",
        _set("anchor.contract", lambda v, a: _bad_checksum(v)),
        "document",
    ),
]


def _signature_cases() -> list[tuple[str, str, Callable[[Doc, Anchored], None], str]]:
    cases: list[tuple[str, str, Callable[[Doc, Anchored], None], str]] = []
    for which, count in (("receipt", 2), ("agreement", 3), ("attestation", 1)):
        for i in range(count):

            def flip_r(doc: Doc, a: Anchored, i: int = i) -> None:
                signer = sorted(doc["signatures"])[i]
                doc["signatures"][signer] = _flip(doc["signatures"][signer], 20)

            def flip_s(doc: Doc, a: Anchored, i: int = i) -> None:
                signer = sorted(doc["signatures"])[i]
                doc["signatures"][signer] = _flip(doc["signatures"][signer], 100)

            def high_s(doc: Doc, a: Anchored, i: int = i) -> None:
                signer = sorted(doc["signatures"])[i]
                sig = bytes.fromhex(doc["signatures"][signer][2:])
                s = SECP256K1_N - int.from_bytes(sig[32:64], "big")
                v = 55 - sig[64]  # 27 <-> 28: the same signature, malleated
                doc["signatures"][signer] = (
                    "0x" + (sig[:32] + s.to_bytes(32, "big")).hex() + (bytes([v]).hex())
                )

            def drop(doc: Doc, a: Anchored, i: int = i) -> None:
                del doc["signatures"][sorted(doc["signatures"])[i]]

            cases += [
                (f"{which}.signature[{i}].r", which, flip_r, "signatures"),
                (f"{which}.signature[{i}].s", which, flip_s, "signatures"),
                (f"{which}.signature[{i}].high_s", which, high_s, "signatures"),
            ]
            if count > 1:
                cases.append((f"{which}.signature[{i}].drop", which, drop, "signatures"))

    def swap(doc: Doc, a: Anchored) -> None:
        one, two = sorted(doc["signatures"])
        sigs = doc["signatures"]
        sigs[one], sigs[two] = sigs[two], sigs[one]

    def outsider(doc: Doc, a: Anchored) -> None:
        sigs = doc["signatures"]
        sigs[a.space.outsider.address] = next(iter(sigs.values()))

    cases += [
        ("receipt.signatures.swap", "receipt", swap, "signatures"),
        ("receipt.signatures.extra", "receipt", outsider, "signatures"),
    ]
    return cases


def _proof_cases() -> list[tuple[str, str, Callable[[Doc, Anchored], None], str]]:
    return [
        (f"proof[{i}]", "receipt", _set(f"inclusion_proof.{i}", lambda v, a: _flip(v)), "inclusion")
        for i in range(3)  # leaf 5 of 8 has a proof of three hashes
    ]


ALL_CASES = CASES + _signature_cases() + _proof_cases()


def _mutated(anchored: Anchored, which: str, mutate: Callable[[Doc, Anchored], None]) -> Doc:
    doc: Doc = copy.deepcopy(getattr(anchored, which))
    mutate(doc, anchored)
    assert doc != getattr(anchored, which), "the mutation changed nothing"
    return doc


@pytest.mark.parametrize(
    ("which", "mutate", "expected"),
    [pytest.param(w, m, e, id=i) for i, w, m, e in ALL_CASES],
)
def test_tampered_field_fails_the_right_check(
    anchored: Anchored, which: str, mutate: Callable[[Doc, Anchored], None], expected: str
) -> None:
    doc = _mutated(anchored, which, mutate)
    online = audit_receipt(doc, chain=anchored.space.chain, trusted=_pin(anchored.space))
    assert not online.ok
    assert _failed(online) == expected, online.verdict
    assert online.verdict.startswith("FAIL") and f"check {expected!r} failed" in online.verdict
    offline = audit_receipt(doc, chain=None, trusted=None)
    if expected in OFFLINE_CHECKS:
        assert _failed(offline) == expected, offline.verdict
    else:  # only the chain knows which checkpoint, block and tx anchored the root
        assert offline.ok, offline.verdict


def test_wrong_chain_id_also_fails_the_chain_id_check(anchored: Anchored) -> None:
    doc = _mutated(anchored, "receipt", _set("anchor.chain_id", 1))
    report = audit_receipt(doc, chain=anchored.space.chain, trusted=_pin(anchored.space))
    by_name = {c.name: c for c in report.checks}
    assert by_name["chain_id"].ok is False and "chain 1" in by_name["chain_id"].detail
    assert by_name["checkpoint"].ok is None  # not read from a chain that is not the receipt's


# --- forged receipts that are consistent in themselves -------------------------------------


def _self_made_receipt(signed: SignedEntry, contract: str, seq: int = 0) -> Doc:
    """A receipt for a one-leaf tree of the forger's own: offline it is flawless."""
    return one_leaf_receipt(signed, chain_id=signed.domain.chain_id, contract=contract, seq=seq)


def test_receipt_for_another_chain_passes_offline_and_fails_online(anchored: Anchored) -> None:
    space = anchored.space
    foreign = Domain(chain_id=1, verifying_contract=space.contracts.ledger.address)
    signed = receipt(space, 99)
    signed = sign_entry(
        signed.entry, foreign, [space.key(space.consumers[0]), space.key(space.providers[0])]
    )
    doc = _self_made_receipt(signed, foreign.verifying_contract)
    assert audit_receipt(doc, chain=None, trusted=None).ok
    online = audit_receipt(doc, chain=space.chain, trusted=_pin(space))
    assert _failed(online) == "chain_id"


def test_validly_signed_receipt_with_an_unanchored_root_fails_online(anchored: Anchored) -> None:
    space = anchored.space
    signed = receipt(space, 98)  # real parties, real domain, never in the operator's log
    doc = _self_made_receipt(signed, space.contracts.ledger.address)
    assert audit_receipt(doc, chain=None, trusted=None).ok
    online = audit_receipt(doc, chain=space.chain, trusted=_pin(space))
    assert _failed(online) == "checkpoint"
    assert "size 4 on chain, 1 in the receipt" in (online.first_failure.detail or "")  # type: ignore[union-attr]


def test_receipt_naming_a_contract_without_code_fails_the_deployment_check(
    anchored: Anchored,
) -> None:
    space = anchored.space
    nowhere = Domain(chain_id=space.chain.chain_id, verifying_contract="0x" + "5a" * 20)
    signed = sign_entry(
        receipt(space, 97).entry,
        nowhere,
        [space.key(space.consumers[0]), space.key(space.providers[0])],
    )
    doc = _self_made_receipt(signed, nowhere.verifying_contract)
    online = audit_receipt(doc, chain=space.chain, trusted=_pin(space))
    first = online.first_failure
    assert first is not None and first.name == "deployment"
    assert nowhere.verifying_contract in first.detail and "does not trust" in first.detail
    # pinning the empty address itself does not help: nothing answers there
    pinned = TrustedDeployment.from_ledger(nowhere.verifying_contract)
    first = audit_receipt(doc, chain=space.chain, trusted=pinned).first_failure
    assert first is not None and first.name == "deployment"
    assert "no EvidenceLedger answers at the pinned address" in first.detail


# --- the deployment the auditor pins (T9 item 12) ------------------------------------------


def test_receipt_anchored_on_foreign_ledger_fails(anchored: Anchored) -> None:
    space = anchored.space
    a = space.chain.accounts
    forged = foreign_ledger(space.chain, a[10], (a[11], a[12]))
    doc = forged.doc
    # flawless in itself: offline it passes, and pinned to the forger's own deployment too
    assert audit_receipt(doc, chain=None, trusted=None).ok
    fooled = audit_receipt(doc, chain=space.chain, trusted=forged.pinned)
    assert fooled.ok, fooled.verdict
    # pinned to the real deployment: FAIL naming the check and the foreign ledger
    real = audit_receipt(doc, chain=space.chain, trusted=_pin(space))
    assert not real.ok and _failed(real) == "deployment"
    assert f"ledger {forged.ledger.address}, not on the pinned" in real.verdict
    assert [c.name for c in real.skipped] == list(CHAIN_CHECKS[2:])
    # no pin: never a PASS online, and the one line says to pin a deployment
    unpinned = audit_receipt(doc, chain=space.chain, trusted=None)
    assert not unpinned.ok and _failed(unpinned) == "deployment"
    assert unpinned.verdict.startswith("FAIL") and "pin a deployment" in unpinned.verdict
    assert "\n" not in unpinned.verdict
    # the real receipts still pass without a pin only offline
    assert _failed(audit_receipt(anchored.receipt, chain=space.chain, trusted=None)) == (
        "deployment"
    )


def test_receipt_pinned_to_a_deployment_of_another_chain_fails(anchored: Anchored) -> None:
    space = anchored.space
    other = TrustedDeployment(
        ledger=space.contracts.ledger.address, source="a mainnet file", chain_id=1
    )
    report = audit_receipt(anchored.receipt, chain=space.chain, trusted=other)
    assert _failed(report) == "deployment" and "on chain 1" in report.verdict


def test_receipt_pinned_with_a_registry_the_ledger_does_not_use_fails(anchored: Anchored) -> None:
    space = anchored.space
    wrong = TrustedDeployment(
        ledger=space.contracts.ledger.address,
        source="an edited file",
        chain_id=space.chain.chain_id,
        registry=space.contracts.vault.address,
    )
    report = audit_receipt(anchored.receipt, chain=space.chain, trusted=wrong)
    assert _failed(report) == "deployment" and "reads roles from registry" in report.verdict


def test_receipt_pinned_by_ledger_address_alone_passes(anchored: Anchored) -> None:
    pinned = TrustedDeployment.from_ledger(anchored.space.contracts.ledger.address.lower())
    report = audit_receipt(anchored.receipt, chain=anchored.space.chain, trusted=pinned)
    assert report.ok, report.verdict
    assert "--ledger" in report.verdict


@dataclass
class OwnSpace:
    space: Space
    fresh: tuple[LocalAccount, LocalAccount]  # never registered


@pytest.fixture
def own_space(chain: Chain) -> OwnSpace:
    """A data space of its own with no checkpoint yet, whose operator is dishonest."""
    return OwnSpace(build_space(chain), (chain.accounts[11], chain.accounts[12]))


def test_receipt_signed_by_unregistered_keys_fails(own_space: OwnSpace) -> None:
    space = own_space.space
    consumer, provider = own_space.fresh
    signed = usage(space.domain, consumer, provider)
    # the operator bypasses ingest and anchors the forged entry on the real ledger
    doc = anchor_alone(space.chain, space.contracts.ledger, signed, space.operator)
    report = audit_receipt(doc, chain=space.chain, trusted=_pin(space))
    assert not report.ok and _failed(report) == "roles", report.verdict
    assert all(c.ok is True for c in report.checks if c.name != "roles")
    detail = report.first_failure.detail  # type: ignore[union-attr]
    assert f"consumer {consumer.address}" in detail and f"provider {provider.address}" in detail
    # admitting the keys after the anchoring block does not make the receipt pass
    reg = space.contracts.registry
    for acct, bit in ((consumer, CONSUMER), (provider, PROVIDER)):
        space.chain.transact(
            reg.functions.register(acct.address, bit, b"\x02" * 32, "did:late"),
            sender=space.operator,
        )
    late = audit_receipt(doc, chain=space.chain, trusted=_pin(space))
    assert _failed(late) == "roles", late.verdict


def test_receipt_signed_with_swapped_roles_fails(own_space: OwnSpace) -> None:
    space = own_space.space
    # a registered provider signs as the consumer, a registered consumer as the provider
    signed = usage(space.domain, space.providers[0], space.consumers[0])
    doc = anchor_alone(space.chain, space.contracts.ledger, signed, space.operator)
    report = audit_receipt(doc, chain=space.chain, trusted=_pin(space))
    assert _failed(report) == "roles", report.verdict
    detail = report.first_failure.detail  # type: ignore[union-attr]
    assert f"consumer {space.providers[0].address}" in detail
    assert f"provider {space.consumers[0].address}" in detail


def test_not_a_json_object_fails_the_document_check() -> None:
    report = audit_receipt([1, 2, 3], chain=None, trusted=None)  # type: ignore[arg-type]
    assert _failed(report) == "document"
    assert all(c.ok is None for c in report.checks[1:])
