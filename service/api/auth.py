"""Authentication and roles: Sign-In with Ethereum, bearer tokens, operator API keys.

Flow (no FastAPI here: the routes call these functions, the CLI can too):

1. :func:`new_challenge` stores a random nonce for an address (single use, expires after
   ``TALLY_NONCE_TTL_S``) and returns the EIP-4361 message naming this server's domain
   and URI (``TALLY_SIWE_DOMAIN``, ``TALLY_SIWE_URI``), the chain id, the nonce, the
   issue and expiry times.
2. The wallet signs the message text (EIP-191 ``personal_sign``).
3. :func:`redeem_challenge` checks the message's form, domain, URI and chain, that the
   signature recovers to the message's address, and then spends the nonce with one
   conditional ``UPDATE`` (unused, unexpired, this address), so of two concurrent
   redemptions on any workers exactly one wins; a replay is :class:`ChallengeUsed`, a
   late one :class:`ChallengeExpired`.
4. :func:`issue_token` signs a short-lived JWT (HS256, ``TALLY_JWT_SECRET``,
   ``TALLY_TOKEN_TTL_S``) whose subject is the checksummed address.

Roles are not in the token: every request resolves the address against the registry
(:func:`admit`), so suspension and role changes apply without waiting for tokens to
expire. Operators and auditors hold AccessControl roles; providers, consumers and
services are registry participants; a suspended participant is refused, and so is an
address that is neither.

Operator API keys (``tly_`` + 43 url-safe characters) are for machine-to-machine use:
only their SHA-256 is stored (the key is shown once, at creation); a key acts as the
operator who created it, and only while that address still holds the operator role.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import jwt
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from service.api.directory import LiveDirectory, role_names
from service.api.models import ApiKey, AuthNonce
from service.api.siwe import SiweMessage, format_time, parse
from service.errors import (
    ApiKeyNotFound,
    ChallengeExpired,
    ChallengeUnknown,
    ChallengeUsed,
    InvalidInput,
    InvalidSignature,
    InvalidToken,
    NotAParticipant,
    ParticipantSuspended,
    RoleRequired,
    SignatureMismatch,
    SignInRejected,
)
from service.evidence.directory import Party
from service.evidence.eip712 import parse_address, parse_signature, recover_signer

__all__ = [
    "API_KEY_PREFIX",
    "STATEMENT",
    "TOKEN_AUDIENCE",
    "IssuedToken",
    "Principal",
    "admit",
    "api_key_address",
    "checksum",
    "create_api_key",
    "issue_token",
    "list_api_keys",
    "new_challenge",
    "redeem_challenge",
    "revoke_api_key",
    "sign_in",
    "verify_token",
]

STATEMENT = "Sign in to the Tally API as this address."
TOKEN_AUDIENCE = "tally-api"
API_KEY_PREFIX = "tly_"
MAX_TOKEN_CHARS = 2_048  # ours are about 330; anything longer is not one of them
EXPIRED_NONCE_GRACE_S = 3_600  # spent or expired nonces are purged this long after expiry


def checksum(address: str) -> str:
    """The EIP-55 form of ``address``; :class:`InvalidInput` when it is not an address."""
    try:
        return parse_address(address)
    except ValueError as exc:
        raise InvalidInput(f"{address[:50]!r} is not an address: {exc}") from None


# --- principals and roles ----------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """The caller of a request: an address, its registry standing, how it authenticated."""

    address: str
    party: Party
    via: str  # "token" | "api_key"

    @property
    def roles(self) -> list[str]:
        return role_names(self.party)

    def has(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)

    def require(self, *roles: str) -> None:
        """:class:`RoleRequired` unless the caller holds one of ``roles``."""
        if not self.has(*roles):
            raise RoleRequired(f"this needs the {' or '.join(roles)} role")

    def require_self_or(self, address: str, *roles: str) -> None:
        """Allow the caller for its own ``address``, or any address with one of ``roles``."""
        if address != self.address and not self.has(*roles):
            raise RoleRequired(
                f"only {address} itself, or the {' or '.join(roles)} role, may read this"
            )


def admit(party: Party) -> None:
    """Refuse suspended participants and addresses with no role at all."""
    if party.registered and not party.active:
        raise ParticipantSuspended(f"participant {party.address} is suspended")
    if not party.registered and not (party.operator or party.auditor):
        raise NotAParticipant(
            f"{party.address} is not a registered participant, operator or auditor"
        )


# --- Sign-In with Ethereum -------------------------------------------------------------


def new_challenge(
    *,
    engine: Engine,
    address: str,
    domain: str,
    uri: str,
    chain_id: int,
    ttl_s: int,
    now: float | None = None,
) -> SiweMessage:
    """Store a fresh nonce for ``address`` and return the message to sign."""
    who = checksum(address)
    at = int(now if now is not None else time.time())
    nonce = secrets.token_hex(16)
    message = SiweMessage(
        domain=domain,
        address=who,
        uri=uri,
        chain_id=chain_id,
        nonce=nonce,
        issued_at=format_time(datetime.fromtimestamp(at, UTC)),
        expiration_time=format_time(datetime.fromtimestamp(at + ttl_s, UTC)),
        statement=STATEMENT,
    )
    with Session(engine) as session:
        session.exec(
            delete(AuthNonce).where(
                col(AuthNonce.expires_at) < at - EXPIRED_NONCE_GRACE_S  # type: ignore[arg-type]
            )
        )
        session.add(AuthNonce(nonce=nonce, address=who, issued_at=at, expires_at=at + ttl_s))
        session.commit()
    return message


def redeem_challenge(
    *,
    engine: Engine,
    message: str,
    signature: str,
    domain: str,
    uri: str,
    chain_id: int,
    now: float | None = None,
) -> str:
    """Check a signed sign-in message and spend its nonce; returns the signer's address."""
    at = int(now if now is not None else time.time())
    msg = parse(message)
    if msg.domain != domain:
        raise SignInRejected(f"the message is for domain {msg.domain!r}, this is {domain!r}")
    if msg.uri != uri:
        raise SignInRejected(f"the message is for URI {msg.uri!r}, this is {uri!r}")
    if msg.chain_id != chain_id:
        raise SignInRejected(f"the message is for chain {msg.chain_id}, this is {chain_id}")
    try:
        sig = parse_signature(signature)
        signer = recover_signer(msg.digest(), sig)
    except InvalidSignature as exc:
        raise InvalidSignature(f"signature: {exc.message}") from None
    if signer != msg.address:
        raise SignatureMismatch(f"the message names {msg.address} but {signer} signed it")
    not_before = msg.not_before_time
    if not_before is not None and not_before.timestamp() > at:
        raise SignInRejected("the message is not valid yet (Not Before)")
    expires = msg.expires
    if expires is not None and expires.timestamp() <= at:
        raise ChallengeExpired("the sign-in message has expired; ask for a new challenge")
    with Session(engine) as session:
        spent = session.execute(
            update(AuthNonce)
            .where(
                col(AuthNonce.nonce) == msg.nonce,
                col(AuthNonce.address) == msg.address,
                col(AuthNonce.used_at).is_(None),
                col(AuthNonce.expires_at) > at,
            )
            .values(used_at=at)
        )
        session.commit()
        if spent.rowcount == 1:  # type: ignore[attr-defined]
            return msg.address
        row = session.get(AuthNonce, msg.nonce)
    if row is None or row.address != msg.address:
        raise ChallengeUnknown("this nonce was not issued to this address; ask for a challenge")
    if row.used_at is not None:
        raise ChallengeUsed("this sign-in message was used already; ask for a new challenge")
    raise ChallengeExpired("the sign-in challenge has expired; ask for a new one")


