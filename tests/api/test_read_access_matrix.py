"""Who may read what (T15 §2): every GET route of the API x every kind of caller.

Callers (:data:`ROLES`):

- ``anonymous``: no credential;
- ``witness``: what a T10 witness sends. A witness has no API identity: it reads the
  public log with no credential and its cosignature (``POST /v1/log/cosignatures``)
  authenticates itself, so on reads it is an anonymous caller; its row asserts that the
  public log gives it everything it needs (``/v1/log/*``) and nothing more;
- ``unrelated``: a registered participant that is party to nothing here (provider p2);
- ``party``: provider p0, a signer of the receipt read and a party of its agreement (the
  per-address routes are asked for p0's own address);
- ``auditor``, ``operator``: the registry's roles.

The data: an Agreement (consumer c0, providers p0 and p1) and three UsageReceipts,
anchored; round 1 computed by the operator (a draft); the indexer run once.
An entry a caller may not read is 404 ``entry_not_found`` (no existence oracle:
``test_probing_entry_ids_tells_nothing`` checks the bodies are a missing entry's);
another participant's statement, claim, bill or agreements is 403 ``role_required``
(the address is in the path: nothing to hide about it).
"""

from __future__ import annotations

from typing import Any

import pytest

from service.api.context import ServiceContext
from service.api.main import create_app
from service.evidence.commitment import leaf_data_for
from service.evidence.merkle import leaf_hash, root_from_leaf_hashes
from tests.api.conftest import SignIn, TestClient, api_settings
from tests.api.test_participants import index_once
from tests.api.test_rounds import prepare, round_body
from tests.settlement.test_engine import P0, P1, receipt
from tests.space import Space

ROLES = ("anonymous", "witness", "unrelated", "party", "auditor", "operator")
ALL_200 = dict.fromkeys(ROLES, 200)
SIGNED_IN = {"anonymous": 401, "witness": 401} | dict.fromkeys(
    ("unrelated", "party", "auditor", "operator"), 200
)
OWN_OR_STAFF = {"anonymous": 401, "witness": 401, "unrelated": 403} | dict.fromkeys(
    ("party", "auditor", "operator"), 200
)
STAFF_ONLY = {"anonymous": 401, "witness": 401, "unrelated": 403, "party": 403} | dict.fromkeys(
    ("auditor", "operator"), 200
)
OPERATOR_ONLY = {r: 403 for r in ROLES} | {"anonymous": 401, "witness": 401, "operator": 200}
PARTIES_ONLY = dict.fromkeys(("anonymous", "witness", "unrelated"), 404) | dict.fromkeys(
    ("party", "auditor", "operator"), 200
)


def public(status: int) -> dict[str, int]:
    return dict.fromkeys(ROLES, status)


NO_HASH = "0x" + "ee" * 32


