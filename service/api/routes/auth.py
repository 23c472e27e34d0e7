"""``/v1/auth``: Sign-In with Ethereum (challenge, token), who am I, operator API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from service.api import auth
from service.api.deps import CtxDep, OperatorDep, PrincipalDep, SessionDep
from service.api.schemas import (
    ApiKeyIn,
    ApiKeyOut,
    ApiKeysOut,
    ChallengeIn,
    ChallengeOut,
    NewApiKeyOut,
    TokenIn,
    TokenOut,
    WhoAmIOut,
)

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/challenge", response_model=ChallengeOut)
def challenge(body: ChallengeIn, ctx: CtxDep) -> ChallengeOut:
    """An EIP-4361 message with a fresh single-use nonce, to sign with ``personal_sign``."""
    s = ctx.settings
    msg = auth.new_challenge(
        engine=ctx.engine,
        address=body.address,
        domain=s.siwe_domain,
        uri=s.siwe_uri,
        chain_id=ctx.chain.chain_id,
        ttl_s=s.nonce_ttl_s,
    )
    assert msg.expiration_time is not None
    return ChallengeOut(
        message=msg.text(),
        address=msg.address,
        nonce=msg.nonce,
        issued_at=msg.issued_at,
        expires_at=msg.expiration_time,
    )


@router.post("/token", response_model=TokenOut)
def token(body: TokenIn, ctx: CtxDep) -> TokenOut:
    """Redeem a signed challenge for a short-lived bearer token."""
    s = ctx.settings
    issued, principal = auth.sign_in(
        engine=ctx.engine,
        directory=ctx.directory,
        message=body.message,
        signature=body.signature,
        domain=s.siwe_domain,
        uri=s.siwe_uri,
        chain_id=ctx.chain.chain_id,
        secret=s.jwt_secret.get_secret_value(),
        ttl_s=s.token_ttl_s,
    )
    return TokenOut(
        access_token=issued.token,
        expires_at=issued.expires_at,
        address=principal.address,
        roles=principal.roles,
    )


@router.get("/me", response_model=WhoAmIOut)
def me(principal: PrincipalDep) -> WhoAmIOut:
    """The caller's address and current roles."""
    return WhoAmIOut(address=principal.address, roles=principal.roles, via=principal.via)


def _key_out(row: object) -> ApiKeyOut:
    return ApiKeyOut.model_validate(row, from_attributes=True)


@router.post("/api-keys", response_model=NewApiKeyOut, status_code=201)
def create_api_key(body: ApiKeyIn, ctx: CtxDep, principal: OperatorDep) -> NewApiKeyOut:
    """A new API key acting as the calling operator (shown once)."""
    row, key = auth.create_api_key(engine=ctx.engine, address=principal.address, label=body.label)
    return NewApiKeyOut(**_key_out(row).model_dump(), api_key=key)


@router.get("/api-keys", response_model=ApiKeysOut)
def list_api_keys(session: SessionDep, principal: OperatorDep) -> ApiKeysOut:
    """Every API key (never the keys themselves)."""
    return ApiKeysOut(keys=[_key_out(r) for r in auth.list_api_keys(session=session)])


@router.delete("/api-keys/{key_id}", response_model=ApiKeyOut)
def revoke_api_key(
    key_id: Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")],
    ctx: CtxDep,
    principal: OperatorDep,
) -> ApiKeyOut:
    """Revoke a key: it stops working at once, on every worker."""
    return _key_out(auth.revoke_api_key(engine=ctx.engine, key_id=key_id))
