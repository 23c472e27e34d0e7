"""EIP-712 hashing, signing and signature recovery for Tally's evidence entries.

A small, hand-rolled implementation of the parts of EIP-712 that Tally's entry types use
(flat structs of ``bytes32``, ``address``, ``uint8/16/64/256``, ``string``,
``address[]`` and ``uint256[]``), because eth_account's generic path is several times
slower than what ingest needs. ``tests/evidence/test_eip712.py`` checks every hash
against eth_account.

Definitions (EIP-712, https://eips.ethereum.org/EIPS/eip-712):

- type string: ``Name(type1 name1,type2 name2,...)``; type hash = keccak256(type string).
- encodeData: each field as one 32-byte word, in declaration order: ``bytes32`` as is,
  ``address`` left-padded with 12 zero bytes, ``uintN`` big-endian, a dynamic array
  (``address[]``, ``uint256[]``) as keccak256 of its items' words concatenated.
- hashStruct(s) = keccak256(typeHash || encodeData(s)).
- domain: ``EIP712Domain(string name,string version,uint256 chainId,address
  verifyingContract)`` with name "Tally", version "1", the chain id and the
  EvidenceLedger address of the deployment; the domain separator is its hashStruct
  (strings are encoded as keccak256 of their UTF-8 bytes).
- digest = keccak256(0x19 || 0x01 || domainSeparator || hashStruct(message)).

Signatures are 65 bytes ``r || s || v``:

- ``v`` is 27 or 28 (what eth_account, MetaMask and ethers produce). 0 and 1 (the raw
  recovery id some signers and hardware wallets return) are accepted on input and
  normalised to 27/28 by :func:`normalize_signature`, so the same signature always has
  the same bytes (and an entry the same id). Other values (EIP-155 style 35+) are refused.
- ``r`` must be in [1, n-1] and ``s`` in [1, n/2] (EIP-2 low-s; libsecp256k1 signs low-s).
  A high-s signature is the malleated twin of a valid one and is rejected, never
  "fixed", so that a signature has one accepted encoding.

Everything that refuses a signature raises :class:`service.errors.InvalidSignature`.

Keccak-256 comes from ``safe-pysha3`` (installed with ``eth-tester[py-evm]`` through
``eth-hash[pysha3]``), which hashes short inputs about 3-6x faster than pycryptodome;
pycryptodome (always installed, via eth-keyfile) is the fallback. :data:`KECCAK_BACKEND`
says which one is in use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from coincurve import PrivateKey, PublicKey

from service.errors import InvalidSignature

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_TYPE",
    "DOMAIN_VERSION",
    "KECCAK_BACKEND",
    "SECP256K1_N",
    "SUPPORTED_FIELD_TYPES",
    "Domain",
    "StructType",
    "address_bytes",
    "eip712_digest",
    "keccak256",
    "normalize_signature",
    "parse_address",
    "parse_signature",
    "private_key_to_address",
    "public_key_to_address",
    "recover_address_bytes",
    "recover_jobs",
    "recover_jobs_started",
    "recover_signer",
    "sign_digest",
    "to_checksum_address",
]

# --- keccak ----------------------------------------------------------------------------


def _pick_keccak() -> tuple[Callable[[bytes], bytes], str]:
    try:
        import sha3  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:  # pragma: no cover - depends on the environment
        from Crypto.Hash import keccak as _cryptodome_keccak

        def _keccak_cryptodome(data: bytes) -> bytes:
            return bytes(_cryptodome_keccak.new(data=data, digest_bits=256).digest())

        return _keccak_cryptodome, "pycryptodome"
    _new = sha3.keccak_256

    def _keccak_pysha3(data: bytes) -> bytes:
        digest: bytes = _new(data).digest()
        return digest

    return _keccak_pysha3, "pysha3"


_keccak, KECCAK_BACKEND = _pick_keccak()


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (the Ethereum hash, not NIST SHA3-256) of ``data``."""
    return _keccak(data)


# --- addresses -------------------------------------------------------------------------

_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")
_ZERO_WORD_PAD: Final = bytes(12)


def to_checksum_address(address: bytes | str) -> str:
    """EIP-55 checksummed form of a 20-byte address (raw bytes or any-case hex)."""
    if isinstance(address, bytes | bytearray):
        if len(address) != 20:
            raise ValueError(f"an address is 20 bytes, got {len(address)}")
        lower = bytes(address).hex()
    else:
        if len(address) != 42 or address[:2] not in ("0x", "0X"):
            raise ValueError("an address is 0x followed by 40 hex digits")
        lower = address[2:].lower()
        if not _HEX_DIGITS.issuperset(lower):
            raise ValueError("an address is 0x followed by 40 hex digits")
    return _checksummed(lower)


