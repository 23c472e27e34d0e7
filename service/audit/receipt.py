"""Audit one receipt document: everything an auditor can check without the operator.

A receipt (built by :func:`service.evidence.receipts.build_receipt`) carries the entry,
its signatures, its place in the log and the checkpoint that covers it. The checks, in
order, each named (the name is what the CLI and the JSON report give):

========================  ==============================================================
``document``              the shape: every key present with the right type and form,
                          the message parses as its entry type
``signatures``            the EIP-712 digest recomputed in the domain (``anchor.chain_id``,
                          ``anchor.contract``); every signature recovers to the signer it
                          is filed under; the signers are exactly the required ones
``entry_id``              SHA-256 of the recomputed canonical bytes equals ``entry_id``
``leaf``                  the leaf hash SHA-256(0x00 || canonical bytes), recomputed (the
                          bytes decode back to the same signed entry)
``inclusion``             the inclusion proof links that leaf at ``leaf_index`` to ``root``
                          in a tree of ``tree_size`` leaves (RFC 9162)
``chain_id``              online: the node's chain id is ``anchor.chain_id``
``deployment``            online: ``anchor.contract`` is the ledger of the deployment the
                          auditor pinned (:class:`~service.audit.trust.TrustedDeployment`)
                          on that chain, and the ledger's registry is the pinned one.
                          Without a pin this check fails: anyone can deploy a ledger of
                          their own and anchor a receipt between two fresh keys on it
``checkpoint``            online: checkpoint ``anchor.checkpoint_seq`` of the
                          EvidenceLedger at ``anchor.contract`` has the receipt's size,
                          root and block number
``contract_inclusion``    online: the contract's own ``verifyInclusion`` accepts the proof
                          against that stored checkpoint (a second, independent verifier)
``anchor_tx``             online: ``anchor.tx_hash`` is a successful transaction in block
                          ``anchor.block_number`` that emitted ``CheckpointAnchored`` for
                          that checkpoint from that contract (an all-zero hash means the
                          operator did not record it: noted, not failed)
``roles``                 online: at the checkpoint's block, the pinned registry had every
                          signer registered in the role it signs in (the consumer as a
                          consumer, a provider as a provider, an attester as a consumer or
                          auditor, a countersigner as an operator), replayed from the
                          registry's events (:mod:`service.audit.roles`: no archive node).
                          Suspension is not checked: evidence signed before a suspension
                          stays valid
``witness_cosignatures``  with a witness policy (:class:`WitnessPolicy`: ``--witness VKEY``
                          ``--min-witnesses K`` or ``--trust FILE``), offline too: the
                          receipt's ``cosignatures`` note is a tlog-checkpoint of exactly
                          the receipt's ``tree_size`` and ``root``, its origin names the
                          receipt's chain id and ledger (``<space>/tally/<chain>/<ledger>``),
                          and at least K of the pinned witnesses' tlog-cosignature/v1
                          lines verify over it (a witness counts once; a line from a pinned
                          key that does not verify counts for nothing)
========================  ==============================================================

Nothing is taken from the document that can be recomputed: the canonical bytes, the
entry id and the leaf come from the message and signatures. Offline (no chain) the first
five checks run and the report says that the chain checks were skipped: a receipt can
be internally consistent and still name a root that was never anchored, so only an
online audit says the entry is in the anchored log.

Receipt forms (T15, :mod:`service.evidence.commitment` says what each proves): a legacy
receipt (``version`` 1) runs the checks above as they always ran; a full one (``version``
2, ``form`` full) the same, its ``leaf`` being the commitment rebuilt from its ``salt``.
A reduced one (``form`` reduced) runs, in place of the first five:

========================  ==============================================================
``document``              the shape (no ``entry``, ``entry_id``, ``salt`` or top-level
                          ``signatures``; either ``signed`` or ``signers_digest``)
``disclosures``           every disclosure parses (base64url JSON [salt, name, value], at
                          most 8192 characters), names a field of the type at most once,
                          holds a valid value of it, and its SHA-256 is the field digest at
                          that field's position; ``field_digests`` has exactly the type's
                          field count
``signer_fields``         signed form: the fields naming the required signers (a receipt's
                          consumer and provider, ...) are disclosed; unsigned: skipped
``signatures``            signed form: every signature recovers over keccak(0x1901 ||
                          domain separator || the carried struct hash) to its signer, and
                          the signers are exactly the required ones computed from the
                          disclosed fields; unsigned: skipped
``entry_id``              skipped: hidden in a reduced receipt
``leaf``                  the commitment leaf rebuilt from the field digests, the commitment
                          salt and the signers digest (computed from the signatures, or
                          carried by the unsigned form)
``inclusion``             as above, with that leaf
========================  ==============================================================

then the chain checks unchanged (``roles`` over the disclosed parties and the signers;
skipped in the unsigned form, which names no signer). The report's ``fields`` says which
fields are proven (with their values) and which hidden.

A check that cannot run because an earlier one failed (for instance no canonical bytes
without parseable signatures) is reported as skipped; the verdict names the first
failure. :class:`Check` and :class:`AuditReport` are shared with :mod:`service.audit.log`.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError
from web3.contract import Contract
from web3.exceptions import BadFunctionCallOutput, TransactionNotFound
from web3.logs import DISCARD

from service.audit.roles import RegistryHistory, RegistryView
from service.audit.trust import TrustedDeployment
from service.chain.client import Chain
from service.errors import (
    CheckpointNotFound,
    ConfigError,
    InvalidEntry,
    InvalidInput,
    TransactionReverted,
)
from service.evidence import commitment
from service.evidence.directory import CONSUMER, PROVIDER, STATUS_NONE
from service.evidence.eip712 import (
    Domain,
    address_bytes,
    parse_address,
    parse_signature,
    recover_jobs,
)
from service.evidence.entries import (
    ENTRY_CLASSES,
    Agreement,
    CoalitionValues,
    ContributionDeclaration,
    Entry,
    EntryBase,
    QualityAttestation,
    SignedEntry,
    UsageReceipt,
    decode_entry,
    parse_entry,
)
from service.evidence.log import required_for
from service.evidence.merkle import leaf_hash, verify_inclusion
from service.evidence.receipts import RECEIPT_VERSION, RECEIPT_VERSION_COMMITMENT
from service.witness.cosignatures import origin_binds
from service.witness.note import (
    MAX_NOTE_BYTES,
    Checkpoint,
    CosignatureV1Verifier,
    NoteError,
    NoteSignature,
    NoteVerifier,
    open_note,
    parse_note,
    verify_cosignature,
)

__all__ = [
    "CHAIN_CHECKS",
    "OFFLINE_CHECKS",
    "REDUCED_OFFLINE_CHECKS",
    "WITNESS_CHECK",
    "AuditReport",
    "Check",
    "WitnessPolicy",
    "audit_receipt",
]

WITNESS_CHECK = "witness_cosignatures"

OFFLINE_CHECKS = ("document", "signatures", "entry_id", "leaf", "inclusion")
REDUCED_OFFLINE_CHECKS = (
    "document",
    "disclosures",
    "signer_fields",
    "signatures",
    "entry_id",
    "leaf",
    "inclusion",
)
CHAIN_CHECKS = ("chain_id", "deployment", "checkpoint", "contract_inclusion", "anchor_tx", "roles")

MAX_PROOF_LEN = 64  # a tree of at most 2**64 leaves
_UINT64 = 1 << 64
_ZERO_TX = "0x" + "00" * 32


# --- the report (shared with service.audit.log) ------------------------------------------


@dataclass(frozen=True)
class Check:
    """One named check: ``ok`` is True (holds), False (fails) or None (skipped)."""

    name: str
    ok: bool | None
    detail: str
    seq: int | None = None  # the checkpoint a log check is about

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.name, "ok": self.ok, "detail": self.detail}
        if self.seq is not None:
            out["seq"] = self.seq
        return out


@dataclass
class AuditReport:
    """The checks of one audit, in the order they ran, and the verdict they give.

    The audit passes when no check failed (skipped checks are listed, and a report
    with skipped chain checks says so in its verdict).
    """

    subject: str
    checks: list[Check] = field(default_factory=list)
    summary: str = ""  # what a pass means, for the verdict
    offline: bool = False
    form: str | None = None  # a receipt's: "legacy" | "full" | "reduced" (None: not a receipt)
    fields: dict[str, Any] | None = None  # a reduced receipt's proven / hidden fields

    def add(self, name: str, ok: bool | None, detail: str, *, seq: int | None = None) -> bool:
        self.checks.append(Check(name, ok, detail, seq))
        return ok is True

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    @property
    def first_failure(self) -> Check | None:
        return next((c for c in self.checks if c.ok is False), None)

    @property
    def skipped(self) -> list[Check]:
        return [c for c in self.checks if c.ok is None]

    @property
    def verdict(self) -> str:
        """One line: ``PASS <subject>: <summary>`` or ``FAIL <subject>: <check>: <why>``."""
        failed = self.first_failure
        if failed is not None:
            return f"FAIL {self.subject}: check {failed.name!r} failed: {failed.detail}"
        return f"PASS {self.subject}: {self.summary}"

    def to_json(self) -> dict[str, Any]:
        failed = self.first_failure
        return {
            "subject": self.subject,
            "ok": self.ok,
            "verdict": self.verdict,
            "offline": self.offline,
            "first_failure": None if failed is None else failed.to_json(),
            "checks": [c.to_json() for c in self.checks],
            **({} if self.form is None else {"form": self.form, "fields": self.fields}),
        }


# --- the document ------------------------------------------------------------------------


def _field(doc: Mapping[str, Any], key: str, where: str = "") -> Any:
    if key not in doc:
        raise InvalidInput(f"{where}{key} is missing")
    return doc[key]


def _uint(doc: Mapping[str, Any], key: str, where: str = "", *, below: int = _UINT64) -> int:
    value = _field(doc, key, where)
    if type(value) is not int or not 0 <= value < below:
        raise InvalidInput(f"{where}{key} must be an integer in [0, {below}), got {value!r}")
    return value


def _hash32(value: object, what: str) -> bytes:
    if (
        not isinstance(value, str)
        or len(value) != 66
        or not value.startswith("0x")
        or any(c not in "0123456789abcdefABCDEF" for c in value[2:])
    ):
        raise InvalidInput(f"{what} must be 0x followed by 64 hex digits, got {value!r}")
    return bytes.fromhex(value[2:])


@dataclass(frozen=True)
class _Proof:
    """The proof keys every receipt form carries (checked for shape only)."""

    leaf_index: int
    tree_size: int
    root: bytes
    proof: list[bytes]
    chain_id: int
    contract: str
    seq: int
    tx_hash: str
    block_number: int
    domain: Domain


@dataclass(frozen=True)
class _Doc(_Proof):
    """A full or legacy receipt whose shape has been checked (nothing verified yet)."""

    entry: Entry
    signatures: Mapping[str, Any]  # signer -> 0x signature, parsed by SignedEntry
    entry_id: bytes
    salt: bytes | None = None  # a full version-2 receipt's: the commitment leaf's salt


def _parse_proof(doc: Mapping[str, Any]) -> _Proof:
    proof = _field(doc, "inclusion_proof")
    if not isinstance(proof, list) or len(proof) > MAX_PROOF_LEN:
        raise InvalidInput(f"inclusion_proof must be a list of at most {MAX_PROOF_LEN} hashes")
    anchor = _field(doc, "anchor")
    if not isinstance(anchor, Mapping):
        raise InvalidInput("anchor must be an object")
    chain_id = _uint(anchor, "chain_id", "anchor.", below=1 << 256)
    try:
        contract = parse_address(_field(anchor, "contract", "anchor."))
        domain = Domain(chain_id=chain_id, verifying_contract=contract)
    except ValueError as err:
        raise InvalidInput(f"anchor: {err}") from None
    tree_size = _uint(doc, "tree_size")
    if tree_size == 0:
        raise InvalidInput("tree_size must be at least 1")
    return _Proof(
        leaf_index=_uint(doc, "leaf_index"),
        tree_size=tree_size,
        root=_hash32(_field(doc, "root"), "root"),
        proof=[_hash32(h, f"inclusion_proof[{i}]") for i, h in enumerate(proof)],
        chain_id=chain_id,
        contract=contract,
        seq=_uint(anchor, "checkpoint_seq", "anchor."),
        tx_hash="0x" + _hash32(_field(anchor, "tx_hash", "anchor."), "anchor.tx_hash").hex(),
        block_number=_uint(anchor, "block_number", "anchor."),
        domain=domain,
    )


def _form(doc: Mapping[str, Any]) -> str:
    """``legacy`` (version 1), ``full`` or ``reduced`` (version 2); InvalidInput else."""
    version = _field(doc, "version")
    if version == RECEIPT_VERSION and doc.get("form") is None:  # null: the API's ReceiptOut
        return "legacy"
    if version == RECEIPT_VERSION_COMMITMENT:
        form = _field(doc, "form")
        if form in ("full", "reduced"):
            return str(form)
        raise InvalidInput(f"a version-2 receipt's form is 'full' or 'reduced', got {form!r}")
    raise InvalidInput(f"receipt version {version!r} is not supported (only 1 and 2)")


def _parse(doc: object) -> _Doc:
    """Check the document's shape; :class:`InvalidInput` names the first problem."""
    if not isinstance(doc, Mapping):
        raise InvalidInput(f"a receipt is a JSON object, got {type(doc).__name__}")
    form = _form(doc)
    entry_type = _field(doc, "entry_type")
    if not isinstance(entry_type, str):
        raise InvalidInput(f"entry_type must be a string, got {entry_type!r}")
    try:
        entry = parse_entry(entry_type, _field(doc, "entry"))
    except InvalidEntry as err:
        raise InvalidInput(f"entry: {err.message}") from None
    signatures = _field(doc, "signatures")
    if not isinstance(signatures, Mapping) or not signatures:
        raise InvalidInput("signatures must be a non-empty object: signer -> 0x signature")
    salt = _hash32(_field(doc, "salt"), "salt") if form == "full" else None
    if form == "legacy" and doc.get("salt") is not None:
        raise InvalidInput("a version-1 receipt carries no salt (a legacy leaf)")
    p = _parse_proof(doc)
    return _Doc(
        entry=entry,
        signatures=signatures,
        entry_id=_hash32(_field(doc, "entry_id"), "entry_id"),
        salt=salt,
        **vars(p),
    )


