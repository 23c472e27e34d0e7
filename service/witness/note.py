"""C2SP signed notes, checkpoints and cosignatures (Ed25519), with no I/O.

Three specs, read at C2SP/C2SP commit 5ba5ee8:

- ``signed-note.md``: a text ending in a newline, a blank line, then 1..N signature
  lines ``— <key name> base64(uint32 key id || signature)``; key id =
  ``SHA-256(name || 0x0A || alg || public key)[:4]``; verifier keys ``name+hex(id)+
  base64(alg || public key)``. Ed25519 signatures (alg ``0x01``) sign the note text.
- ``tlog-checkpoint.md``: the note text of a Merkle log's head: origin, decimal tree
  size, base64 root hash, optional extension lines.
- ``tlog-cosignature.md``: a witness's ``cosignature/v1`` (alg ``0x04``): Ed25519 over
  ``"cosignature/v1\\n" "time <ts>\\n" || checkpoint body``; the signature bytes are
  ``u64 big-endian timestamp || 64-byte signature``.

Parsing is strict on purpose (the same rules as Go's ``golang.org/x/mod/sumdb/note``
plus canonical base64): a note is attacker input to the witness and the auditor, so
anything the spec forbids is a :class:`NoteError`, never a crash or a silent skip.
Private keys never appear in ``repr``, messages or logs; only :meth:`NoteSigner.skey`
exports one, for a keystore.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from service.errors import InvalidInput

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04

# Go's sumdb/note refuses more than 100 signature lines; the spec asks for >= 16.
MAX_SIGNATURES = 100
# Go's sumdb/note refuses notes over 1e6 bytes; a checkpoint with 100 lines is < 16 kB.
MAX_NOTE_BYTES = 1_000_000
MAX_TIMESTAMP = 2**63 - 1
# tlog-checkpoint: the tree size is a u64 in practice; Go parses it as int64.
MAX_TREE_SIZE = 2**63 - 1

SIG_PREFIX = "— "  # em dash U+2014, space
SKEY_PREFIX = "PRIVATE+KEY+"
_COSIGNATURE_HEADER = b"cosignature/v1\n"
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)\Z")
_HEX8 = re.compile(r"[0-9a-f]{8}\Z")


# --- errors ---------------------------------------------------------------------------


class NoteError(InvalidInput):
    """A signed note, checkpoint, signature line or note key is malformed."""

    code = "note_invalid"
    status = 400


class NoteTooLarge(NoteError):
    """A note is over MAX_NOTE_BYTES or carries more than MAX_SIGNATURES signature lines."""

    code = "note_too_large"
    status = 413


class NoteKeyInvalid(NoteError):
    """A vkey or skey text is malformed, or its key id does not match its key."""

    code = "note_key_invalid"


class CheckpointMalformed(NoteError):
    """A note body is not a tlog-checkpoint (origin, size, root, extensions)."""

    code = "checkpoint_malformed"


class NoteSignatureInvalid(NoteError):
    """A signature from a known key (name and key id match) does not verify."""

    code = "note_signature_invalid"
    status = 422


class NoteUnverified(NoteError):
    """No signature on the note is from a key the caller trusts."""

    code = "note_unverified"
    status = 422


class NoteUnknownSignature(NoteError):
    """The note carries a signature from a key the caller did not list (strict mode)."""

    code = "note_unknown_signature"
    status = 422


class CosignatureInvalid(NoteError):
    """A cosignature line is malformed, from another key, or does not verify."""

    code = "cosignature_invalid"
    status = 422


# --- names and key ids ----------------------------------------------------------------


def check_key_name(name: str) -> str:
    """A key name is non-empty with no Unicode space, no ``+`` and no control character."""
    if not name:
        raise NoteKeyInvalid("key name is empty")
    if "+" in name or any(ch.isspace() or ord(ch) < 0x20 or ch == "\x7f" for ch in name):
        raise NoteKeyInvalid("key name contains a space, a '+' or a control character")
    return name


def key_id(name: str, alg: int, public_key: bytes) -> int:
    """``SHA-256(name || 0x0A || alg || public key)[:4]`` as a big-endian uint32."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _b64decode_canonical(text: str, what: str, exc: type[NoteError]) -> bytes:
    """Standard base64 that must re-encode to the same text (no malleable variants)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise exc(f"{what} is not base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise exc(f"{what} is not canonical base64")
    return raw


def _public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _load_public(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != 32:
        raise NoteKeyInvalid("an Ed25519 public key is 32 bytes")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise NoteKeyInvalid("not an Ed25519 public key") from None


# --- verifiers ------------------------------------------------------------------------

V = TypeVar("V", bound="NoteVerifier")
S = TypeVar("S", bound="NoteSigner")


class NoteVerifier:
    """An Ed25519 (alg 0x01) note verifier: ``NoteVerifier(name, public_key)``.

    ``public_key`` is the 32 raw bytes or a ``cryptography`` public key. Subclasses
    change the algorithm byte and the signed message (:class:`CosignatureV1Verifier`).
    """

    alg: ClassVar[int] = ALG_ED25519

    def __init__(self, name: str, public_key: bytes | Ed25519PublicKey) -> None:
        self.name = check_key_name(name)
        if isinstance(public_key, Ed25519PublicKey):
            self._key = public_key
        else:
            self._key = _load_public(bytes(public_key))
        self.public_key = _public_bytes(self._key)
        self.key_id = key_id(self.name, self.alg, self.public_key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vkey()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoteVerifier) and other.vkey() == self.vkey()

    def __hash__(self) -> int:
        return hash(self.vkey())

    def vkey(self) -> str:
        """The verifier key text: ``name+hex(key id)+base64(alg || public key)``."""
        material = base64.b64encode(bytes([self.alg]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id:08x}+{material}"

    @classmethod
    def from_vkey(cls: type[V], text: str) -> V:
        """Parse a vkey; :class:`NoteVerifier` accepts alg 0x01 and 0x04, subclasses theirs.

        The key id in the text must match the one computed from the name and key.
        """
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteKeyInvalid("a vkey is name+keyid+key")
        name, hex_id, material = parts
        check_key_name(name)
        if not _HEX8.match(hex_id):
            raise NoteKeyInvalid("a vkey's key id is 8 lowercase hex digits")
        raw = _b64decode_canonical(material, "the vkey's key", NoteKeyInvalid)
        if not raw:
            raise NoteKeyInvalid("the vkey has no key material")
        kind = _VERIFIER_KINDS.get(raw[0])
        if kind is None or not issubclass(kind, cls):
            raise NoteKeyInvalid(f"vkey algorithm 0x{raw[0]:02x} is not supported here")
        verifier = kind(name, raw[1:])
        if f"{verifier.key_id:08x}" != hex_id:
            raise NoteKeyInvalid("the vkey's key id does not match its name and key")
        assert isinstance(verifier, cls)
        return verifier

    def signed_message(self, body: bytes, signature: bytes) -> tuple[bytes, bytes]:
        """(message, raw Ed25519 signature) that ``signature`` (after the key id) covers."""
        if len(signature) != 64:
            raise NoteSignatureInvalid(f"signature by {self.name} is not 64 bytes")
        return body, signature

    def verify(self, body: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (the bytes after the key id) signs ``body``."""
        try:
            message, raw = self.signed_message(body, signature)
            self._key.verify(raw, message)
        except (NoteError, _CryptoInvalidSignature):
            return False
        return True