# --- bearer tokens ----------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: int
    address: str


def issue_token(
    *, address: str, secret: str, ttl_s: int, issuer: str, now: float | None = None
) -> IssuedToken:
    """An HS256 JWT for ``address`` valid ``ttl_s`` seconds."""
    at = int(now if now is not None else time.time())
    claims = {
        "iss": issuer,
        "aud": TOKEN_AUDIENCE,
        "sub": address,
        "iat": at,
        "nbf": at,
        "exp": at + ttl_s,
        "jti": secrets.token_hex(8),
    }
    return IssuedToken(jwt.encode(claims, secret, algorithm="HS256"), at + ttl_s, address)


def verify_token(*, token: str, secret: str, issuer: str) -> str:
    """The address a valid token names; :class:`InvalidToken` for anything else.

    Tokens longer than :data:`MAX_TOKEN_CHARS` are refused unread: the JWT library
    parses the header's JSON before it checks the signature. A token that verified is
    remembered (by its whole text, the secret and the issuer) until its ``exp``: a
    client sends the same token with every request, and decoding it was 5% of a
    GET /v1/receipts load. Tokens cannot be revoked, so nothing else can change the
    answer before ``exp``; an expired one is decoded again and refused."""
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken("the token is not valid")
    key = (token, secret, issuer)
    with _verified_lock:
        hit = _verified.get(key)
    if hit is not None and time.time() < hit[1]:
        return hit[0]
    address, exp = _decode_token(token=token, secret=secret, issuer=issuer)
    with _verified_lock:
        if len(_verified) >= MAX_VERIFIED_TOKENS:
            _verified.clear()
        _verified[key] = (address, exp)
    return address