def matrix(space: Space, eid: str) -> list[tuple[str, str, dict[str, int]]]:
    """(route template, concrete URL, expected status per role) for every GET route."""
    p0 = space.providers[0].address
    return [
        ("/healthz", "/healthz", ALL_200),
        ("/readyz", "/readyz", ALL_200),
        ("/metrics", "/metrics", OPERATOR_ONLY),
        ("/v1/auth/me", "/v1/auth/me", SIGNED_IN),
        ("/v1/auth/api-keys", "/v1/auth/api-keys", OPERATOR_ONLY),
        ("/v1/domain", "/v1/domain", ALL_200),
        ("/v1/catalog", "/v1/catalog", ALL_200),
        ("/v1/catalog.jsonld", "/v1/catalog.jsonld", ALL_200),
        ("/v1/catalog/{offer_id}", f"/v1/catalog/{NO_HASH}", public(404)),
        ("/v1/catalog/terms/{terms_hash}", f"/v1/catalog/terms/{NO_HASH}", public(404)),
        ("/v1/log/checkpoint", "/v1/log/checkpoint", ALL_200),
        ("/v1/log/checkpoints", "/v1/log/checkpoints", ALL_200),
        ("/v1/log/entries", "/v1/log/entries", ALL_200),
        ("/v1/log/key", "/v1/log/key", ALL_200),
        ("/v1/log/proof/inclusion", "/v1/log/proof/inclusion?leaf=1&size=4", ALL_200),
        ("/v1/log/proof/consistency", "/v1/log/proof/consistency?from=1&to=4", ALL_200),
        ("/v1/evidence", "/v1/evidence?start=0&limit=10", STAFF_ONLY),
        ("/v1/evidence", f"/v1/evidence?party={p0}&type=UsageReceipt", OWN_OR_STAFF),
        ("/v1/evidence/{entry_id}", f"/v1/evidence/{eid}", PARTIES_ONLY),
        ("/v1/receipts/{entry_id}", f"/v1/receipts/{eid}", PARTIES_ONLY),
        ("/v1/participants", "/v1/participants", SIGNED_IN),
        ("/v1/participants/{address}", f"/v1/participants/{p0}", SIGNED_IN),
        ("/v1/agreements", f"/v1/agreements?party={p0}", OWN_OR_STAFF),
        ("/v1/rounds", "/v1/rounds", ALL_200),
        ("/v1/rounds/{round_id}", "/v1/rounds/1", ALL_200),
        ("/v1/rounds/{round_id}/statement/{address}", f"/v1/rounds/1/statement/{p0}", OWN_OR_STAFF),
        ("/v1/rounds/{round_id}/claims/{address}", f"/v1/rounds/1/claims/{p0}", OWN_OR_STAFF),
        ("/v1/bills/{address}", f"/v1/bills/{p0}?from={P0}&to={P1}", OWN_OR_STAFF),
        ("/v1/audit/rounds/{round_id}", "/v1/audit/rounds/1", STAFF_ONLY),
    ]


def callers(space: Space, sign_in: SignIn) -> dict[str, dict[str, str]]:
    return {
        "anonymous": {},
        "witness": {},
        "unrelated": sign_in(space.providers[2]),
        "party": sign_in(space.providers[0]),
        "auditor": sign_in(space.auditor),
        "operator": sign_in(space.operator),
    }


def setup_space(client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn) -> str:
    """Agreement + 3 receipts anchored, round 1 computed, participants indexed; the id of
    receipt 1 (consumer c0, provider p0)."""
    prepare(client, ctx, space, sign_in)
    r = client.post("/v1/rounds", json=round_body(space), headers=sign_in(space.operator))
    assert r.status_code == 200, r.text
    index_once(ctx, space)
    return "0x" + receipt(space, 1, provider=0, units=30).id().hex()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_read_route_answers_each_role_as_the_matrix_says(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn
) -> None:
    eid = setup_space(client, ctx, space, sign_in)
    heads = callers(space, sign_in)
    wrong = []
    for _, url, expected in matrix(space, eid):
        assert set(expected) == set(ROLES), url
        for role, status in expected.items():
            r = client.get(url, headers=heads[role])
            if r.status_code != status:
                wrong.append((url, role, status, r.status_code, r.text[:200]))
    assert not wrong, "\n".join(map(str, wrong))


def test_matrix_covers_every_get_route_of_the_app(space: Space) -> None:
    """A new GET route without a row here fails (the dashboard's pages, outside the
    OpenAPI schema, read through these routes with the visitor's own credential)."""
    app = create_app(settings=api_settings())
    routes = {p for p, ops in app.openapi()["paths"].items() if "get" in ops}
    covered = {template for template, _, _ in matrix(space, NO_HASH)}
    assert routes == covered, (routes - covered, covered - routes)


# --- the attack: probing entry ids for existence --------------------------------------------


