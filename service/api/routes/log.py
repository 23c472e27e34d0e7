"""``/v1/log``: checkpoints, entries (the public log), inclusion and consistency proofs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from service.api.deps import PageDep, SessionDep, SettingsDep
from service.api.queries import consistency, inclusion, list_checkpoints, log_page
from service.api.schemas import (
    MAX_INDEX,
    CheckpointsOut,
    ConsistencyOut,
    InclusionOut,
    LogPageOut,
)

router = APIRouter(prefix="/v1/log", tags=["log"])

Index = Annotated[int, Query(ge=0, le=MAX_INDEX)]


@router.get("/checkpoints", response_model=CheckpointsOut)
def checkpoints(session: SessionDep, page: PageDep) -> dict[str, Any]:
    """Anchored checkpoints, oldest first, and the log's current size and root."""
    return list_checkpoints(session=session, offset=page.offset, limit=page.limit)


@router.get("/entries", response_model=LogPageOut)
def entries(
    session: SessionDep,
    settings: SettingsDep,
    start: Index = 0,
    end: Annotated[int | None, Query(ge=0, le=MAX_INDEX)] = None,
) -> dict[str, Any]:
    """Entries ``start <= leaf < end`` with their canonical bytes (at most TALLY_PAGE_MAX
    per page; follow ``next``)."""
    return log_page(session=session, start=start, end=end, page_max=settings.page_max)


@router.get("/proof/inclusion", response_model=InclusionOut)
def inclusion_proof(session: SessionDep, leaf: Index, size: Index) -> dict[str, Any]:
    """RFC 9162 inclusion proof of leaf ``leaf`` in the tree of ``size`` leaves."""
    return inclusion(session=session, leaf=leaf, size=size)


@router.get("/proof/consistency", response_model=ConsistencyOut, response_model_by_alias=True)
def consistency_proof(
    session: SessionDep,
    from_: Annotated[int, Query(alias="from", ge=0, le=MAX_INDEX)],
    to: Index,
) -> dict[str, Any]:
    """RFC 9162 consistency proof from tree size ``from`` to ``to``."""
    return consistency(session=session, old=from_, new=to)
