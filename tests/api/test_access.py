"""Who may call what, endpoint by endpoint: every operation of the API in one table.

For each authenticated endpoint: no credential is 401 ``unauthenticated``; a suspended
participant's token is 403 ``participant_suspended``; a caller without the role is 403
``role_required`` (where a role is needed). Public endpoints answer without a token
(2xx or a 404, never 401/403) and refuse an invalid one with 401 ``invalid_token``.
The endpoints' own successes and bad inputs are in the other test modules; what each
kind of caller may *read* (entries only to their parties, T15) is the matrix of
tests/api/test_read_access_matrix.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import SignIn, TestClient
from tests.space import Space

A = "0x" + "ab" * 20
E = "0x" + "cd" * 32
ROUND = {"round_id": 1, "period_start": 0, "period_end": 1, "policy": {}}

# (method, path, json body, roles that may call it; None: any signed-in participant)
AUTHENTICATED: list[tuple[str, str, Any, tuple[str, ...] | None]] = [
    ("get", "/v1/auth/me", None, None),
    ("post", "/v1/auth/api-keys", {"label": "k"}, ("operator",)),
    ("get", "/v1/auth/api-keys", None, ("operator",)),
    ("delete", "/v1/auth/api-keys/" + "0" * 16, None, ("operator",)),
    (
        "post",
        "/v1/evidence",
        {"entries": [{"entry_type": "x", "entry": {}, "signatures": {}}]},
        None,
    ),
    ("get", "/v1/evidence", None, ("operator", "auditor")),
    ("get", "/v1/participants", None, None),
    ("get", f"/v1/participants/{A}", None, None),
    ("get", f"/v1/agreements?party={A}", None, ("operator", "auditor")),
    ("post", "/v1/rounds", ROUND, ("operator",)),
    ("post", "/v1/rounds/1/propose", None, ("operator",)),
    ("post", "/v1/rounds/1/finalize", None, ("operator",)),
    ("post", "/v1/rounds/1/cancel", None, ("operator",)),
    ("get", f"/v1/rounds/1/statement/{A}", None, ("operator", "auditor")),
    ("get", f"/v1/rounds/1/claims/{A}", None, ("operator", "auditor")),
    ("get", f"/v1/bills/{A}?from=0&to=1", None, ("operator", "auditor")),
    ("post", "/v1/audit/receipt", {}, None),
    ("get", "/v1/audit/rounds/1", None, ("operator", "auditor")),
    ("get", "/metrics", None, ("operator",)),
]

PUBLIC: list[tuple[str, str, Any]] = [
    # no token needed to ask; since T15 only the entry's parties and staff get the entry
    # (everyone else the 404 of a missing one: tests/api/test_read_access_matrix.py)
    ("get", f"/v1/evidence/{E}", None),
    ("get", f"/v1/receipts/{E}", None),
    ("get", "/v1/log/checkpoints", None),
    ("get", "/v1/log/entries", None),
    ("get", "/v1/log/proof/inclusion?leaf=0&size=1", None),
    ("get", "/v1/log/proof/consistency?from=0&to=0", None),
    ("get", "/v1/rounds", None),
    ("get", "/v1/rounds/1", None),
    ("post", "/v1/auth/challenge", {"address": A}),
]


def call(client: TestClient, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    return client.request(method, path, json=body, headers=headers)


def code(r: Any) -> str:
    value: str = r.json()["error"]["code"]
    return value


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_authenticated_endpoints_refuse_anonymous_suspended_and_wrong_role(
    client: TestClient, space: Space, sign_in: SignIn
) -> None:
    provider = sign_in(space.providers[2])  # a provider: no operator or auditor role
    suspended = sign_in(space.consumers[1])
    space.chain.transact(
        space.contracts.registry.functions.suspend(space.consumers[1].address),
        sender=space.operator,
    )
    for method, path, body, roles in AUTHENTICATED:
        r = call(client, method, path, body, {})
        assert (r.status_code, code(r)) == (401, "unauthenticated"), path
        r = call(client, method, path, body, suspended)
        assert (r.status_code, code(r)) == (403, "participant_suspended"), path
        r = call(client, method, path, body, provider)
        if roles is None:
            assert r.status_code not in (401, 403), (path, r.text)
        else:
            assert (r.status_code, code(r)) == (403, "role_required"), path


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_public_endpoints_need_no_token_and_refuse_a_bad_one(client: TestClient) -> None:
    for method, path, body in PUBLIC:
        r = call(client, method, path, body, {})
        assert r.status_code in (200, 404), (path, r.status_code, r.text)
        r = call(client, method, path, body, {"Authorization": "Bearer nope"})
        assert (r.status_code, code(r)) == (401, "invalid_token"), path
    for path in ("/healthz", "/readyz"):
        assert client.get(path).status_code == 200
