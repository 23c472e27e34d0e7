"""Typed dependencies reused by every route (``SessionDep``, ``PrincipalDep``, ...).

Authentication: ``Authorization: Bearer <token>`` (from ``POST /v1/auth/token``) or
an operator's API key, as ``X-API-Key: tly_...`` or ``Authorization: Bearer tly_...``.
A credential that is present but not valid is a 401 on every endpoint, public ones
included; no credential on a public endpoint is fine. The caller's address keys the
rate limit (the client IP when there is none); the principal's roles and standing come
from the registry on each request, through the role cache (``TALLY_ROLE_CACHE_S``), and
:func:`service.api.auth.admit` refuses suspended participants (403).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from anyio import to_thread
from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from service.api.auth import API_KEY_PREFIX, Principal, admit, api_key_address, verify_token
from service.api.context import ServiceContext
from service.api.limits import RateLimiter
from service.errors import InvalidInput, InvalidToken, RateLimited, Unauthenticated
from service.settings import Settings

_bearer = HTTPBearer(
    auto_error=False,
    description="A token from POST /v1/auth/token (Sign-In with Ethereum).",
)
_api_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An operator API key (tly_...)."
)


# The dependencies that only compute (the context, a token's signature, the in-process
# rate limit, a cached registry answer) are coroutines: FastAPI runs a plain ``def``
# dependency in the thread pool, a hop per dependency per request that the profile of
# GET /v1/receipts showed costing more than the checks themselves. What may block (the
# database, the chain) still runs in a worker thread (``to_thread``).


async def get_context(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


CtxDep = Annotated[ServiceContext, Depends(get_context)]


async def get_settings_dep(ctx: CtxDep) -> Settings:
    return ctx.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_session(ctx: CtxDep) -> Iterator[Session]:
    with Session(ctx.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


@dataclass(frozen=True)
class Caller:
    address: str
    via: str  # "token" | "api_key"


async def caller(
    ctx: CtxDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Caller | None:
    """The address the request's credential names; None without one; 401 if invalid.

    An operator API key is accepted as a bearer credential too (``Authorization: Bearer
    tly_...``), which is what scrapers such as Prometheus know how to send.
    """
    if bearer is not None and bearer.credentials.startswith(API_KEY_PREFIX):
        api_key, bearer = bearer.credentials, None
    if bearer is not None:
        settings = ctx.settings
        address = verify_token(
            token=bearer.credentials,
            secret=settings.jwt_secret.get_secret_value(),
            issuer=settings.siwe_domain,
        )
        return Caller(address, "token")
    if api_key is not None:
        key = api_key

        def lookup() -> str:
            with Session(ctx.engine) as session:
                return api_key_address(session=session, key=key)

        return Caller(await to_thread.run_sync(lookup), "api_key")
    return None


CallerDep = Annotated[Caller | None, Depends(caller)]


async def rate_limit(request: Request, ctx: CtxDep, who: CallerDep) -> None:
    """One token from the caller's bucket, or 429 with Retry-After."""
    client = request.client.host if request.client else "unknown"
    key = who.address if who is not None else f"ip:{client}"
    limiter = ctx.limiter
    if not limiter.enabled:  # TALLY_RATE_LIMIT_PER_S=0: no bucket, no thread hop
        return
    if isinstance(limiter, RateLimiter):  # in this process: a lock and arithmetic
        wait = limiter.take(key)
    else:  # the shared PostgreSQL bucket: a statement
        wait = await to_thread.run_sync(limiter.take, key)
    if wait is not None:
        raise RateLimited(f"too many requests; retry in {wait:.1f}s", retry_after_s=round(wait, 3))


async def optional_principal(ctx: CtxDep, who: CallerDep) -> Principal | None:
    if who is None:
        return None
    party = ctx.directory.cached(who.address)
    if party is None:  # a registry read on the chain
        party = await to_thread.run_sync(ctx.directory.party, who.address)
    admit(party)
    if who.via == "api_key" and not party.operator:
        raise InvalidToken("the API key's operator no longer holds the operator role")
    return Principal(address=who.address, party=party, via=who.via)


OptionalPrincipalDep = Annotated[Principal | None, Depends(optional_principal)]


async def current_principal(principal: OptionalPrincipalDep) -> Principal:
    if principal is None:
        raise Unauthenticated("sign in first: POST /v1/auth/challenge, then /v1/auth/token")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def operator(principal: PrincipalDep) -> Principal:
    principal.require("operator")
    return principal


OperatorDep = Annotated[Principal, Depends(operator)]


async def staff(principal: PrincipalDep) -> Principal:
    principal.require("operator", "auditor")
    return principal


StaffDep = Annotated[Principal, Depends(staff)]


DEFAULT_PAGE = 100


class Page:
    """``offset`` and ``limit`` query parameters; ``limit`` at most ``TALLY_PAGE_MAX``."""

    def __init__(self, offset: int, limit: int) -> None:
        self.offset = offset
        self.limit = limit


async def page(
    settings: SettingsDep,
    offset: Annotated[int, Query(ge=0, le=2**62, description="Items to skip.")] = 0,
    limit: Annotated[
        int | None,
        Query(ge=1, le=2**62, description="Items per page (default 100, at most TALLY_PAGE_MAX)."),
    ] = None,
) -> Page:
    if limit is None:
        return Page(offset, min(DEFAULT_PAGE, settings.page_max))
    if limit > settings.page_max:
        raise InvalidInput(f"limit must be at most {settings.page_max}, got {limit}")
    return Page(offset, limit)


PageDep = Annotated[Page, Depends(page)]
