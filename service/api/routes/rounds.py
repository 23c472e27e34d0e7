"""``/v1/rounds`` and ``/v1/bills``: compute, propose, finalize, cancel and sweep
settlement rounds (operator); read rounds (anyone), statements, claims and bills (the
party itself, or the operator and auditors). Statements and claims are served for any
round on the vault, from its verified published statement when it was not computed here."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from service.api import rounds
from service.api.auth import checksum
from service.api.deps import CtxDep, OperatorDep, PageDep, PrincipalDep
from service.api.schemas import (
    ADDRESS_PATTERN,
    MAX_INDEX,
    TIME_HELP,
    BillOut,
    ClaimOut,
    RoundDraftOut,
    RoundIn,
    RoundOut,
    RoundsOut,
    StatementOut,
)
from service.settlement.period import parse_time

router = APIRouter(tags=["rounds"])

RoundIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="The round id.")]
AddressPath = Annotated[str, Path(pattern=ADDRESS_PATTERN)]
STAFF = ("operator", "auditor")


@router.post("/v1/rounds", response_model=RoundDraftOut)
def compute(body: RoundIn, ctx: CtxDep, principal: OperatorDep) -> dict[str, Any]:
    """Compute a round from a policy, a period and a checkpoint (dry run; recorded so it
    can be proposed). Returns the full statement."""
    with ctx.chain_guard():
        return rounds.compute_draft(
            engine=ctx.engine,
            chain=ctx.chain,
            vault=ctx.contracts.vault,
            round_id=body.round_id,
            period_start=body.period_start,
            period_end=body.period_end,
            policy=body.policy,
            checkpoint_seq=body.checkpoint_seq,
            created_by=principal.address,
        )


@router.post("/v1/rounds/{round_id}/propose", response_model=RoundOut)
def propose(round_id: RoundIdPath, ctx: CtxDep, principal: OperatorDep) -> dict[str, Any]:
    """Propose a computed round on the vault (the vault must hold its pool)."""
    with ctx.chain_guard():
        return rounds.propose_draft(
            engine=ctx.engine,
            chain=ctx.chain,
            vault=ctx.contracts.vault,
            operator=ctx.operator,
            round_id=round_id,
            data_dir=ctx.settings.data_dir,
        )


@router.post("/v1/rounds/{round_id}/finalize", response_model=RoundOut)
def finalize(round_id: RoundIdPath, ctx: CtxDep, principal: OperatorDep) -> dict[str, Any]:
    """Finalize an undisputed round after its challenge window."""
    with ctx.chain_guard():
        return rounds.finalize_round(
            engine=ctx.engine,
            chain=ctx.chain,
            vault=ctx.contracts.vault,
            operator=ctx.operator,
            round_id=round_id,
        )


@router.post("/v1/rounds/{round_id}/cancel", response_model=RoundOut)
def cancel(round_id: RoundIdPath, ctx: CtxDep, principal: OperatorDep) -> dict[str, Any]:
    """Cancel a proposed or disputed round."""
    with ctx.chain_guard():
        return rounds.cancel_round(
            engine=ctx.engine,
            chain=ctx.chain,
            vault=ctx.contracts.vault,
            operator=ctx.operator,
            round_id=round_id,
        )


@router.post("/v1/rounds/{round_id}/sweep", response_model=RoundOut)
def sweep(round_id: RoundIdPath, ctx: CtxDep, principal: OperatorDep) -> dict[str, Any]:
    """Close a finalized round after its claim period: what it did not pay goes back to
    its funders' free balances."""
    with ctx.chain_guard():
        return rounds.sweep_round(
            engine=ctx.engine,
            chain=ctx.chain,
            vault=ctx.contracts.vault,
            operator=ctx.operator,
            round_id=round_id,
        )


@router.get("/v1/rounds", response_model=RoundsOut)
def list_rounds(ctx: CtxDep, page: PageDep) -> dict[str, Any]:
    """Rounds, newest first: status, payout root, total (public)."""
    with ctx.chain_guard():
        return rounds.list_rounds(
            engine=ctx.engine,
            chain=ctx.chain,
            vault=ctx.contracts.vault,
            offset=page.offset,
            limit=page.limit,
        )


@router.get("/v1/rounds/{round_id}", response_model=RoundOut)
def get_round(round_id: RoundIdPath, ctx: CtxDep) -> dict[str, Any]:
    """One round: what the vault holds, and the inputs it was computed from (public)."""
    with ctx.chain_guard():
        return rounds.round_detail(
            engine=ctx.engine, chain=ctx.chain, vault=ctx.contracts.vault, round_id=round_id
        )


@router.get("/v1/rounds/{round_id}/statement/{address}", response_model=StatementOut)
def statement(
    round_id: RoundIdPath, address: AddressPath, ctx: CtxDep, principal: PrincipalDep
) -> dict[str, Any]:
    """``address``'s statement: receipts, units, factors, exact shares, payout, proof (for a
    round computed elsewhere: from its published statement, verified against the chain).
    Only ``address`` itself (403 ``role_required`` for another participant), the operator
    and auditors; a participant sees its own lines, bill and agreements only (the round's
    other agreements and its ``ignored`` entries are for the operator and auditors)."""
    who = checksum(address)
    principal.require_self_or(who, *STAFF)
    with ctx.chain_guard():
        return rounds.statement_of(
            engine=ctx.engine,
            chain=ctx.chain,
            vault=ctx.contracts.vault,
            round_id=round_id,
            address=who,
            full=principal.has(*STAFF),
        )


@router.get("/v1/rounds/{round_id}/claims/{address}", response_model=ClaimOut)
def claim(
    round_id: RoundIdPath, address: AddressPath, ctx: CtxDep, principal: PrincipalDep
) -> dict[str, Any]:
    """``address``'s payout, its proof and the ``claim`` transaction ready to send."""
    who = checksum(address)
    principal.require_self_or(who, *STAFF)
    with ctx.chain_guard():
        return rounds.claim_of(
            engine=ctx.engine,
            chain=ctx.chain,
            vault=ctx.contracts.vault,
            round_id=round_id,
            address=who,
        )


@router.get("/v1/bills/{address}", response_model=BillOut)
def bill(
    address: AddressPath,
    ctx: CtxDep,
    principal: PrincipalDep,
    from_: Annotated[str, Query(alias="from", max_length=64, description=TIME_HELP)],
    to: Annotated[str, Query(max_length=64, description=TIME_HELP + " Excluded.")],
    checkpoint: Annotated[int | None, Query(ge=0, le=MAX_INDEX)] = None,
) -> dict[str, Any]:
    """What consumer ``address`` owes for ``[from, to)`` under a checkpoint (default: the
    latest): per agreement its pricing model (``unit_price``: receipts x unit price; or the
    offer's ``per_unit``, ``tiered``, ``free_trial``, ``subscription``, ``revenue_share``),
    ``payment`` (postpaid / prepaid) and ``lines``, one per rule applied, summing to
    ``amount``."""
    who = checksum(address)
    principal.require_self_or(who, *STAFF)
    return rounds.bill_of(
        engine=ctx.engine,
        consumer=who,
        period_start=parse_time(from_, "from"),
        period_end=parse_time(to, "to"),
        checkpoint_seq=checkpoint,
    )