def _as_if(body: Any, real: str, probe: str) -> Any:
    """``body`` with the id ``probe`` written where ``real`` was (either case)."""
    import json

    text = json.dumps(body).replace(real, probe).replace(real.lower(), probe.lower())
    return json.loads(text)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_probing_entry_ids_tells_nothing(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn
) -> None:
    """A competitor (or anyone) asks for entry ids it guessed or saw: an anchored entry, a
    pending one and an agreement answer exactly what an id in no log answers."""
    anchored = setup_space(client, ctx, space, sign_in)
    h = sign_in(space.consumers[0])
    pending = receipt(space, 7, provider=1, units=3)
    r = client.post("/v1/evidence", json={"entries": [pending.to_json()]}, headers=h)
    assert r.json()["accepted"] == 1
    from tests.settlement.test_engine import agreement

    existing = [anchored, "0x" + pending.id().hex(), "0x" + agreement(space).id().hex()]
    heads = callers(space, sign_in)
    for role in ("anonymous", "unrelated"):
        for route in ("/v1/evidence/", "/v1/receipts/"):
            for eid in existing:
                for form in (eid, eid.upper().replace("0X", "0x")):
                    missing = "0x" + ("5a" if form == eid else "5A") * 32
                    got = client.get(route + form, headers=heads[role])
                    none = client.get(route + missing, headers=heads[role])
                    assert got.status_code == none.status_code == 404, (role, route)
                    assert got.json()["error"]["code"] == "entry_not_found"
                    assert got.json() == _as_if(none.json(), missing, form), (role, route, form)
                    assert got.headers["content-type"] == none.headers["content-type"]
                    assert len(got.content) == len(none.content)
    # the parties still see the pending one as pending
    party_p1 = sign_in(space.providers[1])
    r = client.get(f"/v1/receipts/{existing[1]}", headers=party_p1)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_anchored"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_party_of_an_entry_reads_it(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn
) -> None:
    """Receipt 1 (c0 and p0 sign it) is read by its signers, by p1 (a provider of its
    agreement) and by staff; the agreement by its three parties; not by c1 or p2."""
    eid = setup_space(client, ctx, space, sign_in)
    from tests.settlement.test_engine import agreement

    aid = "0x" + agreement(space).id().hex()
    c0, c1 = space.consumers
    p0, p1, p2 = space.providers
    for who, may in ((c0, True), (p0, True), (p1, True), (c1, False), (p2, False)):
        for entry in (eid, aid):
            r = client.get(f"/v1/evidence/{entry}", headers=sign_in(who))
            assert r.status_code == (200 if may else 404), (who.address, entry)
            if may:
                assert r.json()["entry_id"] == entry


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_full_entries_page_rebuilds_the_log_for_staff(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn
) -> None:
    """``GET /v1/evidence``: every entry in leaf order with its salt (null: legacy); the
    leaves they make (commitment.leaf_data_for) give the log's root."""
    setup_space(client, ctx, space, sign_in)
    auditor = sign_in(space.auditor)
    head = client.get("/v1/log/checkpoints").json()["log"]
    items, start = [], 0
    while True:
        page = client.get(f"/v1/evidence?start={start}&limit=3", headers=auditor).json()
        assert page["start"] == start
        items += page["entries"]
        if page["next"] is None:
            break
        start = page["next"]
    assert [i["leaf_index"] for i in items] == list(range(head["tree_size"]))
    leaves = [
        leaf_hash(
            leaf_data_for(
                bytes.fromhex(i["data"][2:]),
                None if i["salt"] is None else bytes.fromhex(i["salt"][2:]),
            )
        )
        for i in items
    ]
    assert "0x" + root_from_leaf_hashes(leaves).hex() == head["root"]
    assert [i["salt"] is not None for i in items] == [True] * len(items)  # all since T15
    window = client.get("/v1/evidence?start=1&end=3", headers=auditor).json()
    assert [i["leaf_index"] for i in window["entries"]] == [1, 2] and window["next"] is None
    assert window["entries"] == items[1:3]
    for bad in ("limit=100000", "start=3&end=1"):
        r = client.get(f"/v1/evidence?{bad}", headers=auditor)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_input"), bad