MAX_LIST = 64  # more disclosures or field digests than any entry type has fields


@dataclass(frozen=True)
class _Reduced(_Proof):
    """A reduced receipt whose shape has been checked (nothing verified yet)."""

    kind: type[EntryBase]
    disclosures: list[Any]
    field_digests: list[bytes]
    commitment_salt: bytes
    struct_hash: bytes | None  # signed form
    signatures: Mapping[str, Any] | None  # signed form: signer -> 0x signature (raw)
    signers_digest: bytes | None  # unsigned form


def _parse_reduced(doc: Mapping[str, Any]) -> _Reduced:
    """Check a reduced document's shape (the disclosures are parsed by their check)."""
    for key in ("entry", "entry_id", "salt", "signatures"):
        if key in doc:
            raise InvalidInput(f"a reduced receipt carries no {key!r}")
    entry_type = _field(doc, "entry_type")
    kind = ENTRY_CLASSES.get(entry_type) if isinstance(entry_type, str) else None
    if kind is None:
        raise InvalidInput(
            f"unknown entry_type {entry_type!r}; expected one of {', '.join(ENTRY_CLASSES)}"
        )
    disclosures = _field(doc, "disclosures")
    if not isinstance(disclosures, list) or len(disclosures) > MAX_LIST:
        raise InvalidInput(f"disclosures must be a list of at most {MAX_LIST} strings")
    digests = _field(doc, "field_digests")
    if not isinstance(digests, list) or len(digests) > MAX_LIST:
        raise InvalidInput(f"field_digests must be a list of at most {MAX_LIST} hashes")
    field_digests = [_hash32(h, f"field_digests[{i}]") for i, h in enumerate(digests)]
    commit_salt = _hash32(_field(doc, "commitment_salt"), "commitment_salt")
    if ("signed" in doc) == ("signers_digest" in doc):
        raise InvalidInput("a reduced receipt carries either 'signed' or 'signers_digest'")
    struct_hash = signatures = signers = None
    if "signed" in doc:
        signed = doc["signed"]
        if not isinstance(signed, Mapping) or set(signed) != {"struct_hash", "signatures"}:
            raise InvalidInput("signed must be an object {struct_hash, signatures}")
        struct_hash = _hash32(signed["struct_hash"], "signed.struct_hash")
        signatures = signed["signatures"]
        if not isinstance(signatures, Mapping) or not signatures or len(signatures) > 512:
            raise InvalidInput(
                "signed.signatures must be a non-empty object: signer -> 0x signature"
            )
    else:
        signers = _hash32(doc["signers_digest"], "signers_digest")
    p = _parse_proof(doc)
    return _Reduced(
        **vars(p),
        kind=kind,
        disclosures=disclosures,
        field_digests=field_digests,
        commitment_salt=commit_salt,
        struct_hash=struct_hash,
        signatures=signatures,
        signers_digest=signers,
    )


