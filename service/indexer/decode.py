"""Decode raw ``eth_getLogs`` entries into :class:`Event` with the contracts' ABIs.

The decoder is built generically from the ABIs: ``(address, topic0) -> EventSpec``,
one spec per event of the contract deployed at that address. Indexed arguments come
from the topics, the others from ``data``; both are ABI words, decoded here without
web3's ``process_log`` (which builds an AttributeDict per log and checksums every
address: about 15x slower).

Static words (``uintN``, ``intN``, ``address``, ``bool``, ``bytesN``) are read straight
from the hex text the node sent, with the same strict checks eth-abi applies (value in
range, zero padding); anything else in ``data`` (``string``, ``bytes``, arrays, tuples)
goes through ``eth_abi.decode``. A word that fails a check makes the whole log fall
back to eth-abi, so a malformed log is decoded, or refused, exactly as eth-abi would;
the test suite checks both paths agree on every event type.

Values are JSON-ready: integers stay ``int`` (JSON numbers are exact in Python and in
PostgreSQL), addresses and byte strings are lower-case ``0x`` hex, tuples become
objects keyed by component name. An indexed dynamic value (``string``, ``bytes``,
arrays) is stored as its topic, the keccak hash the EVM logged instead of the value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak

UNKNOWN_EVENT = "(unknown)"  # a topic0 that is not an event of the contract's ABI
UNDECODABLE_EVENT = "(undecodable)"  # a known topic0 whose topics/data do not fit the ABI

WordDecoder = Callable[[str], Any]


@dataclass(slots=True)
class Event:
    """One decoded log, addressed by (chain id, tx hash, log index)."""

    chain_id: int
    block_number: int
    block_hash: str
    tx_hash: str
    tx_index: int
    log_index: int
    address: str
    contract: str
    event: str
    topic1: str | None
    args: dict[str, Any]

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Event:
        return cls(
            chain_id=row["chain_id"],
            block_number=row["block_number"],
            block_hash=row["block_hash"],
            tx_hash=row["tx_hash"],
            tx_index=row["tx_index"],
            log_index=row["log_index"],
            address=row["address"],
            contract=row["contract"],
            event=row["event"],
            topic1=row["topic1"],
            args=dict(row["args"]),
        )

    @property
    def position(self) -> tuple[int, int]:
        return (self.block_number, self.log_index)


# --- ABI types ----------------------------------------------------------------------------


def abi_type(param: Mapping[str, Any]) -> str:
    """The canonical type string of an ABI parameter (tuples spelled out)."""
    t: str = param["type"]
    if t.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){t[len('tuple') :]}"
    return t


def event_signature(item: Mapping[str, Any]) -> str:
    return f"{item['name']}({','.join(abi_type(i) for i in item['inputs'])})"


def event_topic(item: Mapping[str, Any]) -> str:
    return "0x" + keccak(text=event_signature(item)).hex()


_ZERO_WORD = "0" * 64


def _uint_word(bits: int) -> WordDecoder:
    bound = 1 << bits

    def dec(word: str) -> int:
        value = int(word, 16)
        if value >= bound:
            raise ValueError("uint out of range")
        return value

    return dec


def _int_word(bits: int) -> WordDecoder:
    lo, hi = -(1 << (bits - 1)), 1 << (bits - 1)

    def dec(word: str) -> int:
        value = int(word, 16)
        if value >= 1 << 255:
            value -= 1 << 256
        if not lo <= value < hi:
            raise ValueError("int out of range")
        return value

    return dec


def _address_word(word: str) -> str:
    if word[:24] != "000000000000000000000000":
        raise ValueError("address word not zero-padded")
    return "0x" + word[24:]


def _bool_word(word: str) -> bool:
    if word == _ZERO_WORD:
        return False
    if word == "0" * 63 + "1":
        return True
    raise ValueError("bool word not 0 or 1")


def _bytes_word(size: int) -> WordDecoder:
    cut = 2 * size
    pad = "0" * (64 - cut)

    def dec(word: str) -> str:
        if word[cut:] != pad:
            raise ValueError("bytesN word not zero-padded")
        return "0x" + word[:cut]

    return dec


def static_word_decoder(typ: str) -> WordDecoder | None:
    """A decoder of one 32-byte word (64 hex chars) for ``typ``; None unless one word."""
    if typ == "address":
        return _address_word
    if typ == "bool":
        return _bool_word
    if typ.startswith("uint") and typ[4:].isdigit():
        return _uint_word(int(typ[4:]))
    if typ == "uint":
        return _uint_word(256)
    if typ.startswith("int") and typ[3:].isdigit():
        return _int_word(int(typ[3:]))
    if typ == "int":
        return _int_word(256)
    if typ.startswith("bytes") and typ[5:].isdigit():
        return _bytes_word(int(typ[5:]))
    return None


def to_json(value: Any, param: Mapping[str, Any] | None = None) -> Any:
    """An eth-abi value as JSON: hex for bytes and addresses, objects for named tuples."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, str):
        if param is not None and param.get("type") == "address":
            return value.lower()
        return value
    if isinstance(value, list | tuple):
        if param is not None:
            typ: str = param["type"]
            if typ.startswith("tuple") and not typ.endswith("]"):
                comps = param["components"]
                if all(c.get("name") for c in comps):
                    return {c["name"]: to_json(v, c) for c, v in zip(comps, value, strict=True)}
                return [to_json(v, c) for c, v in zip(comps, value, strict=True)]
            inner = {**param, "type": typ[: typ.rindex("[")]}
            return [to_json(v, inner) for v in value]
        return [to_json(v) for v in value]
    return value


