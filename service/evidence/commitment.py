"""Commitment leaves and per-field disclosures (T15): the public log hides what it proves.

Until T15 the Merkle leaf of an entry was its canonical bytes (:mod:`.entries`), so the
public log showed every message: who buys from whom, how many units, at what price. Now a
new entry's leaf is a *commitment* to it, and only the parties, the auditor and the
operator see the entry itself.

Leaf data (what ``/v1/log/entries`` serves; the Merkle leaf hash stays
``SHA-256(0x00 || leaf data)``, RFC 9162):

=====================  ======  ==========================================================
leaf version           bytes   leaf data
=====================  ======  ==========================================================
legacy (before T15)    any     the canonical bytes; they start with ``b"TALLY-ENTRY-V1"``,
                               so the first byte is ``0x54`` ("T")
commitment (``0x02``)  34      ``0x02 || entry type tag (1) || C`` with
                               ``C = SHA-256(commitment salt || commitment body)``
=====================  ======  ==========================================================

The first byte is the version tag: a log may mix both (an old log keeps its old leaves,
new entries get commitments) and every verifier branches on it (:func:`leaf_version`).

Salts. At ingest the operator draws one fresh 32-byte random ``salt`` per entry, keeps
it, and returns it to the submitter in the accepted item result. Everything else is
derived from it with SHA-256 and a distinct label, so one secret per entry is stored:

- commitment salt ``= SHA-256("tally/commitment-salt" || 0x00 || salt)`` (32 bytes);
- field salt of field ``name`` ``= base64url(SHA-256("tally/field-salt" || 0x00 || salt ||
  name)[:16])`` (128 bits, no padding; the SD-JWT salt form).

Revealing a field salt or the commitment salt reveals nothing about ``salt`` or the other
fields' salts (SHA-256 is one-way), which is what lets a holder disclose one field.

Commitment body (fixed layout, all integers big-endian):

======  ======  ==========================================================================
offset  bytes   field
======  ======  ==========================================================================
0       15      magic ``b"TALLY-COMMIT-V2"``
15      1       entry type tag (:class:`~.entries.EntryType`)
16      32      chainId (uint256)
48      20      verifyingContract (the EvidenceLedger)
68      2       k = number of message fields (uint16)
70      32*k    field digests, in EIP-712 type-string order
70+32k  32      signers digest ``= SHA-256(domain separator (32) || struct hash (32) ||
                n (uint16) || signature records (85*n))``, the records as in the
                canonical bytes (signer || r || s || v, sorted by signer)
======  ======  ==========================================================================

Field digest (the disclosure format of IETF SD-JWT for object properties):
``disclosure = base64url(UTF-8 JSON [field salt, name, value])`` with ``value`` the
field's JSON form in a receipt's ``entry`` (uint256 as a decimal string, narrower uints
as numbers, addresses EIP-55, bytes32 as ``0x`` hex, arrays as lists); the JSON is
written compactly (``json.dumps(..., separators=(",", ":"))``) so that the operator can
rebuild it from ``salt``, but a verifier never re-serialises: it hashes the disclosure
string it is given, ``digest = SHA-256(ASCII bytes of the disclosure)`` (the raw 32 bytes;
SD-JWT's base64url of them is only a display form), and reads the value out of it.

Entry ids do not change: ``SHA-256(canonical bytes)``. They are private now (served only
with the entry), so an id in a party's hands does not let the public find the leaf; the
leaf index does. Submission stays idempotent: a resubmitted entry has the same id and is
answered ``duplicate`` with its leaf index (and, to a caller who may read it, its salt);
no second salt is drawn.

Receipt documents (JSON, :mod:`.receipts`; every hash and salt is ``0x`` hex):

- legacy (``"version": 1``, the entry's leaf is legacy): as before T15.
- full (``"version": 2, "form": "full"``): the version-1 keys plus ``"salt"``.
- reduced (``"version": 2, "form": "reduced"``, written by ``tally receipt disclose``):
  ``entry_type``; ``disclosures`` (the chosen fields' disclosure strings);
  ``field_digests`` (every field's digest, type-string order); ``commitment_salt``;
  either ``signed`` = ``{"struct_hash", "signatures"}`` (signer -> 0x signature) or
  ``signers_digest``; and the proof keys of a full receipt unchanged (``leaf_index``,
  ``tree_size``, ``root``, ``inclusion_proof``, ``anchor``, optional ``cosignatures``).
  No ``entry``, ``entry_id`` or ``salt``.

What the forms of a receipt prove (:mod:`service.audit.receipt`):

- **full** (message, signatures, ``salt``): everything a legacy receipt proved: the
  signers signed exactly this message, and its commitment is the leaf at ``leaf_index``
  of the anchored log.
- **reduced, signed** (disclosures of some fields, every field digest, the commitment
  salt, the struct hash and the signatures): each disclosed value is the one committed in
  the anchored leaf; the named signers signed *a* message whose EIP-712 struct hash is the
  one committed in the same leaf. It does NOT prove, on its own, that this struct hash is
  the hash of the disclosed values together with the hidden ones: the operator checked
  that at ingest (it had the full message), and an auditor with full access re-checks it
  for every entry (``tally audit log``). The struct hash is a deterministic function of
  the whole message, so a reader of a reduced document can confirm a *guess* of the
  hidden fields; high-entropy fields (``detailHash``, ``agreementId``) stay hidden,
  low-entropy ones (``nonce``, a period) can be guessed. The fields that name the
  required signers (a receipt's consumer and provider) must be disclosed in this form,
  or the reader could not tell the signers are the right ones.
- **reduced, unsigned** (no struct hash or signatures; the signers digest instead):
  proves only that the disclosed values are committed in the anchored leaf, which the
  operator accepted after checking the required signatures; it names no signer and
  leaks nothing about hidden fields beyond their count.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from service.errors import InvalidDisclosure, InvalidInput
from service.evidence.eip712 import address_bytes
from service.evidence.entries import MAGIC as ENTRY_MAGIC
from service.evidence.entries import EntryBase, SignedEntry, decode_entry

COMMIT_MAGIC: Final = b"TALLY-COMMIT-V2"
LEAF_COMMITMENT: Final = 0x02  # version tag of a commitment leaf
LEAF_LEGACY: Final = ENTRY_MAGIC[0]  # 0x54: a legacy leaf is the canonical bytes
COMMITMENT_LEAF_SIZE: Final = 34
SALT_SIZE: Final = 32

_COMMITMENT_SALT_LABEL: Final = b"tally/commitment-salt\x00"
_FIELD_SALT_LABEL: Final = b"tally/field-salt\x00"
MAX_DISCLOSURE_CHARS: Final = 8192  # the longest field (a 1 KiB Offer string) fits


def new_salt() -> bytes:
    """A fresh 32-byte random salt for one entry (the operator keeps it)."""
    return os.urandom(SALT_SIZE)


def _b64url(data: bytes) -> str:
    # base64.urlsafe_b64encode's work without its two Python-level wrappers (ingest
    # makes about 16 of these per receipt)
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")


def _b64url_decode(text: str) -> bytes:
    if not text or any(c not in _B64URL for c in text) or len(text) % 4 == 1:
        raise InvalidDisclosure("a disclosure must be unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidDisclosure("a disclosure must be unpadded base64url") from None


_B64URL: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _check_salt(salt: bytes) -> None:
    if not isinstance(salt, bytes) or len(salt) != SALT_SIZE:
        raise InvalidInput(f"an entry salt is {SALT_SIZE} bytes")


def commitment_salt(salt: bytes) -> bytes:
    """The salt of the outer commitment hash, derived from the entry's ``salt``."""
    _check_salt(salt)
    return hashlib.sha256(_COMMITMENT_SALT_LABEL + salt).digest()


