"""The evidence log: validate signed entries and append them, with their leaves, in SQL.

Batch semantics: **per-item results**. Every entry of a batch is checked on its own;
valid ones are appended (in batch order), invalid ones are reported with a stable error
code and change nothing, and an entry already in the log (same id) is reported as a
duplicate with its existing leaf index and no second leaf. An Agreement earlier in the
same batch counts as known for the receipts after it.

Checks, in order: the message parses (the caller did that); the signatures recover to
exactly the required signers in this deployment's EIP-712 domain (low-s, in parallel
for large batches); every party is registered and active with the right role; a
receipt, attestation or declaration names a known agreement, its parties match the
agreement's and its period lies inside the agreement's validity; a consumer's receipt
(or RevenueDeclaration: the consumer's own agreement, same nonce space) nonce is unused
for the agreement.

Each accepted entry's Merkle leaf is a commitment to it (T15,
:mod:`service.evidence.commitment`): a fresh salt per entry, kept in
``entry_commitments`` and returned to the submitter; ``commitments=False`` appends the
legacy leaf (the canonical bytes).

Signature recovery, the expensive part, runs before any database lock, and so do the
reads whose answers cannot change under it: the registry standing of the batch's parties
(asked once per address), the agreements already in the log and their home spaces. The
database part then runs in one transaction that first takes the log's state-row lock, so
several API workers on one PostgreSQL serialize their appends without gaps or
duplicates; what stays inside is what the lock protects (duplicates, nonces, usage
counters, prepaid balances, the leaf indices) and the inserts (COPY on PostgreSQL).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from service.catalog.billing import PrepaidGate
from service.catalog.gate import TermsGate
from service.chain.homespace import HomeSpaces
from service.db import bulk_insert, table_of
from service.errors import (
    AgreementMismatch,
    EntryNotFound,
    HomeSpaceUnreachable,
    InvalidEntry,
    InvalidInput,
    NonceReused,
    ParticipantSuspended,
    TallyError,
    UnknownAgreement,
    UnknownParticipant,
    WrongRole,
)
from service.evidence import commitment
from service.evidence.crossspace import CrossSpaceCheck
from service.evidence.directory import CONSUMER, PROVIDER, Directory, Party
from service.evidence.eip712 import Domain
from service.evidence.entries import (
    Agreement,
    CoalitionValues,
    ContributionDeclaration,
    Offer,
    OfferWithdrawal,
    QualityAttestation,
    RevenueDeclaration,
    SignedEntry,
    UsageReceipt,
    ValuationResult,
    begin_verify,
    decode_entry,
    entry_id,
    required_signers,
    struct_hash_of,
)
from service.evidence.merkle import leaf_hash
from service.evidence.models import AgreementRow, EntryCommitment, LogEntry
from service.evidence.tiles import MerkleLog, SqlTileStorage

MAX_SQL_INT = 2**63 - 1


@dataclass(frozen=True)
class ItemResult:
    """The outcome for one entry of a batch."""

    status: str  # "accepted" | "duplicate" | "rejected"
    entry_id: str | None = None
    leaf_index: int | None = None
    code: str | None = None
    message: str | None = None
    salt: str | None = None  # 0x hex of the entry's salt (commitment leaves; T15)

    @property
    def ok(self) -> bool:
        return self.status != "rejected"


def hex32(value: bytes) -> str:
    return "0x" + value.hex()


def _rejected(entry_id: str | None, err: TallyError) -> ItemResult:
    return ItemResult("rejected", entry_id=entry_id, code=err.code, message=err.message)


def _single_signer(signed: SignedEntry) -> str:
    if len(signed.signatures) != 1:
        raise InvalidEntry(
            f"a {signed.entry_type_name} carries exactly one signature, "
            f"got {len(signed.signatures)}"
        )
    return next(iter(signed.signatures))


def required_for(signed: SignedEntry) -> frozenset[str]:
    """The signers ``signed`` must carry, no more, no fewer (:func:`required_signers`).

    A QualityAttestation or CoalitionValues entry names no signer in its message: its
    one signer is the attester or evaluator (whose role ingest checks separately); a
    ContributionDeclaration with two signatures is the provider's plus an operator's.
    Raises :class:`InvalidEntry` when a single-signer entry carries another count.
    """
    entry = signed.entry
    if isinstance(entry, QualityAttestation):
        return required_signers(entry, attester=_single_signer(signed))
    if isinstance(entry, CoalitionValues | ValuationResult):
        return required_signers(entry, evaluator=_single_signer(signed))
    if isinstance(entry, ContributionDeclaration) and len(signed.signatures) == 2:
        others = [s for s in signed.signatures if s != entry.provider]
        return required_signers(entry, operator=others[0] if others else None)
    return required_signers(entry)


class _Checker:
    """Role and agreement checks against the directory and the log (inside the lock)."""

    def __init__(
        self,
        session: Session,
        directory: Directory,
        receipts: Sequence[SignedEntry] = (),
        cross: CrossSpaceCheck | None = None,
        known: Mapping[str, AgreementRow] | None = None,
    ) -> None:
        self._session = session
        self._directory = directory
        self._cross = cross or CrossSpaceCheck(None)
        self._agreements: dict[str, Agreement | AgreementRow] = dict(known or {})
        self._nonces: set[tuple[str, str, int]] = self._used_nonces(receipts)

    def _used_nonces(self, batch: Sequence[SignedEntry]) -> set[tuple[str, str, int]]:
        """The (agreement, consumer, nonce) keys of ``batch``'s receipts already in the
        log, read in one query (the caller holds the log lock, so none can appear)."""
        wanted = {
            (hex32(e.agreementId), e.consumer, e.nonce)
            for e in (s.entry for s in batch)
            if isinstance(e, UsageReceipt | RevenueDeclaration) and e.nonce <= MAX_SQL_INT
        }
        if not wanted:
            return set()
        nonces = sorted({k[2] for k in wanted})
        nonce_match: Any = col(LogEntry.nonce).in_(nonces)
        if self._session.get_bind().dialect.name == "postgresql":
            # one array parameter instead of one per nonce: the statement text stays the
            # same for every batch (SQLAlchemy and psycopg cache it; 100 expanded
            # parameters cost 2 ms a batch inside the lock, measured)
            array = sa.bindparam("nonces", nonces, type_=postgresql.ARRAY(sa.BigInteger))
            nonce_match = col(LogEntry.nonce) == sa.any_(array)
        rows = self._session.exec(
            select(LogEntry.agreement_id, LogEntry.consumer, LogEntry.nonce).where(
                col(LogEntry.agreement_id).in_({k[0] for k in wanted}),
                col(LogEntry.consumer).in_({k[1] for k in wanted}),
                nonce_match,
            )
        )
        return {(str(a), str(c), int(n)) for a, c, n in rows if n is not None} & wanted

    def _active(self, address: str, role: int | None, what: str) -> None:
        party = self._directory.party(address)
        if not party.registered:
            raise UnknownParticipant(f"{what} {address} is not registered")
        if not party.active:
            raise ParticipantSuspended(f"{what} {address} is suspended")
        if role is not None and not party.roles & role:
            raise WrongRole(f"{what} {address} lacks the {_role_name(role)} role")

    def _provider(self, agreement: Agreement | bytes, address: str) -> None:
        """Cross-space hook (T10, :mod:`service.evidence.crossspace`): a provider of a
        cross-space agreement must be active in its home space's registry; any other
        provider in this space's."""
        if isinstance(agreement, Agreement):
            home = self._cross.home_of(agreement)
        else:
            home = self._cross.home_of_id(self._session, agreement, self._agreements)
        if home is None:
            self._active(address, PROVIDER, "provider")
        else:
            self._cross.require(home, address)

    def agreement(self, agreement_id: bytes) -> tuple[str, list[str], int, int]:
        key = hex32(agreement_id)
        found = self._agreements.get(key)
        if found is None:
            found = self._session.get(AgreementRow, key)
            if found is None:
                raise UnknownAgreement(f"agreement {key} is not in the log")
            self._agreements[key] = found
        if isinstance(found, AgreementRow):
            return found.consumer, found.provider_list, found.valid_from, found.valid_until
        return found.consumer, list(found.providers), found.validFrom, found.validUntil

    def _in_agreement(
        self, agreement_id: bytes, provider: str, start: int, end: int, consumer: str | None
    ) -> None:
        a_consumer, providers, valid_from, valid_until = self.agreement(agreement_id)
        if consumer is not None and consumer != a_consumer:
            raise AgreementMismatch(f"consumer {consumer} is not the agreement's consumer")
        if provider not in providers:
            raise AgreementMismatch(f"provider {provider} is not a provider of the agreement")
        if start < valid_from or end > valid_until:
            raise AgreementMismatch(
                f"period [{start}, {end}) lies outside the agreement's validity "
                f"[{valid_from}, {valid_until})"
            )

    def check(self, signed: SignedEntry) -> None:
        e = signed.entry
        if isinstance(e, Agreement):
            aid = hex32(e.agreementId)
            if aid in self._agreements or self._session.get(AgreementRow, aid) is not None:
                raise AgreementMismatch(f"agreement id {aid} is already in the log")
            self._active(e.consumer, CONSUMER, "consumer")
            for p in e.providers:
                self._provider(e, p)
        elif isinstance(e, UsageReceipt):
            if e.units > MAX_SQL_INT or e.nonce > MAX_SQL_INT:
                raise InvalidEntry("units and nonce above 2**63 - 1 are not accepted")
            self._active(e.consumer, CONSUMER, "consumer")
            self._provider(e.agreementId, e.provider)
            self._in_agreement(e.agreementId, e.provider, e.periodStart, e.periodEnd, e.consumer)
            key = (hex32(e.agreementId), e.consumer, e.nonce)
            if key in self._nonces:
                raise NonceReused(f"nonce {e.nonce} of {e.consumer} is already used")
            self._nonces.add(key)
        elif isinstance(e, RevenueDeclaration):
            self._check_revenue_declaration(e)
        elif isinstance(e, QualityAttestation):
            attester = _single_signer(signed)
            self._provider(e.agreementId, e.provider)
            consumer, _, _, _ = self.agreement(e.agreementId)
            party = self._directory.party(attester)
            if attester != consumer and not party.auditor:
                raise WrongRole(f"attester {attester} is neither the consumer nor an auditor")
            if attester == consumer:
                self._active(attester, CONSUMER, "attester")
            self._in_agreement(e.agreementId, e.provider, e.periodStart, e.periodEnd, None)
        elif isinstance(e, ContributionDeclaration):
            self._provider(e.agreementId, e.provider)
            for signer in signed.signatures:
                if signer != e.provider and not self._directory.party(signer).operator:
                    raise WrongRole(f"countersigner {signer} is not an operator")
            self._in_agreement(e.agreementId, e.provider, e.periodStart, e.periodEnd, None)
        elif isinstance(e, CoalitionValues | ValuationResult):
            # ValuationResult (T13): the same rules as a coalition table
            evaluator = _single_signer(signed)
            party = self._directory.party(evaluator)
            if not (party.auditor or party.operator):
                self._active(evaluator, None, "evaluator")
            _, providers, valid_from, valid_until = self.agreement(e.agreementId)
            if sorted(e.providers) != sorted(providers):
                raise AgreementMismatch("coalition providers differ from the agreement's")
            if e.periodStart < valid_from or e.periodEnd > valid_until:
                raise AgreementMismatch("period lies outside the agreement's validity")

    def _check_revenue_declaration(self, e: RevenueDeclaration) -> None:
        """The consumer's own agreement, inside its validity, with an unused nonce (the
        nonce space is the one of its receipts under the agreement)."""
        if e.nonce > MAX_SQL_INT:
            raise InvalidEntry("a nonce above 2**63 - 1 is not accepted")
        self._active(e.consumer, CONSUMER, "consumer")
        a_consumer, _, valid_from, valid_until = self.agreement(e.agreementId)
        if e.consumer != a_consumer:
            raise AgreementMismatch(f"consumer {e.consumer} is not the agreement's consumer")
        if e.periodStart < valid_from or e.periodEnd > valid_until:
            raise AgreementMismatch(
                f"period [{e.periodStart}, {e.periodEnd}) lies outside the agreement's "
                f"validity [{valid_from}, {valid_until})"
            )
        key = (hex32(e.agreementId), e.consumer, e.nonce)
        if key in self._nonces:
            raise NonceReused(f"nonce {e.nonce} of {e.consumer} is already used")
        self._nonces.add(key)

    def remember(self, signed: SignedEntry) -> None:
        if isinstance(signed.entry, Agreement):
            self._agreements.setdefault(hex32(signed.entry.agreementId), signed.entry)


