"""``/v1/participants`` (the indexer's mirror; one address: the registry now), the
operator's ``POST /v1/participants`` (+ ``/suspend``, ``/reinstate``) and
``/v1/agreements?party=`` (own agreements, or any for the operator and auditors)."""

from __future__ import annotations

from typing import Any

from web3 import Web3

from service.api.context import ServiceContext
from service.indexer.runner import Indexer
from service.indexer.source import ReceiptSource
from tests.api.conftest import SignIn, TestClient, bearer, get_token, make_client
from tests.evidence.test_log import agreement
from tests.space import Space


def code(r: Any) -> str:
    value: str = r.json()["error"]["code"]
    return value


def index_once(ctx: ServiceContext, space: Space) -> None:
    Indexer(
        source=ReceiptSource(space.chain.w3),
        engine=ctx.engine,
        deployment=space.contracts.deployment,
        network="embedded",
        prefetch=False,
    ).run()


def test_list_comes_from_the_mirror(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn
) -> None:
    h = sign_in(space.providers[0])
    r = client.get("/v1/participants", headers=h)
    assert (r.status_code, code(r)) == (503, "indexer_not_ready")
    assert "tally index" in r.json()["error"]["message"]
    space.chain.transact(
        space.contracts.registry.functions.suspend(space.providers[2].address),
        sender=space.operator,
    )
    index_once(ctx, space)
    body = client.get("/v1/participants", headers=h).json()
    expected = sorted(
        [a.address for a in space.providers + space.consumers], key=lambda a: a.lower()
    )
    assert body["total"] == 5
    assert [p["address"] for p in body["participants"]] == expected
    by = {p["address"]: p for p in body["participants"]}
    assert by[space.providers[0].address]["roles"] == ["provider"]
    assert by[space.consumers[1].address]["roles"] == ["consumer"]
    assert by[space.providers[2].address]["status"] == "suspended"
    assert by[space.providers[0].address]["metadata_uri"] == "did:p0"
    consumers = client.get("/v1/participants", params={"role": "consumer"}, headers=h).json()
    assert [p["address"] for p in consumers["participants"]] == sorted(
        [c.address for c in space.consumers], key=str.lower
    )
    page = client.get("/v1/participants", params={"offset": 1, "limit": 2}, headers=h).json()
    assert [p["address"] for p in page["participants"]] == expected[1:3]
    r = client.get("/v1/participants", params={"role": "admin"}, headers=h)
    assert (r.status_code, code(r)) == (422, "validation_error")


def test_list_needs_an_active_caller(client: TestClient, space: Space, sign_in: SignIn) -> None:
    assert client.get("/v1/participants").status_code == 401
    h = sign_in(space.consumers[1])
    space.chain.transact(
        space.contracts.registry.functions.suspend(space.consumers[1].address),
        sender=space.operator,
    )
    r = client.get("/v1/participants", headers=h)
    assert (r.status_code, code(r)) == (403, "participant_suspended")


def test_one_participant_as_the_registry_says_now(
    client: TestClient, space: Space, sign_in: SignIn
) -> None:
    h = sign_in(space.consumers[0])
    r = client.get(f"/v1/participants/{space.providers[1].address}", headers=h)
    assert r.status_code == 200
    body = r.json()
    assert body["roles"] == ["provider"] and body["status"] == "active"
    assert body["identity_hash"] == "0x" + "02" * 32
    r = client.get(f"/v1/participants/{space.auditor.address.lower()}", headers=h)
    assert r.status_code == 200 and r.json()["roles"] == ["auditor"]
    assert r.json()["status"] == "unregistered"
    r = client.get(f"/v1/participants/{space.outsider.address}", headers=h)
    assert (r.status_code, code(r)) == (404, "participant_not_found")
    r = client.get("/v1/participants/0x12", headers=h)
    assert (r.status_code, code(r)) == (422, "validation_error")
    assert client.get(f"/v1/participants/{space.providers[1].address}").status_code == 401


def test_agreements_of_a_party(client: TestClient, space: Space, sign_in: SignIn) -> None:
    consumer = sign_in(space.consumers[0])
    client.post("/v1/evidence", json={"entries": [agreement(space).to_json()]}, headers=consumer)
    mine = client.get(
        "/v1/agreements", params={"party": space.consumers[0].address}, headers=consumer
    )
    assert mine.status_code == 200
    (a,) = mine.json()["agreements"]
    assert a["consumer"] == space.consumers[0].address and a["leaf_index"] == 0
    assert a["providers"] == sorted((p.address for p in space.providers[:2]), key=str.lower)
    provider = sign_in(space.providers[1])
    as_provider = client.get(
        "/v1/agreements", params={"party": space.providers[1].address}, headers=provider
    )
    assert as_provider.json()["total"] == 1
    r = client.get("/v1/agreements", params={"party": space.consumers[0].address}, headers=provider)
    assert (r.status_code, code(r)) == (403, "role_required")
    auditor = sign_in(space.auditor)
    r = client.get("/v1/agreements", params={"party": space.consumers[0].address}, headers=auditor)
    assert r.status_code == 200 and r.json()["total"] == 1
    none = client.get(
        "/v1/agreements", params={"party": space.providers[2].address}, headers=auditor
    )
    assert none.json() == {
        "party": space.providers[2].address,
        "total": 0,
        "offset": 0,
        "agreements": [],
    }
    r = client.get("/v1/agreements", params={"party": "nope"}, headers=auditor)
    assert (r.status_code, code(r)) == (422, "validation_error")
    assert (
        client.get("/v1/agreements", params={"party": space.consumers[0].address}).status_code
        == 401
    )


