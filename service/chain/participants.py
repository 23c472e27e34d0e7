"""Admitting, suspending and reinstating participants on the ParticipantRegistry.

The operator's tools (``tally participants``, ``POST /v1/participants``) call these
functions; they check everything they can before sending (a well-formed address, known
role names, the registry's current record, the sender's OPERATOR_ROLE), so bad input
changes nothing and gets a specific :class:`~service.errors.TallyError`, and map the
registry's custom errors to the same errors when a race gets past the checks.

Roles by name: ``provider`` (1), ``consumer`` (2), ``service`` (4) are the registry's
per-participant bitmask; ``operator``, ``auditor`` and ``arbiter`` are AccessControl
roles granted with ``grantRole`` (reported, not set, here).

An identity is given as ``0x`` + 64 hex digits (the identity hash itself) or as any
other text (a DID, a legal identifier), whose keccak256 over UTF-8 is the hash; none
gives the zero hash.

A participants file (``--from-file``) is CSV with a header row: ``address`` and
``roles`` are required, ``identity`` and ``metadata_uri`` optional; several roles in one
cell are separated by ``;``, ``|`` or spaces (or by commas inside a quoted cell); lines
starting with ``#`` and blank lines are skipped. The whole file is checked before
anything is sent; a row whose address is already registered with the same roles,
identity and metadata URI is left alone (so a file can be applied again), one
registered differently is refused.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from service.chain.client import Chain
from service.errors import (
    InvalidAddress,
    InvalidInput,
    OperatorKeyUnavailable,
    ParticipantAlreadyRegistered,
    ParticipantAlreadySuspended,
    ParticipantNotFound,
    ParticipantNotSuspended,
    RoleRequired,
    TransactionReverted,
    UnknownRole,
)

ROLE_BITS: dict[str, int] = {"provider": 1, "consumer": 2, "service": 4}
STAFF_ROLES: tuple[str, ...] = ("operator", "auditor", "arbiter")  # AccessControl roles
STATUS_NAMES = {0: "unregistered", 1: "active", 2: "suspended"}
MAX_METADATA_URI = 2048
MAX_IDENTITY_TEXT = 4096
ZERO_HASH = bytes(32)
CSV_COLUMNS = ("address", "roles", "identity", "metadata_uri")

_HEX40 = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX64 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ROLE_SPLIT = re.compile(r"[,;|\s]+")


# --- parsing -----------------------------------------------------------------------------


def parse_address(value: str) -> str:
    """``value`` checksummed; :class:`InvalidAddress` unless it is 0x + 40 hex digits
    (mixed case must be a correct EIP-55 checksum) and not the zero address."""
    text = value.strip()
    if not _HEX40.match(text):
        raise InvalidAddress(f"{text[:50]!r} is not an address (0x followed by 40 hex digits)")
    checksummed = Web3.to_checksum_address(text)
    digits = text[2:]
    if digits not in (digits.lower(), digits.upper()) and text != checksummed:
        raise InvalidAddress(f"{text} has a wrong EIP-55 checksum (a typo?)")
    if int(digits, 16) == 0:
        raise InvalidAddress("the zero address cannot be a participant")
    return checksummed


def parse_roles(value: str | Sequence[str]) -> int:
    """Role names (``"provider,consumer"`` or a list) to the registry's bitmask."""
    names = _ROLE_SPLIT.split(value) if isinstance(value, str) else list(value)
    names = [n.strip().lower() for n in names if n.strip()]
    if not names:
        raise UnknownRole(f"give at least one role: {', '.join(ROLE_BITS)}")
    mask = 0
    for name in names:
        bit = ROLE_BITS.get(name)
        if bit is None:
            hint = (
                " (an AccessControl role: grant it with grantRole)" if name in STAFF_ROLES else ""
            )
            raise UnknownRole(
                f"unknown role {name[:40]!r}{hint}; participant roles are {', '.join(ROLE_BITS)}"
            )
        mask |= bit
    return mask


def role_names(mask: int) -> list[str]:
    """The participant roles of a bitmask, by name, in a fixed order."""
    return [name for name, bit in ROLE_BITS.items() if mask & bit]


def identity_hash(value: str | None) -> bytes:
    """The registry's identity hash for ``value`` (see the module docstring)."""
    if value is None or not value.strip():
        return ZERO_HASH
    text = value.strip()
    if _HEX64.match(text):
        return bytes.fromhex(text[2:])
    if len(text) > MAX_IDENTITY_TEXT:
        raise InvalidInput(f"an identity is at most {MAX_IDENTITY_TEXT} characters")
    return bytes(Web3.keccak(text=text))