class _BatchDirectory:
    """``directory``, asked once per address for one batch. :func:`append_entries` asks
    it for the batch's parties before it takes the log lock, so the registry reads an
    expired role cache makes (three RPC calls a party) are not made while every other
    appender waits; the checks inside the lock then get the same answers."""

    def __init__(self, directory: Directory) -> None:
        self._directory = directory
        self._parties: dict[str, Party] = {}

    def party(self, address: str) -> Party:
        found = self._parties.get(address)
        if found is None:
            found = self._parties[address] = self._directory.party(address)
        return found

    def warm(self, entries: Sequence[SignedEntry], cross: CrossSpaceCheck) -> None:
        """Ask for every party the checks of ``entries`` read from this space's registry:
        signers and consumers, but not the providers of a cross-space agreement (their
        home registry is asked instead; ``cross`` has looked the homes up)."""
        for signed in entries:
            e = signed.entry
            foreign: set[str] = set()
            if isinstance(e, Agreement):
                try:
                    if cross.home_of(e) is not None:
                        foreign = set(e.providers)
                except TallyError:  # an unknown home space: the check rejects the entry
                    continue
            elif (
                isinstance(e, UsageReceipt | QualityAttestation | ContributionDeclaration)
                and cross.known_home(e.agreementId) is not None
            ):
                foreign = {e.provider}
            consumer = getattr(e, "consumer", None)
            for address in {*signed.signatures, *([consumer] if consumer else [])} - foreign:
                self.party(address)


