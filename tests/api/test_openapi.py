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
