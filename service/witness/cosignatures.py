"""The space's side of witnessing: its checkpoint as a signed note, and the cosignatures
witnesses post back.

- **Origin** (:func:`space_origin`): ``<space>/tally/<chain id>/<ledger>``, e.g.
  ``energy.example/tally/31337/0x5fbdb2315678afecb367f032d93f642f64180aa3``: the space's
  name (``TALLY_SPACE_NAME``, default ``TALLY_SIWE_DOMAIN``), then the deployment the log
  is bound to (chain id, EvidenceLedger address in lowercase). The note key's name is
  the origin (as sumdb and sigsum logs do), so a key signs for one deployment only.
- **The served checkpoint** (:func:`checkpoint_note`): the size of the latest anchored
  checkpoint row, the root recomputed from the log's own tiles at that size (not the
  row's root: a database rewritten after anchoring then serves a root that no longer
  matches the chain, which is what witnesses check), signed with the note key, then the
  stored cosignature lines that verify over that exact body.
- **Cosignatures** (:func:`add_cosignature`): only from witnesses in ``TALLY_WITNESSES``,
  only over this space's body for an anchored size, one row per (size, root, witness key),
  the newest timestamp kept; a replay of the same line is a no-op, an older one is
  refused (409), nothing is stored for bad input.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, String
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from service.errors import (
    CheckpointNotFound,
    ConfigError,
    Forbidden,
    LogUnavailable,
    NotFound,
    TallyError,
)
from service.evidence.models import AnchorRow
from service.evidence.tiles import MerkleLog, SqlTileStorage
from service.witness.note import (
    Checkpoint,
    CosignatureInvalid,
    CosignatureV1Verifier,
    NoteError,
    NoteSigner,
    sign_note,
    verify_cosignature,
)

ORIGIN_APP = "tally"
# A witness's clock may run ahead of ours by this much before its timestamp is refused.
MAX_FUTURE_SKEW_S = 300
MAX_VKEY_CHARS = 1_024
MAX_LINE_CHARS = 1_024
_SPLIT = re.compile(r"[\s,]+")


# --- errors -------------------------------------------------------------------------------


class LogNotAnchored(NotFound):
    """No checkpoint of the log is anchored yet: there is no checkpoint note to serve."""

    code = "log_not_anchored"


class NoteKeyUnavailable(TallyError):
    """The space has no note key configured: it cannot sign checkpoint notes."""

    code = "note_key_unavailable"
    status = 503


class WitnessUnknown(Forbidden):
    """The cosigning key is not one of the space's configured witnesses."""

    code = "witness_unknown"


class CosignatureStale(TallyError):
    """A newer cosignature from the same witness for the same checkpoint is stored."""

    code = "cosignature_stale"
    status = 409


# --- origin and configuration -------------------------------------------------------------


def space_origin(*, space: str, chain_id: int, ledger: str) -> str:
    """``<space>/tally/<chain id>/<ledger lowercase>``: names the space, binds the deployment."""
    return f"{space}/{ORIGIN_APP}/{chain_id}/{ledger.lower()}"


def origin_binds(origin: str, *, chain_id: int, ledger: str) -> bool:
    """Whether ``origin`` follows the convention for this chain id and ledger."""
    space, sep, rest = origin.partition(f"/{ORIGIN_APP}/")
    return bool(space) and bool(sep) and rest == f"{chain_id}/{ledger.lower()}"


def parse_witnesses(text: str) -> tuple[CosignatureV1Verifier, ...]:
    """``TALLY_WITNESSES``: cosignature/v1 vkeys separated by spaces, commas or newlines."""
    verifiers: list[CosignatureV1Verifier] = []
    for i, item in enumerate(t for t in _SPLIT.split(text) if t):
        try:
            verifiers.append(CosignatureV1Verifier.from_vkey(item))
        except NoteError as err:
            raise ConfigError(f"TALLY_WITNESSES: witness {i + 1}: {err.message}") from None
    idents = [(v.name, v.key_id) for v in verifiers]
    if len(set(idents)) != len(idents):
        raise ConfigError("TALLY_WITNESSES lists the same witness key twice")
    return tuple(verifiers)


# --- storage ------------------------------------------------------------------------------


