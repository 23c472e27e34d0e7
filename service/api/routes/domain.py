"""``/v1/domain``: the EIP-712 domain and entry types a client signs with (public)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api.deps import CtxDep
from service.api.schemas import DomainOut
from service.evidence.typed_data import domain_document

router = APIRouter(tags=["evidence"])


@router.get("/v1/domain", response_model=DomainOut)
def get_domain(ctx: CtxDep) -> dict[str, Any]:
    """The deployment's EIP-712 domain (name, version, chainId, verifyingContract) and
    the typed-data ``types`` of every entry type, ``EIP712Domain`` included. No token
    needed; available before the first entry or checkpoint."""
    return domain_document(domain=ctx.domain)
