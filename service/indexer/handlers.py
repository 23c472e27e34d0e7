"""Derived tables: one handler per event name, folding raw events into SQL state.

``HANDLERS`` maps an event name to a :class:`Handler`: the contract it belongs to, the
state rows it reads and writes (``keys``, so a range's rows are loaded in one query per
table), and ``apply``, which updates a :class:`Derived` unit of work. Nothing is written
until :meth:`Derived.flush`, which upserts the changed state rows and inserts the
per-event rows: the writes of a whole range go out as a few bulk statements inside the
range's transaction.

Derived state is a pure function of ``chain_events``: applying the handlers to the raw
rows in (block, log index) order always yields the same tables. A rollback therefore
deletes the per-event rows of orphaned blocks, and recomputes each state row that an
orphaned event had touched from the raw rows that remain (:func:`rebuild_keys`); a full
:func:`rebuild_all` does the same for every row.

Vault balances (``chain_vault_balances``, one row per account: its free balance and its
withdrawal request) are folded from ``Deposited``, ``RoundDebited``, ``RoundRefunded``,
``WithdrawalRequested`` and ``Withdrawn``. Two of those carry the account as their second
indexed argument (the round id is first), so a rollback replays every balance event of
the vault for the touched accounts rather than looking them up by first topic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak
from sqlalchemy import Table, and_, delete, select, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ColumnElement

from service.db import table_of
from service.indexer.decode import Event
from service.indexer.models import (
    EVENT_TABLES,
    STATE_TABLES,
    BalanceChange,
    ChainEvent,
    Checkpoint,
    Claim,
    Deposit,
    Participant,
    RoleMember,
    Round,
    RoundStatusChange,
    VaultBalance,
)
from service.indexer.sql import BulkUpsert

log = logging.getLogger(__name__)

REGISTRY, LEDGER, VAULT = "ParticipantRegistry", "EvidenceLedger", "SettlementVault"
CHUNK = 400  # keys per IN (...) query

Key = tuple[Any, ...]


T_EVENTS = table_of(ChainEvent)
T_PARTICIPANTS = table_of(Participant)
T_ROLES = table_of(RoleMember)
T_ROUNDS = table_of(Round)
T_CHECKPOINTS = table_of(Checkpoint)
T_DEPOSITS = table_of(Deposit)
T_HISTORY = table_of(RoundStatusChange)
T_CLAIMS = table_of(Claim)
T_BALANCES = table_of(VaultBalance)
T_BALANCE_CHANGES = table_of(BalanceChange)
STATE = tuple(table_of(m) for m in STATE_TABLES)
PER_EVENT = tuple(table_of(m) for m in EVENT_TABLES)

ROLE_NAMES = {
    "0x" + "00" * 32: "DEFAULT_ADMIN_ROLE",
    **{"0x" + keccak(text=n).hex(): n for n in ("OPERATOR_ROLE", "AUDITOR_ROLE", "ARBITER_ROLE")},
}


def primary_key(table: Table) -> tuple[str, ...]:
    return tuple(c.name for c in table.primary_key.columns)


def _topic_of_address(account: str) -> str:
    return "0x" + "0" * 24 + account[2:]


def _topic_of_uint(value: int) -> str:
    return "0x" + format(value, "064x")


# The raw events that can touch a state row carry its subject as their first indexed
# topic (checked against the ABIs by check_subjects), so a rollback finds them with the
# (chain_id, address, topic1) index instead of scanning every event.
SUBJECT: dict[str, tuple[int, Callable[[Any], str]] | None] = {
    # table -> (position of the subject in the key, topic of that value); None: replay
    # every event of the table's kinds (the subject is not always the first topic)
    T_PARTICIPANTS.name: (2, _topic_of_address),
    T_ROLES.name: (2, lambda role: str(role)),
    T_ROUNDS.name: (2, _topic_of_uint),
    T_BALANCES.name: None,
}


# --- the unit of work ---------------------------------------------------------------------


_UPSERTS: dict[str, BulkUpsert] = {}


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows``; a row whose primary key exists replaces it."""
    if not rows:
        return
    writer = _UPSERTS.get(table.name)
    if writer is None:
        writer = _UPSERTS[table.name] = BulkUpsert(table, primary_key(table))
    writer.write_dicts(conn, rows)


def key_filter(table: Table, keys: Sequence[Key]) -> ColumnElement[bool]:
    cols = [table.c[name] for name in primary_key(table)]
    return tuple_(*cols).in_(list(keys))