MAX_VERIFIED_TOKENS: Final = 10_000
_verified: dict[tuple[str, str, str], tuple[str, float]] = {}
_verified_lock = threading.Lock()


def _decode_token(*, token: str, secret: str, issuer: str) -> tuple[str, float]:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=TOKEN_AUDIENCE,
            issuer=issuer,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the token has expired; sign in again") from None
    except jwt.PyJWTError:
        raise InvalidToken("the token is not valid") from None
    sub = claims.get("sub")
    try:
        address = parse_address(sub)
    except ValueError:
        raise InvalidToken("the token is not valid") from None
    return address, float(claims["exp"])


def sign_in(
    *,
    engine: Engine,
    directory: LiveDirectory,
    message: str,
    signature: str,
    domain: str,
    uri: str,
    chain_id: int,
    secret: str,
    ttl_s: int,
) -> tuple[IssuedToken, Principal]:
    """The whole sign-in: redeem the challenge, read the registry afresh, admit, issue."""
    address = redeem_challenge(
        engine=engine,
        message=message,
        signature=signature,
        domain=domain,
        uri=uri,
        chain_id=chain_id,
    )
    directory.forget(address)
    party = directory.party(address)
    admit(party)
    issued = issue_token(address=address, secret=secret, ttl_s=ttl_s, issuer=domain)
    return issued, Principal(address=address, party=party, via="token")


# --- operator API keys ------------------------------------------------------------------


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_api_key(
    *, engine: Engine, address: str, label: str, now: float | None = None
) -> tuple[ApiKey, str]:
    """A new key for operator ``address``: the stored row and the key (shown only now)."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        key_id=secrets.token_hex(8),
        key_hash=_hash_key(key),
        address=checksum(address),
        label=label,
        created_at=int(now if now is not None else time.time()),
    )
    with Session(engine) as session:
        session.add(row)
        session.commit()
        session.refresh(row)
    return row, key


def list_api_keys(*, session: Session) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).order_by(col(ApiKey.created_at), col(ApiKey.key_id))))


def revoke_api_key(*, engine: Engine, key_id: str, now: float | None = None) -> ApiKey:
    with Session(engine) as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise ApiKeyNotFound(f"no API key {key_id}")
        if row.revoked_at is None:
            row.revoked_at = int(now if now is not None else time.time())
            session.add(row)
            session.commit()
            session.refresh(row)
        return row


def api_key_address(*, session: Session, key: str) -> str:
    """The operator address an active key acts for; :class:`InvalidToken` otherwise."""
    if not key.startswith(API_KEY_PREFIX) or len(key) > 128:
        raise InvalidToken("the API key is not valid")
    row = session.exec(select(ApiKey).where(ApiKey.key_hash == _hash_key(key))).first()
    if row is None or row.revoked_at is not None:
        raise InvalidToken("the API key is not valid or was revoked")
    return row.address