class CosignatureV1Verifier(NoteVerifier):
    """A witness's tlog-cosignature/v1 key (alg 0x04): signatures carry a timestamp."""

    alg: ClassVar[int] = ALG_COSIGNATURE_V1

    def signed_message(self, body: bytes, signature: bytes) -> tuple[bytes, bytes]:
        if len(signature) != 8 + 64:
            raise CosignatureInvalid(f"cosignature by {self.name} is not 72 bytes")
        timestamp = struct.unpack(">Q", signature[:8])[0]
        if timestamp > MAX_TIMESTAMP:
            raise CosignatureInvalid("cosignature timestamp exceeds 2^63-1")
        return cosignature_message(body, timestamp), signature[8:]


_VERIFIER_KINDS: dict[int, type[NoteVerifier]] = {
    ALG_ED25519: NoteVerifier,
    ALG_COSIGNATURE_V1: CosignatureV1Verifier,
}

Ed25519Verifier = NoteVerifier


def cosignature_message(body: bytes, timestamp: int) -> bytes:
    """The bytes a cosignature/v1 signs: header, ``time <ts>`` and the checkpoint body."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise CosignatureInvalid("cosignature timestamp out of range")
    return _COSIGNATURE_HEADER + f"time {timestamp}\n".encode() + body


# --- signers --------------------------------------------------------------------------


class NoteSigner:
    """An Ed25519 (alg 0x01) note signer: ``NoteSigner(name, private_key)``.

    ``private_key`` is the 32-byte RFC 8032 seed or a ``cryptography`` private key.
    The key is kept private: ``repr`` shows only the vkey.
    """

    alg: ClassVar[int] = ALG_ED25519
    verifier_class: ClassVar[type[NoteVerifier]] = NoteVerifier

    def __init__(self, name: str, private_key: bytes | Ed25519PrivateKey) -> None:
        if isinstance(private_key, Ed25519PrivateKey):
            self._key = private_key
        else:
            seed = bytes(private_key)
            if len(seed) != 32:
                raise NoteKeyInvalid("an Ed25519 private key (seed) is 32 bytes")
            self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self._verifier = self.verifier_class(name, self._key.public_key())
        self.name = self._verifier.name
        self.public_key = self._verifier.public_key
        self.key_id = self._verifier.key_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vkey()!r})"

    @classmethod
    def generate(cls: type[S], name: str) -> S:
        """A fresh random key (``os.urandom`` via OpenSSL)."""
        return cls(name, Ed25519PrivateKey.generate())

    def verifier(self) -> NoteVerifier:
        return self._verifier

    def vkey(self) -> str:
        return self._verifier.vkey()

    def skey(self) -> str:
        """The private key text ``PRIVATE+KEY+name+hex(id)+base64(alg || seed)``: a secret."""
        seed = self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        material = base64.b64encode(bytes([self.alg]) + seed).decode("ascii")
        return f"{SKEY_PREFIX}{self.name}+{self.key_id:08x}+{material}"

    @classmethod
    def from_skey(cls: type[S], text: str) -> S:
        """Parse a private key text of this class's algorithm (id checked against the key).

        Messages never quote the text.
        """
        text = text.strip()
        if not text.startswith(SKEY_PREFIX):
            raise NoteKeyInvalid("a note private key starts with PRIVATE+KEY+")
        parts = text[len(SKEY_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise NoteKeyInvalid("a note private key is PRIVATE+KEY+name+keyid+key")
        name, hex_id, material = parts
        check_key_name(name)
        if not _HEX8.match(hex_id):
            raise NoteKeyInvalid("a note private key's key id is 8 lowercase hex digits")
        raw = _b64decode_canonical(material, "the private key", NoteKeyInvalid)
        if len(raw) != 33 or raw[0] != cls.alg:
            raise NoteKeyInvalid(f"not an alg 0x{cls.alg:02x} Ed25519 private key")
        signer = cls(name, raw[1:])
        if f"{signer.key_id:08x}" != hex_id:
            raise NoteKeyInvalid("the private key's key id does not match its name and key")
        return signer

    def sign(self, body: bytes) -> bytes:
        """The signature bytes after the key id (Ed25519 over the note text)."""
        return self._key.sign(body)

    def _sign_raw(self, message: bytes) -> bytes:
        return self._key.sign(message)


class CosignatureV1Signer(NoteSigner):
    """A witness's tlog-cosignature/v1 signer (alg 0x04); see :func:`cosign`."""

    alg: ClassVar[int] = ALG_COSIGNATURE_V1
    verifier_class: ClassVar[type[NoteVerifier]] = CosignatureV1Verifier

    def verifier(self) -> CosignatureV1Verifier:
        assert isinstance(self._verifier, CosignatureV1Verifier)
        return self._verifier

    def sign(self, body: bytes) -> bytes:
        raise NoteError("a cosignature needs a timestamp: use cosign() or sign_at()")

    def sign_at(self, body: bytes, timestamp: int) -> bytes:
        """``u64 timestamp || Ed25519(cosignature/v1 message)``, the bytes after the key id."""
        message = cosignature_message(body, timestamp)
        return struct.pack(">Q", timestamp) + self._sign_raw(message)