class CosignatureRow(SQLModel, table=True):
    """A witness's cosignature of one checkpoint (size and root) of this space's log."""

    __tablename__ = "log_cosignatures"

    tree_size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root: str = Field(sa_column=Column(String(66), primary_key=True))  # 0x hex
    witness_name: str = Field(sa_column=Column(String(MAX_VKEY_CHARS), primary_key=True))
    witness_key_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    witness_vkey: str = Field(sa_column=Column(String(MAX_VKEY_CHARS), nullable=False))
    line: str = Field(sa_column=Column(String(MAX_LINE_CHARS), nullable=False))  # no newline
    timestamp: int = Field(sa_column=Column(BigInteger, nullable=False))
    received_at: int = Field(sa_column=Column(BigInteger, nullable=False))


# --- the served checkpoint ----------------------------------------------------------------


@dataclass(frozen=True)
class ServedCheckpoint:
    """An anchored checkpoint as the space serves it."""

    checkpoint: Checkpoint
    seq: int  # the anchor row it comes from
    anchored_root: str  # the root the anchor row recorded (0x hex)
    cosignatures: tuple[str, ...]  # signature lines, each ending in a newline
    note: bytes  # the log's signed note followed by the cosignature lines

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.checkpoint.origin,
            "tree_size": self.checkpoint.size,
            "root": "0x" + self.checkpoint.root.hex(),
            "seq": self.seq,
            "note": self.note.decode("utf-8"),
            "cosignatures": len(self.cosignatures),
        }


def _anchor(session: Session, size: int | None) -> AnchorRow:
    query = select(AnchorRow).order_by(col(AnchorRow.seq).desc())
    if size is not None:
        query = query.where(AnchorRow.tree_size == size)
    row = session.exec(query).first()
    if row is None and size is None:
        raise LogNotAnchored("no checkpoint of the log is anchored yet")
    if row is None:
        raise CheckpointNotFound(f"no anchored checkpoint has tree size {size}")
    return row


def _tree_root(session: Session, size: int) -> bytes:
    tree = MerkleLog(SqlTileStorage(session))
    have = tree.size()
    if size > have:
        raise LogUnavailable(
            f"the log holds {have} entries, fewer than its anchored size {size}",
        )
    return tree.root(size=size)


def anchored_checkpoint(
    *, session: Session, origin: str, size: int | None = None
) -> tuple[Checkpoint, AnchorRow]:
    """The checkpoint of the latest anchor (or of the anchor of ``size``), its root from
    the log's own tree."""
    row = _anchor(session, size)
    return Checkpoint(origin, row.tree_size, _tree_root(session, row.tree_size)), row


def stored_cosignatures(
    *,
    session: Session,
    checkpoint: Checkpoint,
    witnesses: tuple[CosignatureV1Verifier, ...],
) -> tuple[str, ...]:
    """Stored lines of configured witnesses that verify over ``checkpoint``'s body now."""
    if not witnesses:
        return ()  # no witness is trusted here: no stored line could be served
    body = checkpoint.body()
    trusted = {(w.name, w.key_id): w for w in witnesses}
    rows = session.exec(
        select(CosignatureRow)
        .where(
            CosignatureRow.tree_size == checkpoint.size,
            CosignatureRow.root == "0x" + checkpoint.root.hex(),
        )
        .order_by(col(CosignatureRow.witness_name), col(CosignatureRow.witness_key_id))
    ).all()
    lines: list[str] = []
    for row in rows:
        verifier = trusted.get((row.witness_name, row.witness_key_id))
        if verifier is None or verifier.vkey() != row.witness_vkey:
            continue  # a witness no longer configured
        try:
            verify_cosignature(row.line, body, verifier)
        except NoteError:
            continue  # over another body (the origin changed): not a statement about this one
        lines.append(row.line + "\n")
    return tuple(lines)


def checkpoint_note(
    *,
    session: Session,
    signer: NoteSigner | None,
    witnesses: tuple[CosignatureV1Verifier, ...],
    size: int | None = None,
) -> ServedCheckpoint:
    """The latest anchored checkpoint (or that of ``size``) as a signed, cosigned note."""
    if signer is None:
        raise NoteKeyUnavailable("this space has no note key configured")
    checkpoint, row = anchored_checkpoint(session=session, origin=signer.name, size=size)
    return served_checkpoint(
        session=session, signer=signer, witnesses=witnesses, row=row, root=checkpoint.root
    )