@lru_cache(maxsize=65_536)
def _checksummed(lower: str) -> str:
    """EIP-55 of 40 lowercase hex digits (a pure function of them, so kept: a batch names
    the same few parties in every entry, and parsing a 100-receipt batch spent 8% of its
    time hashing the same addresses again)."""
    digest = keccak256(lower.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c > "9" and digest[i] > "7" else c for i, c in enumerate(lower)
    )


def parse_address(value: object) -> str:
    """Parse an address given as ``0x`` + 40 hex digits; return it checksummed.

    All-lowercase and all-uppercase digits are accepted; mixed case must be a correct
    EIP-55 checksum (a wrong one is usually a typo). Raises ``ValueError``.
    """
    if not isinstance(value, str):
        raise ValueError(f"an address must be a 0x-prefixed hex string, got {type(value).__name__}")
    if len(value) != 42 or not value.startswith("0x") or not _HEX_DIGITS.issuperset(value[2:]):
        raise ValueError(f"an address is 0x followed by 40 hex digits, got {value!r}")
    checksummed = to_checksum_address(value)
    digits = value[2:]
    if digits != digits.lower() and digits != digits.upper() and value != checksummed:
        raise ValueError(f"address {value!r} has a wrong EIP-55 checksum")
    return checksummed


def address_bytes(address: str) -> bytes:
    """The 20 raw bytes of a ``0x`` hex address."""
    raw = bytes.fromhex(address[2:])
    if len(raw) != 20:
        raise ValueError(f"an address is 20 bytes, got {len(raw)}")
    return raw


def public_key_to_address(public_key: bytes) -> str:
    """Checksummed address of a secp256k1 public key (65-byte uncompressed, or 64 bytes)."""
    if len(public_key) == 65 and public_key[0] == 4:
        public_key = public_key[1:]
    if len(public_key) != 64:
        raise ValueError("expected an uncompressed public key (65 bytes, 0x04 prefix) or 64 bytes")
    return to_checksum_address(keccak256(public_key)[12:])


def private_key_to_address(private_key: bytes) -> str:
    """Checksummed address of a 32-byte secp256k1 private key."""
    public = PrivateKey(private_key).public_key.format(compressed=False)
    return public_key_to_address(public)


# --- struct types ----------------------------------------------------------------------

_Encoder = Callable[[Any], bytes]


def _uint_encoder(bits: int) -> _Encoder:
    limit = 1 << bits

    def encode(value: Any) -> bytes:
        if type(value) is not int or not 0 <= value < limit:
            raise ValueError(f"uint{bits} value out of range: {value!r}")
        return int(value).to_bytes(32, "big")

    return encode


def _encode_bytes32(value: Any) -> bytes:
    if type(value) is not bytes or len(value) != 32:
        raise ValueError(f"bytes32 value must be 32 bytes, got {value!r}")
    return value


def _encode_address(value: Any) -> bytes:
    return _ZERO_WORD_PAD + address_bytes(value)


def _encode_address_array(value: Any) -> bytes:
    return keccak256(b"".join([_ZERO_WORD_PAD + address_bytes(a) for a in value]))


_encode_uint256 = _uint_encoder(256)


def _encode_uint256_array(value: Any) -> bytes:
    return keccak256(b"".join([_encode_uint256(v) for v in value]))


def _encode_int256(value: Any) -> bytes:
    """Two's complement in one big-endian word (EIP-712 and the ABI agree on ``int256``)."""
    if type(value) is not int or not -(1 << 255) <= value < 1 << 255:
        raise ValueError(f"int256 value out of range: {value!r}")
    return int(value).to_bytes(32, "big", signed=True)


def _encode_int256_array(value: Any) -> bytes:
    return keccak256(b"".join([_encode_int256(v) for v in value]))


def _encode_string(value: Any) -> bytes:
    return keccak256(str(value).encode("utf-8"))


_ENCODERS: Final[dict[str, _Encoder]] = {
    "bytes32": _encode_bytes32,
    "address": _encode_address,
    "uint8": _uint_encoder(8),
    "uint16": _uint_encoder(16),
    "uint64": _uint_encoder(64),
    "uint256": _encode_uint256,
    "address[]": _encode_address_array,
    "uint256[]": _encode_uint256_array,
    "int256": _encode_int256,
    "int256[]": _encode_int256_array,
    "string": _encode_string,
}

SUPPORTED_FIELD_TYPES: Final = frozenset(_ENCODERS)


