"""Read-side service functions behind the API's GET endpoints (no FastAPI here).

Every function takes keyword-only, typed arguments and returns plain data (dicts and
lists of JSON values) or raises a :class:`~service.errors.TallyError`. Hashes are ``0x``
hex; :func:`log_page` serves each leaf's data (a commitment since T15; what the Merkle
leaf hashes, so anyone can rebuild any root from it alone).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from service.api.directory import LiveDirectory, role_names
from service.errors import (
    EntryNotFound,
    InvalidInput,
    MirrorNotReady,
    NotAnchored,
    ParticipantNotFound,
    TreeSizeNotFound,
)
from service.evidence.anchor import latest_anchor
from service.evidence.entries import SignedEntry
from service.evidence.log import get_entry, leaf_data_at
from service.evidence.merkle import leaf_hash
from service.evidence.models import AgreementRow, AnchorRow, EntryCommitment, LogEntry
from service.evidence.receipts import build_receipt
from service.evidence.tiles import MerkleLog, SqlTileStorage
from service.witness.note import CosignatureV1Verifier, NoteSigner


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


# --- the log -----------------------------------------------------------------------------


def log_head(*, session: Session) -> dict[str, Any]:
    """The log's current size and root."""
    state = SqlTileStorage(session).read_state()
    return {"tree_size": state.size, "root": _hex(state.root)}


def _checkpoint(row: AnchorRow) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "tree_size": row.tree_size,
        "root": row.root,
        "chain_id": row.chain_id,
        "contract": row.contract,
        "tx_hash": row.tx_hash,
        "block_number": row.block_number,
    }


def list_checkpoints(*, session: Session, offset: int, limit: int) -> dict[str, Any]:
    """Anchored checkpoints, oldest first, one page; with the log's current head."""
    total = session.exec(select(func.count()).select_from(AnchorRow)).one()
    rows = session.exec(
        select(AnchorRow).order_by(col(AnchorRow.seq).asc()).offset(offset).limit(limit)
    ).all()
    last = latest_anchor(session)
    return {
        "log": log_head(session=session),
        "latest": None if last is None else _checkpoint(last),
        "total": int(total),
        "offset": offset,
        "checkpoints": [_checkpoint(r) for r in rows],
    }


def log_page(*, session: Session, start: int, end: int | None, page_max: int) -> dict[str, Any]:
    """Leaves ``start <= leaf_index < end`` of the public log (at most ``page_max``;
    ``next`` continues): each leaf's data and hash only. Since T15 a leaf's data is a
    commitment to its entry (:mod:`service.evidence.commitment`), so the page shows what
    the tree proves and nothing of what the entries say; a legacy leaf's data is its
    canonical bytes, public as before."""
    size = SqlTileStorage(session).read_state().size
    wanted_end = max(size, start) if end is None else end
    if start > wanted_end:
        raise InvalidInput(f"start ({start}) must not be after end ({wanted_end})")
    stop = min(wanted_end, size, start + page_max)
    leaf = col(LogEntry.leaf_index)
    rows = (
        session.exec(
            select(leaf, col(EntryCommitment.leaf_data), col(LogEntry.data))
            .outerjoin(EntryCommitment, col(EntryCommitment.leaf_index) == leaf)
            .where(leaf >= start, leaf < stop)
            .order_by(leaf.asc())
        ).all()
        if stop > start
        else []
    )
    more = stop < min(wanted_end, size)
    entries = []
    for index, committed, data in rows:
        leaf_data = bytes(data if committed is None else committed)
        entries.append(
            {
                "leaf_index": int(index),
                "leaf_data": _hex(leaf_data),
                "leaf_hash": _hex(leaf_hash(leaf_data)),
            }
        )
    return {
        "tree_size": size,
        "start": start,
        "end": max(start, stop),
        "next": stop if more else None,
        "entries": entries,
    }


