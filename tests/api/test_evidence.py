"""``POST /v1/evidence``, ``GET /v1/evidence/{id}``, ``GET /v1/receipts/{id}``."""

from __future__ import annotations

from typing import Any

from service.api.context import ServiceContext
from service.audit.receipt import audit_receipt
from service.evidence.anchor import anchor_once
from service.evidence.entries import SignedEntry
from tests.api.conftest import SignIn, TestClient, make_client
from tests.audit.forge import pin
from tests.evidence.test_log import agreement, receipt
from tests.space import Space


def code(r: Any) -> str:
    value: str = r.json()["error"]["code"]
    return value


def post(
    client: TestClient, entries: list[SignedEntry | dict[str, Any]], headers: dict[str, str]
) -> Any:
    items = [e.to_json() if isinstance(e, SignedEntry) else e for e in entries]
    return client.post("/v1/evidence", json={"entries": items}, headers=headers)


def anchor(ctx: ServiceContext, space: Space) -> None:
    anchor_once(
        engine=ctx.engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )


def test_batch_gives_one_result_per_item_in_order(
    client: TestClient, space: Space, sign_in: SignIn
) -> None:
    h = sign_in(space.consumers[0])
    forged = receipt(space, 3).to_json()
    forged["signatures"] = dict.fromkeys(forged["signatures"], "0x" + "11" * 65)
    malformed = receipt(space, 4).to_json()
    malformed["entry"]["units"] = -1
    batch = [
        agreement(space),
        receipt(space, 1),
        malformed,
        receipt(space, 2),
        forged,
        {"entry_type": "Nope", "entry": {}, "signatures": {}},
        receipt(space, 1),  # the same entry again, in the same batch
    ]
    r = post(client, batch, h)
    assert r.status_code == 200, r.text
    body = r.json()
    results = body["results"]
    assert [x["index"] for x in results] == list(range(7))
    assert [x["status"] for x in results] == [
        "accepted",
        "accepted",
        "rejected",
        "accepted",
        "rejected",
        "rejected",
        "duplicate",
    ]
    assert [x["leaf_index"] for x in results if x["status"] != "rejected"] == [0, 1, 2, 1]
    assert results[2]["code"] == "invalid_entry"
    assert results[2]["errors"][0]["field"] == "units"
    assert results[4]["code"] == "invalid_signature"
    assert results[5]["code"] == "invalid_entry"
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (3, 1, 3)
    assert results[1]["entry_id"] == "0x" + receipt(space, 1).id().hex()


def test_resubmitting_a_batch_is_idempotent(
    client: TestClient, space: Space, sign_in: SignIn
) -> None:
    h = sign_in(space.providers[0])
    batch = [agreement(space), receipt(space, 1), receipt(space, 2)]
    first = post(client, batch, h).json()["results"]
    again = post(client, batch, h).json()["results"]
    assert [x["status"] for x in again] == ["duplicate"] * 3
    assert [x["leaf_index"] for x in again] == [x["leaf_index"] for x in first]
    assert client.get("/v1/log/entries").json()["tree_size"] == 3


def test_submit_needs_a_token_and_an_active_participant(
    client: TestClient, space: Space, sign_in: SignIn
) -> None:
    r = post(client, [agreement(space)], {})
    assert (r.status_code, code(r)) == (401, "unauthenticated")
    h = sign_in(space.consumers[1])
    space.chain.transact(
        space.contracts.registry.functions.suspend(space.consumers[1].address),
        sender=space.operator,
    )
    r = post(client, [agreement(space)], h)
    assert (r.status_code, code(r)) == (403, "participant_suspended")


def test_submit_refuses_bad_shapes_with_field_paths(
    client: TestClient, space: Space, sign_in: SignIn
) -> None:
    h = sign_in(space.consumers[0])
    for body, path in [
        ({}, "body.entries"),
        ({"entries": []}, "body.entries"),
        ({"entries": "x"}, "body.entries"),
        ({"entries": [{"entry": {}, "signatures": {}}]}, "body.entries.0.entry_type"),
        ({"entries": [], "extra": 1}, "body"),
    ]:
        r = client.post("/v1/evidence", json=body, headers=h)
        assert (r.status_code, code(r)) == (422, "validation_error"), body
        assert any(f["path"].startswith(path) for f in r.json()["error"]["fields"]), r.json()
    r = client.post(
        "/v1/evidence", content=b"{not json", headers=h | {"content-type": "application/json"}
    )
    assert (r.status_code, code(r)) == (422, "validation_error")


def test_batch_and_body_limits(space: Space, engine: Any) -> None:
    client, _ = make_client(space, engine, max_batch=2, max_body_bytes=4096)
    with client:
        from tests.api.conftest import get_token

        h = {"Authorization": f"Bearer {get_token(client, space.consumers[0])}"}
        r = post(client, [agreement(space), receipt(space, 1), receipt(space, 2)], h)
        assert (r.status_code, code(r)) == (413, "batch_too_large")
        big = {
            "entries": [{"entry_type": "x" * 10, "entry": {"pad": "y" * 5000}, "signatures": {}}]
        }
        r = client.post("/v1/evidence", json=big, headers=h)
        assert (r.status_code, code(r)) == (413, "payload_too_large")

        def chunks() -> Any:  # no Content-Length: counted as it streams in
            for _ in range(10):
                yield b" " * 1000

        r = client.post(
            "/v1/evidence", content=chunks(), headers=h | {"content-type": "application/json"}
        )
        assert (r.status_code, code(r)) == (413, "payload_too_large")
        assert client.get("/v1/log/entries").json()["tree_size"] == 0


def test_get_evidence_returns_the_entry_and_its_bytes(
    client: TestClient, space: Space, sign_in: SignIn
) -> None:
    h = sign_in(space.consumers[0])
    post(client, [agreement(space), receipt(space, 1)], h)
    signed = receipt(space, 1)
    eid = "0x" + signed.id().hex()
    r = client.get(f"/v1/evidence/{eid.upper().replace('0X', '0x')}", headers=h)  # a party
    assert r.status_code == 200
    body = r.json()
    assert body["leaf_index"] == 1 and body["entry_id"] == eid
    assert body["entry"] == signed.to_json()["entry"]
    assert bytes.fromhex(body["data"][2:]) == signed.encode()
    missing = client.get("/v1/evidence/0x" + "ab" * 32, headers=h)
    assert (missing.status_code, code(missing)) == (404, "entry_not_found")
    bad = client.get("/v1/evidence/0x1234")
    assert (bad.status_code, code(bad)) == (422, "validation_error")


def test_receipt_is_404_pending_until_anchored_then_audits(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn
) -> None:
    h = sign_in(space.consumers[0])
    post(client, [agreement(space), receipt(space, 1)], h)
    eid = "0x" + receipt(space, 1).id().hex()
    r = client.get(f"/v1/receipts/{eid}", headers=h)  # its consumer (a party)
    assert (r.status_code, code(r)) == (404, "not_anchored")
    assert r.json()["error"]["status"] == "pending" and r.json()["error"]["leaf_index"] == 1
    unknown = client.get("/v1/receipts/0x" + "cd" * 32, headers=h)
    assert (unknown.status_code, code(unknown)) == (404, "entry_not_found")
    assert unknown.json()["error"]["status"] == "unknown"
    anchor(ctx, space)
    r = client.get(f"/v1/receipts/{eid}", headers=h)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["leaf_index"] == 1 and doc["tree_size"] == 2
    report = audit_receipt(doc, chain=space.chain, trusted=pin(space))
    assert report.ok, report.verdict
    assert client.get("/v1/receipts/nothex").status_code == 422