class Derived:
    """Pending derived-table writes of a batch of events.

    ``restrict`` (rollback replay): only these state keys are recomputed; every other
    state row and every per-event row is left as it is in the database.
    """

    def __init__(self, conn: Connection, *, restrict: dict[str, set[Key]] | None = None) -> None:
        self.conn = conn
        self.restrict = restrict
        self.cache: dict[str, dict[Key, dict[str, Any] | None]] = {t.name: {} for t in STATE}
        self.dirty: dict[str, set[Key]] = {t.name: set() for t in STATE}
        self.rows: dict[str, list[dict[str, Any]]] = {t.name: [] for t in PER_EVENT}
        self.tables = {t.name: t for t in (*STATE, *PER_EVENT)}

    def prefetch(self, table: str, keys: Iterable[Key]) -> None:
        cache = self.cache[table]
        missing = sorted({k for k in keys if k not in cache}, key=repr)
        t = self.tables[table]
        pk = primary_key(t)
        for i in range(0, len(missing), CHUNK):
            chunk = missing[i : i + CHUNK]
            for k in chunk:
                cache[k] = None
            for row in self.conn.execute(select(t).where(key_filter(t, chunk))).mappings():
                cache[tuple(row[c] for c in pk)] = dict(row)

    def get(self, table: str, key: Key) -> dict[str, Any] | None:
        if key not in self.cache[table]:
            self.prefetch(table, [key])
        row = self.cache[table][key]
        return None if row is None else dict(row)

    def put(self, table: str, key: Key, row: dict[str, Any] | None) -> None:
        if self.restrict is not None and key not in self.restrict.get(table, set()):
            return
        self.cache[table][key] = row
        self.dirty[table].add(key)

    def add(self, table: str, row: dict[str, Any]) -> None:
        if self.restrict is None:
            self.rows[table].append(row)

    def flush(self) -> None:
        for name, keys in self.dirty.items():
            if not keys:
                continue
            t = self.tables[name]
            gone = [k for k in keys if self.cache[name][k] is None]
            live = [row for k in keys if (row := self.cache[name][k]) is not None]
            for i in range(0, len(gone), CHUNK):
                self.conn.execute(delete(t).where(key_filter(t, gone[i : i + CHUNK])))
            upsert(self.conn, t, live)
            keys.clear()
        for name, rows in self.rows.items():
            upsert(self.conn, self.tables[name], rows)
            rows.clear()


# --- handlers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Handler:
    contract: str
    apply: Callable[[Derived, Event], None]
    keys: Callable[[Event], list[tuple[str, Key]]] = lambda ev: []


def _participant_key(ev: Event) -> Key:
    return (ev.chain_id, ev.address, ev.args["participant"])


def _participant_keys(ev: Event) -> list[tuple[str, Key]]:
    return [(T_PARTICIPANTS.name, _participant_key(ev))]


def _participant_set(d: Derived, ev: Event) -> None:
    key = _participant_key(ev)
    old = d.get(T_PARTICIPANTS.name, key)
    registered = old["registered_block"] if old and ev.event != "ParticipantRegistered" else None
    d.put(
        T_PARTICIPANTS.name,
        key,
        {
            "chain_id": key[0],
            "contract": key[1],
            "account": key[2],
            "roles": ev.args["roles"],
            "identity_hash": ev.args["identityHash"],
            "metadata_uri": ev.args["metadataURI"],
            "suspended": bool(old and old["suspended"])
            if ev.event != "ParticipantRegistered"
            else False,
            "registered_block": registered if registered is not None else ev.block_number,
            "block_number": ev.block_number,
        },
    )


def _participant_flag(suspended: bool) -> Callable[[Derived, Event], None]:
    def apply(d: Derived, ev: Event) -> None:
        key = _participant_key(ev)
        old = d.get(T_PARTICIPANTS.name, key)
        if old is None:
            log.warning("%s for unknown participant %s: ignored", ev.event, key[2])
            return
        d.put(
            T_PARTICIPANTS.name,
            key,
            {**old, "suspended": suspended, "block_number": ev.block_number},
        )

    return apply


def _role_key(ev: Event) -> Key:
    return (ev.chain_id, ev.address, ev.args["role"], ev.args["account"])


def _role_keys(ev: Event) -> list[tuple[str, Key]]:
    return [(T_ROLES.name, _role_key(ev))]