def _tree(session: Session, size: int) -> MerkleLog:
    tree = MerkleLog(SqlTileStorage(session))
    have = tree.size()
    if size > have:
        raise TreeSizeNotFound(f"the log has {have} entries; tree size {size} does not exist yet")
    return tree


def inclusion(*, session: Session, leaf: int, size: int) -> dict[str, Any]:
    """RFC 9162 inclusion proof of leaf ``leaf`` in the tree of ``size`` leaves."""
    tree = _tree(session, size)
    if not 0 <= leaf < size:
        raise InvalidInput(f"leaf {leaf} is not in a tree of size {size}")
    proof = tree.inclusion_proof(index=leaf, size=size)
    return {  # no entry id: private since T15 (served only with the entry)
        "leaf_index": leaf,
        "tree_size": size,
        "leaf_hash": _hex(leaf_hash(leaf_data_at(session=session, leaf_index=leaf))),
        "root": _hex(tree.root(size=size)),
        "proof": [_hex(h) for h in proof],
    }


def consistency(*, session: Session, old: int, new: int) -> dict[str, Any]:
    """RFC 9162 consistency proof from tree size ``old`` to ``new``."""
    tree = _tree(session, new)
    if old > new:
        raise InvalidInput(f"from ({old}) must not be larger than to ({new})")
    proof = tree.consistency_proof(old=old, new=new)
    return {
        "from": old,
        "to": new,
        "root_from": _hex(tree.root(size=old)),
        "root_to": _hex(tree.root(size=new)),
        "proof": [_hex(h) for h in proof],
    }


# --- entries and receipts ---------------------------------------------------------------


def evidence_entry(
    *, session: Session, eid: str, entry: tuple[LogEntry, SignedEntry] | None = None
) -> dict[str, Any]:
    """One log entry: its message, signatures, place in the log and canonical bytes
    (``entry``: its row and decoded entry, when already read)."""
    row, signed = get_entry(session=session, eid=eid) if entry is None else entry
    body = signed.to_json()
    return {
        "entry_id": row.entry_id,
        "leaf_index": row.leaf_index,
        "received_at": row.received_at,
        "entry_type": body["entry_type"],
        "entry": body["entry"],
        "signatures": body["signatures"],
        "data": _hex(row.data),
        "struct_hash": _hex(signed.entry.struct_hash()),
        "eip712_digest": _hex(signed.digest()),
    }


