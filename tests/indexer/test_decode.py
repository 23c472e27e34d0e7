"""The decoder: its fast path must agree with eth-abi on every event, valid or not."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.chain.artifacts import artifact_names, load_artifact
from service.indexer.decode import (
    UNDECODABLE_EVENT,
    UNKNOWN_EVENT,
    Decoder,
    EventSpec,
    abi_type,
    event_topic,
)
from service.indexer.handlers import check_subjects
from service.indexer.runner import decoder_for

ADDRESS = "0x" + "ab" * 20
EXTRA = {  # types the Tally contracts do not use, so both paths are exercised on them too
    "type": "event",
    "name": "Everything",
    "anonymous": False,
    "inputs": [
        {"name": "small", "type": "int8", "indexed": True},
        {"name": "label", "type": "string", "indexed": True},
        {"name": "flag", "type": "bool", "indexed": False},
        {"name": "code", "type": "bytes3", "indexed": False},
        {"name": "blob", "type": "bytes", "indexed": False},
        {"name": "delta", "type": "int256", "indexed": False},
        {"name": "note", "type": "string", "indexed": False},
        {"name": "ids", "type": "uint256[]", "indexed": False},
        {
            "name": "pair",
            "type": "tuple",
            "indexed": False,
            "components": [{"name": "n", "type": "uint16"}, {"name": "who", "type": "address"}],
        },
    ],
}


def _events() -> list[tuple[str, dict[str, Any]]]:
    out = [("Extra", EXTRA)]
    for name in artifact_names():
        out += [(name, item) for item in load_artifact(name).abi if item["type"] == "event"]
    return out


EVENTS = _events()


def _value(typ: str) -> st.SearchStrategy[Any]:
    if typ.endswith("[]"):
        return st.lists(_value(typ[:-2]), max_size=4)
    if typ == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
    if typ == "bool":
        return st.booleans()
    if typ == "string":
        return st.text(max_size=80)
    if typ == "bytes":
        return st.binary(max_size=80)
    if typ.startswith("bytes"):
        n = int(typ[5:])
        return st.binary(min_size=n, max_size=n)
    if typ.startswith("uint"):
        return st.integers(0, 2 ** int(typ[4:] or 256) - 1)
    if typ.startswith("int"):
        bits = int(typ[3:] or 256)
        return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    raise AssertionError(typ)


def _param_value(param: dict[str, Any]) -> st.SearchStrategy[Any]:
    if param["type"] == "tuple":
        return st.tuples(*[_param_value(c) for c in param["components"]])
    return _value(param["type"])


def _expected(param: dict[str, Any], value: Any) -> Any:
    if param["type"] == "tuple":
        return {c["name"]: _expected(c, v) for c, v in zip(param["components"], value, strict=True)}
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list):
        return [_expected({"type": param["type"][:-2]}, v) for v in value]
    return value


def _encode_log(item: dict[str, Any], values: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A raw log of ``item`` carrying ``values`` and the args the decoder must return."""
    topics = [event_topic(item)]
    data_types, data_values, expected = [], [], {}
    for param, value in zip(item["inputs"], values, strict=True):
        typ = abi_type(param)
        if param.get("indexed"):
            if typ in ("string", "bytes") or typ.endswith("]") or typ.startswith("("):
                raw = value.encode() if isinstance(value, str) else value
                topic = "0x" + keccak(raw).hex()
                expected[param["name"]] = topic
            else:
                topic = "0x" + encode([typ], [value]).hex()
                expected[param["name"]] = _expected(param, value)
            topics.append(topic)
        else:
            data_types.append(typ)
            data_values.append(value)
            expected[param["name"]] = _expected(param, value)
    log = {
        "address": ADDRESS,
        "topics": topics,
        "data": "0x" + encode(data_types, data_values).hex(),
        "blockNumber": "0x10",
        "blockHash": "0x" + "11" * 32,
        "transactionHash": "0x" + "22" * 32,
        "transactionIndex": "0x3",
        "logIndex": "0x7",
    }
    return log, expected