def _role_granted(d: Derived, ev: Event) -> None:
    key = _role_key(ev)
    d.put(
        T_ROLES.name,
        key,
        {
            "chain_id": key[0],
            "contract": key[1],
            "role": key[2],
            "account": key[3],
            "role_name": ROLE_NAMES.get(key[2]),
            "granted_by": ev.args["sender"],
            "tx_hash": ev.tx_hash,
            "block_number": ev.block_number,
        },
    )


def _role_revoked(d: Derived, ev: Event) -> None:
    d.put(T_ROLES.name, _role_key(ev), None)


def _checkpoint(d: Derived, ev: Event) -> None:
    d.add(
        T_CHECKPOINTS.name,
        {
            "chain_id": ev.chain_id,
            "contract": ev.address,
            "seq": ev.args["seq"],
            "tree_size": ev.args["treeSize"],
            "root_hash": ev.args["rootHash"],
            "block_number": ev.block_number,
            "block_hash": ev.block_hash,
            "tx_hash": ev.tx_hash,
            "log_index": ev.log_index,
        },
    )


def _balance_key(ev: Event) -> Key:
    return (ev.chain_id, ev.address, ev.args["account"])


def _balance_keys(ev: Event) -> list[tuple[str, Key]]:
    return [(T_BALANCES.name, _balance_key(ev))]


def _balance(d: Derived, ev: Event, **change: int) -> None:
    """Apply ``change`` (``balance`` / ``deposited`` deltas, withdrawal fields set) to the
    event account's balance row."""
    key = _balance_key(ev)
    old = d.get(T_BALANCES.name, key) or {
        "chain_id": key[0],
        "contract": key[1],
        "account": key[2],
        "balance": 0,
        "deposited": 0,
        "withdrawal_amount": 0,
        "withdrawal_available_at": 0,
    }
    new = {**old, "block_number": ev.block_number}
    for name in ("balance", "deposited"):
        new[name] = old[name] + change.pop(name, 0)
    if new["balance"] < 0:  # the contract never lets it happen; a gap in the mirror would
        log.warning("%s leaves %s below zero: clamped", ev.event, key[2])
        new["balance"] = 0
    new.update(change)
    d.put(T_BALANCES.name, key, new)


def _balance_change(d: Derived, ev: Event, **extra: Any) -> None:
    d.add(
        T_BALANCE_CHANGES.name,
        {
            "chain_id": ev.chain_id,
            "tx_hash": ev.tx_hash,
            "log_index": ev.log_index,
            "contract": ev.address,
            "event": ev.event,
            "account": ev.args["account"],
            "round_id": ev.args.get("roundId"),
            "amount": ev.args["amount"],
            "available_at": extra.get("available_at"),
            "block_number": ev.block_number,
        },
    )


def _deposit(d: Derived, ev: Event) -> None:
    d.add(
        T_DEPOSITS.name,
        {
            "chain_id": ev.chain_id,
            "tx_hash": ev.tx_hash,
            "log_index": ev.log_index,
            "contract": ev.address,
            "account": ev.args["account"],
            "payer": ev.args["payer"],
            "amount": ev.args["amount"],
            "block_number": ev.block_number,
        },
    )
    amount = ev.args["amount"]
    _balance(d, ev, balance=amount, deposited=amount)


def _debited(d: Derived, ev: Event) -> None:
    _balance_change(d, ev)
    _balance(d, ev, balance=-ev.args["amount"])


def _refunded(d: Derived, ev: Event) -> None:
    _balance_change(d, ev)
    _balance(d, ev, balance=ev.args["amount"])


def _withdrawal_requested(d: Derived, ev: Event) -> None:
    at = ev.args["availableAt"]
    _balance_change(d, ev, available_at=at)
    _balance(d, ev, withdrawal_amount=ev.args["amount"], withdrawal_available_at=at)


def _withdrawn(d: Derived, ev: Event) -> None:
    _balance_change(d, ev)
    _balance(d, ev, balance=-ev.args["amount"], withdrawal_amount=0, withdrawal_available_at=0)


def _round_key(ev: Event) -> Key:
    return (ev.chain_id, ev.address, ev.args["roundId"])


def _round_keys(ev: Event) -> list[tuple[str, Key]]:
    return [(T_ROUNDS.name, _round_key(ev))]


