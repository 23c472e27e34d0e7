"""The policy document: schema, clear errors naming the field, canonical form and hash."""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from service.errors import InvalidPolicy
from service.settlement.policy import load_policy, parse_policy, parse_policy_text

OP = "0x" + "ab" * 20
EVAL = "0x" + "0e" * 20
AID = "0x" + "a1" * 32

TOML = f"""
version = 1
operator = "{OP.upper().replace("0X", "0x")}"
operator_fee_bps = 250
method = "output"
default_quality_bps = 6000

[risk_multipliers]
1 = 1
2 = "3/2"
3 = "2.0"

[agreements."{AID.upper().replace("0X", "0x")}"]
method = "risk"
default_risk_tier = 1
"""


def base(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "operator": OP,
        "operator_fee_bps": 250,
        "method": "output",
    }
    doc.update(over)
    return doc


def test_toml_and_json_forms_have_one_canonical_form_and_hash(tmp_path: Path) -> None:
    as_toml = tmp_path / "policy.toml"
    as_toml.write_text(TOML)
    as_json = tmp_path / "policy.json"
    as_json.write_text(
        json.dumps(
            {
                "agreements": {AID: {"default_risk_tier": "1", "method": "risk"}},
                "risk_multipliers": {"3": 2, "2": "1.5", "1": "1/1"},
                "default_quality_bps": 6000,
                "method": "output",
                "operator_fee_bps": 250,
                "operator": OP,
                "version": 1,
            }
        )
    )
    a, b = load_policy(as_toml), load_policy(as_json)
    # Written out from the schema's normalization rules: keys sorted (RFC 8785), defaults
    # filled in, addresses lower-case, exact numbers as reduced fractions.
    expected = (
        '{"agreements":{"' + AID + '":{"default_risk_tier":"1","method":"risk"}},'
        '"default_quality_bps":6000,"method":"output","mix":{},'
        '"operator":"' + OP + '","operator_fee_bps":250,'
        '"require_operator_countersign":false,'
        '"risk_multipliers":{"1":"1","2":"3/2","3":"2"},"version":1}'
    ).encode()
    assert a.canonical_bytes == expected
    assert b.canonical_bytes == expected
    assert a.hash == b.hash == hashlib.sha256(expected).digest()


def test_parsed_policy_gives_methods_and_params_per_agreement() -> None:
    policy = parse_policy_text(TOML, toml=True)
    assert policy.operator == OP and policy.operator_fee_bps == 250
    default = policy.for_agreement("0x" + "00" * 32)
    assert default.method == "output" and default.params.default_quality_bps == 6000
    special = policy.for_agreement(AID.upper().replace("0X", "0x"))
    assert special.method == "risk"
    assert special.params.default_risk_tier == "1"
    assert special.params.risk_multipliers == {"1": 1, "2": Fraction(3, 2), "3": 2}
    assert special.params.default_quality_bps == 6000  # inherited from the top level


def test_any_change_changes_the_hash() -> None:
    one = parse_policy(base())
    assert parse_policy(base()).hash == one.hash
    assert parse_policy(base(operator_fee_bps=251)).hash != one.hash
    assert parse_policy(base(default_quality_bps=9999)).hash != one.hash
    # writing a default out explicitly is the same policy
    assert parse_policy(base(default_quality_bps=10_000)).hash == one.hash


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        (base(operator_fee_bps=10_001), "operator_fee_bps", "[0, 10000]"),
        (base(operator_fee_bps=True), "operator_fee_bps", "integer"),
        (base(method="fair"), "method", "output, cost, risk, shapley, mix"),
        (base(operator="0x1234"), "operator", "address"),
        (base(fee=1), "fee", "unknown field"),
        ({"version": 1, "operator": OP, "method": "output"}, "operator_fee_bps", "required"),
        (base(version=2), "version", "[1, 1]"),
        (base(method="risk"), "risk_multipliers", "multiplier table"),
        (base(method="risk", risk_multipliers={"1": 1.5}), "risk_multipliers.1", "float"),
        (base(method="risk", risk_multipliers={"low": 1}), "risk_multipliers.low", "risk tier"),
        (
            base(method="risk", risk_multipliers={"1": 1}, default_risk_tier=2),
            "default_risk_tier",
            "not in the risk_multipliers table",
        ),
        (base(method="shapley"), "evaluator", "evaluator"),
        (base(method="mix"), "mix", "[mix] table"),
        (base(method="mix", mix={"output": 0}), "mix", "every mix coefficient is zero"),
        (base(method="mix", mix={"mix": 1}), "mix.mix", "a mix combines"),
        (base(agreements={"0x12": {"method": "cost"}}), "agreements.0x12", "64 hex"),
        (base(agreements={AID: {"fee": 1}}), f"agreements.{AID}.fee", "unknown override"),
        (base(agreements={AID: {"method": "shapley"}}), "evaluator", "evaluator"),
        (base(require_operator_countersign=1), "require_operator_countersign", "true or false"),
    ],
)
def test_bad_policy_names_the_field(doc: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidPolicy) as err:
        parse_policy(doc)
    assert f"'{field}'" in err.value.message
    assert words in err.value.message
    assert err.value.detail["field"] == field


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidPolicy, match="no policy file"):
        load_policy(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("version = = 1")
    with pytest.raises(InvalidPolicy, match="not valid TOML"):
        load_policy(bad)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(InvalidPolicy, match="table"):
        load_policy(listed)


def test_shapley_and_mix_policy_is_accepted() -> None:
    policy = parse_policy(
        base(
            method="mix",
            evaluator=EVAL,
            mix={"output": "1/2", "shapley": "0.25", "cost": 1},
            require_operator_countersign=True,
        )
    )
    assert policy.evaluator == EVAL
    assert policy.require_operator_countersign is True
    assert policy.default.params.mix == {
        "output": Fraction(1, 2),
        "shapley": Fraction(1, 4),
        "cost": 1,
    }
    assert policy.document["mix"] == {"output": "1/2", "shapley": "1/4", "cost": "1"}


@pytest.mark.parametrize("method", ["output", "mix"])
def test_canonical_form_parses_back_to_the_same_hash(method: str) -> None:
    extra: dict[str, Any] = {"mix": {"output": 1, "cost": "1/3"}} if method == "mix" else {}
    policy = parse_policy(base(method=method, **extra))
    again = parse_policy(json.loads(policy.canonical_bytes))
    assert again.hash == policy.hash and again.canonical_bytes == policy.canonical_bytes