Ed25519Signer = NoteSigner


# --- notes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line. ``timestamp`` is set on verified cosignatures only."""

    name: str
    key_id: int
    signature: bytes  # after the 4-byte key id
    timestamp: int | None = None

    def line(self) -> str:
        """The line as it stands in a note, with its final newline."""
        blob = base64.b64encode(self.key_id.to_bytes(4, "big") + self.signature)
        return f"{SIG_PREFIX}{self.name} {blob.decode('ascii')}\n"


def _check_text(data: bytes) -> str:
    """Valid UTF-8 without control characters other than newline (signed-note: Format)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("note is not valid UTF-8") from None
    for ch in text:
        if (ord(ch) < 0x20 and ch != "\n") or ch == "\x7f":
            raise NoteError(f"note contains control character U+{ord(ch):04X}")
    return text


def check_body(body: bytes) -> str:
    """A note text: UTF-8, no control characters but newline, non-empty, ends in newline."""
    if len(body) > MAX_NOTE_BYTES:
        raise NoteTooLarge("note text is too large")
    text = _check_text(body)
    if not text.endswith("\n"):
        raise NoteError("note text does not end with a newline")
    return text


def parse_signature_line(line: str) -> NoteSignature:
    """Parse ``— <name> <base64(key id || sig)>`` (with or without its final newline)."""
    if line.endswith("\n"):
        line = line[:-1]
    if "\n" in line:
        raise NoteError("a signature line holds one line")
    if not line.startswith(SIG_PREFIX):
        raise NoteError("a signature line starts with an em dash (U+2014) and a space")
    rest = line[len(SIG_PREFIX) :]
    name, sep, blob_text = rest.partition(" ")
    if not sep or not blob_text:
        raise NoteError("a signature line is '— <name> <base64>'")
    try:
        check_key_name(name)
    except NoteKeyInvalid as exc:
        raise NoteError(f"signature line: {exc.message}") from None
    blob = _b64decode_canonical(blob_text, "signature", NoteError)
    if len(blob) < 5:
        raise NoteError("a signature is the 4-byte key id and at least one byte")
    return NoteSignature(name, int.from_bytes(blob[:4], "big"), blob[4:])


def parse_note(note: bytes) -> tuple[bytes, list[NoteSignature]]:
    """Split a signed note into its text and signature lines, verifying nothing.

    The text is everything up to and including the newline before the LAST blank
    line; after it come 1..MAX_SIGNATURES signature lines, each newline-terminated.
    """
    if len(note) > MAX_NOTE_BYTES:
        raise NoteTooLarge("note is too large")
    text = _check_text(note)
    split = text.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    body, sig_text = text[: split + 1], text[split + 2 :]
    if not sig_text:
        raise NoteError("note has no signature lines")
    if not sig_text.endswith("\n"):
        raise NoteError("note's last signature line does not end with a newline")
    lines = sig_text[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteTooLarge(f"note has more than {MAX_SIGNATURES} signature lines")
    return body.encode("utf-8"), [parse_signature_line(line) for line in lines]


def sign_note(body: bytes, signers: Sequence[NoteSigner] | NoteSigner) -> bytes:
    """``body`` + blank line + one signature line per (Ed25519 note) signer.

    Cosignature signers need a timestamp: add their lines with :func:`cosign`.
    """
    check_body(body)
    if isinstance(signers, NoteSigner):
        signers = [signers]
    if not signers:
        raise NoteError("a signed note needs at least one signer")
    if len(signers) > MAX_SIGNATURES:
        raise NoteTooLarge(f"more than {MAX_SIGNATURES} signers")
    lines = [NoteSignature(s.name, s.key_id, s.sign(body)).line() for s in signers]
    return body + b"\n" + "".join(lines).encode("utf-8")


def open_note(
    note: bytes,
    verifiers: Iterable[NoteVerifier],
    *,
    known_only: bool = False,
) -> tuple[bytes, list[NoteSignature], list[NoteSignature]]:
    """Parse and verify a signed note: ``(body, verified, unknown)``.

    A signature whose (name, key id) matches a verifier MUST verify, else the whole
    note is rejected (:class:`NoteSignatureInvalid`); at least one must be known and
    valid (:class:`NoteUnverified`). Signatures from other keys are returned in
    ``unknown`` unchecked (the spec says to ignore them), or with ``known_only`` make
    the note fail (:class:`NoteUnknownSignature`). Repeated lines from one key count
    once: the first valid one. Verified cosignatures carry their ``timestamp``.
    """
    body, signatures = parse_note(note)
    known: dict[tuple[str, int], NoteVerifier] = {}
    for trusted in verifiers:
        known[(trusted.name, trusted.key_id)] = trusted
    verified: list[NoteSignature] = []
    unknown: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    seen_unknown: set[NoteSignature] = set()
    for sig in signatures:
        ident = (sig.name, sig.key_id)
        verifier = known.get(ident)
        if verifier is None:
            if known_only:
                raise NoteUnknownSignature(f"note carries a signature from unknown key {sig.name}")
            if sig not in seen_unknown:
                seen_unknown.add(sig)
                unknown.append(sig)
            continue
        if not verifier.verify(body, sig.signature):
            raise NoteSignatureInvalid(
                f"signature from {sig.name}+{sig.key_id:08x} does not verify",
            )
        if ident in seen:
            continue
        seen.add(ident)
        timestamp = None
        if isinstance(verifier, CosignatureV1Verifier):
            timestamp = struct.unpack(">Q", sig.signature[:8])[0]
        verified.append(NoteSignature(sig.name, sig.key_id, sig.signature, timestamp))
    if not verified:
        raise NoteUnverified("no signature on the note is from a trusted key")
    return body, verified, unknown


# --- checkpoints ----------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint note body: origin, tree size, RFC 6962 root, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise CheckpointMalformed("checkpoint origin must be one non-empty line")
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointMalformed("checkpoint size out of range")
        if len(self.root) != 32:
            raise CheckpointMalformed("checkpoint root must be a 32-byte SHA-256 hash")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise CheckpointMalformed("checkpoint extension lines must be non-empty lines")

    def body(self) -> bytes:
        """The note text, every line newline-terminated."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        text = "\n".join([*lines, *self.extensions]) + "\n"
        check_body(text.encode("utf-8"))
        return text.encode("utf-8")

    @classmethod
    def parse(cls, body: bytes) -> Checkpoint:
        """Parse a checkpoint note text (not a signed note: see :func:`open_checkpoint`)."""
        try:
            text = check_body(body)
        except NoteError as exc:
            raise CheckpointMalformed(f"checkpoint: {exc.message}") from None
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointMalformed("a checkpoint has an origin, a size and a root line")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise CheckpointMalformed("checkpoint origin is empty")
        if not _DECIMAL.match(size_text):
            raise CheckpointMalformed("checkpoint size is not a decimal without leading zeros")
        size = int(size_text)
        root = _b64decode_canonical(root_text, "checkpoint root", CheckpointMalformed)
        if any(not ext for ext in extensions):
            raise CheckpointMalformed("checkpoint extension lines must be non-empty")
        return cls(origin, size, root, tuple(extensions))