def _role_name(role: int) -> str:
    return {PROVIDER: "provider", CONSUMER: "consumer"}.get(role, str(role))


def _row(signed: SignedEntry, data: bytes, eid: str, index: int, now: int) -> dict[str, Any]:
    """The ``log_entries`` row of an accepted entry (a dict, for one bulk insert)."""
    e = signed.entry
    row: dict[str, Any] = {
        "leaf_index": index,
        "entry_id": eid,
        "entry_type": signed.entry_type_name,
        "data": data,
        "received_at": now,
        "agreement_id": hex32(e.agreementId) if hasattr(e, "agreementId") else None,
        "consumer": None,
        "provider": None,
        "units": None,
        "nonce": None,
        "period_start": None,  # every row has every key: one Core executemany takes them
        "period_end": None,
    }
    if isinstance(e, Agreement):
        row.update(consumer=e.consumer, period_start=e.validFrom, period_end=e.validUntil)
    elif isinstance(e, UsageReceipt):
        row.update(consumer=e.consumer, provider=e.provider, units=e.units, nonce=e.nonce)
        row.update(period_start=e.periodStart, period_end=e.periodEnd)
    elif isinstance(e, RevenueDeclaration):
        row.update(consumer=e.consumer, nonce=e.nonce)
        row.update(period_start=e.periodStart, period_end=e.periodEnd)
    elif isinstance(e, QualityAttestation | ContributionDeclaration):
        row.update(provider=e.provider, period_start=e.periodStart, period_end=e.periodEnd)
    elif isinstance(e, Offer):  # T11 catalog: an offer's valid period
        row.update(period_start=e.validFrom, period_end=e.validUntil)
    elif isinstance(e, OfferWithdrawal):
        pass
    else:
        row.update(period_start=e.periodStart, period_end=e.periodEnd)
    return row


