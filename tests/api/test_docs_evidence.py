"""docs/evidence.md cannot drift from the code.

Every field of every entry type in ``service.evidence.entries`` is in its type's table,
in order, with its Solidity type; every example parses with the API's parser, carries
exactly its required signers' valid signatures, and has the struct hash, digest, id,
leaf and size it states; the byte-by-byte layout is the encoder's output; the examples
(re-signed in the test deployment's domain) are accepted by ``POST /v1/evidence`` in
document order; the rejection codes it lists are real and the rules it states reject
with them.
"""

from __future__ import annotations

import importlib.util
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from service import errors
from service.chain.keys import dev_accounts
from service.evidence.eip712 import Domain, keccak256
from service.evidence.entries import (
    ENTRY_CLASSES,
    SignedEntry,
    decode_entry,
    parse_entry,
    sign_entry,
)
from service.evidence.log import required_for
from service.evidence.merkle import leaf_hash
from tests.api.conftest import SignIn, TestClient
from tests.space import Space

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "evidence.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"<!-- example: (?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /example -->", re.S)
FENCE = re.compile(r"```(json|text)\n(.*?)```", re.S)
KEYS: dict[str, LocalAccount] = {a.address: a for a in dev_accounts(10)}


@cache
def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "evidence_examples", ROOT / "scripts/evidence_examples.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def doc_domain() -> Domain:
    """The domain the document says its examples are signed in."""
    m = re.search(r"chainId `(\d+)` and\s+verifyingContract\s+`(0x[0-9a-fA-F]{40})`", DOC)
    assert m, "docs/evidence.md must state the examples' domain"
    domain = Domain(chain_id=int(m.group(1)), verifying_contract=m.group(2))
    assert domain == _generator().DOMAIN
    return domain


def examples() -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """(block name, the JSON item, the derived values) of every signed example."""
    out = []
    for m in BLOCK.finditer(DOC):
        if m.group("name") == "bytes":
            continue
        fences = dict(FENCE.findall(m.group("body")))
        assert set(fences) == {"json", "text"}, m.group("name")
        derived = dict(line.split() for line in fences["text"].strip().splitlines())
        out.append((m.group("name"), json.loads(fences["json"]), derived))
    return out


def section(name: str) -> str:
    m = re.search(rf"^### {name}\n(.*?)(?=^##)", DOC, flags=re.S | re.M)
    assert m, f"docs/evidence.md has no section '### {name}'"
    return m.group(1)


@pytest.mark.parametrize("name", list(ENTRY_CLASSES))
def test_table_documents_every_field_in_order(name: str) -> None:
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \| `([\w\[\]]+)` \| (.+) \|$", section(name), re.M)
    fields = ENTRY_CLASSES[name].eip712_type.fields
    assert [(int(n), f, t) for n, f, t, _ in rows] == [
        (i + 1, f, t) for i, (f, t) in enumerate(fields)
    ]
    assert all(rule.strip() for *_, rule in rows), "every field needs its rules"
    tag = int(ENTRY_CLASSES[name].entry_type)
    assert f"Type tag {tag}." in section(name)


def test_every_entry_type_has_an_example() -> None:
    assert {item["entry_type"] for _, item, _ in examples()} == set(ENTRY_CLASSES)


@pytest.mark.parametrize("example", examples(), ids=lambda e: e[0])
def test_example_verifies_and_matches_its_stated_hashes(
    example: tuple[str, dict[str, Any], dict[str, str]],
) -> None:
    _, item, derived = example
    signed = SignedEntry.from_json(item, domain=doc_domain())  # the API's parser
    signed._precheck(doc_domain(), required_for(signed))  # exactly the required signers
    assert signed.recover() == frozenset(item["signatures"])
    data = signed.encode()
    assert decode_entry(data) == signed
    assert signed.to_json() == item  # the example is in the canonical JSON form
    stated = {
        "struct_hash": "0x" + signed.entry.struct_hash().hex(),
        "eip712_digest": "0x" + signed.digest().hex(),
        "entry_id": "0x" + signed.id().hex(),
        "leaf_hash": "0x" + leaf_hash(data).hex(),
        "bytes": str(len(data)),
    }
    assert derived == stated
    # the digest is the EIP-712 one over the separator and struct hash as documented
    assert keccak256(b"\x19\x01" + doc_domain().separator + signed.entry.struct_hash()) == (
        signed.digest()
    )


def test_byte_layout_is_the_usage_receipt_encoding() -> None:
    body = next(m.group("body") for m in BLOCK.finditer(DOC) if m.group("name") == "bytes")
    (text,) = re.findall(r"```text\n(.*?)```", body, re.S)
    hexes = [line.rsplit(maxsplit=1)[1] for line in text.strip().splitlines()]
    receipt = next(item for name, item, _ in examples() if name == "UsageReceipt")
    signed = SignedEntry.from_json(receipt, domain=doc_domain())
    assert bytes.fromhex("".join(hexes)) == signed.encode()


def test_examples_are_what_the_generator_writes() -> None:
    assert _generator().render(DOC) == DOC, "run: python scripts/evidence_examples.py"


def _resigned(item: dict[str, Any], space: Space) -> dict[str, Any]:
    """The document's message as it stands, signed by the same signers in ``space``."""
    entry = parse_entry(item["entry_type"], item["entry"])
    keys = [bytes(KEYS[signer].key) for signer in item["signatures"]]
    fresh = sign_entry(entry, space.domain, keys)
    return {"entry_type": item["entry_type"], "entry": item["entry"], **_sigs(fresh)}


def _sigs(signed: SignedEntry) -> dict[str, Any]:
    return {"signatures": signed.to_json()["signatures"]}


def test_examples_are_accepted_in_document_order(
    client: TestClient, sign_in: SignIn, space: Space
) -> None:
    # the document's parties are the dev accounts the test space registers
    assert space.consumers[0].address == "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"
    items = [_resigned(item, space) for _, item, _ in examples()]
    r = client.post("/v1/evidence", json={"entries": items}, headers=sign_in(space.consumers[0]))
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["results"]] == ["accepted"] * len(items), r.json()


