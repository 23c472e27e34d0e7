"""``/v1/evidence`` (submit, read) and ``/v1/receipts`` (anchored receipt documents).

Reads of full entries follow :mod:`service.api.access`: an entry and its receipt are
served to the entry's parties, the auditor and the operator; to anyone else an entry
is a 404 ``entry_not_found`` exactly like one that does not exist. ``GET /v1/evidence``
pages through every full entry with its salt, in leaf order (auditor or operator)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from service.api.access import require_reader
from service.api.deps import (
    CtxDep,
    OptionalPrincipalDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
    StaffDep,
)
from service.api.ingest import ingest_batch
from service.api.queries import evidence_entry, full_entries, receipt
from service.api.schemas import (
    HASH_PATTERN,
    MAX_INDEX,
    BatchOut,
    ErrorOut,
    EvidenceBatchIn,
    EvidenceOut,
    FullEntriesOut,
    ItemResultOut,
    ReceiptOut,
)
from service.errors import InvalidInput

router = APIRouter(tags=["evidence"])

EntryId = Annotated[str, Path(pattern=HASH_PATTERN, description="0x + 64 hex digits")]


@router.post("/v1/evidence", response_model=BatchOut)
def submit_evidence(body: EvidenceBatchIn, ctx: CtxDep, principal: PrincipalDep) -> BatchOut:
    """Append a batch of signed entries; one result per item, in order (idempotent:
    an entry already in the log is a ``duplicate`` with its leaf index)."""
    outcome = ingest_batch(
        engine=ctx.engine,
        domain=ctx.domain,
        directory=ctx.directory,
        items=[item.model_dump() for item in body.entries],
        max_batch=ctx.settings.max_batch,
        home_spaces=ctx.home_spaces,
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


@router.get(
    "/v1/evidence",
    response_model=FullEntriesOut,
    responses={403: {"model": ErrorOut, "description": "`role_required`: auditor or operator."}},
)
def list_full_entries(
    session: SessionDep,
    settings: SettingsDep,
    principal: StaffDep,
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
) -> dict[str, Any]:
    """Every full entry ``start <= leaf < end`` (default: to the log's end) in leaf order,
    with its canonical bytes and salt (null: a legacy leaf), for the auditor and the
    operator: what ``tally audit log --api`` rebuilds each leaf from. Follow ``next``."""
    if limit is not None and limit > settings.page_max:
        raise InvalidInput(f"limit must be at most {settings.page_max}, got {limit}")
    count = settings.page_max if limit is None else limit
    return full_entries(session=session, start=start, end=end, limit=count)


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
    require_reader(session=session, principal=principal, eid=entry_id)
    return evidence_entry(session=session, eid=entry_id)


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
def get_receipt(
    entry_id: EntryId, session: SessionDep, ctx: CtxDep, principal: OptionalPrincipalDep
) -> dict[str, Any]:
    """The receipt document of an anchored entry (save it; audit it anywhere); with the
    space's cosigned checkpoint note in ``cosignatures`` when it has a note key. Its
    parties, the auditor and the operator only (it carries the full entry and salt)."""
    require_reader(session=session, principal=principal, eid=entry_id.lower(), status="unknown")
    return receipt(
        session=session, eid=entry_id, note_signer=ctx.note_signer, witnesses=ctx.witnesses
    )