def append_entries(
    *,
    engine: Engine,
    domain: Domain,
    directory: Directory,
    entries: Sequence[SignedEntry],
    workers: int | None = None,
    home_spaces: HomeSpaces | None = None,
    commitments: bool = True,
) -> list[ItemResult]:
    """Validate ``entries`` and append the valid ones; one :class:`ItemResult` each.

    ``home_spaces``: the foreign spaces whose providers cross-space agreements may name
    (:mod:`service.evidence.crossspace`); none: every provider is checked here.

    ``commitments`` (T15, :mod:`service.evidence.commitment`): each accepted entry gets a
    fresh salt, its ``entry_commitments`` row in the same transaction, and the leaf
    ``leaf_hash(commitment leaf data)``; the salt is in its result (and in a duplicate's,
    the caller having resubmitted the whole signed entry). False: the legacy leaf (the
    canonical bytes, no salt), for migration tests and the benchmark."""
    results: list[ItemResult | None] = [None] * len(entries)
    encoded: list[tuple[bytes, str]] = []
    required: list[frozenset[str] | None] = []
    for i, signed in enumerate(entries):
        data = signed.encode()
        eid = hex32(entry_id(data))
        encoded.append((data, eid))
        try:
            required.append(required_for(signed))
        except (InvalidInput, ValueError) as err:
            required.append(None)
            results[i] = _rejected(
                eid, err if isinstance(err, TallyError) else InvalidEntry(str(err))
            )
    todo = [i for i in range(len(entries)) if results[i] is None]
    # the canonical bytes carry each struct hash: digests and commitments reuse it
    struct_hashes = {i: struct_hash_of(encoded[i][0]) for i in todo}
    finish_verify = begin_verify(
        [entries[i] for i in todo],
        domain,
        workers,
        required=[required[i] for i in todo],
        digests=[entries[i].domain.digest(struct_hashes[i]) for i in todo],
    )
    # while a worker pool recovers the signatures, this process salts and commits
    # (a duplicate or a rejected entry drops its commitment unused)
    commits: dict[int, commitment.Commitment] = {}
    if commitments:
        for i in todo:
            fresh = commitment.new_salt()
            commits[i] = commitment.commit(entries[i], fresh, struct_hash=struct_hashes[i])
    verdicts = finish_verify()
    for i, verdict in zip(todo, verdicts, strict=True):
        if verdict.error is not None:
            results[i] = _rejected(encoded[i][1], verdict.error)

    # Before the lock: home standings (T10), the agreements already in the log (committed
    # rows never change) and this space's registry answers for the batch's parties.
    cross = CrossSpaceCheck(home_spaces)
    parties = _BatchDirectory(directory)
    pending = [entries[i] for i in range(len(entries)) if results[i] is None]
    with Session(engine) as session:
        cross.prefetch(session, pending)
    parties.warm(pending, cross)
    now = int(time.time())
    with Session(engine) as session:
        storage = SqlTileStorage(session)
        size = storage.lock_state().size  # serializes appenders from here to commit
        log = MerkleLog(storage)
        checker = _Checker(session, parties, pending, cross, known=cross.rows)
        terms_gate = TermsGate(session, parties, pending)  # T11 catalog + terms hook
        prepaid_gate = PrepaidGate(session, domain.chain_id, known=cross.v2)  # T11 prepaid hook
        ids = [encoded[i][1] for i in range(len(entries)) if results[i] is None]
        existing: dict[str, tuple[int, bytes | None]] = {
            str(eid): (int(index), None if salt is None else bytes(salt))
            for eid, index, salt in session.exec(
                select(  # type: ignore[call-overload]
                    LogEntry.entry_id, LogEntry.leaf_index, EntryCommitment.salt
                )
                .outerjoin(
                    EntryCommitment,
                    col(EntryCommitment.leaf_index) == col(LogEntry.leaf_index),
                )
                .where(col(LogEntry.entry_id).in_(ids))
            ).all()
        }
        rows: list[dict[str, Any]] = []
        agreements: list[dict[str, Any]] = []
        commit_rows: list[dict[str, Any]] = []
        new_leaves: list[bytes] = []
        seen: dict[str, tuple[int, bytes | None]] = {}
        for i, signed in enumerate(entries):
            if results[i] is not None:
                continue
            data, eid = encoded[i]
            if eid in existing or eid in seen:
                index, old_salt = existing[eid] if eid in existing else seen[eid]
                results[i] = ItemResult(
                    "duplicate",
                    entry_id=eid,
                    leaf_index=index,
                    salt=None if old_salt is None else hex32(old_salt),
                )
                continue
            try:
                checker.check(signed)
                terms_gate.check(signed)
                prepaid_gate.check(signed)
            except (InvalidInput, HomeSpaceUnreachable) as err:  # the latter: retry later
                results[i] = _rejected(eid, err)
                continue
            checker.remember(signed)
            index = size + len(new_leaves)
            terms_gate.remember(signed, eid, index)
            prepaid_gate.remember(signed)
            rows.append(_row(signed, data, eid, index, now))
            if isinstance(signed.entry, Agreement):
                agreements.append(_agreement_row(signed.entry, eid, index).model_dump())
            salt: bytes | None = None
            if commitments:
                salt, leaf_data = commits[i].salt, commits[i].leaf_data
                commit_rows.append({"leaf_index": index, "salt": salt, "leaf_data": leaf_data})
                new_leaves.append(leaf_hash(leaf_data))
            else:
                new_leaves.append(leaf_hash(data))
            seen[eid] = (index, salt)
            results[i] = ItemResult(
                "accepted",
                entry_id=eid,
                leaf_index=index,
                salt=None if salt is None else hex32(salt),
            )
        if new_leaves:
            # Core inserts (COPY on PostgreSQL) on the session's connection: the ORM's bulk
            # path (per-row mapper bookkeeping) cost more than the statement for a
            # 500-entry batch
            conn = session.connection()
            bulk_insert(conn, table_of(LogEntry), rows)
            bulk_insert(conn, table_of(EntryCommitment), commit_rows)
            if agreements:
                session.execute(sa.insert(AgreementRow), agreements)
            log.append(hashes=new_leaves)
            terms_gate.flush()
        session.commit()
    return [r for r in results if r is not None]