def _history(d: Derived, ev: Event, status: str, **extra: Any) -> None:
    d.add(
        T_HISTORY.name,
        {
            "chain_id": ev.chain_id,
            "tx_hash": ev.tx_hash,
            "log_index": ev.log_index,
            "contract": ev.address,
            "round_id": ev.args["roundId"],
            "event": ev.event,
            "status": status,
            "actor": extra.get("actor"),
            "detail": extra.get("detail"),
            "amount": extra.get("amount"),
            "block_number": ev.block_number,
        },
    )


def _round_proposed(d: Derived, ev: Event) -> None:
    key = _round_key(ev)
    a = ev.args
    d.put(
        T_ROUNDS.name,
        key,
        {
            "chain_id": key[0],
            "contract": key[1],
            "round_id": key[2],
            "payout_root": a["payoutRoot"],
            "total": a["total"],
            "evidence_seq": a["evidenceSeq"],
            "policy_hash": a["policyHash"],
            "period_start": a["periodStart"],
            "period_end": a["periodEnd"],
            "challenge_deadline": a["challengeDeadline"],
            "status": "proposed",
            "challenger": None,
            "finding_hash": None,
            "arbiter": None,
            "ruling_hash": None,
            "upheld": None,
            "claimed_total": 0,
            "claim_count": 0,
            "swept_total": 0,
            "proposed_block": ev.block_number,
            "proposed_tx": ev.tx_hash,
            "block_number": ev.block_number,
        },
    )
    _history(d, ev, "proposed")


def _round_update(d: Derived, ev: Event, **changes: Any) -> dict[str, Any] | None:
    key = _round_key(ev)
    old = d.get(T_ROUNDS.name, key)
    if old is None:
        log.warning("%s for unknown round %s: state not updated", ev.event, key[2])
        return None
    new = {**old, **changes, "block_number": ev.block_number}
    d.put(T_ROUNDS.name, key, new)
    return new


def _round_status(status: str) -> Callable[[Derived, Event], None]:
    def apply(d: Derived, ev: Event) -> None:
        if ev.event == "RoundChallenged":
            actor, detail = ev.args["challenger"], ev.args["findingHash"]
            _round_update(d, ev, status=status, challenger=actor, finding_hash=detail)
            _history(d, ev, status, actor=actor, detail=detail)
        else:
            _round_update(d, ev, status=status)
            _history(d, ev, status)

    return apply


def _dispute_resolved(d: Derived, ev: Event) -> None:
    """Rejected: Proposed again. Upheld: cancelled (its RoundRefunded and RoundCancelled
    events follow in the same transaction)."""
    a = ev.args
    status = "cancelled" if a["upheld"] else "proposed"
    _round_update(
        d, ev, status=status, arbiter=a["arbiter"], ruling_hash=a["rulingHash"], upheld=a["upheld"]
    )
    _history(d, ev, status, actor=a["arbiter"], detail=a["rulingHash"])


def _round_swept(d: Derived, ev: Event) -> None:
    key = _round_key(ev)
    old = d.get(T_ROUNDS.name, key)
    amount = ev.args["amount"]
    new = _round_update(
        d, ev, status="closed", swept_total=(old["swept_total"] if old else 0) + amount
    )
    _history(d, ev, new["status"] if new else "unknown", amount=amount)


def _claimed(d: Derived, ev: Event) -> None:
    key = _round_key(ev)
    old = d.get(T_ROUNDS.name, key)
    amount = ev.args["amount"]
    if old is not None:
        _round_update(
            d, ev, claimed_total=old["claimed_total"] + amount, claim_count=old["claim_count"] + 1
        )
    d.add(
        T_CLAIMS.name,
        {
            "chain_id": ev.chain_id,
            "tx_hash": ev.tx_hash,
            "log_index": ev.log_index,
            "contract": ev.address,
            "round_id": key[2],
            "account": ev.args["account"],
            "amount": amount,
            "block_number": ev.block_number,
        },
    )