def field_salt(salt: bytes, name: str) -> str:
    """The SD-JWT-style salt (base64url, 128 bits) of field ``name``."""
    _check_salt(salt)
    return _salt_after(_FIELD_SALT_LABEL + salt, name)


def _salt_after(prefix: bytes, name: str) -> str:
    """:func:`field_salt` from ``label || salt`` (checked and joined once per entry)."""
    return _b64url(hashlib.sha256(prefix + name.encode("utf-8")).digest()[:16])


def make_disclosure(field_salt_b64: str, name: str, value: Any) -> str:
    """``base64url(JSON [salt, name, value])``, compact JSON (see the module docstring)."""
    return _b64url(_disclosure_json(field_salt_b64, name, value).encode("utf-8"))


_COMPACT: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""``json.dumps(..., separators=(",", ":"), ensure_ascii=False)``, built once."""
_json_string: Final = json.encoder.encode_basestring  # what _COMPACT uses for a str


def _disclosure_json(salt: str, name: str, value: Any) -> str:
    """``_COMPACT.encode([salt, name, value])``, with the array and the common value
    types (int, str) written directly: the same characters, a third of the time.
    ``tests/evidence/test_commitment.py`` compares the two on arbitrary values."""
    kind = type(value)
    if kind is int:  # not bool: JSON writes that true/false
        text = int.__repr__(value)
    elif kind is str:
        text = _json_string(value)
    else:
        text = _COMPACT.encode(value)
    return f"[{_json_string(salt)},{_json_string(name)},{text}]"


def disclosure_digest(disclosure: str) -> bytes:
    """SHA-256 of the disclosure's ASCII characters, exactly as given."""
    return hashlib.sha256(disclosure.encode("ascii")).digest()