# --- checks -------------------------------------------------------------------------------


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _role(entry: Entry, signer: str) -> str:
    if isinstance(entry, Agreement | UsageReceipt) and signer == entry.consumer:
        return "consumer"
    if isinstance(entry, Agreement) and signer in entry.providers:
        return "provider"
    if isinstance(entry, UsageReceipt | ContributionDeclaration) and signer == entry.provider:
        return "provider"
    if isinstance(entry, ContributionDeclaration):
        return "operator"
    if isinstance(entry, QualityAttestation):
        return "attester"
    return "evaluator"


def _check_signatures(report: AuditReport, doc: _Doc) -> SignedEntry | None:
    """The signatures check; returns the signed entry when it could be built at all."""
    try:
        signed = SignedEntry(entry=doc.entry, domain=doc.domain, signatures=doc.signatures)
    except InvalidInput as err:  # a malformed, high-s or duplicated signature
        report.add("signatures", False, err.message)
        return None
    try:
        required = required_for(signed)
    except InvalidInput as err:
        report.add("signatures", False, err.message)
        return signed
    present = frozenset(signed.signatures)
    if present != required:
        problems = []
        if required - present:
            problems.append(f"missing signature of {', '.join(sorted(required - present))}")
        if present - required:
            problems.append(f"unexpected signature of {', '.join(sorted(present - required))}")
        report.add("signatures", False, f"{signed.entry_type_name}: {'; '.join(problems)}")
        return signed
    try:
        signed.recover()
    except InvalidInput as err:
        report.add("signatures", False, err.message)
        return signed
    who = ", ".join(f"{_role(doc.entry, s)} {s}" for s in signed.signatures)
    report.add(
        "signatures",
        True,
        f"{signed.entry_type_name} digest {_hex(signed.digest())} (chain {doc.chain_id}, "
        f"ledger {doc.contract}); {len(present)} signature(s) recover to {who}",
    )
    return signed


