"""Sign-In with Ethereum from the CLI: how an auditor reads full entries from an API (T15).

Since T15 the public log (``/v1/log/*``) serves leaf data only; the entries an audit
rebuilds the leaves from are served by ``GET /v1/evidence`` to the auditor and operator
roles. ``tally audit log --api URL`` and ``tally audit settlement --api URL`` sign in
first (:func:`sign_in`):

1. ``POST /v1/auth/challenge`` with the key's address: an EIP-4361 message with a nonce;
2. the message is signed with ``personal_sign`` (EIP-191) by the key;
3. ``POST /v1/auth/token``: a short-lived bearer token and the address's roles, which
   must include ``auditor`` (or ``operator``), else :class:`~service.errors.RoleRequired`
   in one line.

The key (:func:`audit_key`) comes from the same sources as every other command's:
``--key-env VAR`` (a private key in an environment variable), else the network's key
source in its chain config (``dev-mnemonic``, ``env``, ``keystore``; see
:mod:`service.chain.keys`). Nothing the API answers is trusted beyond the token it
issues: the audits check every entry against the chain.
"""

from __future__ import annotations

from typing import Any

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from service.chain.client import Chain
from service.errors import ConfigError, LogUnavailable, RoleRequired, SignInRejected

__all__ = ["READER_ROLES", "audit_key", "sign_in"]

READER_ROLES = ("auditor", "operator")  # who GET /v1/evidence serves


def audit_key(chain: Chain | None, key_env: str | None) -> LocalAccount:
    """The key to sign in with: ``key_env``'s private key, else the network's key."""
    from service.chain.keys import env_account, operator_account

    if key_env is not None:
        return env_account(key_env)
    if chain is None:
        raise ConfigError("give --key-env VAR: the auditor's private key signs in to the API")
    return operator_account(chain.network)


def _post(client: httpx.Client, url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        response = client.post(path, json=body)
    except httpx.HTTPError as err:
        raise LogUnavailable(f"API {url}: POST {path}: {type(err).__name__}") from None
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if response.status_code != 200 or not isinstance(doc, dict):
        error = doc.get("error") if isinstance(doc, dict) else None
        said = ""
        if isinstance(error, dict):
            said = f": {str(error.get('code'))[:64]}: {str(error.get('message'))[:200]}"
        if response.status_code in (401, 403):
            raise RoleRequired(
                f"API {url} refused to sign in {body.get('address', 'the key')}"
                f" (HTTP {response.status_code}{said})"
            )
        raise SignInRejected(f"API {url}: POST {path}: HTTP {response.status_code}{said}")
    return doc


def sign_in(url: str, account: LocalAccount, *, timeout_s: float = 10.0) -> str:
    """A bearer token for ``account`` at the API ``url``, if it holds a reader role."""
    base = url.rstrip("/")
    with httpx.Client(
        base_url=base, timeout=httpx.Timeout(timeout_s), follow_redirects=False
    ) as client:
        challenge = _post(client, base, "/v1/auth/challenge", {"address": account.address})
        message = challenge.get("message")
        if not isinstance(message, str):
            raise SignInRejected(f"API {base}: the challenge holds no message")
        signed = Account.sign_message(encode_defunct(text=message), private_key=account.key)
        answer = _post(
            client,
            base,
            "/v1/auth/token",
            {"message": message, "signature": "0x" + bytes(signed.signature).hex()},
        )
    token, roles = answer.get("access_token"), answer.get("roles")
    if not isinstance(token, str) or not isinstance(roles, list):
        raise SignInRejected(f"API {base}: the token answer is not a token")
    if not any(role in roles for role in READER_ROLES):
        held = ", ".join(str(r) for r in roles) or "none"
        raise RoleRequired(
            f"{account.address} holds no auditor role at {base} (its roles: {held}): "
            "sign in with an auditor's key (--key-env VAR)"
        )
    return token
