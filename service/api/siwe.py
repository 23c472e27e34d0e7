"""EIP-4361 "Sign-In with Ethereum" messages: build, parse, and the EIP-191 digest.

Written here rather than taken from PyPI on a measured reason: every release of the
``siwe`` package pins an older web3 (``web3<7`` and earlier), and pip's resolver refuses
to install any of them next to Tally's ``web3==8.0.0`` (it reports the conflict and
stops). The part Tally needs is small: the message grammar of EIP-4361 (below) and the
EIP-191 ``personal_sign`` digest; signature recovery is the same low-s secp256k1 code
the evidence log uses (:func:`service.evidence.eip712.recover_signer`).

The message, line by line (LF-separated; optional lines are left out entirely)::

    ${domain} wants you to sign in with your Ethereum account:
    ${address}

    ${statement}

    URI: ${uri}
    Version: 1
    Chain ID: ${chain-id}
    Nonce: ${nonce}
    Issued At: ${issued-at}
    Expiration Time: ${expiration-time}
    Not Before: ${not-before}
    Request ID: ${request-id}
    Resources:
    - ${resources[0]}

Without a statement the address line is followed by two empty lines (the grammar's
``address LF LF [ statement LF ] LF``). ``address`` must be EIP-55 checksummed,
``nonce`` at least 8 ASCII letters or digits, times RFC 3339 date-times.
:func:`parse` accepts exactly this grammar (and refuses anything else with a
:class:`~service.errors.SignInRejected` naming the problem), so ``parse(m.text()) == m``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from service.errors import SignInRejected
from service.evidence.eip712 import keccak256, parse_address

__all__ = ["SiweMessage", "format_time", "parse", "personal_digest"]

_PREAMBLE = " wants you to sign in with your Ethereum account:"
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_NONCE = re.compile(r"^[A-Za-z0-9]{8,}$")
_DOMAIN = re.compile(r"^[A-Za-z0-9.\-_~%!$&'()*+,;=:@\[\]]+$")  # RFC 3986 authority chars
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]*$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_TAGS = (
    ("URI", "uri"),
    ("Version", "version"),
    ("Chain ID", "chain_id"),
    ("Nonce", "nonce"),
    ("Issued At", "issued_at"),
    ("Expiration Time", "expiration_time"),
    ("Not Before", "not_before"),
    ("Request ID", "request_id"),
)
_REQUIRED = {"uri", "version", "chain_id", "nonce", "issued_at"}


def format_time(when: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` and whole seconds (what Tally writes)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str, name: str) -> datetime:
    if not _RFC3339.match(value):
        raise SignInRejected(f"{name} must be an RFC 3339 date-time, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        raise SignInRejected(f"{name} is not a valid date-time: {value!r}") from None
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class SiweMessage:
    """One EIP-4361 message; construction checks every field's form."""

    domain: str
    address: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: str
    statement: str | None = None
    version: str = "1"
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = field(default_factory=tuple)
    scheme: str | None = None  # the optional "https://" before the domain

    def __post_init__(self) -> None:
        if self.scheme is not None and not re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*$", self.scheme):
            raise SignInRejected(f"scheme {self.scheme!r} is not an RFC 3986 scheme")
        if not _DOMAIN.match(self.domain):
            raise SignInRejected(f"domain {self.domain!r} is not an RFC 3986 authority")
        if not _ADDRESS.match(self.address):
            raise SignInRejected("address must be 0x followed by 40 hex digits")
        try:
            checksummed = parse_address(self.address)
        except ValueError as exc:
            raise SignInRejected(f"address: {exc}") from None
        if checksummed != self.address:
            raise SignInRejected("address must be EIP-55 checksummed (EIP-4361)")
        if self.statement is not None and (
            "\n" in self.statement or "\r" in self.statement or not self.statement
        ):
            raise SignInRejected("statement must be one non-empty line")
        if not _URI.match(self.uri):
            raise SignInRejected(f"URI {self.uri!r} is not an RFC 3986 URI")
        if self.version != "1":
            raise SignInRejected(f"version must be 1, got {self.version!r}")
        if type(self.chain_id) is not int or self.chain_id <= 0:
            raise SignInRejected(f"chain ID must be a positive integer, got {self.chain_id!r}")
        if not _NONCE.match(self.nonce):
            raise SignInRejected("nonce must be at least 8 ASCII letters or digits")
        _parse_time(self.issued_at, "Issued At")
        if self.expiration_time is not None:
            _parse_time(self.expiration_time, "Expiration Time")
        if self.not_before is not None:
            _parse_time(self.not_before, "Not Before")
        if self.request_id is not None and ("\n" in self.request_id or "\r" in self.request_id):
            raise SignInRejected("request ID must be one line")
        for res in self.resources:
            if not _URI.match(res):
                raise SignInRejected(f"resource {res!r} is not an RFC 3986 URI")

    @property
    def issued(self) -> datetime:
        return _parse_time(self.issued_at, "Issued At")

    @property
    def expires(self) -> datetime | None:
        if self.expiration_time is None:
            return None
        return _parse_time(self.expiration_time, "Expiration Time")

    @property
    def not_before_time(self) -> datetime | None:
        if self.not_before is None:
            return None
        return _parse_time(self.not_before, "Not Before")

    def text(self) -> str:
        """The message exactly as the wallet shows and signs it."""
        origin = self.domain if self.scheme is None else f"{self.scheme}://{self.domain}"
        lines = [origin + _PREAMBLE, self.address, ""]
        if self.statement is not None:
            lines.append(self.statement)
        lines.append("")
        for tag, attr in _TAGS:
            value = getattr(self, attr)
            if value is not None:
                lines.append(f"{tag}: {value}")
        if self.resources:
            lines.append("Resources:")
            lines.extend(f"- {r}" for r in self.resources)
        return "\n".join(lines)

    def digest(self) -> bytes:
        """The EIP-191 ``personal_sign`` digest of :meth:`text`."""
        return personal_digest(self.text().encode("utf-8"))


