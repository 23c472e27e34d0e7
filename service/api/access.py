"""Who may read a log entry in full (T15): its parties, the auditor and the operator.

Since T15 the public log (``/v1/log/*``) serves leaf data only; the entries themselves
(message, signatures, canonical bytes, salt) are served by ``GET /v1/evidence/{id}`` and
``GET /v1/receipts/{id}`` to:

- any **party** of the entry: every signer (so an attester and an evaluator too), every
  address the message names (``consumer``, ``provider``, ``providers``: the parties of an
  Agreement, the providers of an Offer), and, for an entry that names an agreement (a
  UsageReceipt, QualityAttestation, declaration, ...), the consumer and every provider
  of that agreement;
- the **auditor** and **operator** roles (they read every entry, and the whole log in
  leaf order with salts through ``GET /v1/evidence``).

Anyone else, anonymous callers included, is told the entry does not exist: the same
404 ``entry_not_found`` with the same body as for an id that is in no log
(:func:`hidden`), so an entry id is no existence oracle (timing aside). A pending
(not yet anchored) entry is ``unknown`` to them as well, not ``pending``.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from service.api.auth import Principal
from service.errors import EntryNotFound
from service.evidence.entries import SignedEntry, decode_entry
from service.evidence.models import AgreementRow, LogEntry

__all__ = ["STAFF", "entry_parties", "hidden", "may_read", "require_reader"]

STAFF = ("operator", "auditor")
_NAMED_ONE = ("consumer", "provider")
_NAMED_MANY = ("providers",)


def entry_parties(*, session: Session, signed: SignedEntry) -> frozenset[str]:
    """The checksummed addresses that are party to ``signed`` (see the module docstring)."""
    parties = _named_parties(signed)
    agreement = _agreement_parties(session, signed)
    return frozenset(parties | agreement)


def _named_parties(signed: SignedEntry) -> set[str]:
    """The signers and the addresses the message names (no database read)."""
    entry = signed.entry
    parties: set[str] = set(signed.signatures)
    for name in _NAMED_ONE:
        value = getattr(entry, name, None)
        if isinstance(value, str):
            parties.add(value)
    for name in _NAMED_MANY:
        values = getattr(entry, name, None)
        if isinstance(values, tuple | list):
            parties.update(str(v) for v in values)
    return parties


def _agreement_parties(session: Session, signed: SignedEntry) -> set[str]:
    """The consumer and providers of the agreement ``signed`` names, if any."""
    agreement_id: Any = getattr(signed.entry, "agreementId", None)
    if not isinstance(agreement_id, bytes):
        return set()
    row = session.get(AgreementRow, "0x" + agreement_id.hex())
    return set() if row is None else {row.consumer, *row.provider_list}


def may_read(*, session: Session, principal: Principal | None, signed: SignedEntry) -> bool:
    """Whether ``principal`` may see ``signed`` in full (staff, or one of its parties)."""
    if principal is None:
        return False
    if principal.has(*STAFF):
        return True
    # a signer or a named party needs no agreement read (the common case: one's own receipt)
    if principal.address in _named_parties(signed):
        return True
    return principal.address in _agreement_parties(session, signed)


def hidden(eid: str, **detail: Any) -> EntryNotFound:
    """The error for an entry the caller may not see: what a missing entry raises."""
    return EntryNotFound(f"no log entry {eid}", **detail)


def require_reader(
    *, session: Session, principal: Principal | None, eid: str, **detail: Any
) -> tuple[LogEntry, SignedEntry]:
    """Entry ``eid``'s row and decoded entry (for the route to serve without reading it
    again); raise :func:`hidden` (``eid`` as the caller wrote it, with ``detail``) unless
    it exists and ``principal`` may read it."""
    row = session.exec(select(LogEntry).where(LogEntry.entry_id == eid.lower())).first()
    if row is None:
        raise hidden(eid, **detail)
    signed = decode_entry(row.data)
    if not may_read(session=session, principal=principal, signed=signed):
        raise hidden(eid, **detail)
    return row, signed
