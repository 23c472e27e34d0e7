"""``/v1/participants`` and ``/v1/agreements``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from service.api.auth import checksum
from service.api.deps import CtxDep, PageDep, PrincipalDep, SessionDep
from service.api.queries import agreements_of, list_participants, participant_detail
from service.api.schemas import (
    ADDRESS_PATTERN,
    AgreementsOut,
    ParticipantOut,
    ParticipantsOut,
)

router = APIRouter(tags=["participants"])


@router.get("/v1/participants", response_model=ParticipantsOut)
def participants(
    ctx: CtxDep,
    session: SessionDep,
    page: PageDep,
    principal: PrincipalDep,
    role: Annotated[Literal["provider", "consumer", "service"] | None, Query()] = None,
) -> dict[str, Any]:
    """Registered participants, by address (from the indexer's mirror of the registry)."""
    return list_participants(
        session=session,
        chain_id=ctx.chain.chain_id,
        registry=ctx.contracts.registry.address,
        role=role,
        offset=page.offset,
        limit=page.limit,
    )


@router.get("/v1/participants/{address}", response_model=ParticipantOut)
def participant(
    address: Annotated[str, Path(pattern=ADDRESS_PATTERN)],
    ctx: CtxDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """One address as the registry says now."""
    return participant_detail(directory=ctx.directory, address=checksum(address))


@router.get("/v1/agreements", response_model=AgreementsOut)
def agreements(
    party: Annotated[str, Query(pattern=ADDRESS_PATTERN)],
    session: SessionDep,
    page: PageDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """Agreements naming ``party`` as consumer or provider (your own, or any for the
    operator and auditors)."""
    who = checksum(party)
    principal.require_self_or(who, "operator", "auditor")
    return agreements_of(session=session, party=who, offset=page.offset, limit=page.limit)
