"""``/v1/catalog``: offers posted as evidence are searchable, readable with their
versions, exported as DCAT JSON-LD; terms documents register and read back; receipts
over their terms are rejected through ``POST /v1/evidence`` with the terms' codes."""

from __future__ import annotations

from typing import Any

import rdflib

from service.catalog.canonical import canonical_text, document_hash
from service.chain.keys import dev_accounts
from service.evidence.entries import SignedEntry, sign_entry
from tests.api.conftest import SignIn, TestClient
from tests.catalog.helpers import (
    agreement,
    count,
    h,
    offer,
    purpose,
    receipt,
    terms_doc,
    withdrawal,
)
from tests.space import Space

KEYS = {a.address: a for a in dev_accounts(10)}


def _item(signed: SignedEntry, space: Space) -> dict[str, Any]:
    fresh = sign_entry(signed.entry, space.domain, [bytes(KEYS[s].key) for s in signed.signatures])
    return fresh.to_json()


def _post(
    client: TestClient, headers: dict[str, str], space: Space, *entries: SignedEntry
) -> list[str]:
    r = client.post(
        "/v1/evidence", json={"entries": [_item(e, space) for e in entries]}, headers=headers
    )
    assert r.status_code == 200, r.text
    return [x["code"] or x["status"] for x in r.json()["results"]]


def test_catalog_routes(client: TestClient, sign_in: SignIn, space: Space) -> None:
    headers = sign_in(space.consumers[0])
    terms = terms_doc(count(50), purpose("research"))
    assert (
        _post(
            client,
            headers,
            space,
            offer(terms=terms),
            offer("grid"),
            offer("old"),
            withdrawal("old"),
        )
        == ["accepted"] * 4
    )
    r = client.get("/v1/catalog", params={"q": "battery"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 1 and body["offers"][0]["title"] == "EV battery telemetry"
    assert body["offers"][0]["termsHash"] == "0x" + document_hash(terms).hex()
    assert client.get("/v1/catalog").json()["total"] == 2
    oid = "0x" + h("offer: old").hex()
    detail = client.get(f"/v1/catalog/{oid}").json()
    assert detail["offer"]["withdrawn"] is True
    assert [(v["version"], v["withdrawal"]) for v in detail["versions"]] == [(1, False), (1, True)]
    assert client.get("/v1/catalog/0x" + "00" * 32).json()["error"]["code"] == "offer_not_found"
    assert client.get("/v1/catalog/nothex").status_code == 422
    r = client.get("/v1/catalog.jsonld")
    assert r.headers["content-type"].startswith("application/ld+json")
    g = rdflib.Graph().parse(data=r.text, format="json-ld")
    assert (
        len(set(g.subjects(rdflib.RDF.type, rdflib.URIRef("http://www.w3.org/ns/dcat#Dataset"))))
        == 2
    )


def test_terms_registration_and_enforcement(
    client: TestClient, sign_in: SignIn, space: Space
) -> None:
    headers = sign_in(space.consumers[0])
    offer_terms = terms_doc(count(50), purpose("research", "insurance-pricing"))
    narrowed = terms_doc(count(20), purpose("research"))
    assert client.post("/v1/catalog/terms", json={"terms": narrowed}).status_code == 401
    r = client.post("/v1/catalog/terms", json={"terms": narrowed}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "termsHash": "0x" + document_hash(narrowed).hex(),
        "terms": canonical_text(narrowed),
    }
    assert client.get(f"/v1/catalog/terms/{r.json()['termsHash']}").json()[
        "terms"
    ] == canonical_text(narrowed)
    bad = terms_doc({"leftOperand": "spatial", "operator": "eq", "rightOperand": "CN"})
    r = client.post("/v1/catalog/terms", json={"terms": bad}, headers=headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "terms_unsupported"
    assert _post(client, headers, space, offer(terms=offer_terms), agreement(terms=narrowed)) == [
        "accepted",
        "accepted",
    ]
    codes = _post(
        client,
        headers,
        space,
        receipt(1, units=15, purpose_code="research"),
        receipt(2, units=10, purpose_code="research"),  # 25 > 20 of the narrowed terms
        receipt(3, units=1, purpose_code="insurance-pricing"),  # the offer's, not the agreement's
    )
    assert codes == ["accepted", "quota_exceeded", "purpose_not_permitted"]
