"""The dashboard's way to read data: the app's own HTTP routes, called in-process.

A page never opens the database or the vault itself for anything a ``/v1`` route serves:
it sends the same request a browser or the CLI would (through httpx's ASGI transport, into
the same FastAPI app, middleware and rate limit included) with the caller's credential
from the dashboard's session cookie. Whatever the routes allow or refuse a caller (roles,
parties only, 404 for entries one is not party to) the pages allow or refuse them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request

COOKIE = "tally_session"
"""The dashboard's session cookie: the bearer credential (a Sign-In with Ethereum token, or
an operator API key), HttpOnly and SameSite=Strict. Only the dashboard's page routes read
it; the ``/v1`` routes never do, so the cookie cannot make them change state (no CSRF)."""

API_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Answer:
    """One route's answer: the status, the JSON body (or None) and the error, if any."""

    status: int
    body: Any
    text: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error_code(self) -> str:
        """The stable error code of a ``{"error": {"code", "message"}}`` answer."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("code", ""))
        return "" if self.ok else f"http_{self.status}"

    @property
    def error_message(self) -> str:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("message", ""))
        return self.text[:300]


class Api:
    """The ``/v1`` routes as the page's caller sees them (their cookie's credential)."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.credential = request.cookies.get(COOKIE) or None
        client = request.client
        self._client = (client.host, client.port) if client else ("127.0.0.1", 0)
        self._me: Answer | None = None

    @property
    def signed_in(self) -> bool:
        return self.credential is not None

    async def whoami(self) -> dict[str, Any] | None:
        """``GET /v1/auth/me`` for the cookie's credential, asked once per page; None
        when there is no credential or it is not accepted (see :attr:`expired`)."""
        if not self.signed_in:
            return None
        if self._me is None:
            self._me = await self.get("/v1/auth/me")
        return self._me.body if self._me.ok and isinstance(self._me.body, dict) else None

    @property
    def expired(self) -> bool:
        """The credential was refused as such (401): the page forgets it. A 503 (the
        registry's node down) is not a reason to sign anyone out."""
        return self._me is not None and self._me.status == 401

    async def get(self, path: str, **params: Any) -> Answer:
        return await self.call("GET", path, params=params)

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        credential: str | None = None,
    ) -> Answer:
        """``method path`` on this app with ``credential`` (default: the cookie's)."""
        headers = {"Accept": "application/json"}
        cred = credential if credential is not None else self.credential
        if cred:
            headers["Authorization"] = f"Bearer {cred}"
        transport = httpx.ASGITransport(app=self.request.app, client=self._client)
        query = {k: v for k, v in (params or {}).items() if v is not None}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://dashboard.internal", timeout=API_TIMEOUT_S
        ) as client:
            r = await client.request(method, path, params=query, json=json, headers=headers)
        try:
            body = r.json()
        except ValueError:
            body = None
        return Answer(r.status_code, body, r.text if body is None else "")
