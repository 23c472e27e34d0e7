"""``/v1/evidence`` (submit, read) and ``/v1/receipts`` (anchored receipt documents)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from service.api.deps import CtxDep, PrincipalDep, SessionDep
from service.api.ingest import ingest_batch
from service.api.queries import evidence_entry, receipt
from service.api.schemas import (
    HASH_PATTERN,
    BatchOut,
    ErrorOut,
    EvidenceBatchIn,
    EvidenceOut,
    ItemResultOut,
    ReceiptOut,
)

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


@router.get("/v1/evidence/{entry_id}", response_model=EvidenceOut)
def get_evidence(entry_id: EntryId, session: SessionDep) -> dict[str, Any]:
    """One log entry: message, signatures, leaf index, canonical bytes."""
    return evidence_entry(session=session, eid=entry_id)


@router.get(
    "/v1/receipts/{entry_id}",
    response_model=ReceiptOut,
    responses={
        404: {
            "model": ErrorOut,
            "description": "Not anchored yet (`not_anchored`, `status: pending`) or not "
            "in the log (`entry_not_found`, `status: unknown`).",
        }
    },
)
def get_receipt(entry_id: EntryId, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    """The receipt document of an anchored entry (save it; audit it anywhere); with the
    space's cosigned checkpoint note in ``cosignatures`` when it has a note key."""
    return receipt(
        session=session, eid=entry_id, note_signer=ctx.note_signer, witnesses=ctx.witnesses
    )