def _offline_checks(report: AuditReport, doc: _Doc) -> tuple[SignedEntry | None, bytes | None]:
    """Checks 2-5; returns the signed entry when its signatures hold (else None) and the
    recomputed leaf hash (None when it cannot be computed)."""
    signed = _check_signatures(report, doc)
    if signed is None:
        for name in ("entry_id", "leaf", "inclusion"):
            report.add(name, None, "skipped: no canonical bytes without valid signatures")
        return None, None
    verified = signed if report.checks[-1].ok else None
    data = signed.encode()
    eid = hashlib.sha256(data).digest()
    if eid == doc.entry_id:
        report.add("entry_id", True, f"sha256 of the {len(data)} canonical bytes is {_hex(eid)}")
    else:
        report.add(
            "entry_id",
            False,
            f"sha256 of the canonical bytes is {_hex(eid)}, the receipt says {_hex(doc.entry_id)}",
        )
    try:
        round_trip = decode_entry(data) == signed
    except InvalidInput:
        round_trip = False
    if doc.salt is None:
        leaf = leaf_hash(data)
        what = f"leaf hash {_hex(leaf)}"
    else:
        leaf_data = commitment.commit(signed, doc.salt).leaf_data
        leaf = leaf_hash(leaf_data)
        what = f"commitment leaf {_hex(leaf_data)}, leaf hash {_hex(leaf)}"
    if round_trip:
        report.add("leaf", True, what)
    else:
        report.add("leaf", False, "the canonical bytes do not decode back to the same entry")
    _check_inclusion(report, doc, leaf)
    return verified, leaf


def _check_inclusion(report: AuditReport, doc: _Proof, leaf: bytes) -> None:
    if verify_inclusion(leaf, doc.leaf_index, doc.tree_size, doc.proof, doc.root):
        report.add(
            "inclusion",
            True,
            f"leaf {doc.leaf_index} of {doc.tree_size} links to root {_hex(doc.root)} "
            f"with {len(doc.proof)} proof hash(es)",
        )
    else:
        report.add(
            "inclusion",
            False,
            f"the proof does not link leaf {_hex(leaf)} at index {doc.leaf_index} to root "
            f"{_hex(doc.root)} in a tree of {doc.tree_size} leaves",
        )


# --- reduced receipts (T15) ----------------------------------------------------------------

_ADAPTERS: dict[tuple[type[EntryBase], str], TypeAdapter[Any]] = {}


def _valid_value(kind: type[EntryBase], name: str, value: Any) -> Any:
    """``value`` validated as field ``name`` of ``kind`` (addresses checksummed);
    ``ValueError`` / ``ValidationError`` when it is not a valid value of that field."""
    adapter = _ADAPTERS.get((kind, name))
    if adapter is None:
        info = kind.model_fields[name]
        adapter = TypeAdapter(Annotated[(info.annotation, *info.metadata)])  # type: ignore[arg-type]
        _ADAPTERS[(kind, name)] = adapter
    return adapter.validate_python(value)


def _check_disclosures(report: AuditReport, r: _Reduced) -> dict[str, Any] | None:
    """The disclosures check; returns the disclosed values (validated) when it holds."""
    type_name = r.kind.eip712_type.name
    names = commitment.field_names(r.kind)
    if len(r.field_digests) != len(names):
        report.add(
            "disclosures",
            False,
            f"field_digests has {len(r.field_digests)} digest(s); a {type_name} has "
            f"{len(names)} fields",
        )
        return None
    values: dict[str, Any] = {}
    for i, text in enumerate(r.disclosures):
        try:
            d = commitment.parse_disclosure(text)
        except InvalidInput as err:
            report.add("disclosures", False, f"disclosure {i}: {err.message}")
            return None
        if d.name not in names:
            report.add(
                "disclosures",
                False,
                f"disclosure {i} names {d.name!r}, not a field of a {type_name}",
            )
            return None
        if d.name in values:
            report.add("disclosures", False, f"field {d.name} is disclosed twice")
            return None
        pos = names.index(d.name)
        if d.digest != r.field_digests[pos]:
            report.add(
                "disclosures",
                False,
                f"the disclosure of {d.name} does not open the digest committed for it "
                f"(field_digests[{pos}]): a changed value, or a disclosure from another entry",
            )
            return None
        try:
            values[d.name] = _valid_value(r.kind, d.name, d.value)
        except (ValueError, ValidationError):
            report.add("disclosures", False, f"the disclosed {d.name} is not a valid value")
            return None
    shown = [n for n in names if n in values]
    report.add(
        "disclosures",
        True,
        f"{len(shown)} of {len(names)} fields disclosed, each opening its committed digest: "
        f"{', '.join(shown) or 'none'}",
    )
    return values


def _check_signer_fields(report: AuditReport, r: _Reduced, values: dict[str, Any] | None) -> bool:
    if r.signatures is None:
        report.add("signer_fields", None, "skipped: an unsigned reduced receipt names no signer")
        return False
    if values is None:
        report.add("signer_fields", None, "skipped: the disclosures do not hold")
        return False
    type_name = r.kind.eip712_type.name
    needed = commitment.signer_fields(type_name)
    hidden = [f for f in needed if f not in values]
    if hidden:
        report.add(
            "signer_fields",
            False,
            f"{', '.join(hidden)} hidden: a signed reduced {type_name} must disclose the "
            "fields naming its required signers, or the signatures prove nothing about who "
            "they are",
        )
        return False
    report.add(
        "signer_fields",
        True,
        f"the fields naming the required signers are disclosed: {', '.join(needed)}"
        if needed
        else f"a {type_name} names no signer in its message: its signer is the signature's key",
    )
    return True


def _required_reduced(
    kind: type[EntryBase], values: Mapping[str, Any], present: list[str]
) -> frozenset[str]:
    """The required signers of a reduced receipt, from its disclosed fields (as
    :func:`~service.evidence.log.required_for` computes them from the whole message)."""
    if issubclass(kind, Agreement):
        return frozenset((values["consumer"], *values["providers"]))
    if issubclass(kind, UsageReceipt):
        return frozenset((values["consumer"], values["provider"]))
    if kind.eip712_type.name in ("Offer", "OfferWithdrawal"):
        return frozenset(values["providers"])
    if kind.eip712_type.name == "RevenueDeclaration":
        return frozenset((values["consumer"],))
    if issubclass(kind, ContributionDeclaration):
        others = [s for s in present if s != values["provider"]]
        if len(present) == 2 and others:
            return frozenset((values["provider"], others[0]))
        return frozenset((values["provider"],))
    if len(present) != 1:
        raise InvalidInput(
            f"a {kind.eip712_type.name} carries exactly one signature, got {len(present)}"
        )
    return frozenset(present)


