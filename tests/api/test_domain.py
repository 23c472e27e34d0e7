"""``GET /v1/domain`` and the digests of ``GET /v1/evidence/{id}``, checked by eth_account.

The expected digests come from eth_account's ``encode_typed_data`` (an independent
EIP-712 implementation) fed with the types and domain the server publishes and the
message it returns, never from ``service.evidence``.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from service.evidence.entries import ENTRY_CLASSES, SignedEntry, sign_entry
from tests.api.conftest import SignIn, TestClient
from tests.space import Space

ROOT = Path(__file__).resolve().parents[2]
DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


@cache
def _examples() -> dict[str, SignedEntry]:
    spec = importlib.util.spec_from_file_location(
        "evidence_examples", ROOT / "scripts/evidence_examples.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built: dict[str, SignedEntry] = module.examples()
    return built


def one_of_each(space: Space) -> list[SignedEntry]:
    """docs/evidence.md's examples (every entry type), re-signed in ``space``'s domain."""
    from service.chain.keys import dev_accounts

    keys = {a.address: bytes(a.key) for a in dev_accounts(10)}
    return [
        sign_entry(s.entry, space.domain, [keys[signer] for signer in s.signatures])
        for s in _examples().values()
    ]


def signable(doc: dict[str, Any], primary: str, message: dict[str, Any]) -> Any:
    """eth_account's EIP-712 encoding of ``message`` from the published types."""
    types = {"EIP712Domain": doc["types"]["EIP712Domain"], primary: doc["types"][primary]}
    return encode_typed_data(
        full_message={
            "types": types,
            "primaryType": primary,
            "domain": doc["domain"],
            "message": message,
        }
    )


def test_domain_is_public_and_served_before_any_entry(client: TestClient, space: Space) -> None:
    log = client.get("/v1/log/checkpoints").json()
    assert log["log"]["tree_size"] == 0 and log["latest"] is None  # nothing yet
    r = client.get("/v1/domain")  # no token
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["domain"] == {
        "name": "Tally",
        "version": "1",
        "chainId": space.chain.chain_id,
        "verifyingContract": space.contracts.ledger.address,
    }
    assert set(doc["types"]) == {"EIP712Domain", *ENTRY_CLASSES}
    assert doc["types"]["EIP712Domain"] == DOMAIN_FIELDS
    assert set(doc["entry_types"]) == set(ENTRY_CLASSES)
    assert doc["encoding"] == "TALLY-ENTRY-V1"
    # the separator eth_account derives from the served domain
    sm = signable(doc, "UsageReceipt", _examples()["UsageReceipt"].entry.message())
    assert doc["domain_separator"] == "0x" + bytes(sm.header).hex()


@pytest.mark.parametrize("name", list(ENTRY_CLASSES))
def test_type_string_and_hash_follow_the_published_fields(client: TestClient, name: str) -> None:
    doc = client.get("/v1/domain").json()
    fields = ",".join(f"{f['type']} {f['name']}" for f in doc["types"][name])
    facts = doc["entry_types"][name]
    assert facts["type_string"] == f"{name}({fields})"
    assert facts["type_hash"] == "0x" + keccak(text=facts["type_string"]).hex()
    assert facts["tag"] == int(ENTRY_CLASSES[name].entry_type)
    assert facts["signed_by"]


def test_served_digest_equals_eth_account_digest_for_each_entry_type(
    client: TestClient, sign_in: SignIn, space: Space
) -> None:
    doc = client.get("/v1/domain").json()
    entries = one_of_each(space)
    r = client.post(
        "/v1/evidence",
        json={"entries": [e.to_json() for e in entries]},
        headers=sign_in(space.consumers[0]),
    )
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["accepted"] * len(entries), results
    seen = set()
    auditor = sign_in(space.auditor)  # reads every entry (T15)
    for item in results:
        served = client.get(f"/v1/evidence/{item['entry_id']}", headers=auditor).json()
        sm = signable(doc, served["entry_type"], served["entry"])
        digest = keccak(b"\x19" + bytes(sm.version) + bytes(sm.header) + bytes(sm.body))
        assert served["eip712_digest"] == "0x" + digest.hex()
        assert served["struct_hash"] == "0x" + bytes(sm.body).hex()
        # the canonical bytes carry the same struct hash and separator (offsets 67, 99)
        data = bytes.fromhex(served["data"][2:])
        assert data[67:99] == bytes(sm.header) and data[99:131] == bytes(sm.body)
        for signer, signature in served["signatures"].items():
            assert Account.recover_message(sm, signature=signature) == signer
        seen.add(served["entry_type"])
    assert seen == set(ENTRY_CLASSES)


def test_served_digest_changes_with_the_message(
    client: TestClient, sign_in: SignIn, space: Space
) -> None:
    """The digest is the message's, not a constant: a second receipt has another."""
    agreement, receipt = one_of_each(space)[:2]
    later = receipt.entry.model_copy(update={"nonce": 2})
    keys = [space.key(space.consumers[0]), space.key(space.providers[0])]
    second = sign_entry(later, space.domain, keys)
    r = client.post(
        "/v1/evidence",
        json={"entries": [agreement.to_json(), receipt.to_json(), second.to_json()]},
        headers=sign_in(space.consumers[0]),
    )
    ids = [x["entry_id"] for x in r.json()["results"]]
    party = sign_in(space.consumers[0])
    one, two = (client.get(f"/v1/evidence/{i}", headers=party).json() for i in ids[1:])
    assert one["eip712_digest"] != two["eip712_digest"]
    assert one["struct_hash"] != two["struct_hash"]
    assert one["eip712_digest"] == "0x" + receipt.digest().hex()
