"""Signed evidence entries: the five EIP-712 types, who signs them, canonical bytes, ids.

Entry types (field names and Solidity types are the EIP-712 definition; the Python
attributes and the JSON keys use the same camelCase names, so one vocabulary runs from
the wallet's signing prompt through the API to the receipt an auditor reads):

- ``Agreement``: signed by the consumer and every provider.
- ``UsageReceipt``: signed by the consumer AND countersigned by the provider.
- ``QualityAttestation``: signed by one attester: the agreement's consumer, or an auditor
  (the message does not name the attester; the caller states who it expects).
- ``ContributionDeclaration``: signed by the declaring provider, and also by the operator
  where the settlement policy says so (the caller states it).
- ``CoalitionValues``: signed by the evaluator the policy names (the caller states it).
- ``Offer`` / ``OfferWithdrawal``: a catalog data product (T11) and its withdrawal,
  signed by every provider of the offer.
- ``RevenueDeclaration``: what the consumer earned with an agreement's data in a period
  (the base of a revenue-share price, T11), signed by the consumer.
- ``ValuationResult``: per-provider values of a data valuation (T13), signed by the
  evaluator the policy names (the caller states it).

See :func:`required_signers`.

Parsing (the API boundary) is strict and gives field-level errors: addresses are
``0x`` + 40 hex digits (a mixed-case address must carry a correct EIP-55 checksum;
the zero address is refused) and come out checksummed; ``bytes32`` values are ``0x`` +
64 hex digits; unsigned integers are JSON integers or decimal strings, range-checked
for their Solidity width (floats and booleans are refused). In JSON output ``uint256``
values are decimal strings (JavaScript numbers lose precision above 2**53) and the
narrower uints are numbers. Periods are half-open ``[start, end)`` in unix seconds and
must have ``start < end``. Provider lists are strictly ascending by address (one
canonical order; for ``CoalitionValues`` bit ``i`` of a coalition mask is the ``i``-th
smallest provider).

Canonical entry bytes (``TALLY-ENTRY-V1``): what the log stores and the Merkle leaf
hashes. Everything an auditor needs is in them: the full message, the domain (chain id
and EvidenceLedger address) and every signature.

======  =====  =============================================================
offset  bytes  field
======  =====  =============================================================
0       14     magic ``b"TALLY-ENTRY-V1"``
14      1      entry type tag (:class:`EntryType`: 1 Agreement, 2 UsageReceipt,
               3 QualityAttestation, 4 ContributionDeclaration, 5 CoalitionValues,
               6 AgreementV2, 7 Offer, 8 OfferWithdrawal,
               9 RevenueDeclaration, 10 ValuationResult)
15      32     chainId, uint256 big-endian
47      20     verifyingContract (the EvidenceLedger address)
67      32     EIP-712 domain separator (name "Tally", version "1", the two above)
99      32     EIP-712 struct hash of the message
131     4      L = byte length of the message, uint32 big-endian
135     L      message = ``abi.encode(field_1, ..., field_k)`` in type-string order
               (standard Solidity ABI; any ABI decoder reads it with the type list)
135+L   2      k = number of signatures, uint16 big-endian
137+L   85*k   signature records, sorted by signer address ascending, no duplicate
               signer: signer address (20) || r (32) || s (32) || v (1; 27 or 28)
======  =====  =============================================================

The domain separator and struct hash are redundant (they follow from the fields) and
:func:`decode_entry` refuses bytes where they disagree; they let a minimal checker form
the signed digest ``keccak256(0x1901 || domainSeparator || structHash)`` without an
EIP-712 implementation. The encoding is unique: one :class:`SignedEntry` has exactly
one byte string, and ``decode_entry`` accepts nothing else (``encode_entry(decode_entry(b))
== b``). Because records are sorted by signer and signatures are normalised (v 27/28,
low s only), neither the order in which signatures were submitted nor the v convention
the wallet used changes the bytes.

Entry id = SHA-256(canonical bytes), 32 bytes: the same hash as the log, computable with
``sha256sum``. The Merkle leaf hash is SHA-256(0x00 || canonical bytes), so an id is never
a leaf hash. Resubmitting the same message with the same signatures gives the same id.
Note: ECDSA signing is randomisable, so the same message re-signed with fresh nonces has
a different id; dedupe *messages* by :meth:`SignedEntry.digest` (and nonces) at ingest.
"""

# ruff: noqa: N815  (field names are the EIP-712 names, camelCase on purpose)

from __future__ import annotations

import atexit
import hashlib
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Final, TypeAlias

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from service.catalog.canonical import parse_canonical
from service.errors import InvalidEntry, InvalidSignature, SignerMismatch
from service.evidence.eip712 import (
    Domain,
    StructType,
    address_bytes,
    parse_address,
    parse_signature,
    private_key_to_address,
    recover_jobs,
    recover_jobs_started,
    sign_digest,
    start_worker,
    to_checksum_address,
)

__all__ = [
    "ENTRY_CLASSES",
    "MAGIC",
    "MAX_AGREEMENT_PROVIDERS",
    "MAX_COALITION_PROVIDERS",
    "MAX_SCORE_BPS",
    "PARALLEL_MIN_BATCH",
    "ZERO_ADDRESS",
    "ZERO_BYTES32",
    "Address",
    "AddressArray",
    "Agreement",
    "AgreementV2",
    "Bytes32",
    "CoalitionValues",
    "ContractAddress",
    "ContributionDeclaration",
    "ContributionKind",
    "Entry",
    "EntryBase",
    "EntryType",
    "Offer",
    "OfferWithdrawal",
    "QualityAttestation",
    "RevenueDeclaration",
    "SignedEntry",
    "Uint8",
    "Uint16",
    "Uint64",
    "Uint256",
    "Uint256Array",
    "UsageReceipt",
    "ValuationResult",
    "VerifyResult",
    "begin_verify",
    "decode_entry",
    "encode_entry",
    "entry_id",
    "parse_entry",
    "required_signers",
    "shutdown_verify_pools",
    "sign_entry",
    "struct_hash_of",
    "verify_many",
]