def served_checkpoint(
    *,
    session: Session,
    signer: NoteSigner,
    witnesses: tuple[CosignatureV1Verifier, ...],
    row: AnchorRow,
    root: bytes,
) -> ServedCheckpoint:
    """:func:`checkpoint_note` for a caller that has read the anchor ``row`` and the
    tree's own ``root`` at its size already (a receipt reads both with its proof)."""
    checkpoint = Checkpoint(signer.name, row.tree_size, root)
    lines = stored_cosignatures(session=session, checkpoint=checkpoint, witnesses=witnesses)
    note = sign_note(checkpoint.body(), signer) + "".join(lines).encode("utf-8")
    return ServedCheckpoint(checkpoint, row.seq, row.root, lines, note)


# --- posting a cosignature ----------------------------------------------------------------


def _trusted(witnesses: tuple[CosignatureV1Verifier, ...], vkey: str) -> CosignatureV1Verifier:
    verifier = CosignatureV1Verifier.from_vkey(vkey)  # NoteKeyInvalid: 400
    for w in witnesses:
        if (w.name, w.key_id) == (verifier.name, verifier.key_id) and w == verifier:
            return w
    raise WitnessUnknown(f"witness {verifier.name}+{verifier.key_id:08x} is not configured here")


def add_cosignature(
    *,
    session: Session,
    signer: NoteSigner | None,
    witnesses: tuple[CosignatureV1Verifier, ...],
    witness_vkey: str,
    cosignature: str,
    size: int,
    now: int | None = None,
) -> dict[str, Any]:
    """Verify a witness's cosignature over this space's checkpoint of ``size`` and keep it.

    Raises before writing anything: :class:`WitnessUnknown` (403),
    :class:`~service.witness.note.NoteKeyInvalid` (400),
    :class:`~service.errors.CheckpointNotFound` (404: ``size`` is not anchored),
    :class:`~service.witness.note.CosignatureInvalid` (422: malformed, another key,
    another body, timestamp in the future), :class:`CosignatureStale` (409).
    ``status`` in the answer: ``stored``, ``replaced`` (a newer timestamp) or
    ``unchanged`` (the same line again).
    """
    if signer is None:
        raise NoteKeyUnavailable("this space has no note key configured")
    verifier = _trusted(witnesses, witness_vkey)
    checkpoint, _ = anchored_checkpoint(session=session, origin=signer.name, size=size)
    now = int(time.time()) if now is None else now
    line = cosignature.removesuffix("\n")
    if len(line) > MAX_LINE_CHARS:
        raise CosignatureInvalid("cosignature line is too long")
    timestamp = verify_cosignature(
        line, checkpoint.body(), verifier, not_after=now + MAX_FUTURE_SKEW_S
    )
    root = "0x" + checkpoint.root.hex()
    status = _store(session, checkpoint.size, root, verifier, line, timestamp, now)
    return {
        "status": status,
        "origin": checkpoint.origin,
        "tree_size": checkpoint.size,
        "root": root,
        "witness": verifier.name,
        "key_id": f"{verifier.key_id:08x}",
        "timestamp": timestamp,
    }


def _store(
    session: Session,
    size: int,
    root: str,
    verifier: CosignatureV1Verifier,
    line: str,
    timestamp: int,
    now: int,
) -> str:
    """Insert or replace the witness's row; one retry if another worker inserted first."""
    key = (size, root, verifier.name, verifier.key_id)
    for attempt in (0, 1):
        row = session.get(CosignatureRow, key)
        if row is None:
            status = "stored"
            row = CosignatureRow(
                tree_size=size,
                root=root,
                witness_name=verifier.name,
                witness_key_id=verifier.key_id,
                witness_vkey=verifier.vkey(),
                line=line,
                timestamp=timestamp,
                received_at=now,
            )
        elif row.line == line:
            return "unchanged"
        elif row.timestamp >= timestamp:
            raise CosignatureStale(
                f"a cosignature of {verifier.name} with timestamp {row.timestamp} is stored "
                f"for tree size {size}; {timestamp} is not newer",
            )
        else:
            status = "replaced"
            row.line, row.timestamp, row.received_at = line, timestamp, now
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            if attempt:
                raise
            continue
        return status
    raise AssertionError("unreachable")  # pragma: no cover