def full_entries(
    *,
    session: Session,
    start: int,
    end: int | None,
    limit: int,
    agreement: str | None = None,
    party: str | None = None,
    entry_type: str | None = None,
    period_from: int | None = None,
    period_to: int | None = None,
) -> dict[str, Any]:
    """Full entries ``start <= leaf_index < end``, at most ``limit``, in leaf order, each
    with its canonical bytes and its salt (None: a legacy leaf, whose leaf data is the
    bytes themselves): what an auditor rebuilds every leaf from
    (:func:`service.evidence.commitment.leaf_data_for`). ``next`` continues.

    The filters narrow the range (a page then holds up to ``limit`` matches and ``next``
    is the leaf after the last one): ``agreement`` (entries naming that agreement id),
    ``party`` (a checksummed address named as the entry's consumer or provider, or by
    the agreement the entry names: what :func:`service.api.access.entry_parties` counts,
    signers aside), ``entry_type`` and a period ``[period_from, period_to)`` the entry's
    own period overlaps (a receipt's or attestation's period, an agreement's or offer's
    validity; entries without one do not match)."""
    size = SqlTileStorage(session).read_state().size
    wanted_end = size if end is None else min(end, size)
    if end is not None and start > end:
        raise InvalidInput(f"start ({start}) must not be after end ({end})")
    if period_from is not None and period_to is not None and period_from >= period_to:
        raise InvalidInput(f"from ({period_from}) must be before to ({period_to})")
    filters: list[Any] = []
    if agreement is not None:
        filters.append(col(LogEntry.agreement_id) == agreement.lower())
    if party is not None:
        theirs = select(AgreementRow.agreement_id).where(_names(party))
        filters.append(
            or_(
                col(LogEntry.consumer) == party,
                col(LogEntry.provider) == party,
                col(LogEntry.agreement_id).in_(theirs),
            )
        )
    if entry_type is not None:
        filters.append(col(LogEntry.entry_type) == entry_type)
    if period_from is not None:
        filters.append(col(LogEntry.period_end) > period_from)
    if period_to is not None:
        filters.append(col(LogEntry.period_start) < period_to)
    query = (
        select(
            LogEntry.leaf_index,
            LogEntry.entry_id,
            LogEntry.entry_type,
            LogEntry.data,
            LogEntry.received_at,
            LogEntry.agreement_id,
            EntryCommitment.salt,
        )  # type: ignore[call-overload]
        .outerjoin(EntryCommitment, col(EntryCommitment.leaf_index) == col(LogEntry.leaf_index))
        .where(col(LogEntry.leaf_index) >= start, col(LogEntry.leaf_index) < wanted_end)
        .order_by(col(LogEntry.leaf_index).asc())
    )
    if filters:
        rows = list(session.exec(query.where(*filters).limit(limit + 1)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        stop = int(rows[-1][0]) + 1 if more else max(start, wanted_end)
        following: int | None = stop if more else None
    else:
        stop = max(start, min(wanted_end, start + limit))
        rows = (
            list(session.exec(query.where(col(LogEntry.leaf_index) < stop)).all())
            if stop > start
            else []
        )
        following = stop if stop < wanted_end else None
    last = latest_anchor(session)
    return {
        "tree_size": size,
        "anchored_size": 0 if last is None else last.tree_size,
        "start": start,
        "end": stop,
        "next": following,
        "entries": [
            {
                "leaf_index": index,
                "entry_id": eid,
                "entry_type": etype,
                "received_at": received,
                "agreement_id": agreement_id,
                "data": _hex(data),
                "salt": None if salt is None else _hex(salt),
            }
            for index, eid, etype, data, received, agreement_id, salt in rows
        ],
    }


def receipt(
    *,
    session: Session,
    eid: str,
    note_signer: NoteSigner | None = None,
    witnesses: tuple[CosignatureV1Verifier, ...] = (),
    entry: tuple[LogEntry, SignedEntry] | None = None,
) -> dict[str, Any]:
    """The receipt document of an anchored entry, or a 404 that says how far it got
    (``entry``: its row and decoded entry, when already read).

    The error carries ``status``: ``"pending"`` (in the log, no checkpoint covers it
    yet; with ``leaf_index``) or ``"unknown"`` (not in the log). With the space's
    ``note_signer`` the receipt carries its cosigned checkpoint note (``cosignatures``).
    """
    try:
        return build_receipt(
            session=session,
            eid=eid.lower(),
            note_signer=note_signer,
            witnesses=witnesses,
            entry=entry,
        )
    except NotAnchored as err:
        if entry is not None:
            row = entry[0]
        else:
            row = session.exec(select(LogEntry).where(LogEntry.entry_id == eid.lower())).one()
        raise NotAnchored(err.message, status="pending", leaf_index=row.leaf_index) from None
    except EntryNotFound as err:
        raise EntryNotFound(err.message, status="unknown") from None


def _names(party: str) -> Any:
    """The agreements in which ``party`` (checksummed) is the consumer or a provider."""
    return or_(col(AgreementRow.consumer) == party, col(AgreementRow.providers).contains(party))


def agreements_of(*, session: Session, party: str, offset: int, limit: int) -> dict[str, Any]:
    """Agreements in which ``party`` (checksummed) is the consumer or a provider."""
    where = _names(party)
    total = session.exec(select(func.count()).select_from(AgreementRow).where(where)).one()
    rows = session.exec(
        select(AgreementRow)
        .where(where)
        .order_by(col(AgreementRow.leaf_index).asc())
        .offset(offset)
        .limit(limit)
    ).all()
    return {
        "party": party,
        "total": int(total),
        "offset": offset,
        "agreements": [
            {
                "agreement_id": r.agreement_id,
                "asset_id": r.asset_id,
                "consumer": r.consumer,
                "providers": r.provider_list,
                "unit_price": str(r.unit_price),
                "policy_hash": r.policy_hash,
                "valid_from": r.valid_from,
                "valid_until": r.valid_until,
                "entry_id": r.entry_id,
                "leaf_index": r.leaf_index,
            }
            for r in rows
        ],
    }


# --- participants (the indexer's mirror) ------------------------------------------------

_ROLE_BITS = {"provider": 1, "consumer": 2, "service": 4}


def _mirror_ready(session: Session, chain_id: int, registry: str) -> None:
    from service.indexer.models import IndexerCursor

    cursors = session.exec(select(IndexerCursor).where(IndexerCursor.chain_id == chain_id)).all()
    if not any(registry.lower() in [a.lower() for a in c.addresses] for c in cursors):
        raise MirrorNotReady(
            "the participant list comes from the indexer's mirror, which has not indexed "
            "this deployment yet (run `tally serve --index` or `tally index`)"
        )


def list_participants(
    *,
    session: Session,
    chain_id: int,
    registry: str,
    role: str | None,
    offset: int,
    limit: int,
) -> dict[str, Any]:
    """Registered participants (as the indexer mirrored them), by address."""
    from service.indexer.models import Participant, RoleMember

    _mirror_ready(session, chain_id, registry)
    contract = registry.lower()
    where = [col(Participant.chain_id) == chain_id, col(Participant.contract) == contract]
    if role is not None:
        bit = _ROLE_BITS[role]
        where.append(col(Participant.roles).op("&")(bit) != 0)
    total = session.exec(select(func.count()).select_from(Participant).where(*where)).one()
    rows = session.exec(
        select(Participant)
        .where(*where)
        .order_by(col(Participant.account).asc())
        .offset(offset)
        .limit(limit)
    ).all()
    staff: dict[str, set[str]] = {}
    if rows:
        members = session.exec(
            select(RoleMember).where(
                col(RoleMember.chain_id) == chain_id,
                col(RoleMember.contract) == contract,
                col(RoleMember.account).in_([r.account for r in rows]),
            )
        ).all()
        for m in members:
            if m.role_name in ("OPERATOR_ROLE", "AUDITOR_ROLE"):
                staff.setdefault(m.account, set()).add(m.role_name.removesuffix("_ROLE").lower())
    from service.evidence.eip712 import to_checksum_address

    out = []
    for r in rows:
        names: list[str] = [n for n in ("operator", "auditor") if n in staff.get(r.account, set())]
        names += [n for n, bit in _ROLE_BITS.items() if r.roles & bit]
        out.append(
            {
                "address": to_checksum_address(r.account),
                "roles": names,
                "roles_mask": r.roles,
                "status": "suspended" if r.suspended else "active",
                "identity_hash": r.identity_hash,
                "metadata_uri": r.metadata_uri,
                "registered_block": r.registered_block,
            }
        )
    return {"total": int(total), "offset": offset, "participants": out}


def participant_detail(*, directory: LiveDirectory, address: str) -> dict[str, Any]:
    """One address as the registry says now (roles, standing, identity, metadata)."""
    rec = directory.record(address)
    party = rec.party
    if not party.registered and not (party.operator or party.auditor):
        raise ParticipantNotFound(f"{address} is not in the registry and holds no role")
    return {
        "address": address,
        "roles": role_names(party),
        "roles_mask": party.roles,
        "status": rec.status,
        "identity_hash": rec.identity_hash,
        "metadata_uri": rec.metadata_uri,
        "registered_block": rec.registered_block,
    }