MAGIC: Final = b"TALLY-ENTRY-V1"
MAX_AGREEMENT_PROVIDERS: Final = 256
MAX_COALITION_PROVIDERS: Final = 16  # 2**16 coalition values, 2 MiB of message
MAX_SCORE_BPS: Final = 10_000
PARALLEL_MIN_BATCH: Final = 256
"""Batches smaller than this are verified in-process by :func:`verify_many`."""


class EntryType(IntEnum):
    """The entry type tag of the canonical bytes."""

    AGREEMENT = 1
    USAGE_RECEIPT = 2
    QUALITY_ATTESTATION = 3
    CONTRIBUTION_DECLARATION = 4
    COALITION_VALUES = 5
    AGREEMENT_V2 = 6
    OFFER = 7
    OFFER_WITHDRAWAL = 8
    REVENUE_DECLARATION = 9
    VALUATION_RESULT = 10


class ContributionKind(IntEnum):
    """``ContributionDeclaration.kind``; 0 is deliberately not a kind (unset fields)."""

    INPUT_COST = 1  # value = cost of producing the input, in the token's smallest unit
    RISK_TIER = 2  # value = the risk tier the provider bears (policy-defined scale)


# --- field types -----------------------------------------------------------------------


@dataclass(frozen=True)
class SolType:
    """Annotation marker: the Solidity / EIP-712 type of a model field."""

    name: str


def _validate_address(value: object) -> str:
    address = parse_address(value)
    if address == "0x0000000000000000000000000000000000000000":
        raise ValueError("the zero address cannot be a party")
    return address


