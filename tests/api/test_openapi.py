"""The committed OpenAPI schema (service/api/openapi.json) is the app's, byte for byte."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _exporter():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "export_openapi", ROOT / "scripts/export_openapi.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_schema_matches_the_routes() -> None:
    committed = (ROOT / "service" / "api" / "openapi.json").read_text(encoding="utf-8")
    assert committed == _exporter().render(), "run: python scripts/export_openapi.py"


def test_schema_lists_every_endpoint_of_t6() -> None:
    import json

    paths = json.loads(_exporter().render())["paths"]
    expected = {
        ("post", "/v1/evidence"),
        ("get", "/v1/evidence/{entry_id}"),
        ("get", "/v1/receipts/{entry_id}"),
        ("get", "/v1/log/checkpoints"),
        ("get", "/v1/log/entries"),
        ("get", "/v1/log/proof/inclusion"),
        ("get", "/v1/log/proof/consistency"),
        ("get", "/v1/participants"),
        ("get", "/v1/participants/{address}"),
        ("get", "/v1/agreements"),
        ("post", "/v1/rounds"),
        ("post", "/v1/rounds/{round_id}/propose"),
        ("post", "/v1/rounds/{round_id}/finalize"),
        ("post", "/v1/rounds/{round_id}/cancel"),
        ("get", "/v1/rounds"),
        ("get", "/v1/rounds/{round_id}"),
        ("get", "/v1/rounds/{round_id}/statement/{address}"),
        ("get", "/v1/rounds/{round_id}/claims/{address}"),
        ("get", "/v1/bills/{address}"),
        ("post", "/v1/audit/receipt"),
        ("get", "/v1/audit/rounds/{round_id}"),
        ("post", "/v1/auth/challenge"),
        ("post", "/v1/auth/token"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    }
    have = {(m, p) for p, ops in paths.items() for m in ops}
    assert expected <= have, expected - have


def test_evidence_items_are_a_named_schema_per_entry_type() -> None:
    """POST /v1/evidence documents a discriminated oneOf, one named schema per entry type,
    each message schema listing the EIP-712 fields in order (docs/evidence.md)."""
    import json

    from service.evidence.entries import ENTRY_CLASSES

    schemas = json.loads(_exporter().render())["components"]["schemas"]
    items = schemas["EvidenceBatchIn"]["properties"]["entries"]["items"]
    mapping = items["discriminator"]["mapping"]
    assert items["discriminator"]["propertyName"] == "entry_type"
    assert set(mapping) == set(ENTRY_CLASSES)
    assert sorted(x["$ref"] for x in items["oneOf"]) == sorted(mapping.values())
    for name, ref in mapping.items():
        signed = schemas[ref.rsplit("/", 1)[1]]
        assert signed["properties"]["entry_type"]["const"] == name
        assert signed["properties"]["entry"] == {"$ref": f"#/components/schemas/{name}"}
        message = schemas[name]
        fields = [f for f, _ in ENTRY_CLASSES[name].eip712_type.fields]
        assert set(message["properties"]) == set(fields)  # (the export sorts keys)
        assert message["required"] == fields  # in EIP-712 order
        assert message["additionalProperties"] is False