# --- event specs --------------------------------------------------------------------------


# Steps of the fast path, one per argument in ABI order.
TOPIC_WORD, TOPIC_HASH, DATA_WORD, DATA_STRING, DATA_BYTES = range(5)
Step = tuple[str, int, int, WordDecoder | None]  # (name, kind, topic or head index, decoder)


@dataclass(frozen=True)
class EventSpec:
    """How to decode one event of one contract."""

    contract: str
    name: str
    topic0: str
    signature: str
    indexed: tuple[Mapping[str, Any], ...]
    data: tuple[Mapping[str, Any], ...]
    data_types: tuple[str, ...]
    order: tuple[tuple[bool, int, str], ...]  # ABI input order: (indexed?, position, name)
    steps: tuple[Step, ...] | None  # None: some data type needs eth-abi

    @classmethod
    def from_abi(cls, contract: str, item: Mapping[str, Any]) -> EventSpec:
        inputs = list(item["inputs"])
        indexed = tuple(i for i in inputs if i.get("indexed"))
        data = tuple(i for i in inputs if not i.get("indexed"))
        order: list[tuple[bool, int, str]] = []
        steps: list[Step] | None = []
        n_idx = n_data = 0
        for pos, param in enumerate(inputs):
            name = param.get("name") or f"arg{pos}"
            typ = abi_type(param)
            word = static_word_decoder(typ)
            if param.get("indexed"):
                order.append((True, n_idx, name))
                n_idx += 1
                step: Step | None = (name, TOPIC_WORD if word else TOPIC_HASH, n_idx, word)
            else:
                order.append((False, n_data, name))
                kind = {"string": DATA_STRING, "bytes": DATA_BYTES}.get(typ, DATA_WORD)
                step = (name, kind, n_data, word) if word or kind != DATA_WORD else None
                n_data += 1
            if steps is not None and step is not None:
                steps.append(step)
            else:
                steps = None
        return cls(
            contract=contract,
            name=item["name"],
            topic0=event_topic(item),
            signature=event_signature(item),
            indexed=indexed,
            data=data,
            data_types=tuple(abi_type(i) for i in data),
            order=tuple(order),
            steps=None if steps is None else tuple(steps),
        )

    def decode_args(self, topics: Sequence[str], data: str) -> dict[str, Any]:
        """Decode (fast path, falling back to eth-abi); raises ValueError if malformed."""
        if len(topics) != len(self.indexed) + 1:
            raise ValueError(
                f"{self.name}: {len(topics) - 1} indexed topics, the ABI has {len(self.indexed)}"
            )
        if self.steps is not None:
            try:
                return self._decode_fast(self.steps, topics, data[2:])
            except ValueError:  # not canonical (or malformed): eth-abi decides
                pass
        return self.decode_args_abi(topics, data)

    def _decode_fast(
        self, steps: tuple[Step, ...], topics: Sequence[str], body: str
    ) -> dict[str, Any]:
        """Canonical encodings only: static words, then each string/bytes tail exactly
        where Solidity puts it, zero padding, no trailing bytes. eth-abi decodes any such
        encoding to the same values; everything else raises ValueError."""
        out: dict[str, Any] = {}
        tail = 32 * len(self.data)  # where the next dynamic value must start (bytes)
        for name, kind, k, dec in steps:
            if kind == DATA_WORD:
                out[name] = dec(body[64 * k : 64 * k + 64])  # type: ignore[misc]
            elif kind == TOPIC_WORD:
                out[name] = dec(topics[k][2:])  # type: ignore[misc]
            elif kind == TOPIC_HASH:
                out[name] = topics[k]
            else:
                if int(body[64 * k : 64 * k + 64], 16) != tail:
                    raise ValueError("non-canonical offset")
                start = 2 * tail
                length = int(body[start : start + 64], 16)
                padded = -(-length // 32) * 64
                value_hex = body[start + 64 : start + 64 + 2 * length]
                pad = body[start + 64 + 2 * length : start + 64 + padded]
                if (
                    len(value_hex) != 2 * length
                    or pad.strip("0")
                    or len(pad) != padded - 2 * length
                ):
                    raise ValueError("bad dynamic value")
                out[name] = (
                    bytes.fromhex(value_hex).decode("utf-8")
                    if kind == DATA_STRING
                    else "0x" + value_hex
                )
                tail += 32 + padded // 2
        if len(body) != 2 * tail:
            raise ValueError("data length does not match the ABI")
        return out

    def _decode_data_abi(self, body: str) -> list[Any]:
        try:
            raw = abi_decode(list(self.data_types), bytes.fromhex(body))
        except Exception as err:  # eth-abi raises more than DecodingError (OverflowError, ...)
            raise ValueError(f"{self.name}: data does not decode: {err!r}") from None
        return [to_json(v, p) for v, p in zip(raw, self.data, strict=True)]

    def decode_args_abi(self, topics: Sequence[str], data: str) -> dict[str, Any]:
        """Decode with eth-abi only (the reference the fast path must equal)."""
        if len(topics) != len(self.indexed) + 1:
            raise ValueError(f"{self.name}: wrong number of topics")
        idx: list[Any] = []
        for param, topic in zip(self.indexed, topics[1:], strict=True):
            typ = abi_type(param)
            if static_word_decoder(typ) is None:
                idx.append(topic)
                continue
            try:
                (value,) = abi_decode([typ], bytes.fromhex(topic[2:]))
            except Exception as err:
                raise ValueError(f"{self.name}: topic does not decode: {err}") from None
            idx.append(to_json(value, param))
        vals = self._decode_data_abi(data[2:])
        return {name: idx[k] if is_idx else vals[k] for is_idx, k, name in self.order}


# --- the decoder of a deployment ----------------------------------------------------------


class Decoder:
    """``(address, topic0) -> EventSpec`` for every contract of a deployment."""

    def __init__(self, chain_id: int, contracts: Mapping[str, tuple[str, Sequence[Any]]]) -> None:
        """``contracts``: address -> (contract name, ABI)."""
        self.chain_id = chain_id
        self.names: dict[str, str] = {}
        self.specs: dict[tuple[str, str], EventSpec] = {}
        self.by_contract: dict[str, dict[str, EventSpec]] = {}
        for address, (name, abi) in contracts.items():
            addr = address.lower()
            self.names[addr] = name
            for item in abi:
                if item.get("type") != "event" or item.get("anonymous"):
                    continue
                spec = EventSpec.from_abi(name, item)
                self.specs[(addr, spec.topic0)] = spec
                self.by_contract.setdefault(name, {})[spec.name] = spec

    @property
    def addresses(self) -> list[str]:
        return sorted(self.names)

    def spec(self, contract: str, event: str) -> EventSpec | None:
        return self.by_contract.get(contract, {}).get(event)

    def decode(self, log: Mapping[str, Any]) -> Event:
        """A raw JSON-RPC log (hex strings) as an :class:`Event`."""
        address = log["address"].lower()
        topics = [t.lower() for t in log["topics"]]
        data = log["data"].lower()
        spec = self.specs.get((address, topics[0])) if topics else None
        if spec is None:
            name, args = UNKNOWN_EVENT, {"topics": topics, "data": data}
        else:
            try:
                name, args = spec.name, spec.decode_args(topics, data)
            except ValueError as err:
                name = UNDECODABLE_EVENT
                args = {
                    "topics": topics,
                    "data": data,
                    "expected": spec.signature,
                    "error": str(err),
                }
        return Event(
            self.chain_id,
            int(log["blockNumber"], 16),
            log["blockHash"].lower(),
            log["transactionHash"].lower(),
            int(log["transactionIndex"], 16),
            int(log["logIndex"], 16),
            address,
            self.names.get(address, ""),
            name,
            topics[1] if len(topics) > 1 else None,
            args,
        )
