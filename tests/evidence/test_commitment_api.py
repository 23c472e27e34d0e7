"""T15 over the real API: POST /v1/evidence hands each submitter its entry's salt (again
on a resubmission); the party's receipt is a full version-2 document that reduces, and
POST /v1/audit/receipt passes the reduced one naming its proven and hidden fields."""

from __future__ import annotations

from service.api.context import ServiceContext
from service.evidence import commitment
from service.evidence.receipts import reduce_receipt
from tests.api.conftest import SignIn, TestClient, client, ctx, ctx_client, sign_in  # noqa: F401
from tests.api.test_evidence import anchor, post
from tests.evidence.test_log import agreement, receipt
from tests.space import Space


def test_submitter_gets_the_salt_and_a_reduced_receipt_audits_through_the_api(
    client: TestClient,  # noqa: F811
    ctx: ServiceContext,  # noqa: F811
    space: Space,
    sign_in: SignIn,  # noqa: F811
) -> None:
    h = sign_in(space.consumers[0])
    signed = receipt(space, 1, units=33)
    first = post(client, [agreement(space), signed], h).json()["results"]
    assert [r["status"] for r in first] == ["accepted", "accepted"]
    salt = first[1]["salt"]
    assert isinstance(salt, str) and len(bytes.fromhex(salt[2:])) == commitment.SALT_SIZE
    again = post(client, [signed], h).json()["results"]
    assert again[0]["status"] == "duplicate" and again[0]["salt"] == salt
    # the public log shows the commitment, which the salt opens
    leaf = client.get("/v1/log/entries", params={"start": 1, "end": 2}).json()["entries"][0]
    opened = commitment.commit(signed, bytes.fromhex(salt[2:])).leaf_data
    assert leaf["leaf_data"] == "0x" + opened.hex()
    anchor(ctx, space)
    eid = "0x" + signed.id().hex()
    doc = client.get(f"/v1/receipts/{eid}", headers=h).json()
    assert (doc["version"], doc["form"], doc["salt"]) == (2, "full", salt)
    small = reduce_receipt(doc, ["consumer", "provider", "units"])
    report = client.post("/v1/audit/receipt", json=small, headers=h)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["ok"] is True, body["verdict"]
    assert body["form"] == "reduced" and body["fields"]["values"]["units"] == 33
    assert body["fields"]["hidden"] == [
        "agreementId",
        "periodStart",
        "periodEnd",
        "detailHash",
        "nonce",
    ]
    full = client.post("/v1/audit/receipt", json=doc, headers=h).json()
    assert full["ok"] is True and full["form"] == "full" and full["fields"] is None