HANDLERS: dict[str, Handler] = {
    "ParticipantRegistered": Handler(REGISTRY, _participant_set, _participant_keys),
    "ParticipantUpdated": Handler(REGISTRY, _participant_set, _participant_keys),
    "ParticipantSuspended": Handler(REGISTRY, _participant_flag(True), _participant_keys),
    "ParticipantReinstated": Handler(REGISTRY, _participant_flag(False), _participant_keys),
    "RoleGranted": Handler(REGISTRY, _role_granted, _role_keys),
    "RoleRevoked": Handler(REGISTRY, _role_revoked, _role_keys),
    "CheckpointAnchored": Handler(LEDGER, _checkpoint),
    "Deposited": Handler(VAULT, _deposit, _balance_keys),
    "RoundDebited": Handler(VAULT, _debited, _balance_keys),
    "RoundRefunded": Handler(VAULT, _refunded, _balance_keys),
    "WithdrawalRequested": Handler(VAULT, _withdrawal_requested, _balance_keys),
    "Withdrawn": Handler(VAULT, _withdrawn, _balance_keys),
    "RoundProposed": Handler(VAULT, _round_proposed, _round_keys),
    "RoundChallenged": Handler(VAULT, _round_status("disputed"), _round_keys),
    "DisputeResolved": Handler(VAULT, _dispute_resolved, _round_keys),
    "RoundCancelled": Handler(VAULT, _round_status("cancelled"), _round_keys),
    "RoundFinalized": Handler(VAULT, _round_status("finalized"), _round_keys),
    "RoundSwept": Handler(VAULT, _round_swept, _round_keys),
    "Claimed": Handler(VAULT, _claimed, _round_keys),
}

# Which events can touch each state table (for the rollback's raw-row lookup).
STATE_EVENTS: dict[str, tuple[str, ...]] = {
    T_PARTICIPANTS.name: (
        "ParticipantRegistered",
        "ParticipantUpdated",
        "ParticipantSuspended",
        "ParticipantReinstated",
    ),
    T_ROLES.name: ("RoleGranted", "RoleRevoked"),
    T_ROUNDS.name: (
        "RoundProposed",
        "RoundChallenged",
        "DisputeResolved",
        "RoundCancelled",
        "RoundFinalized",
        "RoundSwept",
        "Claimed",
    ),
    T_BALANCES.name: (
        "Deposited",
        "RoundDebited",
        "RoundRefunded",
        "WithdrawalRequested",
        "Withdrawn",
    ),
}
SUBJECT_ARG = {T_PARTICIPANTS.name: "participant", T_ROLES.name: "role", T_ROUNDS.name: "roundId"}


def handler_for(ev: Event) -> Handler | None:
    h = HANDLERS.get(ev.event)
    return h if h is not None and h.contract == ev.contract else None


def apply_events(
    conn: Connection, events: Sequence[Event], *, derived: Derived | None = None
) -> int:
    """Fold ``events`` (in chain order) into the derived tables; returns events handled."""
    d = derived or Derived(conn)
    todo = [(h, ev) for ev in events if (h := handler_for(ev)) is not None]
    wanted: dict[str, set[Key]] = {}
    for h, ev in todo:
        for table, key in h.keys(ev):
            wanted.setdefault(table, set()).add(key)
    for table, keys in wanted.items():
        d.prefetch(table, keys)
    for h, ev in todo:
        h.apply(d, ev)
    d.flush()
    return len(todo)


# --- rollback and rebuild -----------------------------------------------------------------


def _event_order() -> list[Any]:
    return [T_EVENTS.c.block_number, T_EVENTS.c.log_index]


def delete_above(
    conn: Connection, chain_id: int, addresses: Sequence[str], block: int
) -> dict[str, set[Key]]:
    """Delete the derived rows that events above ``block`` wrote; returns the state keys
    to recompute (their rows are deleted too). Call it before the raw rows go: the keys
    come from the orphaned raw events (a revoked role has no row left to find) and from
    the state rows last written above ``block``."""
    touched: dict[str, set[Key]] = {}
    stateful = sorted({name for names in STATE_EVENTS.values() for name in names})
    orphaned = select(T_EVENTS).where(
        T_EVENTS.c.chain_id == chain_id,
        T_EVENTS.c.address.in_(addresses),
        T_EVENTS.c.block_number > block,
        T_EVENTS.c.event.in_(stateful),
    )
    for row in conn.execute(orphaned).mappings():
        ev = Event.from_row(row)
        h = handler_for(ev)
        if h is not None:
            for table, key in h.keys(ev):
                touched.setdefault(table, set()).add(key)
    for t in PER_EVENT:
        conn.execute(
            delete(t).where(
                and_(
                    t.c.chain_id == chain_id, t.c.contract.in_(addresses), t.c.block_number > block
                )
            )
        )
    for t in STATE:
        pk = primary_key(t)
        where = and_(
            t.c.chain_id == chain_id, t.c.contract.in_(addresses), t.c.block_number > block
        )
        for r in conn.execute(select(*[t.c[c] for c in pk]).where(where)):
            touched.setdefault(t.name, set()).add(tuple(r))
    for name, keys in touched.items():
        t = next(x for x in STATE if x.name == name)
        ordered = sorted(keys, key=repr)
        for i in range(0, len(ordered), CHUNK):
            conn.execute(delete(t).where(key_filter(t, ordered[i : i + CHUNK])))
    return touched