def _check_reduced_signatures(
    report: AuditReport, r: _Reduced, values: dict[str, Any] | None, fields_ok: bool
) -> tuple[dict[str, bytes] | None, bool]:
    """The signatures check of a signed reduced receipt; returns its parsed signatures
    (None when they do not parse) and whether they hold."""
    if r.signatures is None or r.struct_hash is None:
        report.add(
            "signatures",
            None,
            "skipped: an unsigned reduced receipt (signers digest only) proves the disclosed "
            "values are committed in the anchored leaf, not who signed them",
        )
        return None, False
    sigs: dict[str, bytes] = {}
    try:
        for key, sig in r.signatures.items():
            try:
                signer = parse_address(key)
            except ValueError as err:
                raise InvalidInput(f"signer {key!r}: {err}") from None
            if signer in sigs:
                raise InvalidInput(f"two signatures are given for {signer}")
            sigs[signer] = parse_signature(sig)
    except InvalidInput as err:
        report.add("signatures", False, err.message)
        return None, False
    if not fields_ok or values is None:
        report.add("signatures", None, "skipped: the fields naming the signers do not hold")
        return sigs, False
    present = sorted(sigs, key=address_bytes)
    type_name = r.kind.eip712_type.name
    try:
        required = _required_reduced(r.kind, values, present)
    except InvalidInput as err:
        report.add("signatures", False, err.message)
        return sigs, False
    if frozenset(present) != required:
        problems = []
        if required - set(present):
            problems.append(f"missing signature of {', '.join(sorted(required - set(present)))}")
        if set(present) - required:
            problems.append(f"unexpected signature of {', '.join(sorted(set(present) - required))}")
        report.add("signatures", False, f"{type_name}: {'; '.join(problems)}")
        return sigs, False
    digest = r.domain.digest(r.struct_hash)
    for signer, got in zip(present, recover_jobs((digest, sigs[s]) for s in present), strict=True):
        if got != address_bytes(signer):
            why = (
                got
                if isinstance(got, str)
                else (
                    f"made by {parse_address('0x' + got.hex())}: a different key, or a message "
                    "or domain other than the one signed"
                )
            )
            report.add("signatures", False, f"the signature given for {signer}: {why}")
            return sigs, False
    who = ", ".join(present)
    report.add(
        "signatures",
        True,
        f"{type_name} digest {_hex(digest)} of struct hash {_hex(r.struct_hash)} (chain "
        f"{r.chain_id}, ledger {r.contract}); {len(present)} signature(s) recover to {who}",
    )
    return sigs, True


def _reduced_offline_checks(
    report: AuditReport, r: _Reduced
) -> tuple[RoleFacts | None, bytes | None, dict[str, Any] | None]:
    """Checks 2-7 of a reduced receipt: the role facts (when its signatures hold), the
    recomputed leaf hash and the disclosed values (when the disclosures hold)."""
    values = _check_disclosures(report, r)
    fields_ok = _check_signer_fields(report, r, values)
    sigs, verified = _check_reduced_signatures(report, r, values, fields_ok)
    report.add("entry_id", None, "skipped: hidden in a reduced receipt")
    if r.signers_digest is not None:
        signers = r.signers_digest
    elif sigs is not None and r.struct_hash is not None:
        signers = commitment.signers_digest(
            r.domain.separator, r.struct_hash, commitment.signature_records_of(sigs)
        )
    else:
        report.add("leaf", None, "skipped: no signers digest without parseable signatures")
        report.add("inclusion", None, "skipped: no leaf")
        return None, None, values
    tag = int(r.kind.entry_type)
    body = commitment.commitment_body(
        type_tag=tag,
        chain_id=r.chain_id,
        contract=r.contract,
        field_digests=r.field_digests,
        signers=signers,
    )
    leaf_data = commitment.commitment_leaf(type_tag=tag, commit_salt=r.commitment_salt, body=body)
    leaf = leaf_hash(leaf_data)
    report.add("leaf", True, f"commitment leaf {_hex(leaf_data)}, leaf hash {_hex(leaf)}")
    _check_inclusion(report, r, leaf)
    facts = None
    if verified and values is not None and sigs is not None:
        facts = (r.kind, values, tuple(sorted(sigs, key=address_bytes)))
    return facts, leaf, values


def _fields_report(r: _Reduced, values: dict[str, Any] | None) -> dict[str, Any]:
    """Which fields a reduced receipt proves (with their disclosed values) and hides."""
    names = commitment.field_names(r.kind)
    shown = {} if values is None else values
    disclosed = {}
    for text in r.disclosures:
        try:
            d = commitment.parse_disclosure(text)
        except InvalidInput:
            continue
        if d.name in shown:
            disclosed[d.name] = d.value
    return {
        "proven": [n for n in names if n in shown],
        "hidden": [n for n in names if n not in shown],
        "values": {n: disclosed[n] for n in names if n in disclosed},
    }


def _read_checkpoint(chain: Chain, ledger: Contract, seq: int) -> tuple[int, bytes, int] | str:
    """(size, root, block) of checkpoint ``seq``, or why it cannot be read."""
    try:
        count = int(chain.call(ledger.functions.count()))
        if seq >= count:
            return f"checkpoint {seq} is not on chain ({count} anchored at {ledger.address})"
        size, root, block, _ = chain.call(ledger.functions.checkpoint(seq))
    except BadFunctionCallOutput:
        return f"no EvidenceLedger answers at {ledger.address} on chain {chain.chain_id}"
    except (TransactionReverted, CheckpointNotFound) as err:
        return f"reading checkpoint {seq} failed: {err.message}"
    return int(size), bytes(root), int(block)


def _check_anchor_tx(report: AuditReport, chain: Chain, ledger: Contract, doc: _Proof) -> None:
    if doc.tx_hash == _ZERO_TX:
        report.add("anchor_tx", True, "no anchoring tx hash recorded by the operator; not checked")
        return
    try:
        receipt = chain.w3.eth.get_transaction_receipt(doc.tx_hash)  # type: ignore[arg-type]
    except TransactionNotFound:
        report.add("anchor_tx", False, f"transaction {doc.tx_hash} is not on chain")
        return
    if int(receipt["status"]) != 1 or int(receipt["blockNumber"]) != doc.block_number:
        report.add(
            "anchor_tx",
            False,
            f"transaction {doc.tx_hash} (status {receipt['status']}) is in block "
            f"{receipt['blockNumber']}, the receipt says block {doc.block_number}",
        )
        return
    events = ledger.events.CheckpointAnchored().process_receipt(receipt, errors=DISCARD)
    if not any(
        ev["address"] == ledger.address and int(ev["args"]["seq"]) == doc.seq for ev in events
    ):
        report.add(
            "anchor_tx",
            False,
            f"transaction {doc.tx_hash} did not anchor checkpoint {doc.seq} at {doc.contract}",
        )
        return
    report.add(
        "anchor_tx",
        True,
        f"checkpoint {doc.seq} anchored by {doc.tx_hash} in block {doc.block_number}",
    )