def _agreement_row(a: Agreement, eid: str, index: int) -> AgreementRow:
    return AgreementRow(
        agreement_id=hex32(a.agreementId),
        asset_id=hex32(a.assetId),
        consumer=a.consumer,
        providers=",".join(a.providers),
        unit_price=a.unitPrice,
        policy_hash=hex32(a.policyHash),
        valid_from=a.validFrom,
        valid_until=a.validUntil,
        entry_id=eid,
        leaf_index=index,
    )


# --- reads --------------------------------------------------------------------------------


def get_entry(*, session: Session, eid: str) -> tuple[LogEntry, SignedEntry]:
    row = session.exec(select(LogEntry).where(LogEntry.entry_id == eid.lower())).first()
    if row is None:
        raise EntryNotFound(f"no log entry {eid}")
    return row, decode_entry(row.data)


def leaf_data_at(*, session: Session, leaf_index: int) -> bytes:
    """The leaf data at ``leaf_index``: its commitment, or a legacy leaf's canonical bytes."""
    row = session.get(EntryCommitment, leaf_index)
    if row is not None:
        return bytes(row.leaf_data)
    entry = session.get(LogEntry, leaf_index)
    if entry is None:
        raise EntryNotFound(f"no leaf {leaf_index} in the log")
    return bytes(entry.data)


def entries_range(*, session: Session, start: int, end: int) -> list[LogEntry]:
    """Entries with ``start <= leaf_index < end``, in leaf order."""
    return list(
        session.exec(
            select(LogEntry)
            .where(LogEntry.leaf_index >= start, LogEntry.leaf_index < end)
            .order_by(col(LogEntry.leaf_index).asc())
        )
    )