def rebuild_keys(conn: Connection, touched: dict[str, set[Key]]) -> int:
    """Recompute the state rows ``touched`` from the raw rows that remain; returns the
    number of raw events replayed."""
    events: dict[int, Event] = {}
    for table, keys in touched.items():
        subject = SUBJECT[table]
        if subject is None:  # every event of the table's kinds, per contract
            for chain_id, contract in sorted({(k[0], k[1]) for k in keys}):
                query = select(T_EVENTS).where(
                    T_EVENTS.c.chain_id == chain_id,
                    T_EVENTS.c.address == contract,
                    T_EVENTS.c.event.in_(STATE_EVENTS[table]),
                )
                for row in conn.execute(query).mappings():
                    events[row["id"]] = Event.from_row(row)
            continue
        pos, topic_of = subject
        by_contract: dict[tuple[int, str], set[str]] = {}
        for key in keys:
            by_contract.setdefault((key[0], key[1]), set()).add(topic_of(key[pos]))
        for (chain_id, contract), topics in by_contract.items():
            topic_list = sorted(topics)
            for i in range(0, len(topic_list), CHUNK):
                query = (
                    select(T_EVENTS)
                    .where(
                        T_EVENTS.c.chain_id == chain_id,
                        T_EVENTS.c.address == contract,
                        T_EVENTS.c.topic1.in_(topic_list[i : i + CHUNK]),
                        T_EVENTS.c.event.in_(STATE_EVENTS[table]),
                    )
                    .order_by(*_event_order())
                )
                for row in conn.execute(query).mappings():
                    events[row["id"]] = Event.from_row(row)
    ordered = sorted(events.values(), key=lambda e: e.position)
    d = Derived(conn, restrict=touched)
    for table, keys in touched.items():  # they are gone from the database: start empty
        for key in keys:
            d.cache[table][key] = None
    apply_events(conn, ordered, derived=d)
    return len(ordered)


def delete_all(conn: Connection, chain_id: int, addresses: Sequence[str]) -> None:
    for t in (*PER_EVENT, *STATE):
        conn.execute(delete(t).where(and_(t.c.chain_id == chain_id, t.c.contract.in_(addresses))))


def rebuild_all(
    conn: Connection, chain_id: int, addresses: Sequence[str], *, batch: int = 5000
) -> int:
    """Drop and recompute every derived row of these contracts from ``chain_events``
    (read ``batch`` rows at a time, in chain order)."""
    delete_all(conn, chain_id, addresses)
    total = 0
    after: tuple[int, int] = (-1, -1)
    while True:
        query = (
            select(T_EVENTS)
            .where(
                T_EVENTS.c.chain_id == chain_id,
                T_EVENTS.c.address.in_(addresses),
                tuple_(T_EVENTS.c.block_number, T_EVENTS.c.log_index) > tuple_(*after),
            )
            .order_by(*_event_order())
            .limit(batch)
        )
        chunk = [Event.from_row(row) for row in conn.execute(query).mappings().all()]
        if not chunk:
            return total
        apply_events(conn, chunk)
        total += len(chunk)
        after = chunk[-1].position


def check_subjects(specs: dict[str, dict[str, Any]]) -> list[str]:
    """Problems with the rollback's assumption that every event touching a state row has
    that row's subject as its first indexed argument (``specs``: contract -> event ->
    EventSpec). Empty when the ABIs fit."""
    contract_of = {T_PARTICIPANTS.name: REGISTRY, T_ROLES.name: REGISTRY, T_ROUNDS.name: VAULT}
    problems = []
    for table, names in STATE_EVENTS.items():
        if SUBJECT[table] is None:  # replayed whole: no subject to check
            continue
        for name in names:
            spec = specs.get(contract_of[table], {}).get(name)
            if spec is None:
                continue
            first = spec.indexed[0].get("name") if spec.indexed else None
            if first != SUBJECT_ARG[table]:
                problems.append(f"{contract_of[table]}.{name}: first indexed argument is {first!r}")
    return problems