@dataclass(frozen=True)
class Disclosure:
    """One parsed disclosure: the field it opens and the digest it must match."""

    text: str
    salt: str
    name: str
    value: Any

    @property
    def digest(self) -> bytes:
        return disclosure_digest(self.text)


def parse_disclosure(text: object) -> Disclosure:
    """Parse a disclosure string; :class:`InvalidDisclosure` unless it is
    ``base64url(JSON [string salt, string name, value])``."""
    if not isinstance(text, str) or len(text) > MAX_DISCLOSURE_CHARS:
        raise InvalidDisclosure(
            f"a disclosure is a base64url string of at most {MAX_DISCLOSURE_CHARS} characters"
        )
    raw = _b64url_decode(text)
    try:
        item = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidDisclosure("a disclosure must decode to UTF-8 JSON") from None
    if (
        not isinstance(item, list)
        or len(item) != 3
        or not isinstance(item[0], str)
        or not isinstance(item[1], str)
    ):
        raise InvalidDisclosure("a disclosure must be a JSON array [salt, field name, value]")
    return Disclosure(text=text, salt=item[0], name=item[1], value=item[2])


def field_names(entry_type: type[EntryBase]) -> tuple[str, ...]:
    """The message fields of ``entry_type`` in EIP-712 type-string order."""
    return entry_type.eip712_type.field_names


def disclosures(signed: SignedEntry, salt: bytes) -> list[str]:
    """Every field's disclosure, in type-string order."""
    _check_salt(salt)
    message = signed.entry.message()
    prefix = _FIELD_SALT_LABEL + salt
    return [
        make_disclosure(_salt_after(prefix, name), name, message[name])
        for name in field_names(type(signed.entry))
    ]


def signature_records(signed: SignedEntry) -> bytes:
    """``n (uint16) || records``, as the canonical bytes carry them."""
    parts = [len(signed.signatures).to_bytes(2, "big")]
    for signer, sig in signed.signatures.items():  # ordered by signer address
        parts.append(address_bytes(signer))
        parts.append(sig)
    return b"".join(parts)


def signers_digest(domain_separator: bytes, struct_hash: bytes, records: bytes) -> bytes:
    """SHA-256(domain separator || struct hash || n || records)."""
    return hashlib.sha256(domain_separator + struct_hash + records).digest()


def commitment_body(
    *,
    type_tag: int,
    chain_id: int,
    contract: str,
    field_digests: Sequence[bytes],
    signers: bytes,
) -> bytes:
    """The commitment body (layout in the module docstring)."""
    if any(len(d) != 32 for d in field_digests) or len(signers) != 32:
        raise InvalidInput("field digests and the signers digest are 32 bytes each")
    return b"".join(
        [
            COMMIT_MAGIC,
            bytes((type_tag,)),
            chain_id.to_bytes(32, "big"),
            address_bytes(contract),
            len(field_digests).to_bytes(2, "big"),
            *field_digests,
            signers,
        ]
    )