def check_metadata_uri(value: str | None) -> str:
    text = (value or "").strip()
    if len(text) > MAX_METADATA_URI:
        raise InvalidInput(f"a metadata URI is at most {MAX_METADATA_URI} characters")
    return text


@dataclass(frozen=True)
class Admission:
    """One participant to register: address, role mask, identity hash, metadata URI."""

    address: str
    roles: int
    identity_hash: bytes
    metadata_uri: str
    source: str = ""  # "participants.csv line 3" when read from a file

    @classmethod
    def parse(
        cls,
        *,
        address: str,
        roles: str | Sequence[str],
        identity: str | None = None,
        metadata_uri: str | None = None,
        source: str = "",
    ) -> Admission:
        return cls(
            address=parse_address(address),
            roles=parse_roles(roles),
            identity_hash=identity_hash(identity),
            metadata_uri=check_metadata_uri(metadata_uri),
            source=source,
        )


def read_admissions(path: Path) -> list[Admission]:
    """The rows of a participants file (see the module docstring); errors name the line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInput(f"no participants file {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput(f"cannot read {path}: {err}") from None
    return parse_admissions(text, name=path.name)


def parse_admissions(text: str, *, name: str = "participants file") -> list[Admission]:
    lines = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise InvalidInput(f"{name}: no header row (columns: {', '.join(CSV_COLUMNS)})")
    rows = list(csv.reader(io.StringIO("\n".join(line for _, line in lines))))
    header = [h.strip().lower() for h in rows[0]]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    missing = [c for c in ("address", "roles") if c not in header]
    if unknown or missing or len(set(header)) != len(header):
        raise InvalidInput(
            f"{name} line {lines[0][0]}: the header must name the columns "
            f"{', '.join(CSV_COLUMNS)} (address and roles required), got {','.join(header)}"
        )
    out: list[Admission] = []
    seen: dict[str, str] = {}
    for (number, _), cells in zip(lines[1:], rows[1:], strict=True):
        where = f"{name} line {number}"
        if len(cells) > len(header):
            raise InvalidInput(f"{where}: {len(cells)} cells, the header has {len(header)}")
        row = dict(zip(header, [c.strip() for c in cells], strict=False))
        try:
            admission = Admission.parse(
                address=row.get("address", ""),
                roles=row.get("roles", ""),
                identity=row.get("identity"),
                metadata_uri=row.get("metadata_uri"),
                source=where,
            )
        except InvalidInput as err:
            raise type(err)(f"{where}: {err.message}") from None
        if admission.address in seen:
            raise InvalidInput(
                f"{where}: {admission.address} is listed already ({seen[admission.address]})"
            )
        seen[admission.address] = where
        out.append(admission)
    if not out:
        raise InvalidInput(f"{name}: no participants below the header")
    return out


# --- reading the registry ----------------------------------------------------------------


@dataclass(frozen=True)
class ParticipantRecord:
    """One address as the registry says now."""

    address: str
    roles_mask: int
    status: str  # "active" | "suspended" | "unregistered"
    identity_hash: str  # 0x + 64 hex
    metadata_uri: str
    registered_block: int
    staff: tuple[str, ...] = ()  # AccessControl roles it holds: operator, auditor, arbiter

    @property
    def registered(self) -> bool:
        return self.status != "unregistered"

    @property
    def roles(self) -> list[str]:
        return [*self.staff, *role_names(self.roles_mask)]

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "roles": self.roles,
            "roles_mask": self.roles_mask,
            "status": self.status,
            "identity_hash": self.identity_hash,
            "metadata_uri": self.metadata_uri,
            "registered_block": self.registered_block,
        }


def _staff_role_ids(chain: Chain, registry: Contract) -> dict[str, bytes]:
    """AccessControl role ids the registry's ABI names (arbiter only where it exists)."""
    fns = {str(f.get("name")) for f in registry.abi if f.get("type") == "function"}
    return {
        name: bytes(chain.call(getattr(registry.functions, f"{name.upper()}_ROLE")()))
        for name in STAFF_ROLES
        if f"{name.upper()}_ROLE" in fns
    }