@dataclass(frozen=True)
class StructType:
    """One flat EIP-712 struct type: its name and ``(field name, Solidity type)`` pairs."""

    name: str
    fields: tuple[tuple[str, str], ...]
    type_string: str = field(init=False, repr=False, compare=False)
    type_hash: bytes = field(init=False, repr=False, compare=False)
    _encoders: tuple[_Encoder, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for fname, ftype in self.fields:
            if ftype not in _ENCODERS:
                raise ValueError(f"{self.name}.{fname}: unsupported EIP-712 type {ftype!r}")
        type_string = f"{self.name}({','.join(f'{t} {n}' for n, t in self.fields)})"
        object.__setattr__(self, "type_string", type_string)
        object.__setattr__(self, "type_hash", keccak256(type_string.encode("ascii")))
        object.__setattr__(self, "_encoders", tuple(_ENCODERS[t] for _, t in self.fields))

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.fields)

    @property
    def field_types(self) -> tuple[str, ...]:
        return tuple(t for _, t in self.fields)

    def encode_data(self, values: Sequence[Any]) -> bytes:
        """EIP-712 ``encodeData``: one 32-byte word per field (type hash not included).

        ``values`` are in field order: bytes32 as 32 ``bytes``, addresses as ``0x`` hex
        strings, uints as ``int``, arrays as sequences of those. Raises ``ValueError``
        on a value the type cannot hold.
        """
        if len(values) != len(self._encoders):
            raise ValueError(f"{self.name} has {len(self._encoders)} fields, got {len(values)}")
        return b"".join([enc(v) for enc, v in zip(self._encoders, values, strict=True)])

    def hash_struct(self, values: Sequence[Any]) -> bytes:
        """EIP-712 ``hashStruct``: keccak256(typeHash || encodeData(values))."""
        return keccak256(self.type_hash + self.encode_data(values))

    def abi_encode(self, values: Sequence[Any]) -> bytes:
        """Solidity ``abi.encode(field_1, ..., field_k)`` of the fields, in field order.

        Static fields are one word each (the same words as in ``encodeData``); a dynamic
        array's head word is the offset of its tail, and the tail is its length word
        followed by its items' words; a ``string``'s tail is its UTF-8 byte length word
        followed by the bytes, zero-padded to a multiple of 32 (standard ABI head/tail
        layout).
        """
        if len(values) != len(self._encoders):
            raise ValueError(f"{self.name} has {len(self._encoders)} fields, got {len(values)}")
        head: list[bytes] = []
        tail: list[bytes] = []
        tail_size = 0
        head_size = 32 * len(values)
        for (_, ftype), value in zip(self.fields, values, strict=True):
            if ftype.endswith("[]"):
                item = _ENCODERS[ftype[:-2]]
                chunk = len(value).to_bytes(32, "big") + b"".join([item(v) for v in value])
                head.append((head_size + tail_size).to_bytes(32, "big"))
                tail.append(chunk)
                tail_size += len(chunk)
            elif ftype == "string":
                raw = value.encode("utf-8")
                padded = raw + bytes(-len(raw) % 32)
                chunk = len(raw).to_bytes(32, "big") + padded
                head.append((head_size + tail_size).to_bytes(32, "big"))
                tail.append(chunk)
                tail_size += len(chunk)
            else:
                head.append(_ENCODERS[ftype](value))
        return b"".join(head) + b"".join(tail)

    def eip712_types(self) -> list[dict[str, str]]:
        """The ``types[Name]`` list of an EIP-712 JSON document (eth_signTypedData_v4)."""
        return [{"name": n, "type": t} for n, t in self.fields]


DOMAIN_NAME: Final = "Tally"
DOMAIN_VERSION: Final = "1"
DOMAIN_TYPE: Final = StructType(
    "EIP712Domain",
    (
        ("name", "string"),
        ("version", "string"),
        ("chainId", "uint256"),
        ("verifyingContract", "address"),
    ),
)


@dataclass(frozen=True)
class Domain:
    """The EIP-712 domain of one Tally deployment: chain id + EvidenceLedger address.

    Name and version are fixed ("Tally", "1"). ``verifying_contract`` is checksummed on
    construction; ``separator`` is the domain separator (computed once).
    """

    chain_id: int
    verifying_contract: str
    separator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.chain_id) is not int or not 0 < self.chain_id < 1 << 256:
            raise ValueError(f"chain id must be a positive uint256, got {self.chain_id!r}")
        contract = parse_address(self.verifying_contract)
        object.__setattr__(self, "verifying_contract", contract)
        separator = DOMAIN_TYPE.hash_struct((DOMAIN_NAME, DOMAIN_VERSION, self.chain_id, contract))
        object.__setattr__(self, "separator", separator)

    def to_json(self) -> dict[str, Any]:
        """The ``domain`` object of an EIP-712 JSON document."""
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }

    def digest(self, struct_hash: bytes) -> bytes:
        """The EIP-712 digest of a message with this struct hash, in this domain."""
        return eip712_digest(self.separator, struct_hash)