def test_documented_codes_are_real_error_codes() -> None:
    table = DOC.split("## Rules across entries", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"\| `(\w+)` \|$", table, re.M))
    codes = {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.TallyError)
    }
    assert len(documented) >= 9  # the table parsed (T9 documented nine codes; more came later)
    assert documented <= codes, documented - codes


def test_documented_rules_reject_with_their_codes(
    client: TestClient, sign_in: SignIn, space: Space
) -> None:
    by_name = {name: item for name, item, _ in examples()}
    agreement, receipt = by_name["Agreement"], by_name["UsageReceipt"]
    headers = sign_in(space.consumers[0])

    def post(*items: dict[str, Any]) -> list[str | None]:
        r = client.post("/v1/evidence", json={"entries": list(items)}, headers=headers)
        assert r.status_code == 200, r.text
        return [x["code"] for x in r.json()["results"]]

    # agreement before its receipts
    assert post(_resigned(receipt, space)) == ["unknown_agreement"]
    assert post(_resigned(agreement, space), _resigned(receipt, space)) == [None, None]
    # the nonce rule: the same (agreement, consumer, nonce) with other units
    again = {**receipt, "entry": {**receipt["entry"], "units": 121}}
    assert post(_resigned(again, space)) == ["nonce_reused"]
    # providers strictly ascending (the signatures do not matter: the message fails first)
    backwards = {
        **agreement,
        "entry": {**agreement["entry"], "providers": agreement["entry"]["providers"][::-1]},
    }
    assert post(backwards) == ["invalid_entry"]
    # exactly the required signers: the consumer alone cannot sign a receipt
    alone = _resigned({**receipt, "entry": {**receipt["entry"], "nonce": 2}}, space)
    consumer = space.consumers[0].address
    alone["signatures"] = {consumer: alone["signatures"][consumer]}
    assert post(alone) == ["signer_mismatch"]


def test_examples_match_the_openapi_schema_and_wrong_items_do_not() -> None:
    """The named schemas of the committed OpenAPI document describe the real items."""
    import jsonschema_rs  # with schemathesis (dev dependency)

    openapi = json.loads((ROOT / "service/api/openapi.json").read_text(encoding="utf-8"))
    schema = {"$ref": "#/components/schemas/EvidenceBatchIn", "components": openapi["components"]}
    validator = jsonschema_rs.Draft202012Validator(schema)
    items = [item for _, item, _ in examples()]
    assert validator.is_valid({"entries": items})
    agreement, receipt = items[0], items[1]
    for wrong in (
        {**receipt, "entry_type": "Agreement"},  # the discriminator picks the other schema
        {**agreement, "entry": {**agreement["entry"], "unitPrice": 1.5}},
        {**receipt, "entry": {**receipt["entry"], "extra": 1}},
        {**receipt, "signatures": {}},
    ):
        assert not validator.is_valid({"entries": [wrong]}), wrong