# --- admin: POST /v1/participants, /suspend, /reinstate (operator only) --------------------


def test_operator_admits_suspends_and_reinstates(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn
) -> None:
    op = sign_in(space.operator)
    who = space.outsider.address
    body = {"address": who.lower(), "roles": ["consumer", "service"], "identity": "did:example:o"}
    r = client.post("/v1/participants", json=body, headers=op)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["action"] == "registered" and out["tx_hash"].startswith("0x")
    p = out["participant"]
    assert (p["address"], p["roles"], p["roles_mask"], p["status"]) == (
        who,
        ["consumer", "service"],
        6,
        "active",
    )
    assert p["identity_hash"] == "0x" + bytes(Web3.keccak(text="did:example:o")).hex()
    roles, status, *_ = space.chain.call(space.contracts.registry.functions.participant(who))
    assert (roles, status) == (6, 1)
    # the newcomer can sign in and read at once
    assert client.get(f"/v1/participants/{who}", headers=sign_in(space.outsider)).status_code == 200

    r = client.post(f"/v1/participants/{who}/suspend", headers=op)
    assert r.status_code == 200 and r.json()["participant"]["status"] == "suspended"
    assert r.json()["action"] == "suspended"
    r = client.post(f"/v1/participants/{who}/reinstate", headers=op)
    assert r.status_code == 200 and r.json()["participant"]["status"] == "active"


def test_admin_routes_are_operator_only(client: TestClient, space: Space, sign_in: SignIn) -> None:
    body = {"address": space.outsider.address, "roles": ["provider"]}
    assert client.post("/v1/participants", json=body).status_code == 401
    for who in (space.providers[0], space.auditor):
        h = sign_in(who)
        r = client.post("/v1/participants", json=body, headers=h)
        assert (r.status_code, code(r)) == (403, "role_required")
        r = client.post(f"/v1/participants/{space.providers[1].address}/suspend", headers=h)
        assert (r.status_code, code(r)) == (403, "role_required")
    reg = space.contracts.registry.functions
    assert space.chain.call(reg.participant(space.outsider.address))[1] == 0  # nothing changed
    assert space.chain.call(reg.participant(space.providers[1].address))[1] == 1


def test_bad_admin_requests_get_stable_codes_and_change_nothing(
    client: TestClient, space: Space, sign_in: SignIn
) -> None:
    op = sign_in(space.operator)
    member, new = space.providers[0].address, space.outsider.address
    height = space.chain.w3.eth.block_number
    wrong_checksum = new[:2] + new[2:].swapcase()  # mixed case, not the EIP-55 one
    cases = [
        ({"address": member, "roles": ["consumer"]}, 409, "already_registered"),
        ({"address": new, "roles": ["admin"]}, 422, "validation_error"),
        ({"address": new, "roles": []}, 422, "validation_error"),
        ({"address": "0x1234", "roles": ["provider"]}, 422, "validation_error"),
        ({"address": wrong_checksum, "roles": ["provider"]}, 422, "invalid_address"),
        ({"address": "0x" + "00" * 20, "roles": ["provider"]}, 422, "invalid_address"),
    ]
    for body, status, want in cases:
        r = client.post("/v1/participants", json=body, headers=op)
        assert (r.status_code, code(r)) == (status, want), body
    for path, status, want in (
        (f"/v1/participants/{new}/suspend", 404, "participant_not_found"),
        (f"/v1/participants/{new}/reinstate", 404, "participant_not_found"),
        (f"/v1/participants/{member}/reinstate", 409, "not_suspended"),
        ("/v1/participants/0x12/suspend", 422, "validation_error"),
    ):
        r = client.post(path, headers=op)
        assert (r.status_code, code(r)) == (status, want), path
    assert space.chain.w3.eth.block_number == height  # nothing was sent
    assert client.post(f"/v1/participants/{member}/suspend", headers=op).status_code == 200
    r = client.post(f"/v1/participants/{member}/suspend", headers=op)
    assert (r.status_code, code(r)) == (409, "already_suspended")


def test_admin_without_an_operator_key_on_the_server_is_503(space: Space, engine: Any) -> None:
    client, ctx = make_client(space, engine)
    ctx.operator = None
    with client:
        h = bearer(get_token(client, space.operator))
        r = client.post(
            "/v1/participants",
            json={"address": space.outsider.address, "roles": ["provider"]},
            headers=h,
        )
    assert (r.status_code, code(r)) == (503, "operator_key_unavailable")