def personal_digest(message: bytes) -> bytes:
    """keccak256("\\x19Ethereum Signed Message:\\n" + len(message) + message) (EIP-191 v0x45)."""
    return keccak256(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message)


def parse(text: str) -> SiweMessage:
    """Parse an EIP-4361 message; :class:`SignInRejected` if it does not follow the grammar."""
    if "\r" in text:
        raise SignInRejected("the message must use LF line endings")
    lines = text.split("\n")
    if len(lines) < 8 or not lines[0].endswith(_PREAMBLE):
        raise SignInRejected("not an EIP-4361 message: bad first line")
    domain = lines[0][: -len(_PREAMBLE)]
    scheme: str | None = None
    if "://" in domain:  # the optional scheme
        scheme, domain = domain.split("://", 1)
    address = lines[1]
    if lines[2] != "":
        raise SignInRejected("not an EIP-4361 message: an empty line must follow the address")
    pos = 3
    statement: str | None = None
    if lines[pos] != "":
        statement = lines[pos]
        pos += 1
        if pos >= len(lines) or lines[pos] != "":
            raise SignInRejected("not an EIP-4361 message: an empty line must follow the statement")
    pos += 1
    values: dict[str, str] = {}
    tag_index = 0
    while pos < len(lines) and lines[pos] != "Resources:":
        line = lines[pos]
        for i in range(tag_index, len(_TAGS)):
            tag, attr = _TAGS[i]
            if line.startswith(tag + ": "):
                values[attr] = line[len(tag) + 2 :]
                tag_index = i + 1
                break
        else:
            raise SignInRejected(f"not an EIP-4361 message: unexpected line {line[:40]!r}")
        pos += 1
    resources: list[str] = []
    if pos < len(lines):
        pos += 1  # "Resources:"
        for line in lines[pos:]:
            if not line.startswith("- "):
                raise SignInRejected(f"not an EIP-4361 message: bad resource line {line[:40]!r}")
            resources.append(line[2:])
    missing = _REQUIRED - set(values)
    if missing:
        raise SignInRejected(f"the message lacks {', '.join(sorted(missing))}")
    chain_text = values["chain_id"]
    if not chain_text.isascii() or not chain_text.isdigit() or len(chain_text) > 78:
        raise SignInRejected(f"Chain ID must be a decimal integer, got {chain_text[:40]!r}")
    return SiweMessage(
        domain=domain,
        address=address,
        uri=values["uri"],
        chain_id=int(chain_text),
        nonce=values["nonce"],
        issued_at=values["issued_at"],
        statement=statement,
        version=values["version"],
        expiration_time=values.get("expiration_time"),
        not_before=values.get("not_before"),
        request_id=values.get("request_id"),
        resources=tuple(resources),
        scheme=scheme,
    )