def open_checkpoint(
    note: bytes, log_verifier: NoteVerifier, cosigners: Iterable[NoteVerifier] = ()
) -> tuple[Checkpoint, list[NoteSignature]]:
    """Open a log's checkpoint note: it must verify under ``log_verifier`` and its origin
    must equal that key's name (tlog-checkpoint: SHOULD match; Tally requires it).

    Returns the checkpoint and the cosignatures of ``cosigners`` that verified.
    """
    cosigners = list(cosigners)
    body, verified, _ = open_note(note, [log_verifier, *cosigners])
    checkpoint = Checkpoint.parse(body)
    if checkpoint.origin != log_verifier.name:
        raise CheckpointMalformed("checkpoint origin is not the log key's name")
    if not any(s.name == log_verifier.name and s.key_id == log_verifier.key_id for s in verified):
        raise NoteUnverified("the checkpoint is not signed by the log's key")
    cosigned = [s for s in verified if s.timestamp is not None]
    return checkpoint, cosigned


# --- cosignatures ---------------------------------------------------------------------


def cosign(checkpoint_body: bytes, signer: CosignatureV1Signer, timestamp: int) -> str:
    """A cosignature/v1 signature line (with its final newline) over a checkpoint body."""
    if not isinstance(signer, CosignatureV1Signer):
        raise NoteError("cosign() needs a CosignatureV1Signer (alg 0x04)")
    Checkpoint.parse(checkpoint_body)
    sig = signer.sign_at(checkpoint_body, timestamp)
    return NoteSignature(signer.name, signer.key_id, sig).line()