def eip712_digest(domain_separator: bytes, struct_hash: bytes) -> bytes:
    """keccak256(0x1901 || domainSeparator || structHash): what the parties sign."""
    if len(domain_separator) != 32 or len(struct_hash) != 32:
        raise ValueError("domain separator and struct hash are 32 bytes each")
    return keccak256(b"\x19\x01" + domain_separator + struct_hash)


# --- signatures ------------------------------------------------------------------------

SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N: Final = SECP256K1_N // 2


def parse_signature(value: object) -> bytes:
    """Parse a signature given as ``0x`` + 130 hex digits (or 65 raw bytes) and normalise it.

    Raises :class:`InvalidSignature` (see :func:`normalize_signature`).
    """
    if isinstance(value, str):
        if not value.startswith("0x") or not _HEX_DIGITS.issuperset(value[2:]):
            raise InvalidSignature("a signature is 0x followed by 130 hex digits")
        if len(value) != 132:
            raise InvalidSignature(
                f"a signature is 65 bytes (130 hex digits), got {len(value) - 2} hex digits"
            )
        return normalize_signature(bytes.fromhex(value[2:]))
    if isinstance(value, bytes | bytearray):
        return normalize_signature(bytes(value))
    raise InvalidSignature(f"a signature must be a 0x hex string, got {type(value).__name__}")


def normalize_signature(signature: bytes) -> bytes:
    """Check a 65-byte ``r || s || v`` signature and return it with ``v`` in {27, 28}.

    Accepts v in {0, 1, 27, 28}. Rejects (:class:`InvalidSignature`) a wrong length,
    any other v, r or s out of range, and high s (EIP-2).
    """
    if len(signature) != 65:
        raise InvalidSignature(f"a signature is 65 bytes (r, s, v), got {len(signature)}")
    v = signature[64]
    if v in (0, 1):
        v += 27
    elif v not in (27, 28):
        raise InvalidSignature(f"signature v must be 27 or 28 (or 0/1), got {v}")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not 0 < r < SECP256K1_N:
        raise InvalidSignature("signature r is out of range")
    if not 0 < s < SECP256K1_N:
        raise InvalidSignature("signature s is out of range")
    if s > _HALF_N:
        raise InvalidSignature("signature s is in the upper half of the curve order (EIP-2)")
    if v == signature[64]:
        return bytes(signature)
    return signature[:64] + bytes((v,))


def sign_digest(digest: bytes, private_key: bytes) -> bytes:
    """Sign a 32-byte digest: 65 bytes ``r || s || v``, low s, v in {27, 28}."""
    if len(digest) != 32:
        raise ValueError("a digest is 32 bytes")
    signature: bytes = PrivateKey(private_key).sign_recoverable(digest, hasher=None)
    return signature[:64] + bytes((signature[64] + 27,))


def _recover_raw(digest: bytes, signature: bytes) -> bytes:
    """Recover the 20-byte signer of an already-normalised signature (v 27/28)."""
    compact = signature[:64] + bytes((signature[64] - 27,))
    try:
        public = PublicKey.from_signature_and_message(compact, digest, hasher=None)
    except ValueError as exc:
        raise InvalidSignature("the signature does not recover to any public key") from exc
    uncompressed: bytes = public.format(compressed=False)
    return keccak256(uncompressed[1:])[12:]


def recover_address_bytes(digest: bytes, signature: bytes) -> bytes:
    """The 20 raw bytes of the address that signed ``digest`` (no checksum work).

    Raises :class:`InvalidSignature` on a malformed, high-s or unrecoverable signature.
    """
    if len(digest) != 32:
        raise ValueError("a digest is 32 bytes")
    return _recover_raw(digest, normalize_signature(signature))


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The checksummed address that signed ``digest``; see :func:`recover_address_bytes`."""
    return to_checksum_address(recover_address_bytes(digest, signature))


def recover_jobs(jobs: Iterable[tuple[bytes, bytes]]) -> list[bytes | str]:
    """Recover many ``(digest, signature)`` pairs: 20-byte addresses, or an error message.

    Module-level and light to import, so that worker processes can run it.
    """
    out: list[bytes | str] = []
    for digest, signature in jobs:
        try:
            out.append(recover_address_bytes(digest, signature))
        except InvalidSignature as exc:
            out.append(exc.message)
    return out


_started: Any = None  # a worker's multiprocessing semaphore, set by start_worker


def start_worker(started: Any) -> None:
    """Worker-process initializer: keep the pool's "a chunk has started" semaphore."""
    global _started
    _started = started


def recover_jobs_started(jobs: list[tuple[bytes, bytes]]) -> list[bytes | str]:
    """:func:`recover_jobs` in a pool worker, first telling the submitter it has begun
    (see ``service.evidence.entries._recover_started``)."""
    if _started is not None:
        _started.release()
    return recover_jobs(jobs)
