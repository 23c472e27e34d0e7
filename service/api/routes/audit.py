"""``/v1/audit``: verify a receipt document; recompute a settlement round."""

from __future__ import annotations

import threading
import weakref
from typing import Annotated, Any

from fastapi import APIRouter, Path

from service.api import rounds
from service.api.context import ServiceContext
from service.api.deps import CtxDep, PrincipalDep, StaffDep
from service.api.schemas import AuditReportOut, SettlementAuditOut
from service.audit.receipt import audit_receipt
from service.audit.roles import RegistryHistory
from service.audit.trust import TrustedDeployment
from service.chain.client import Chain

router = APIRouter(prefix="/v1/audit", tags=["audit"])

# One registry history per served chain: its logs are fetched once, not on every request
# (a reorganised chain is noticed by the history itself).
_HISTORIES: weakref.WeakKeyDictionary[Chain, RegistryHistory] = weakref.WeakKeyDictionary()
_HISTORIES_LOCK = threading.Lock()


def _history(ctx: ServiceContext) -> RegistryHistory:
    registry = ctx.contracts.registry
    with _HISTORIES_LOCK:
        found = _HISTORIES.get(ctx.chain)
        if found is None or found.address != registry.address:
            block = ctx.contracts.deployment.contracts["ParticipantRegistry"].block
            found = _HISTORIES[ctx.chain] = RegistryHistory(ctx.chain, registry, from_block=block)
        return found


@router.post("/receipt", response_model=AuditReportOut)
def audit_receipt_doc(doc: dict[str, Any], ctx: CtxDep, principal: PrincipalDep) -> Any:
    """Run every check of ``tally audit receipt`` on the posted document, against this
    server's chain node. A failed check is a 200 with ``ok: false`` and the verdict."""
    # pinned to the deployment this server serves: a receipt anchored on any other
    # ledger fails the ``deployment`` check (the docstring is the committed OpenAPI's)
    trusted = TrustedDeployment.from_deployment(
        ctx.contracts.deployment, source="this server's deployment"
    )
    with ctx.chain_guard():
        report = audit_receipt(doc, chain=ctx.chain, trusted=trusted, history=_history(ctx))
    return report.to_json()


@router.get("/rounds/{round_id}", response_model=SettlementAuditOut)
def audit_round(
    round_id: Annotated[int, Path(ge=1, le=2**63 - 1)], ctx: CtxDep, principal: StaffDep
) -> Any:
    """Recompute a round from the anchored log, re-verifying every signature, and compare
    it with the vault (``tally audit settlement``). A mismatch is a 200 with ``ok: false``."""
    with ctx.chain_guard():
        return rounds.audit_round(
            engine=ctx.engine,
            chain=ctx.chain,
            vault=ctx.contracts.vault,
            ledger=ctx.contracts.ledger,
            round_id=round_id,
        )