def _check_deployment(
    report: AuditReport, chain: Chain, doc: _Proof, trusted: TrustedDeployment | None
) -> Contract | None:
    """The deployment check; returns the pinned registry when the receipt's ledger is the
    pinned one."""
    if trusted is None:
        report.add(
            "deployment",
            False,
            f"no trusted deployment pinned: the receipt names ledger {doc.contract}, and "
            "anyone can deploy a ledger of their own and anchor receipts on it; pin a "
            "deployment (--deployment FILE or --ledger ADDRESS) to audit online",
        )
        return None
    node_chain = int(chain.chain_id)
    if trusted.chain_id is not None and trusted.chain_id != node_chain:
        report.add(
            "deployment",
            False,
            f"the pinned deployment ({trusted.source}) is on chain {trusted.chain_id}, "
            f"the node is chain {node_chain}",
        )
        return None
    if doc.contract.lower() != trusted.ledger.lower():
        report.add(
            "deployment",
            False,
            f"the receipt is anchored on ledger {doc.contract}, not on the pinned deployment's "
            f"ledger {trusted.ledger} ({trusted.source}): a ledger the auditor does not trust",
        )
        return None
    ledger = chain.contract("EvidenceLedger", trusted.ledger)
    try:
        registry = parse_address(str(chain.call(ledger.functions.registry())))
    except (BadFunctionCallOutput, TransactionReverted):
        report.add(
            "deployment",
            False,
            f"no EvidenceLedger answers at the pinned address {trusted.ledger} on chain "
            f"{node_chain}",
        )
        return None
    if trusted.registry is not None and registry.lower() != trusted.registry.lower():
        report.add(
            "deployment",
            False,
            f"the pinned ledger {trusted.ledger} reads roles from registry {registry}, the "
            f"pinned deployment ({trusted.source}) names registry {trusted.registry}",
        )
        return None
    report.add(
        "deployment",
        True,
        f"ledger {trusted.ledger} and its registry {registry} are the pinned deployment "
        f"({trusted.source})",
    )
    return chain.contract("ParticipantRegistry", registry)


RoleFacts = tuple[type[EntryBase], Mapping[str, Any], tuple[str, ...]]
"""What the roles check needs: the entry type, the (disclosed) field values, the signers."""


def _role_facts(signed: SignedEntry) -> RoleFacts:
    entry = signed.entry
    values = {name: getattr(entry, name) for name in type(entry).model_fields}
    return type(entry), values, tuple(signed.signatures)


def _role_needs(
    facts: RoleFacts, view: RegistryView, operator_role: bytes, auditor_role: bytes
) -> list[tuple[str, str, bool]]:
    """(what, address, holds) for every party whose role the entry relies on (of a
    reduced receipt: every disclosed one, and its signers)."""
    kind, values, signers = facts
    needs: list[tuple[str, str, bool]] = []
    if issubclass(kind, Agreement | UsageReceipt) and "consumer" in values:
        consumer = values["consumer"]
        needs.append(("consumer", consumer, view.with_role(consumer, CONSUMER)))
    providers = list(values.get("providers", ())) if issubclass(kind, Agreement) else []
    provider_named = issubclass(kind, UsageReceipt | QualityAttestation | ContributionDeclaration)
    if provider_named and "provider" in values:
        providers.append(values["provider"])
    needs += [("provider", p, view.with_role(p, PROVIDER)) for p in providers]
    if issubclass(kind, QualityAttestation):
        for s in signers:  # exactly one (the signatures check holds)
            ok = view.with_role(s, CONSUMER) or view.has(auditor_role, s)
            needs.append(("attester (a consumer or an auditor)", s, ok))
    elif issubclass(kind, ContributionDeclaration):
        for s in signers:
            if s != values.get("provider"):
                needs.append(("countersigning operator", s, view.has(operator_role, s)))
    elif issubclass(kind, CoalitionValues):
        for s in signers:
            ok = (
                view.has(auditor_role, s)
                or view.has(operator_role, s)
                or view.party(s)[1] != STATUS_NONE
            )
            needs.append(("evaluator (registered, an auditor or an operator)", s, ok))
    return needs


def _check_roles(
    report: AuditReport,
    chain: Chain,
    registry: Contract,
    history: RegistryHistory,
    facts: RoleFacts,
    block: int,
) -> None:
    fns = registry.functions
    operator_role = bytes(chain.call(fns.OPERATOR_ROLE()))
    auditor_role = bytes(chain.call(fns.AUDITOR_ROLE()))
    view = history.at(block)
    needs = _role_needs(facts, view, operator_role, auditor_role)
    missing = [f"{what} {who}" for what, who, ok in needs if not ok]
    if missing:
        report.add(
            "roles",
            False,
            f"at block {block} (the checkpoint's) the pinned registry {registry.address} does "
            f"not have {'; '.join(missing)} registered in that role",
        )
        return
    who = ", ".join(f"{what} {addr}" for what, addr, _ in needs)
    report.add(
        "roles",
        True,
        f"at block {block} the pinned registry has {who} registered in their roles "
        "(from its events)",
    )


def _chain_checks(
    report: AuditReport,
    chain: Chain,
    doc: _Proof,
    facts: RoleFacts | None,
    leaf: bytes | None,
    trusted: TrustedDeployment | None,
    history: RegistryHistory | None,
    no_roles: str = "skipped: the signatures do not hold",
) -> None:
    node_chain = int(chain.chain_id)
    if node_chain != doc.chain_id:
        report.add(
            "chain_id",
            False,
            f"the node is chain {node_chain}, the receipt is anchored on chain {doc.chain_id}",
        )
        for name in CHAIN_CHECKS[1:]:
            report.add(name, None, "skipped: not the receipt's chain")
        return
    report.add("chain_id", True, f"the node is chain {node_chain}")

    registry = _check_deployment(report, chain, doc, trusted)
    if registry is None:
        for name in CHAIN_CHECKS[2:]:
            report.add(name, None, "skipped: not a pinned deployment")
        return

    ledger = chain.contract("EvidenceLedger", doc.contract)
    found = _read_checkpoint(chain, ledger, doc.seq)
    if isinstance(found, str):
        report.add("checkpoint", False, found)
        for name in CHAIN_CHECKS[3:]:
            report.add(name, None, "skipped: no such checkpoint")
        return
    size, root, block = found
    mismatches = [
        f"{what} {theirs} on chain, {ours} in the receipt"
        for what, theirs, ours in (
            ("size", size, doc.tree_size),
            ("root", _hex(root), _hex(doc.root)),
            ("block", block, doc.block_number),
        )
        if theirs != ours
    ]
    if mismatches:
        report.add("checkpoint", False, f"checkpoint {doc.seq}: " + "; ".join(mismatches))
    else:
        report.add(
            "checkpoint",
            True,
            f"checkpoint {doc.seq} at {doc.contract}: size {size}, root {_hex(root)}, "
            f"block {block}",
        )

    if leaf is None:
        report.add("contract_inclusion", None, "skipped: no leaf to check")
    else:
        proof: Sequence[bytes] = doc.proof
        try:
            agrees = bool(
                chain.call(ledger.functions.verifyInclusion(doc.seq, doc.leaf_index, leaf, proof))
            )
        except TransactionReverted as err:
            agrees, why = False, err.message
        else:
            why = f"the contract rejects the proof against checkpoint {doc.seq}"
        if agrees:
            report.add(
                "contract_inclusion",
                True,
                f"EvidenceLedger.verifyInclusion({doc.seq}, {doc.leaf_index}, …) is true",
            )
        else:
            report.add("contract_inclusion", False, why)
    _check_anchor_tx(report, chain, ledger, doc)

    if facts is None:
        report.add("roles", None, no_roles)
        return
    if history is None or history.address.lower() != str(registry.address).lower():
        from_block = 0 if trusted is None else trusted.from_block
        history = RegistryHistory(chain, registry, from_block=from_block)
    _check_roles(report, chain, registry, history, facts, block)


