"""The ValuationResult entry and its int256[] field, checked against eth_account and eth_abi."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import InvalidEntry
from service.evidence.eip712 import Domain
from service.evidence.entries import (
    ValuationResult,
    decode_entry,
    parse_entry,
    required_signers,
    sign_entry,
)

LEDGER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DOMAIN = Domain(chain_id=31337, verifying_contract=LEDGER)
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
PROVIDERS = (
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
)
INT256 = st.integers(min_value=-(1 << 255), max_value=(1 << 255) - 1)


def _message(values: tuple[int, int]) -> dict[str, Any]:
    return {
        "agreementId": b"\x11" * 32,
        "periodStart": 1_700_000_000,
        "periodEnd": 1_700_086_400,
        "method": 3,
        "paramsHash": b"\x22" * 32,
        "checkpointSize": 12,
        "seed": b"\x33" * 32,
        "utilityHash": b"\x44" * 32,
        "providers": PROVIDERS,
        "values": values,
        "stderrs": (41, 38),
        "utilityCalls": 256,
    }


@settings(max_examples=30, deadline=None)
@given(a=INT256, b=INT256)
def test_int256_array_struct_hash_matches_eth_account(a: int, b: int) -> None:
    message = _message((a, b))
    entry = ValuationResult.model_validate(message)
    full = entry.typed_data(DOMAIN)
    full["message"] = {**message, "providers": list(PROVIDERS), "values": [a, b]}
    full["message"]["stderrs"] = [41, 38]
    signable = encode_typed_data(full_message=full)
    assert entry.struct_hash() == signable.body
    assert DOMAIN.separator == signable.header


@settings(max_examples=30, deadline=None)
@given(a=INT256, b=INT256)
def test_int256_array_abi_matches_eth_abi(a: int, b: int) -> None:
    entry = ValuationResult.model_validate(_message((a, b)))
    data = entry.eip712_type.abi_encode(entry.eip712_values())
    decoded = abi_decode(list(entry.eip712_type.field_types), data, strict=True)
    assert tuple(decoded[9]) == (a, b)


def test_valuation_result_round_trips_through_json_and_bytes() -> None:
    entry = ValuationResult.model_validate(_message((3650, -120)))
    signed = sign_entry(entry, DOMAIN, [KEY])
    doc = signed.to_json()
    assert doc["entry"]["values"] == ["3650", "-120"]
    assert parse_entry("ValuationResult", doc["entry"]) == entry
    assert decode_entry(signed.encode()) == signed
    assert signed.encode()[14] == 10  # the type tag reserved for T13
    assert required_signers(entry, evaluator=next(iter(signed.signatures))) == frozenset(
        signed.signatures
    )


@pytest.mark.parametrize(
    "change",
    [
        {"values": (1,)},
        {"stderrs": (1, 2, 3)},
        {"values": (1, "1e3")},
        {"values": (1, 1 << 255)},
        {"method": 0},
        {"providers": tuple(reversed(PROVIDERS))},
        {"periodEnd": 1_700_000_000},
    ],
)
def test_valuation_result_refuses_malformed_fields(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidEntry):
        parse_entry("ValuationResult", {**_message((1, 2)), **change})


def test_valuation_result_needs_the_evaluator() -> None:
    with pytest.raises(ValueError, match="evaluator"):
        required_signers(ValuationResult.model_validate(_message((1, 2))))
