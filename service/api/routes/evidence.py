"""``/v1/evidence`` (submit, read) and ``/v1/receipts`` (anchored receipt documents).

Reads of full entries follow :mod:`service.api.access`: an entry and its receipt are
served to the entry's parties, the auditor and the operator; to anyone else an entry
is a 404 ``entry_not_found`` exactly like one that does not exist. ``GET /v1/evidence``
pages through every full entry with its salt, in leaf order (auditor or operator), and
searches them by agreement, party, type and period (a participant: its own entries)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Path, Query
from sqlmodel import Session

from service.api.access import require_reader
from service.api.auth import checksum
from service.api.deps import (
    CtxDep,
    OptionalPrincipalDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
)
from service.api.ingest import ingest_batch
from service.api.queries import evidence_entry, full_entries, receipt
from service.api.schemas import (
    ADDRESS_PATTERN,
    HASH_PATTERN,
    MAX_INDEX,
    TIME_HELP,
    BatchOut,
    ErrorOut,
    EvidenceBatchIn,
    EvidenceOut,
    FullEntriesOut,
    ItemResultOut,
    ReceiptOut,
)
from service.errors import InvalidInput
from service.evidence.entries import ENTRY_CLASSES
from service.settlement.period import parse_time

router = APIRouter(tags=["evidence"])

EntryId = Annotated[str, Path(pattern=HASH_PATTERN, description="0x + 64 hex digits")]


@router.post("/v1/evidence", response_model=BatchOut)
async def submit_evidence(body: EvidenceBatchIn, ctx: CtxDep, principal: PrincipalDep) -> BatchOut:
    """Append a batch of signed entries; one result per item, in order (idempotent:
    an entry already in the log is a ``duplicate`` with its leaf index)."""
    async with ctx.ingest_gate.turn():  # TALLY_INGEST_CONCURRENCY batches at a time
        outcome = await to_thread.run_sync(
            lambda: ingest_batch(
                engine=ctx.engine,
                domain=ctx.domain,
                directory=ctx.directory,
                items=[item.model_dump() for item in body.entries],
                max_batch=ctx.settings.max_batch,
                home_spaces=ctx.home_spaces,
            )
        )
    return BatchOut(
        accepted=outcome.count("accepted"),
        duplicate=outcome.count("duplicate"),
        rejected=outcome.count("rejected"),
        results=[ItemResultOut(**vars(r)) for r in outcome.results],
    )


NOT_YOURS = (
    "An entry the caller is not party to (and is not the auditor or operator) is "
    "`entry_not_found`, with the body a missing entry gets."
)


EntryType = Enum("EntryType", {name: name for name in ENTRY_CLASSES}, type=str)  # type: ignore[misc]


@router.get(
    "/v1/evidence",
    response_model=FullEntriesOut,
    responses={
        403: {
            "model": ErrorOut,
            "description": "`role_required`: the auditor or operator, or a participant "
            "searching with `party` = its own address.",
        }
    },
)
def list_full_entries(
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    start: Annotated[int, Query(ge=0, le=MAX_INDEX, description="First leaf index.")] = 0,
    end: Annotated[
        int | None, Query(ge=0, le=MAX_INDEX, description="Stop before this leaf index.")
    ] = None,
    limit: Annotated[
        int | None,
        Query(
            ge=1, le=2**62, description="Entries per page (default 100, at most TALLY_PAGE_MAX)."
        ),
    ] = None,
    agreement: Annotated[
        str | None, Query(pattern=HASH_PATTERN, description="Only entries naming this agreement.")
    ] = None,
    party: Annotated[
        str | None,
        Query(
            pattern=ADDRESS_PATTERN,
            description="Only entries naming this address as consumer or provider, or "
            "under an agreement that names it.",
        ),
    ] = None,
    entry_type: Annotated[
        EntryType | None, Query(alias="type", description="Only entries of this type.")
    ] = None,
    from_: Annotated[
        str | None,
        Query(
            alias="from",
            max_length=64,
            description="Only entries whose period (an agreement's: its validity) ends after "
            "this time. " + TIME_HELP,
        ),
    ] = None,
    to: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Only entries whose period starts before this time (excluded). "
            + TIME_HELP,
        ),
    ] = None,
) -> dict[str, Any]:
    """Full entries ``start <= leaf < end`` (default: to the log's end) in leaf order,
    with canonical bytes and salt (null: a legacy leaf): what ``tally audit log --api``
    rebuilds each leaf from, and the dashboard's explorer searches. Filters narrow the
    range; a page then holds up to ``limit`` matches. Follow ``next``.

    The auditor and the operator read every entry. A participant may search with
    ``party`` set to its own address: it then reads the entries it is a named party to."""
    who = None if party is None else checksum(party)
    if who is None:
        principal.require("operator", "auditor")
    else:
        principal.require_self_or(who, "operator", "auditor")
    if limit is not None and limit > settings.page_max:
        raise InvalidInput(f"limit must be at most {settings.page_max}, got {limit}")
    count = settings.page_max if limit is None else limit
    return full_entries(
        session=session,
        start=start,
        end=end,
        limit=count,
        agreement=agreement,
        party=who,
        entry_type=None if entry_type is None else entry_type.value,
        period_from=None if from_ is None else parse_time(from_, "from"),
        period_to=None if to is None else parse_time(to, "to"),
    )


@router.get(
    "/v1/evidence/{entry_id}",
    response_model=EvidenceOut,
    responses={404: {"model": ErrorOut, "description": NOT_YOURS}},
)
def get_evidence(
    entry_id: EntryId, session: SessionDep, principal: OptionalPrincipalDep
) -> dict[str, Any]:
    """One log entry: message, signatures, leaf index, canonical bytes (its parties, the
    auditor and the operator only)."""
    entry = require_reader(session=session, principal=principal, eid=entry_id)
    return evidence_entry(session=session, eid=entry_id, entry=entry)


@router.get(
    "/v1/receipts/{entry_id}",
    response_model=ReceiptOut,
    responses={
        404: {
            "model": ErrorOut,
            "description": "Not anchored yet (`not_anchored`, `status: pending`) or not "
            "in the log (`entry_not_found`, `status: unknown`). " + NOT_YOURS,
        }
    },
)
async def get_receipt(
    entry_id: EntryId, ctx: CtxDep, principal: OptionalPrincipalDep
) -> dict[str, Any]:
    """The receipt document of an anchored entry (save it; audit it anywhere); with the
    space's cosigned checkpoint note in ``cosignatures`` when it has a note key. Its
    parties, the auditor and the operator only (it carries the full entry and salt)."""

    def build() -> dict[str, Any]:
        # one thread-pool hop for the session and every query (a SessionDep and a sync
        # route took three: py-spy put a fifth of the route's samples in the hand-offs)
        with Session(ctx.engine) as session:
            entry = require_reader(
                session=session, principal=principal, eid=entry_id.lower(), status="unknown"
            )
            return receipt(
                session=session,
                eid=entry_id,
                note_signer=ctx.note_signer,
                witnesses=ctx.witnesses,
                entry=entry,
            )

    return await to_thread.run_sync(build)