def _validate_bytes32(value: object) -> bytes:
    if isinstance(value, bytes):
        if len(value) != 32:
            raise ValueError(f"bytes32 must be 32 bytes, got {len(value)}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"bytes32 must be a 0x-prefixed hex string, got {type(value).__name__}")
    if not value.startswith("0x"):
        raise ValueError("bytes32 must be 0x followed by 64 hex digits")
    digits = value[2:]
    if len(digits) != 64:
        raise ValueError(f"bytes32 must be 0x followed by 64 hex digits, got {len(digits)} digits")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise ValueError("bytes32 must be 0x followed by 64 hex digits") from None


def _uint_validator(bits: int) -> Callable[[object], int]:
    limit = 1 << bits

    def validate(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(
                f"uint{bits} must be an integer or a decimal string, got {type(value).__name__}"
            )
        if isinstance(value, str):
            if not value.isascii() or not value.isdigit():
                raise ValueError(f"uint{bits} string must be decimal digits, got {value!r}")
            value = int(value)
        if not 0 <= value < limit:
            raise ValueError(f"uint{bits} must be in [0, 2**{bits} - 1], got {value}")
        return int(value)

    return validate


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _uint_schema(bits: int) -> WithJsonSchema:
    """Input: a JSON integer or a decimal string (both accepted by the validator).

    The integer branch states ``maximum`` only where a JSON number (a double) holds the
    limit exactly: OpenAPI tools read 2**64 - 1 as 2**64.
    """
    limit = (1 << bits) - 1
    integer: dict[str, Any] = {"type": "integer", "minimum": 0}
    if limit < 1 << 53:
        integer["maximum"] = limit
    return WithJsonSchema(
        {
            "anyOf": [integer, {"type": "string", "pattern": f"^[0-9]{{1,{len(str(limit))}}}$"}],
            "description": f"uint{bits} (at most 2**{bits} - 1)",
        },
        mode="validation",
    )


Address = Annotated[
    str,
    SolType("address"),
    PlainValidator(_validate_address),
    WithJsonSchema({"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}),
]
ContractAddress = Annotated[
    str,
    SolType("address"),
    PlainValidator(parse_address),
    WithJsonSchema({"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}),
]
"""An address that is not a party (a contract; zero allowed where the field says so)."""
Bytes32 = Annotated[
    bytes,
    SolType("bytes32"),
    PlainValidator(_validate_bytes32),
    PlainSerializer(_hex, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": "^0x[0-9a-fA-F]{64}$"}),
]
Uint8 = Annotated[int, SolType("uint8"), PlainValidator(_uint_validator(8)), _uint_schema(8)]
Uint16 = Annotated[int, SolType("uint16"), PlainValidator(_uint_validator(16)), _uint_schema(16)]
Uint64 = Annotated[int, SolType("uint64"), PlainValidator(_uint_validator(64)), _uint_schema(64)]
_Uint256Item = Annotated[
    int,
    PlainValidator(_uint_validator(256)),
    PlainSerializer(str, return_type=str, when_used="json"),
    _uint_schema(256),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]{1,78}$"}, mode="serialization"),
]
Uint256 = Annotated[_Uint256Item, SolType("uint256")]
AddressArray = Annotated[tuple[Address, ...], SolType("address[]")]
Uint256Array = Annotated[tuple[_Uint256Item, ...], SolType("uint256[]")]


def _validate_int256(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(
            f"int256 must be an integer or a decimal string, got {type(value).__name__}"
        )
    if isinstance(value, str):
        digits = value[1:] if value.startswith("-") else value
        if not digits.isascii() or not digits.isdigit():
            raise ValueError(
                f"int256 string must be decimal digits with an optional -, got {value!r}"
            )
        value = int(value)
    if not -(1 << 255) <= value < 1 << 255:
        raise ValueError(f"int256 must be in [-2**255, 2**255 - 1], got {value}")
    return int(value)


_Int256Item = Annotated[
    int,
    PlainValidator(_validate_int256),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^-?[0-9]{1,77}$"}],
            "description": "int256 (a JSON integer or a decimal string, may be negative)",
        },
        mode="validation",
    ),
    WithJsonSchema({"type": "string", "pattern": "^-?[0-9]{1,77}$"}, mode="serialization"),
]
Int256Array = Annotated[tuple[_Int256Item, ...], SolType("int256[]")]


def _string_validator(max_bytes: int) -> Callable[[object], str]:
    def validate(value: object) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {type(value).__name__}")
        size = len(value.encode("utf-8", errors="surrogatepass"))
        if size > max_bytes:
            raise ValueError(f"must be at most {max_bytes} UTF-8 bytes, got {size}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode (no lone surrogates)") from None
        return value

    return validate


MAX_OFFER_TEXT: Final = 4096
MAX_OFFER_DOCUMENT: Final = 16384
"""Byte caps of an Offer's description and of its pricing / terms JSON documents."""

ShortText = Annotated[
    str,
    SolType("string"),
    PlainValidator(_string_validator(256)),
    WithJsonSchema({"type": "string", "description": "at most 256 UTF-8 bytes"}),
]
LongText = Annotated[
    str,
    SolType("string"),
    PlainValidator(_string_validator(MAX_OFFER_TEXT)),
    WithJsonSchema({"type": "string", "description": f"at most {MAX_OFFER_TEXT} UTF-8 bytes"}),
]
DocumentText = Annotated[
    str,
    SolType("string"),
    PlainValidator(_string_validator(MAX_OFFER_DOCUMENT)),
    WithJsonSchema(
        {
            "type": "string",
            "description": f"RFC 8785 canonical JSON object, at most {MAX_OFFER_DOCUMENT} bytes",
        }
    ),
]


# --- models ----------------------------------------------------------------------------


class EntryBase(BaseModel):
    """Common behaviour of the entry models: EIP-712 hashing and JSON forms."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entry_type: ClassVar[EntryType]
    eip712_type: ClassVar[StructType]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        fields: list[tuple[str, str]] = []
        for name, info in cls.model_fields.items():
            sol = [m for m in info.metadata if isinstance(m, SolType)]
            if len(sol) != 1:
                raise TypeError(f"{cls.__name__}.{name} needs exactly one SolType annotation")
            fields.append((name, sol[0].name))
        cls.eip712_type = StructType(cls.__name__, tuple(fields))

    def eip712_values(self) -> tuple[Any, ...]:
        """Field values in type-string order (bytes32 as bytes, addresses as hex)."""
        return tuple(getattr(self, name) for name in type(self).model_fields)

    def struct_hash(self) -> bytes:
        """EIP-712 hashStruct of this message."""
        return self.eip712_type.hash_struct(self.eip712_values())

    def digest(self, domain: Domain) -> bytes:
        """The 32-byte EIP-712 digest the parties sign in ``domain``."""
        return domain.digest(self.struct_hash())

    def message(self) -> dict[str, Any]:
        """The message as JSON-ready values (the ``entry`` of a receipt document)."""
        return self.model_dump(mode="json")

    def typed_data(self, domain: Domain) -> dict[str, Any]:
        """The full EIP-712 JSON document for wallets (``eth_signTypedData_v4``)."""
        return {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                self.eip712_type.name: self.eip712_type.eip712_types(),
            },
            "primaryType": self.eip712_type.name,
            "domain": domain.to_json(),
            "message": self.message(),
        }


def _check_period(start: int, end: int, start_name: str, end_name: str) -> None:
    if start >= end:
        raise ValueError(f"{start_name} ({start}) must be before {end_name} ({end})")


def _check_ascending(addresses: Sequence[str], name: str) -> None:
    raw = [address_bytes(a) for a in addresses]
    for i in range(1, len(raw)):
        if raw[i - 1] >= raw[i]:
            raise ValueError(
                f"{name} must be distinct and sorted by ascending address: "
                f"{addresses[i - 1]} comes before {addresses[i]}"
            )


class Agreement(EntryBase):
    """A data-use agreement: asset, providers, consumer, unit price, policy, validity."""

    entry_type = EntryType.AGREEMENT

    agreementId: Bytes32
    assetId: Bytes32
    consumer: Address
    providers: AddressArray
    unitPrice: Uint256
    policyHash: Bytes32
    validFrom: Uint64
    validUntil: Uint64

    @model_validator(mode="after")
    def _check(self) -> Agreement:
        if not 1 <= len(self.providers) <= MAX_AGREEMENT_PROVIDERS:
            raise ValueError(f"providers must have 1 to {MAX_AGREEMENT_PROVIDERS} addresses")
        _check_ascending(self.providers, "providers")
        if self.consumer in self.providers:
            raise ValueError("the consumer cannot also be a provider of the agreement")
        _check_period(self.validFrom, self.validUntil, "validFrom", "validUntil")
        return self


ZERO_BYTES32: Final = bytes(32)
ZERO_ADDRESS: Final = "0x0000000000000000000000000000000000000000"


class AgreementV2(Agreement):
    """An Agreement under an offer's terms, optionally with providers of another space.

    Every Agreement rule holds (it *is* an Agreement to settlement and audit); the extra
    fields are zero when unused:

    - ``offerId`` / ``offerVersion``: the catalog offer (T11) the agreement takes up;
    - ``termsHash``: SHA-256 of the canonical usage-terms document the agreement is under
      (the offer's terms, or a narrowing of them);
    - ``homeChainId`` / ``homeRegistry``: the providers' home space (chain id and
      ParticipantRegistry address) when they are registered in another data space (T10);
      zero means the providers are participants of this space.
    """

    entry_type = EntryType.AGREEMENT_V2

    offerId: Bytes32
    offerVersion: Uint64
    termsHash: Bytes32
    homeChainId: Uint256
    homeRegistry: ContractAddress

    @model_validator(mode="after")
    def _check_v2(self) -> AgreementV2:
        if self.offerId == ZERO_BYTES32 and self.offerVersion != 0:
            raise ValueError("offerVersion must be 0 when offerId is zero (no offer)")
        if (self.homeChainId == 0) != (self.homeRegistry == ZERO_ADDRESS):
            raise ValueError(
                "homeChainId and homeRegistry are given together (another space's chain id "
                "and registry) or both zero (this space)"
            )
        return self

    @property
    def cross_space(self) -> bool:
        """True when the providers are registered in another space (``homeChainId`` set)."""
        return self.homeChainId != 0


class UsageReceipt(EntryBase):
    """Units of an agreement used in a period; both halves of the tally stick sign it."""

    entry_type = EntryType.USAGE_RECEIPT

    agreementId: Bytes32
    consumer: Address
    provider: Address
    units: Uint64
    periodStart: Uint64
    periodEnd: Uint64
    detailHash: Bytes32
    nonce: Uint64

    @model_validator(mode="after")
    def _check(self) -> UsageReceipt:
        if self.consumer == self.provider:
            raise ValueError("consumer and provider must be different parties")
        _check_period(self.periodStart, self.periodEnd, "periodStart", "periodEnd")
        return self


class QualityAttestation(EntryBase):
    """A quality score (basis points, 0..10000) for a provider's data in a period."""

    entry_type = EntryType.QUALITY_ATTESTATION

    agreementId: Bytes32
    provider: Address
    periodStart: Uint64
    periodEnd: Uint64
    scoreBps: Uint16

    @model_validator(mode="after")
    def _check(self) -> QualityAttestation:
        if self.scoreBps > MAX_SCORE_BPS:
            raise ValueError(f"scoreBps must be at most {MAX_SCORE_BPS}, got {self.scoreBps}")
        _check_period(self.periodStart, self.periodEnd, "periodStart", "periodEnd")
        return self


class ContributionDeclaration(EntryBase):
    """A provider's declared input cost or risk tier for a period (see ContributionKind)."""

    entry_type = EntryType.CONTRIBUTION_DECLARATION

    agreementId: Bytes32
    provider: Address
    kind: Uint8
    value: Uint256
    periodStart: Uint64
    periodEnd: Uint64

    @model_validator(mode="after")
    def _check(self) -> ContributionDeclaration:
        if self.kind not in ContributionKind._value2member_map_:
            known = ", ".join(f"{k.value} ({k.name.lower()})" for k in ContributionKind)
            raise ValueError(f"kind must be one of {known}, got {self.kind}")
        _check_period(self.periodStart, self.periodEnd, "periodStart", "periodEnd")
        return self


class CoalitionValues(EntryBase):
    """Value of every coalition of ``providers``: ``values[m]`` for bitmask ``m``."""

    entry_type = EntryType.COALITION_VALUES

    agreementId: Bytes32
    periodStart: Uint64
    periodEnd: Uint64
    providers: AddressArray
    values: Uint256Array

    @model_validator(mode="after")
    def _check(self) -> CoalitionValues:
        n = len(self.providers)
        if not 1 <= n <= MAX_COALITION_PROVIDERS:
            raise ValueError(f"providers must have 1 to {MAX_COALITION_PROVIDERS} addresses")
        _check_ascending(self.providers, "providers")
        if len(self.values) != 1 << n:
            raise ValueError(
                f"values must have 2**{n} = {1 << n} items (one per coalition of "
                f"{n} providers), got {len(self.values)}"
            )
        _check_period(self.periodStart, self.periodEnd, "periodStart", "periodEnd")
        return self


def _check_list_text(value: str, name: str) -> None:
    """A comma-separated list: items non-empty, trimmed, distinct (``""`` = no items)."""
    if value == "":
        return
    items = value.split(",")
    for item in items:
        if not item or item != item.strip():
            raise ValueError(f"{name} is a comma-separated list of non-empty, trimmed items")
    if len(set(items)) != len(items):
        raise ValueError(f"{name} lists an item twice")


class Offer(EntryBase):
    """A data product in the catalog (one version of an offer); signed by its providers.

    The descriptive fields follow DCAT 3 (``dct:title``, ``dcat:keyword``, ``dcat:theme``,
    ``dct:license``, ``dcat:mediaType`` of the distributions); ``keywords`` and
    ``formats`` are comma-separated lists. ``pricing`` and ``terms`` are RFC 8785
    canonical JSON objects (see :mod:`service.catalog.pricing` and
    :mod:`service.catalog.terms`, whose semantic checks run at ingest); an AgreementV2
    under this version names ``offerId``, ``version`` and SHA-256 of ``terms`` (or of a
    narrowing of them). A new version of the same ``offerId`` replaces the old one in
    the catalog; versions strictly increase and the providers never change.
    """

    entry_type = EntryType.OFFER

    offerId: Bytes32
    version: Uint64
    providers: AddressArray
    title: ShortText
    description: LongText
    keywords: LongText
    theme: ShortText
    license: ShortText
    formats: ShortText
    metadataHash: Bytes32
    metadataUrl: ShortText
    pricing: DocumentText
    terms: DocumentText
    validFrom: Uint64
    validUntil: Uint64

    @model_validator(mode="after")
    def _check(self) -> Offer:
        if not 1 <= len(self.providers) <= MAX_AGREEMENT_PROVIDERS:
            raise ValueError(f"providers must have 1 to {MAX_AGREEMENT_PROVIDERS} addresses")
        _check_ascending(self.providers, "providers")
        if self.offerId == ZERO_BYTES32:
            raise ValueError("offerId must not be zero (zero means no offer in an AgreementV2)")
        if self.version == 0:
            raise ValueError("version starts at 1 (0 means no offer in an AgreementV2)")
        if not self.title.strip():
            raise ValueError("title must not be empty")
        _check_list_text(self.keywords, "keywords")
        _check_list_text(self.formats, "formats")
        parse_canonical(self.pricing, what="pricing")
        parse_canonical(self.terms, what="terms")
        _check_period(self.validFrom, self.validUntil, "validFrom", "validUntil")
        return self


class OfferWithdrawal(EntryBase):
    """The providers withdraw an offer from the catalog as of its ``version``.

    ``version`` must be the offer's latest; agreements under it that are already in the
    log stay valid (they were signed), new agreements naming the offer are refused.
    """

    entry_type = EntryType.OFFER_WITHDRAWAL

    offerId: Bytes32
    version: Uint64
    providers: AddressArray

    @model_validator(mode="after")
    def _check(self) -> OfferWithdrawal:
        if not 1 <= len(self.providers) <= MAX_AGREEMENT_PROVIDERS:
            raise ValueError(f"providers must have 1 to {MAX_AGREEMENT_PROVIDERS} addresses")
        _check_ascending(self.providers, "providers")
        if self.version == 0:
            raise ValueError("version starts at 1")
        return self


class RevenueDeclaration(EntryBase):
    """Revenue the consumer earned with an agreement's data in a period (revenue share).

    ``revenue`` is in the token's smallest unit; ``reportHash`` is the SHA-256 of the
    consumer's off-chain revenue report (what an auditor asks to see); ``nonce`` shares
    the consumer's per-agreement nonce space with its UsageReceipts, so one declaration
    cannot be replayed. Signed by the consumer alone: it declares against itself.
    """

    entry_type = EntryType.REVENUE_DECLARATION

    agreementId: Bytes32
    consumer: Address
    periodStart: Uint64
    periodEnd: Uint64
    revenue: Uint256
    reportHash: Bytes32
    nonce: Uint64

    @model_validator(mode="after")
    def _check(self) -> RevenueDeclaration:
        _check_period(self.periodStart, self.periodEnd, "periodStart", "periodEnd")
        return self


class ValuationResult(EntryBase):
    """Per-provider values of a data valuation of an agreement's providers in a period (T13).

    ``method`` is the method id (:data:`service.valuation.estimators.METHOD_IDS`),
    ``paramsHash`` the SHA-256 of the method parameters' canonical JSON, ``seed`` the sampling
    seed derived from the anchored checkpoint of ``checkpointSize`` leaves (the derivation is
    in :mod:`service.valuation.run`), ``utilityHash`` the SHA-256 binding the utility's code
    and data manifest. ``values`` (bps, may be negative) and ``stderrs`` (bps, rounded up; 0
    for exact methods) are per provider, in the order of ``providers`` (ascending).
    ``utilityCalls`` is the number of distinct coalitions the utility scored.
    """

    entry_type = EntryType.VALUATION_RESULT

    agreementId: Bytes32
    periodStart: Uint64
    periodEnd: Uint64
    method: Uint8
    paramsHash: Bytes32
    checkpointSize: Uint64
    seed: Bytes32
    utilityHash: Bytes32
    providers: AddressArray
    values: Int256Array
    stderrs: Uint256Array
    utilityCalls: Uint64

    @model_validator(mode="after")
    def _check(self) -> ValuationResult:
        n = len(self.providers)
        if not 1 <= n <= MAX_AGREEMENT_PROVIDERS:
            raise ValueError(f"providers must have 1 to {MAX_AGREEMENT_PROVIDERS} addresses")
        _check_ascending(self.providers, "providers")
        if len(self.values) != n or len(self.stderrs) != n:
            raise ValueError(
                f"values and stderrs must have one item per provider ({n}), "
                f"got {len(self.values)} and {len(self.stderrs)}"
            )
        if self.method == 0:
            raise ValueError("method 0 is not a valuation method")
        _check_period(self.periodStart, self.periodEnd, "periodStart", "periodEnd")
        return self


Entry: TypeAlias = (
    Agreement
    | AgreementV2
    | UsageReceipt
    | QualityAttestation
    | ContributionDeclaration
    | CoalitionValues
    | Offer
    | OfferWithdrawal
    | RevenueDeclaration
    | ValuationResult
)

ENTRY_CLASSES: Final[Mapping[str, type[EntryBase]]] = MappingProxyType(
    {
        cls.__name__: cls
        for cls in (
            Agreement,
            UsageReceipt,
            QualityAttestation,
            ContributionDeclaration,
            CoalitionValues,
            AgreementV2,
            Offer,
            OfferWithdrawal,
            RevenueDeclaration,
            ValuationResult,
        )
    }
)
_CLASS_BY_TAG: Final[Mapping[int, type[EntryBase]]] = {
    cls.entry_type: cls for cls in ENTRY_CLASSES.values()
}


def _format_validation_error(exc: ValidationError) -> list[dict[str, str]]:
    items = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(entry)"
        msg = err["msg"].removeprefix("Value error, ")
        items.append({"field": loc, "error": msg})
    return items


def parse_entry(entry_type: str | EntryType, data: object) -> Entry:
    """Parse a JSON-decoded message into its entry model.

    ``entry_type`` is the type name (``"UsageReceipt"``) or tag. Raises
    :class:`InvalidEntry` naming every bad field (missing, unknown, malformed, out of
    range) and broken cross-field rules (periods, provider order, values length).
    """
    if isinstance(entry_type, EntryType):
        cls = _CLASS_BY_TAG[entry_type]
    else:
        found = ENTRY_CLASSES.get(entry_type) if isinstance(entry_type, str) else None
        if found is None:
            raise InvalidEntry(
                f"unknown entry_type {entry_type!r}; expected one of {', '.join(ENTRY_CLASSES)}"
            )
        cls = found
    if not isinstance(data, Mapping):
        raise InvalidEntry(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    try:
        entry = cls.model_validate(data)
    except ValidationError as exc:
        problems = _format_validation_error(exc)
        summary = "; ".join(f"{p['field']}: {p['error']}" for p in problems)
        raise InvalidEntry(f"invalid {cls.__name__}: {summary}", errors=problems) from None
    return entry  # type: ignore[return-value]


# --- signers ---------------------------------------------------------------------------


def required_signers(
    entry: EntryBase,
    *,
    attester: str | None = None,
    evaluator: str | None = None,
    operator: str | None = None,
) -> frozenset[str]:
    """The checksummed addresses whose signatures an entry must carry, no more, no fewer.

    - ``Agreement``: the consumer and every provider.
    - ``UsageReceipt``: the consumer and the provider.
    - ``QualityAttestation``: ``attester``, required: the agreement's consumer, or an
      auditor. The message does not name its attester, so the caller says whom it
      expects (usually the single signer present) and checks elsewhere that this address
      is the agreement's consumer or holds the auditor role.
    - ``ContributionDeclaration``: the provider, plus ``operator`` when given (pass it
      when the policy requires the operator's countersignature).
    - ``CoalitionValues``: ``evaluator``, required: the evaluator the settlement policy
      names (the policy document is outside the message, so the caller supplies it).
    - ``Offer`` / ``OfferWithdrawal``: every provider of the offer.
    - ``RevenueDeclaration``: the consumer.
    - ``ValuationResult``: ``evaluator``, required, like ``CoalitionValues``.

    Raises ``ValueError`` when a required argument is missing or not an address.
    """
    if isinstance(entry, Agreement):
        return frozenset((entry.consumer, *entry.providers))
    if isinstance(entry, Offer | OfferWithdrawal):
        return frozenset(entry.providers)
    if isinstance(entry, UsageReceipt):
        return frozenset((entry.consumer, entry.provider))
    if isinstance(entry, RevenueDeclaration):
        return frozenset((entry.consumer,))
    if isinstance(entry, QualityAttestation):
        if attester is None:
            raise ValueError(
                "a QualityAttestation needs attester=: the agreement's consumer or an auditor"
            )
        return frozenset((parse_address(attester),))
    if isinstance(entry, ContributionDeclaration):
        if operator is None:
            return frozenset((entry.provider,))
        return frozenset((entry.provider, parse_address(operator)))
    if isinstance(entry, CoalitionValues):
        if evaluator is None:
            raise ValueError("a CoalitionValues entry needs evaluator=: the policy's evaluator")
        return frozenset((parse_address(evaluator),))
    if isinstance(entry, ValuationResult):
        if evaluator is None:
            raise ValueError("a ValuationResult entry needs evaluator=: the policy's evaluator")
        return frozenset((parse_address(evaluator),))
    raise TypeError(f"not an entry: {type(entry).__name__}")


def _address_key(item: tuple[str, bytes]) -> bytes:
    return address_bytes(item[0])


def _mismatch_error(signer: str, recovered: bytes | str) -> InvalidSignature:
    if isinstance(recovered, str):
        return InvalidSignature(f"signature of {signer}: {recovered}", signer=signer)
    return InvalidSignature(
        f"the signature given for {signer} was made by {to_checksum_address(recovered)}: "
        "a different key, or a message or domain other than the one signed",
        signer=signer,
    )


@dataclass(frozen=True)
class SignedEntry:
    """An entry, the domain it was signed in, and its signatures.

    ``signatures`` maps signer (checksummed) to 65-byte ``r || s || v`` with v 27/28;
    on construction keys are parsed and checksummed, signatures parsed (0x hex or bytes)
    and normalised, and the mapping is frozen and ordered by signer address.
    Construction checks form only; :meth:`verify` does the cryptography.
    """

    entry: Entry
    domain: Domain
    signatures: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if not isinstance(self.entry, EntryBase):
            raise TypeError(f"not an entry: {type(self.entry).__name__}")
        normalized: dict[str, bytes] = {}
        for key, sig in self.signatures.items():
            try:
                signer = parse_address(key)
            except ValueError as exc:
                raise InvalidSignature(f"signer {key!r}: {exc}") from None
            if signer in normalized:
                raise InvalidSignature(f"two signatures are given for {signer}", signer=signer)
            normalized[signer] = parse_signature(sig)
        ordered = dict(sorted(normalized.items(), key=_address_key))
        object.__setattr__(self, "signatures", MappingProxyType(ordered))

    def __hash__(self) -> int:
        return hash((self.entry, self.domain, tuple(self.signatures.items())))

    def __getstate__(self) -> dict[str, Any]:
        # mappingproxy does not pickle; ship a plain dict (already normalised and ordered)
        return {"entry": self.entry, "domain": self.domain, "signatures": dict(self.signatures)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "entry", state["entry"])
        object.__setattr__(self, "domain", state["domain"])
        object.__setattr__(self, "signatures", MappingProxyType(state["signatures"]))

    @property
    def entry_type(self) -> EntryType:
        return self.entry.entry_type

    def digest(self) -> bytes:
        """The EIP-712 digest every signature is over."""
        return self.entry.digest(self.domain)

    def encode(self) -> bytes:
        """Canonical bytes (see the module docstring)."""
        return encode_entry(self)

    def id(self) -> bytes:
        """Entry id: SHA-256 of the canonical bytes."""
        return entry_id(encode_entry(self))

    def _precheck(self, domain: Domain, required: frozenset[str]) -> None:
        if domain != self.domain:
            raise InvalidSignature(
                f"the entry was signed for chain {self.domain.chain_id} / ledger "
                f"{self.domain.verifying_contract}, not chain {domain.chain_id} / "
                f"ledger {domain.verifying_contract}"
            )
        present = frozenset(self.signatures)
        missing = sorted(required - present, key=address_bytes)
        unexpected = sorted(present - required, key=address_bytes)
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing signature of {', '.join(missing)}")
            if unexpected:
                parts.append(f"unexpected signature of {', '.join(unexpected)}")
            raise SignerMismatch(
                f"{self.entry_type_name}: {'; '.join(parts)}",
                missing=missing,
                unexpected=unexpected,
            )

    @property
    def entry_type_name(self) -> str:
        return self.entry.eip712_type.name

    def recover(self) -> frozenset[str]:
        """Recover every signature; each must come from the signer it is filed under.

        Raises :class:`InvalidSignature` naming the first signer whose signature fails.
        Does not check *which* signers are required: see :meth:`verify`.
        """
        digest = self.digest()
        results = recover_jobs((digest, sig) for sig in self.signatures.values())
        for signer, recovered in zip(self.signatures, results, strict=True):
            if recovered != address_bytes(signer):
                raise _mismatch_error(signer, recovered)
        return frozenset(self.signatures)

    def verify(
        self,
        domain: Domain,
        *,
        attester: str | None = None,
        evaluator: str | None = None,
        operator: str | None = None,
    ) -> frozenset[str]:
        """Check the entry is for ``domain`` and signed by exactly its required signers.

        ``domain`` is the deployment's (an entry carrying another chain id or ledger is
        refused). The keyword arguments are those of :func:`required_signers`. Returns
        the recovered signers. Raises :class:`SignerMismatch` (naming the missing and
        unexpected signers) or :class:`InvalidSignature`.
        """
        required = required_signers(
            self.entry, attester=attester, evaluator=evaluator, operator=operator
        )
        self._precheck(domain, required)
        return self.recover()

    def to_json(self) -> dict[str, Any]:
        """``{"entry_type", "entry", "signatures"}`` with 0x hex signatures (no domain)."""
        return {
            "entry_type": self.entry_type_name,
            "entry": self.entry.message(),
            "signatures": {signer: "0x" + sig.hex() for signer, sig in self.signatures.items()},
        }

    @classmethod
    def from_json(cls, data: object, *, domain: Domain) -> SignedEntry:
        """Parse ``{"entry_type", "entry", "signatures"}`` (the API's and receipts' form).

        Raises :class:`InvalidEntry` or :class:`InvalidSignature` with a clear message.
        """
        if not isinstance(data, Mapping):
            raise InvalidEntry(f"a signed entry must be a JSON object, got {type(data).__name__}")
        keys = set(data)
        missing = {"entry_type", "entry", "signatures"} - keys
        if missing:
            raise InvalidEntry(f"signed entry is missing {', '.join(sorted(missing))}")
        entry = parse_entry(data["entry_type"], data["entry"])
        signatures = data["signatures"]
        if not isinstance(signatures, Mapping) or not signatures:
            raise InvalidSignature("signatures must be a non-empty object: signer -> 0x signature")
        return cls(entry=entry, domain=domain, signatures=signatures)


def sign_entry(entry: Entry, domain: Domain, private_keys: Iterable[bytes]) -> SignedEntry:
    """Sign ``entry`` in ``domain`` with each key (demo, tests, operator countersigning)."""
    digest = entry.digest(domain)
    signatures = {private_key_to_address(k): sign_digest(digest, k) for k in private_keys}
    return SignedEntry(entry=entry, domain=domain, signatures=signatures)


# --- canonical bytes -------------------------------------------------------------------

_HEADER_SIZE: Final = len(MAGIC) + 1 + 32 + 20 + 32 + 32 + 4
_RECORD_SIZE: Final = 20 + 65


def encode_entry(signed: SignedEntry) -> bytes:
    """The canonical bytes of a signed entry (layout in the module docstring)."""
    entry = signed.entry
    domain = signed.domain
    values = entry.eip712_values()
    message = entry.eip712_type.abi_encode(values)
    parts = [
        MAGIC,
        bytes((entry.entry_type,)),
        domain.chain_id.to_bytes(32, "big"),
        address_bytes(domain.verifying_contract),
        domain.separator,
        entry.eip712_type.hash_struct(values),
        len(message).to_bytes(4, "big"),
        message,
        len(signed.signatures).to_bytes(2, "big"),
    ]
    # SignedEntry keeps its signatures ordered by signer address.
    for signer, sig in signed.signatures.items():
        parts.append(address_bytes(signer))
        parts.append(sig)
    return b"".join(parts)


_STRUCT_HASH_AT: Final = len(MAGIC) + 1 + 32 + 20 + 32


def struct_hash_of(data: bytes) -> bytes:
    """The EIP-712 struct hash carried in canonical bytes ``data`` (as
    :func:`encode_entry` wrote it: ingest reads it back instead of hashing again)."""
    return bytes(data[_STRUCT_HASH_AT : _STRUCT_HASH_AT + 32])


def decode_entry(data: bytes) -> SignedEntry:
    """Parse canonical bytes back into a :class:`SignedEntry` (no signature checks).

    Refuses (:class:`InvalidEntry`) anything that is not exactly the canonical encoding
    of some signed entry: wrong magic or tag, truncated or trailing bytes, a domain
    separator or struct hash that does not match the fields, a message that fails the
    entry's validation, unsorted or duplicate signers, non-normalised signatures.
    """
    data = bytes(data)
    if len(data) < _HEADER_SIZE + 2:
        raise InvalidEntry(f"entry bytes are truncated ({len(data)} bytes)")
    if not data.startswith(MAGIC):
        raise InvalidEntry("entry bytes do not start with TALLY-ENTRY-V1")
    pos = len(MAGIC)
    tag = data[pos]
    cls = _CLASS_BY_TAG.get(tag)
    if cls is None:
        raise InvalidEntry(f"unknown entry type tag {tag}")
    pos += 1
    chain_id = int.from_bytes(data[pos : pos + 32], "big")
    pos += 32
    contract = to_checksum_address(data[pos : pos + 20])
    pos += 20
    separator = data[pos : pos + 32]
    pos += 32
    struct_hash = data[pos : pos + 32]
    pos += 32
    length = int.from_bytes(data[pos : pos + 4], "big")
    pos += 4
    if len(data) < pos + length + 2:
        raise InvalidEntry("entry bytes are truncated inside the message")
    message = data[pos : pos + length]
    pos += length
    count = int.from_bytes(data[pos : pos + 2], "big")
    pos += 2
    if len(data) != pos + count * _RECORD_SIZE:
        raise InvalidEntry(
            f"entry bytes should end after {count} signature records "
            f"({pos + count * _RECORD_SIZE} bytes), got {len(data)} bytes"
        )

    try:
        domain = Domain(chain_id=chain_id, verifying_contract=contract)
    except ValueError as exc:
        raise InvalidEntry(f"bad domain in entry bytes: {exc}") from None
    if domain.separator != separator:
        raise InvalidEntry("the domain separator does not match the chain id and contract")

    struct = cls.eip712_type
    try:
        values = abi_decode(list(struct.field_types), message, strict=True)
    except DecodingError as exc:
        raise InvalidEntry(f"the {struct.name} message is not valid ABI: {exc}") from None
    except UnicodeDecodeError:
        raise InvalidEntry(f"the {struct.name} message has a string that is not UTF-8") from None
    entry = parse_entry(struct.name, dict(zip(struct.field_names, values, strict=True)))
    if entry.eip712_type.abi_encode(entry.eip712_values()) != message:
        raise InvalidEntry(f"the {struct.name} message is not in canonical ABI form")
    if entry.struct_hash() != struct_hash:
        raise InvalidEntry("the struct hash does not match the message")

    signatures: dict[str, bytes] = {}
    previous = b""
    for _ in range(count):
        signer_raw = data[pos : pos + 20]
        sig = data[pos + 20 : pos + _RECORD_SIZE]
        pos += _RECORD_SIZE
        if signer_raw <= previous:
            raise InvalidEntry("signature records must be sorted by ascending signer, no repeats")
        previous = signer_raw
        if sig[64] not in (27, 28):
            raise InvalidEntry("a canonical signature has v 27 or 28")
        signatures[to_checksum_address(signer_raw)] = sig
    try:
        return SignedEntry(entry=entry, domain=domain, signatures=signatures)
    except InvalidSignature as exc:
        raise InvalidEntry(f"bad signature record: {exc.message}") from None


def entry_id(data: bytes) -> bytes:
    """Entry id: SHA-256 of the canonical entry bytes (32 bytes)."""
    return hashlib.sha256(data).digest()


# --- batch verification ----------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of verifying one entry of a batch."""

    signers: frozenset[str]
    error: InvalidSignature | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


_pools: dict[int, _Pool] = {}
STARTED_WAIT_S: Final = 0.005
"""How long a submitter waits, GIL released, for each worker to take its chunk."""
_pools_lock = threading.Lock()


def shutdown_verify_pools() -> None:
    """Stop the worker processes :func:`verify_many` started (also run at exit)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.executor.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class _Pool:
    executor: ProcessPoolExecutor
    started: Any  # a multiprocessing semaphore, released by a worker as it takes a chunk


def _pool(workers: int) -> _Pool:
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            # forkserver, not fork: the API process has threads, and forking a threaded
            # process can deadlock the child. Workers fork from a server that has only
            # the (light) recovery module loaded.
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["service.evidence.eip712"])
            if not _pools:
                atexit.register(shutdown_verify_pools)
            started = ctx.Semaphore(0)
            executor = ProcessPoolExecutor(
                max_workers=workers, mp_context=ctx, initializer=start_worker, initargs=(started,)
            )
            pool = _Pool(executor, started)
            _pools[workers] = pool
        return pool


def _recover_started(
    jobs: list[tuple[bytes, bytes]], workers: int
) -> Callable[[], list[bytes | str]]:
    """Submit ``jobs`` to the worker pool; the returned call waits for the answers."""
    size = max(1, -(-len(jobs) // workers))  # one chunk per worker
    chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]

    def in_process() -> list[bytes | str]:
        # a worker died (OOM killer, signal): forget the pool and finish in-process
        with _pools_lock:
            _pools.pop(workers, None)
        return recover_jobs(jobs)

    try:
        pool = _pool(workers)
        while pool.started.acquire(block=False):  # signals a caller stopped waiting for
            pass
        futures = [pool.executor.submit(recover_jobs_started, chunk) for chunk in chunks]
    except BrokenProcessPool:
        return in_process
    # The executor hands chunks to the workers from its own threads, which need the GIL:
    # a caller that computes on (ingest's commitments) held them back until it waited,
    # measured: the workers started only after 25 ms of commitments. So wait here, GIL
    # released, until each worker has taken its chunk; never long (another caller's
    # chunk may take the signal).
    for _ in chunks:
        if not pool.started.acquire(timeout=STARTED_WAIT_S):
            break

    def wait() -> list[bytes | str]:
        try:
            out: list[bytes | str] = []
            for future in futures:
                out.extend(future.result())
            return out
        except BrokenProcessPool:
            return in_process()

    return wait


def verify_many(
    entries: Sequence[SignedEntry],
    domain: Domain,
    workers: int | None = None,
    *,
    required: Sequence[frozenset[str] | None] | None = None,
    min_parallel: int = PARALLEL_MIN_BATCH,
    digests: Sequence[bytes] | None = None,
) -> list[VerifyResult]:
    """Verify a batch; one result per entry, in order (an invalid entry never raises).

    ``required[i]``, when given and not None, is entry ``i``'s required signer set
    (from :func:`required_signers` with the context it needs); otherwise it comes from
    the entry alone, which works for Agreement, UsageReceipt and ContributionDeclaration
    without operator (QualityAttestation and CoalitionValues raise ``ValueError``: pass
    their sets). ``digests[i]``, when given, is entry ``i``'s EIP-712 digest (the caller
    computed it already); otherwise it is computed here. Signature recovery runs in
    ``workers`` processes (default: all CPUs) when the batch has at least
    ``min_parallel`` entries, else in-process. Hashing and the signer-set checks run in
    the calling process.
    """
    return begin_verify(
        entries, domain, workers, required=required, min_parallel=min_parallel, digests=digests
    )()


def begin_verify(
    entries: Sequence[SignedEntry],
    domain: Domain,
    workers: int | None = None,
    *,
    required: Sequence[frozenset[str] | None] | None = None,
    min_parallel: int = PARALLEL_MIN_BATCH,
    digests: Sequence[bytes] | None = None,
) -> Callable[[], list[VerifyResult]]:
    """:func:`verify_many` in two steps: this call checks the signer sets and hands the
    recoveries to the worker pool; the returned call waits for them and gives the
    results. Between the two the caller's process is free (ingest builds its
    commitments there). In-process recovery (small batches, ``workers=1``) runs in the
    returned call."""
    if required is not None and len(required) != len(entries):
        raise ValueError("required must have one item per entry")
    if digests is not None and len(digests) != len(entries):
        raise ValueError("digests must have one item per entry")
    results: list[VerifyResult | None] = [None] * len(entries)
    jobs: list[tuple[bytes, bytes]] = []
    owners: list[tuple[int, str]] = []
    for i, signed in enumerate(entries):
        wanted = required[i] if required is not None else None
        if wanted is None:
            wanted = required_signers(signed.entry)
        try:
            signed._precheck(domain, wanted)
        except InvalidSignature as exc:
            results[i] = VerifyResult(frozenset(), exc)
            continue
        digest = signed.digest() if digests is None else digests[i]
        for signer, sig in signed.signatures.items():
            jobs.append((digest, sig))
            owners.append((i, signer))

    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    if n_workers > 1 and len(entries) >= min_parallel and jobs:
        recovered = _recover_started(jobs, n_workers)
    else:
        recovered = lambda: recover_jobs(jobs)  # noqa: E731

    def finish() -> list[VerifyResult]:
        errors: dict[int, InvalidSignature] = {}
        for (i, signer), got in zip(owners, recovered(), strict=True):
            if i not in errors and got != address_bytes(signer):
                errors[i] = _mismatch_error(signer, got)
        final: list[VerifyResult] = []
        for i, signed in enumerate(entries):
            result = results[i]
            if result is None:
                error = errors.get(i)
                signers = frozenset() if error else frozenset(signed.signatures)
                result = VerifyResult(signers, error)
            final.append(result)
        return final

    return finish