# --- witnesses ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WitnessPolicy:
    """At least ``min_witnesses`` of these witness keys cosigned the receipt's checkpoint.

    ``log_key``: optionally the space's own note key; then the note must also carry a
    valid signature of it and the origin must be its name.
    """

    witnesses: tuple[CosignatureV1Verifier, ...]
    min_witnesses: int
    source: str  # what pinned it, for messages
    log_key: NoteVerifier | None = None

    def __post_init__(self) -> None:
        if not self.witnesses:
            raise ConfigError(f"{self.source}: a witness policy names at least one witness")
        idents = [(w.name, w.key_id) for w in self.witnesses]
        if len(set(idents)) != len(idents):
            raise ConfigError(f"{self.source}: the same witness key is listed twice")
        if not 1 <= self.min_witnesses <= len(self.witnesses):
            raise ConfigError(
                f"{self.source}: at least {self.min_witnesses} of {len(self.witnesses)} "
                "witnesses can never hold (give 1..number of witnesses)"
            )

    @classmethod
    def from_keys(
        cls,
        vkeys: Sequence[str],
        min_witnesses: int | None = None,
        *,
        source: str = "--witness",
        log_vkey: str | None = None,
    ) -> WitnessPolicy:
        """Witness vkeys (cosignature/v1, alg 0x04); ``min_witnesses`` defaults to 1."""
        verifiers = []
        for i, text in enumerate(vkeys):
            try:
                verifiers.append(CosignatureV1Verifier.from_vkey(text))
            except NoteError as err:
                raise ConfigError(f"{source}: witness {i + 1}: {err.message}") from None
        log_key = None
        if log_vkey is not None:
            try:
                log_key = NoteVerifier.from_vkey(log_vkey)
            except NoteError as err:
                raise ConfigError(f"{source}: log_vkey: {err.message}") from None
        k = 1 if min_witnesses is None else min_witnesses
        return cls(tuple(verifiers), k, source, log_key)

    @classmethod
    def from_file(cls, path: Path) -> WitnessPolicy:
        """A TOML trust file::

        witnesses = ["w1.example/w+1a2b3c4d+BK...", "w2.example/w+..."]
        min_witnesses = 2
        log_vkey = "space.example/tally/31337/0x...+5e6f7a8b+AT..."  # optional
        """
        where = f"trust file {path}"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"no trust file {path}") from None
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"{where}: not valid TOML: {err}") from None
        unknown = set(data) - {"witnesses", "min_witnesses", "log_vkey"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        vkeys = data.get("witnesses")
        if not isinstance(vkeys, list) or not all(isinstance(v, str) for v in vkeys):
            raise ConfigError(f"{where}: witnesses must be a list of vkey strings")
        k = data.get("min_witnesses", 1)
        if type(k) is not int:
            raise ConfigError(f"{where}: min_witnesses must be an integer")
        log_vkey = data.get("log_vkey")
        if log_vkey is not None and not isinstance(log_vkey, str):
            raise ConfigError(f"{where}: log_vkey must be a vkey string")
        return cls.from_keys(vkeys, k, source=where, log_vkey=log_vkey)


def _witnessed_note(
    doc: Mapping[str, Any], parsed: _Proof
) -> tuple[Checkpoint, bytes, list[NoteSignature]] | str:
    """The cosigned note's checkpoint, body and signature lines when it is of the
    receipt's checkpoint; else why not."""
    text = doc.get("cosignatures")
    if text is None:
        return "the receipt carries no cosigned checkpoint note (no 'cosignatures' field)"
    if not isinstance(text, str) or len(text) > MAX_NOTE_BYTES:
        return "cosignatures must be the text of a signed note"
    try:
        body, sigs = parse_note(text.encode("utf-8"))
        checkpoint = Checkpoint.parse(body)
    except NoteError as err:
        return f"cosignatures: {err.message}"
    if (checkpoint.size, checkpoint.root) != (parsed.tree_size, parsed.root):
        return (
            f"the cosigned note is of size {checkpoint.size} root {_hex(checkpoint.root)}; "
            f"the receipt proves against size {parsed.tree_size} root {_hex(parsed.root)}"
        )
    if not origin_binds(checkpoint.origin, chain_id=parsed.chain_id, ledger=parsed.contract):
        return (
            f"the cosigned note's origin {checkpoint.origin!r} does not name the receipt's "
            f"chain {parsed.chain_id} and ledger {parsed.contract.lower()}"
        )
    return checkpoint, body, sigs


def _check_witnesses(
    report: AuditReport, doc: Mapping[str, Any], parsed: _Proof, policy: WitnessPolicy
) -> None:
    found = _witnessed_note(doc, parsed)
    if isinstance(found, str):
        report.add(WITNESS_CHECK, False, found)
        return
    checkpoint, body, sigs = found
    if policy.log_key is not None:
        try:
            if policy.log_key.name != checkpoint.origin:
                raise NoteError(
                    f"the origin {checkpoint.origin!r} is not the pinned log key's name"
                )
            open_note(body + b"\n" + "".join(s.line() for s in sigs).encode(), [policy.log_key])
        except NoteError as err:
            report.add(WITNESS_CHECK, False, f"the space's own signature: {err.message}")
            return
    valid: list[str] = []
    bad: set[str] = set()
    for witness in policy.witnesses:
        times: list[int] = []
        for sig in sigs:
            if (sig.name, sig.key_id) != (witness.name, witness.key_id):
                continue
            try:
                times.append(verify_cosignature(sig.line(), body, witness))
            except NoteError:
                bad.add(witness.name)
        if times:
            valid.append(f"{witness.name} (time {max(times)})")
    k, n = policy.min_witnesses, len(policy.witnesses)
    where = f"size {parsed.tree_size} root {_hex(parsed.root)} of {checkpoint.origin}"
    invalid = f"; invalid line(s) from {', '.join(sorted(bad))}" if bad else ""
    if len(valid) < k:
        report.add(
            WITNESS_CHECK,
            False,
            f"{len(valid)} of the {n} pinned witnesses ({policy.source}) cosigned {where}; "
            f"at least {k} needed{invalid}",
        )
        return
    report.add(
        WITNESS_CHECK,
        True,
        f"{len(valid)} of the {n} pinned witnesses cosigned {where} (at least {k} needed): "
        f"{', '.join(valid)}{invalid}",
    )


def audit_receipt(
    doc: Mapping[str, Any],
    *,
    chain: Chain | None,
    trusted: TrustedDeployment | None,
    history: RegistryHistory | None = None,
    witnesses: WitnessPolicy | None = None,
) -> AuditReport:
    """Audit a receipt document; offline when ``chain`` is None.

    ``trusted`` is the deployment the auditor pinned; online without one the
    ``deployment`` check fails (the audit never passes against whatever ledger the
    receipt names). ``history``: a :class:`RegistryHistory` of the pinned registry to
    reuse across many receipts (its logs are fetched once). ``witnesses``: a witness
    policy adds the ``witness_cosignatures`` check (offline too). Never raises for a bad
    receipt (that is a failed check); a node that cannot be reached raises
    :class:`~service.errors.RpcUnavailable`.
    """
    if isinstance(doc, Mapping) and doc.get("form") == "reduced":
        return _audit_reduced(
            doc, chain=chain, trusted=trusted, history=history, witnesses=witnesses
        )
    eid = doc.get("entry_id") if isinstance(doc, Mapping) else None
    subject = f"receipt {eid}" if isinstance(eid, str) and len(eid) < 80 else "receipt"
    report = AuditReport(subject=subject, offline=chain is None)
    try:
        parsed = _parse(doc)
    except InvalidInput as err:
        report.add("document", False, err.message)
        extra = () if witnesses is None else (WITNESS_CHECK,)
        for name in (*OFFLINE_CHECKS[1:], *extra, *(() if chain is None else CHAIN_CHECKS)):
            report.add(name, None, "skipped: the document is malformed")
        return report
    full = parsed.salt is not None
    report.form = "full" if full else "legacy"
    report.add(
        "document",
        True,
        f"receipt {'v2 (full)' if full else 'v1'}: {parsed.entry.eip712_type.name} at leaf "
        f"{parsed.leaf_index} of {parsed.tree_size}, checkpoint {parsed.seq}",
    )
    signed, leaf = _offline_checks(report, parsed)
    if witnesses is not None:
        _check_witnesses(report, doc, parsed, witnesses)
    if chain is None:
        _offline_summary(report, parsed, witnesses)
    else:
        facts = None if signed is None else _role_facts(signed)
        _chain_checks(report, chain, parsed, facts, leaf, trusted, history)
        _online_summary(report, parsed, trusted, witnesses, "signed by registered parties")
    return report


def _where(p: _Proof) -> str:
    return f"checkpoint {p.seq} at {p.contract} on chain {p.chain_id}"


def _cosigned(witnesses: WitnessPolicy | None) -> str:
    if witnesses is None:
        return ""
    return f"; cosigned by at least {witnesses.min_witnesses} pinned witness(es)"


def _offline_summary(
    report: AuditReport, p: _Proof, witnesses: WitnessPolicy | None, proves: str = ""
) -> None:
    for name in CHAIN_CHECKS:
        report.add(name, None, "skipped: offline")
    report.summary = (
        f"the {len(report.checks) - len(CHAIN_CHECKS)} offline checks hold{proves}"
        f"{_cosigned(witnesses)}; OFFLINE: {_where(p)} was not checked on chain "
        f"({', '.join(CHAIN_CHECKS)} skipped)"
    )


def _online_summary(
    report: AuditReport,
    p: _Proof,
    trusted: TrustedDeployment | None,
    witnesses: WitnessPolicy | None,
    signed_by: str,
) -> None:
    pinned = "" if trusted is None else f" (pinned by {trusted.source})"
    report.summary = (
        f"all {len(report.checks)} checks hold; the entry is in {_where(p)}{pinned}, "
        f"{signed_by}{_cosigned(witnesses)}"
    )


def _audit_reduced(
    doc: Mapping[str, Any],
    *,
    chain: Chain | None,
    trusted: TrustedDeployment | None,
    history: RegistryHistory | None,
    witnesses: WitnessPolicy | None,
) -> AuditReport:
    """:func:`audit_receipt` of a reduced version-2 receipt (see the module docstring)."""
    index = doc.get("leaf_index")
    subject = "reduced receipt" + (f" (leaf {index})" if type(index) is int else "")
    report = AuditReport(subject=subject, offline=chain is None, form="reduced")
    try:
        if doc.get("version") != RECEIPT_VERSION_COMMITMENT:
            raise InvalidInput(
                f"a reduced receipt is version {RECEIPT_VERSION_COMMITMENT}, got "
                f"{doc.get('version')!r}"
            )
        parsed = _parse_reduced(doc)
    except InvalidInput as err:
        report.add("document", False, err.message)
        extra = () if witnesses is None else (WITNESS_CHECK,)
        rest = (*REDUCED_OFFLINE_CHECKS[1:], *extra, *(() if chain is None else CHAIN_CHECKS))
        for name in rest:
            report.add(name, None, "skipped: the document is malformed")
        return report
    form = "signed" if parsed.signatures is not None else "unsigned"
    report.add(
        "document",
        True,
        f"receipt v2 (reduced, {form}): {parsed.kind.eip712_type.name} at leaf "
        f"{parsed.leaf_index} of {parsed.tree_size}, checkpoint {parsed.seq}",
    )
    facts, leaf, values = _reduced_offline_checks(report, parsed)
    report.fields = _fields_report(parsed, values)
    if witnesses is not None:
        _check_witnesses(report, doc, parsed, witnesses)
    proven = report.fields["proven"]
    hidden = report.fields["hidden"]
    proves = (
        f"; proves {', '.join(proven) or 'no field'}"
        f"{'; hides ' + ', '.join(hidden) if hidden else ''}"
    )
    if chain is None:
        _offline_summary(report, parsed, witnesses, proves)
    else:
        no_roles = (
            "skipped: an unsigned reduced receipt names no signer"
            if parsed.signatures is None
            else "skipped: the signatures do not hold"
        )
        _chain_checks(report, chain, parsed, facts, leaf, trusted, history, no_roles)
        signed_by = (
            "signed by registered parties"
            if parsed.signatures is not None
            else "accepted by the operator (no signer named)"
        )
        _online_summary(report, parsed, trusted, witnesses, signed_by + proves)
    return report