def read_participant(
    *, chain: Chain, registry: Contract, address: str, staff: dict[str, bytes] | None = None
) -> ParticipantRecord:
    """The registry's record of ``address`` and the staff roles it holds."""
    who = parse_address(address)
    roles, status, registered_at, identity, uri = chain.call(registry.functions.participant(who))
    ids = _staff_role_ids(chain, registry) if staff is None else staff
    held = tuple(
        name for name, role in ids.items() if chain.call(registry.functions.hasRole(role, who))
    )
    return ParticipantRecord(
        address=who,
        roles_mask=int(roles),
        status=STATUS_NAMES.get(int(status), "unregistered"),
        identity_hash="0x" + bytes(identity).hex(),
        metadata_uri=str(uri),
        registered_block=int(registered_at),
        staff=held,
    )


def _addresses_from_events(
    chain: Chain, registry: Contract, *, from_block: int, staff: dict[str, bytes]
) -> set[str]:
    """Every address the registry admitted or granted a staff role, from its events,
    read in ranges of the network's ``max_block_range``."""
    w3 = chain.w3
    head = int(w3.eth.block_number)
    registered = registry.events.ParticipantRegistered()
    granted = registry.events.RoleGranted()
    topics = {
        "0x" + bytes(w3.keccak(text=registered.abi_element_identifier)).hex(): registered,
        "0x" + bytes(w3.keccak(text=granted.abi_element_identifier)).hex(): granted,
    }
    wanted_roles = set(staff.values())
    found: set[str] = set()
    step = max(1, chain.network.max_block_range)
    start = from_block
    while start <= head:
        end = min(head, start + step - 1)
        logs = w3.eth.get_logs({"address": registry.address, "fromBlock": start, "toBlock": end})
        for entry in logs:
            topic0 = "0x" + bytes(entry["topics"][0]).hex() if entry["topics"] else ""
            event = topics.get(topic0)
            if event is None:
                continue
            args = event.process_log(entry)["args"]
            if event is registered:
                found.add(Web3.to_checksum_address(args["participant"]))
            elif bytes(args["role"]) in wanted_roles:
                found.add(Web3.to_checksum_address(args["account"]))
        start = end + 1
    return found


def list_participants(
    *, chain: Chain, registry: Contract, from_block: int, role: str | None = None
) -> list[ParticipantRecord]:
    """Everyone the registry admitted or made staff, as it says now, by address.

    ``role`` keeps those holding it (a participant role or a staff role)."""
    if role is not None and role not in ROLE_BITS and role not in STAFF_ROLES:
        raise UnknownRole(
            f"unknown role {role[:40]!r}; roles are {', '.join([*STAFF_ROLES, *ROLE_BITS])}"
        )
    staff = _staff_role_ids(chain, registry)
    addresses = _addresses_from_events(chain, registry, from_block=from_block, staff=staff)
    records = [
        read_participant(chain=chain, registry=registry, address=a, staff=staff)
        for a in sorted(addresses, key=str.lower)
    ]
    records = [r for r in records if r.registered or r.staff]
    if role is not None:
        records = [r for r in records if role in r.roles]
    return records


# --- changing the registry ---------------------------------------------------------------


@dataclass(frozen=True)
class ParticipantChange:
    """What one admin call did: ``registered``, ``unchanged``, ``suspended`` or
    ``reinstated``; the record after it; the transaction (none when unchanged)."""

    action: str
    participant: ParticipantRecord
    tx_hash: str | None = None
    block: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "participant": self.participant.to_json(),
            "tx_hash": self.tx_hash,
            "block": self.block,
        }


def require_operator_key(operator: LocalAccount | None) -> LocalAccount:
    if operator is None:
        raise OperatorKeyUnavailable(
            "this server has no operator key for its network, so it cannot change the "
            "registry; use `tally participants` where the key is"
        )
    return operator


def _check_operator(chain: Chain, registry: Contract, operator: LocalAccount) -> None:
    role = chain.call(registry.functions.OPERATOR_ROLE())
    if not chain.call(registry.functions.hasRole(role, operator.address)):
        raise RoleRequired(
            f"{operator.address} does not hold OPERATOR_ROLE on the registry "
            f"{registry.address}: only an operator admits, suspends or reinstates"
        )


def _mapped(err: TransactionReverted, address: str) -> Exception:
    """The registry's custom error as the error the pre-checks would have raised."""
    by_name: dict[str, Exception] = {
        "ParticipantRegistryAlreadyRegistered": ParticipantAlreadyRegistered(
            f"{address} is already registered"
        ),
        "ParticipantRegistryNotRegistered": ParticipantNotFound(f"{address} is not registered"),
        "ParticipantRegistryAlreadySuspended": ParticipantAlreadySuspended(
            f"{address} is suspended already"
        ),
        "ParticipantRegistryNotSuspended": ParticipantNotSuspended(
            f"{address} is active, not suspended"
        ),
        "AccessControlUnauthorizedAccount": RoleRequired(
            "the sender does not hold OPERATOR_ROLE on the registry"
        ),
    }
    return by_name.get(err.error_name or "", err)