def verify_cosignature(
    line: str | bytes,
    body: bytes,
    verifier: CosignatureV1Verifier,
    *,
    not_after: int | None = None,
) -> int:
    """Check one cosignature line over ``body`` by ``verifier``; return its timestamp.

    ``not_after`` (a POSIX time) rejects timestamps in the future beyond it.
    """
    if not isinstance(verifier, CosignatureV1Verifier):
        raise CosignatureInvalid("the witness key is not a cosignature/v1 (alg 0x04) key")
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise CosignatureInvalid("cosignature line is not valid UTF-8") from None
    try:
        _check_text(line.encode("utf-8"))
        sig = parse_signature_line(line)
    except NoteError as exc:
        raise CosignatureInvalid(f"cosignature line: {exc.message}") from None
    if sig.name != verifier.name or sig.key_id != verifier.key_id:
        raise CosignatureInvalid("cosignature line is from another key (name or key id)")
    Checkpoint.parse(body)
    try:
        verifier.signed_message(body, sig.signature)  # length and timestamp range
    except NoteError as exc:
        raise CosignatureInvalid(exc.message) from None
    if not verifier.verify(body, sig.signature):
        raise CosignatureInvalid(f"cosignature by {verifier.name} does not verify")
    timestamp: int = struct.unpack(">Q", sig.signature[:8])[0]
    if not_after is not None and timestamp > not_after:
        raise CosignatureInvalid("cosignature timestamp is in the future")
    return timestamp


__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "Checkpoint",
    "CheckpointMalformed",
    "CosignatureInvalid",
    "CosignatureV1Signer",
    "CosignatureV1Verifier",
    "Ed25519Signer",
    "Ed25519Verifier",
    "NoteError",
    "NoteKeyInvalid",
    "NoteSignature",
    "NoteSignatureInvalid",
    "NoteSigner",
    "NoteTooLarge",
    "NoteUnknownSignature",
    "NoteUnverified",
    "NoteVerifier",
    "check_body",
    "cosign",
    "cosignature_message",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_note",
    "parse_signature_line",
    "sign_note",
    "verify_cosignature",
]
