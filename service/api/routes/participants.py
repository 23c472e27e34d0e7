"""``/v1/participants`` and ``/v1/agreements``.

Reads: the list (the indexer's mirror), one address (the registry now). Writes, operator
only, sent with this server's operator key (:mod:`service.chain.participants`): admit
(``POST /v1/participants``), ``/suspend``, ``/reinstate``; the role cache forgets the
address at once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from service.api.auth import checksum
from service.api.deps import CtxDep, OperatorDep, PageDep, PrincipalDep, SessionDep
from service.api.queries import agreements_of, list_participants, participant_detail
from service.api.schemas import (
    ADDRESS_PATTERN,
    AgreementsOut,
    ParticipantChangeOut,
    ParticipantIn,
    ParticipantOut,
    ParticipantsOut,
)
from service.chain import participants as registry_admin

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


AddressPath = Annotated[str, Path(pattern=ADDRESS_PATTERN)]


@router.post("/v1/participants", response_model=ParticipantChangeOut, status_code=201)
def admit(body: ParticipantIn, ctx: CtxDep, principal: OperatorDep) -> dict[str, Any]:
    """Register a participant on the ParticipantRegistry (operator). 409
    ``already_registered`` if it is; 422 ``invalid_address`` for a bad checksum."""
    admission = registry_admin.Admission.parse(
        address=body.address,
        roles=body.roles,
        identity=body.identity,
        metadata_uri=body.metadata_uri,
    )
    with ctx.chain_guard():
        change = registry_admin.register_participant(
            chain=ctx.chain,
            registry=ctx.contracts.registry,
            operator=registry_admin.require_operator_key(ctx.operator),
            admission=admission,
        )
    ctx.directory.forget(change.participant.address)
    return change.to_json()


@router.post("/v1/participants/{address}/suspend", response_model=ParticipantChangeOut)
def suspend(address: AddressPath, ctx: CtxDep, principal: OperatorDep) -> dict[str, Any]:
    """Suspend an active participant (operator): it can no longer sign in or take part in
    entries. 404 ``participant_not_found``; 409 ``already_suspended``."""
    with ctx.chain_guard():
        change = registry_admin.suspend_participant(
            chain=ctx.chain,
            registry=ctx.contracts.registry,
            operator=registry_admin.require_operator_key(ctx.operator),
            address=address,
        )
    ctx.directory.forget(change.participant.address)
    return change.to_json()


@router.post("/v1/participants/{address}/reinstate", response_model=ParticipantChangeOut)
def reinstate(address: AddressPath, ctx: CtxDep, principal: OperatorDep) -> dict[str, Any]:
    """Make a suspended participant active again (operator). 409 ``not_suspended``."""
    with ctx.chain_guard():
        change = registry_admin.reinstate_participant(
            chain=ctx.chain,
            registry=ctx.contracts.registry,
            operator=registry_admin.require_operator_key(ctx.operator),
            address=address,
        )
    ctx.directory.forget(change.participant.address)
    return change.to_json()