def _transact(
    chain: Chain, registry: Contract, fn: Any, *, operator: LocalAccount, address: str
) -> tuple[str, int]:
    try:
        receipt = chain.transact(fn, sender=operator)
    except TransactionReverted as err:
        raise _mapped(err, address) from None
    return "0x" + bytes(receipt["transactionHash"]).hex(), int(receipt["blockNumber"])


def _same(record: ParticipantRecord, admission: Admission) -> bool:
    return (
        record.roles_mask == admission.roles
        and record.identity_hash == "0x" + admission.identity_hash.hex()
        and record.metadata_uri == admission.metadata_uri
    )


def register_participant(
    *, chain: Chain, registry: Contract, operator: LocalAccount, admission: Admission
) -> ParticipantChange:
    """Register one participant; :class:`ParticipantAlreadyRegistered` if it is."""
    _check_operator(chain, registry, operator)
    record = read_participant(chain=chain, registry=registry, address=admission.address)
    if record.registered:
        raise ParticipantAlreadyRegistered(
            f"{admission.address} is already registered ({record.status}, roles "
            f"{','.join(role_names(record.roles_mask)) or 'none'})"
        )
    return _register(chain, registry, operator, admission)


def _register(
    chain: Chain, registry: Contract, operator: LocalAccount, admission: Admission
) -> ParticipantChange:
    fn = registry.functions.register(
        admission.address, admission.roles, admission.identity_hash, admission.metadata_uri
    )
    tx_hash, block = _transact(chain, registry, fn, operator=operator, address=admission.address)
    after = read_participant(chain=chain, registry=registry, address=admission.address)
    return ParticipantChange("registered", after, tx_hash, block)


def register_many(
    *,
    chain: Chain,
    registry: Contract,
    operator: LocalAccount,
    admissions: Iterable[Admission],
) -> list[ParticipantChange]:
    """Register every admission, after checking all of them against the registry (see
    the module docstring: same record -> ``unchanged``; a different one -> refused)."""
    _check_operator(chain, registry, operator)
    plan: list[tuple[Admission, ParticipantRecord]] = []
    for admission in admissions:
        record = read_participant(chain=chain, registry=registry, address=admission.address)
        if record.registered and not _same(record, admission):
            where = f"{admission.source}: " if admission.source else ""
            raise ParticipantAlreadyRegistered(
                f"{where}{admission.address} is already registered with other details "
                f"(roles {','.join(role_names(record.roles_mask)) or 'none'}, "
                f"identity {record.identity_hash}, metadata {record.metadata_uri!r})"
            )
        plan.append((admission, record))
    return [
        ParticipantChange("unchanged", record)
        if record.registered
        else _register(chain, registry, operator, admission)
        for admission, record in plan
    ]


def suspend_participant(
    *, chain: Chain, registry: Contract, operator: LocalAccount, address: str
) -> ParticipantChange:
    """Suspend an active participant (it can no longer sign in or be named in entries)."""
    _check_operator(chain, registry, operator)
    record = read_participant(chain=chain, registry=registry, address=address)
    if not record.registered:
        raise ParticipantNotFound(f"{record.address} is not registered")
    if record.status == "suspended":
        raise ParticipantAlreadySuspended(f"{record.address} is suspended already")
    fn = registry.functions.suspend(record.address)
    tx_hash, block = _transact(chain, registry, fn, operator=operator, address=record.address)
    after = read_participant(chain=chain, registry=registry, address=record.address)
    return ParticipantChange("suspended", after, tx_hash, block)


def reinstate_participant(
    *, chain: Chain, registry: Contract, operator: LocalAccount, address: str
) -> ParticipantChange:
    """Make a suspended participant active again."""
    _check_operator(chain, registry, operator)
    record = read_participant(chain=chain, registry=registry, address=address)
    if not record.registered:
        raise ParticipantNotFound(f"{record.address} is not registered")
    if record.status != "suspended":
        raise ParticipantNotSuspended(f"{record.address} is active, not suspended")
    fn = registry.functions.reinstate(record.address)
    tx_hash, block = _transact(chain, registry, fn, operator=operator, address=record.address)
    after = read_participant(chain=chain, registry=registry, address=record.address)
    return ParticipantChange("reinstated", after, tx_hash, block)