def commitment_leaf(*, type_tag: int, commit_salt: bytes, body: bytes) -> bytes:
    """Leaf data ``0x02 || type tag || SHA-256(commitment salt || body)``."""
    return bytes((LEAF_COMMITMENT, type_tag)) + hashlib.sha256(commit_salt + body).digest()


@dataclass(frozen=True)
class Commitment:
    """An entry's commitment: what the log publishes and what its disclosures open."""

    salt: bytes
    field_digests: tuple[bytes, ...]
    signers: bytes
    leaf_data: bytes


def commit(signed: SignedEntry, salt: bytes, *, struct_hash: bytes | None = None) -> Commitment:
    """The commitment of ``signed`` under ``salt`` (ingest and the full-receipt audit).

    ``struct_hash``: the entry's EIP-712 struct hash when the caller has it already
    (ingest reads it from the canonical bytes); computed here when None."""
    entry = signed.entry
    digests = tuple(disclosure_digest(d) for d in disclosures(signed, salt))
    signers = signers_digest(
        signed.domain.separator,
        entry.struct_hash() if struct_hash is None else struct_hash,
        signature_records(signed),
    )
    body = commitment_body(
        type_tag=int(entry.entry_type),
        chain_id=signed.domain.chain_id,
        contract=signed.domain.verifying_contract,
        field_digests=digests,
        signers=signers,
    )
    leaf = commitment_leaf(
        type_tag=int(entry.entry_type), commit_salt=commitment_salt(salt), body=body
    )
    return Commitment(salt=salt, field_digests=digests, signers=signers, leaf_data=leaf)


def leaf_version(leaf_data: bytes) -> int:
    """:data:`LEAF_COMMITMENT` or :data:`LEAF_LEGACY`; :class:`InvalidInput` otherwise."""
    if len(leaf_data) == COMMITMENT_LEAF_SIZE and leaf_data[0] == LEAF_COMMITMENT:
        return LEAF_COMMITMENT
    if leaf_data.startswith(ENTRY_MAGIC):
        return LEAF_LEGACY
    raise InvalidInput("leaf data is neither a commitment (0x02, 34 bytes) nor canonical bytes")


def leaf_data_for(data: bytes, salt: bytes | None) -> bytes:
    """The leaf data of the entry with canonical bytes ``data``: the bytes themselves for
    a legacy leaf (``salt`` None), else its commitment under ``salt``."""
    if salt is None:
        return data
    return commit(decode_entry(data), salt).leaf_data


# Fields whose values name required signers (:func:`~.entries.required_signers`): a signed
# reduced receipt must disclose them, or a reader could not tell the signers are the
# right parties. Types absent here name no signer in their message (an attester, an
# evaluator, a countersigning operator): their signers are the signatures' keys.
SIGNER_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "Agreement": ("consumer", "providers"),
    "AgreementV2": ("consumer", "providers"),
    "UsageReceipt": ("consumer", "provider"),
    "ContributionDeclaration": ("provider",),
    "Offer": ("providers",),
    "OfferWithdrawal": ("providers",),
    "RevenueDeclaration": ("consumer",),
}


def signer_fields(type_name: str) -> tuple[str, ...]:
    """The fields of entry type ``type_name`` that name its required signers."""
    return SIGNER_FIELDS.get(type_name, ())


def signature_records_of(signatures: Mapping[str, bytes]) -> bytes:
    """``n (uint16) || records`` of checksummed signer -> normalised 65-byte signature,
    sorted by signer address (what :func:`signature_records` gives for a signed entry)."""
    ordered = sorted(signatures.items(), key=lambda item: address_bytes(item[0]))
    return len(ordered).to_bytes(2, "big") + b"".join(
        address_bytes(signer) + sig for signer, sig in ordered
    )