@st.composite
def _event_and_values(draw: st.DrawFn) -> tuple[str, dict[str, Any], list[Any]]:
    contract, item = draw(st.sampled_from(EVENTS))
    return contract, item, [draw(_param_value(p)) for p in item["inputs"]]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_event_and_values(), st.data())
def test_fast_path_equals_eth_abi_on_valid_and_corrupted_logs(
    case: tuple[str, dict[str, Any], list[Any]], data: st.DataObject
) -> None:
    contract, item, values = case
    decoder = Decoder(1, {ADDRESS: (contract, [item])})
    log, expected = _encode_log(item, values)
    event = decoder.decode(log)
    assert (event.event, event.args, event.contract) == (item["name"], expected, contract)
    assert list(event.args) == [p["name"] for p in item["inputs"]]  # ABI order
    assert (event.block_number, event.log_index, event.tx_index) == (16, 7, 3)

    # flip one hex digit of the data: both paths must give the same values, or both refuse
    spec = EventSpec.from_abi(contract, item)
    body = log["data"][2:]
    if body:
        i = data.draw(st.integers(0, len(body) - 1))
        digit = data.draw(st.sampled_from("0123456789abcdef"))
        corrupted = "0x" + body[:i] + digit + body[i + 1 :]
        try:
            reference: Any = spec.decode_args_abi(log["topics"], corrupted)
        except ValueError:
            reference = ValueError
        try:
            fast: Any = spec.decode_args(log["topics"], corrupted)
        except ValueError:
            fast = ValueError
        assert fast == reference


def test_unknown_and_undecodable_logs_are_kept_raw() -> None:
    decoder = Decoder(1, {ADDRESS: ("Extra", [EXTRA])})
    log, _ = _encode_log(EXTRA, [1, "x", True, b"abc", b"", 0, "", [], (1, ADDRESS)])
    unknown = decoder.decode({**log, "topics": ["0x" + "99" * 32]})
    assert unknown.event == UNKNOWN_EVENT and unknown.args["topics"] == ["0x" + "99" * 32]
    short = decoder.decode({**log, "topics": log["topics"][:2]})  # a topic missing
    assert short.event == UNDECODABLE_EVENT and short.args["expected"].startswith("Everything(")
    mixed = decoder.decode({**log, "address": ADDRESS.upper().replace("0X", "0x")})
    assert mixed.event == "Everything" and mixed.address == ADDRESS


@pytest.mark.parametrize("name", ["ParticipantRegistry", "SettlementVault"])
def test_rollback_subjects_fit_the_abis(name: str) -> None:
    decoder = decoder_for_names([name])
    assert check_subjects(decoder.by_contract) == []
    # an ABI whose events carry the subject elsewhere than first is refused
    swapped = {
        name: {
            ev: EventSpec.from_abi(name, {**item, "inputs": list(reversed(item["inputs"]))})
            for ev, item in ((ev, _abi_of(name, ev)) for ev in decoder.by_contract[name])
        }
    }
    assert check_subjects(swapped)


def decoder_for_names(names: list[str]) -> Decoder:
    return Decoder(1, {f"0x{i:040x}": (n, load_artifact(n).abi) for i, n in enumerate(names, 1)})


def _abi_of(contract: str, event: str) -> dict[str, Any]:
    return next(
        i for i in load_artifact(contract).abi if i["type"] == "event" and i["name"] == event
    )


def test_decoder_for_a_deployment_uses_its_artifacts() -> None:
    from service.chain.config import DeployedContract, Deployment

    zero = "0" * 64
    dep = Deployment(
        network="x",
        chain_id=5,
        deploy_block=1,
        contracts={
            n: DeployedContract(
                address=f"0x{i:040x}", block=1, tx_hash="0x" + zero, artifact_sha256=zero
            )
            for i, n in enumerate(["ParticipantRegistry", "EvidenceLedger", "SettlementVault"], 1)
        },
    )
    decoder = decoder_for(dep, 5)
    assert decoder.addresses == [f"0x{i:040x}" for i in (1, 2, 3)]
    assert decoder.spec("SettlementVault", "RoundProposed") is not None
