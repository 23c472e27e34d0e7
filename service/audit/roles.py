"""Registry roles at any past block, replayed from the registry's own events.

An auditor must know who held which role when evidence was anchored. Reading the
registry's storage at an old block (``eth_call`` with a block number) needs an archive
node; most public and consortium nodes keep only recent state. The registry emits an
event for every change, and logs are kept by every full node, so this module fetches the
registry's logs (``eth_getLogs`` on its address, from its deployment block, in ranges
that halve when the node refuses them) and replays them:

- ``ParticipantRegistered(participant, roles, …)``: roles set, status active;
- ``ParticipantUpdated(participant, roles, …)``: roles replaced;
- ``ParticipantSuspended`` / ``ParticipantReinstated``: status suspended / active;
- ``RoleGranted(role, account, …)`` / ``RoleRevoked``: AccessControl roles (operator,
  auditor, arbiter, admin).

The state "at block b" is the state after every log of blocks ``<= b`` (what an
``eth_call`` at block b reads). Nothing here reads state at a past block: the RPCs are
``eth_getLogs`` and a block header (to notice a reorganised chain). Logs are read only
from the given registry address, which the caller must have pinned (a registry deployed
by anyone else tells a story of its own).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from web3.contract import Contract
from web3.exceptions import BlockNotFound, Web3RPCError

from service.chain.client import Chain, _retry
from service.errors import RpcUnavailable
from service.evidence.directory import STATUS_ACTIVE, STATUS_NONE, STATUS_SUSPENDED
from service.indexer.decode import event_topic

__all__ = ["RegistryHistory", "RegistryView"]

_EVENTS = (
    "ParticipantRegistered",
    "ParticipantUpdated",
    "ParticipantSuspended",
    "ParticipantReinstated",
    "RoleGranted",
    "RoleRevoked",
)


@dataclass(frozen=True)
class _Change:
    block: int
    event: str
    args: Mapping[str, Any]


@dataclass
class RegistryView:
    """The registry's participants and AccessControl roles after one block."""

    block: int
    parties: dict[str, tuple[int, int]] = field(default_factory=dict)  # roles, status
    roles: set[tuple[bytes, str]] = field(default_factory=set)

    def party(self, address: str) -> tuple[int, int]:
        """(roles bitmask, status) of ``address``; (0, STATUS_NONE) when never registered."""
        return self.parties.get(address.lower(), (0, STATUS_NONE))

    def has(self, role: bytes, address: str) -> bool:
        """Whether ``address`` holds the AccessControl ``role``."""
        return (bytes(role), address.lower()) in self.roles

    def with_role(self, address: str, bit: int) -> bool:
        """Registered (active or suspended) with participant role ``bit``."""
        roles, status = self.party(address)
        return status != STATUS_NONE and bool(roles & bit)

    def _apply(self, change: _Change) -> None:
        args = change.args
        if change.event in ("RoleGranted", "RoleRevoked"):
            key = (bytes(args["role"]), str(args["account"]).lower())
            if change.event == "RoleGranted":
                self.roles.add(key)
            else:
                self.roles.discard(key)
            return
        who = str(args["participant"]).lower()
        roles, status = self.parties.get(who, (0, STATUS_NONE))
        if change.event == "ParticipantRegistered":
            roles, status = int(args["roles"]), STATUS_ACTIVE
        elif change.event == "ParticipantUpdated":
            roles = int(args["roles"])
        elif change.event == "ParticipantSuspended":
            status = STATUS_SUSPENDED
        else:  # ParticipantReinstated
            status = STATUS_ACTIVE
        self.parties[who] = (roles, status)


class RegistryHistory:
    """The change log of one registry, fetched once and replayed to any block.

    ``from_block`` is where the registry's logs start (its deployment block; 0 scans the
    whole chain, which is correct but slow on a long one). Logs are fetched lazily up to
    the highest block asked for, in ranges of the network's ``max_block_range`` that
    halve when the node refuses them. One instance may serve many audits (and threads):
    before reusing what it fetched it checks that the last fetched block still has the
    hash it had, and starts over when the chain was reorganised (or a dev chain reverted).
    """

    def __init__(self, chain: Chain, registry: Contract, *, from_block: int = 0) -> None:
        self._chain = chain
        self._registry = registry
        self._from = from_block
        self._fetched_to = from_block - 1
        self._fetched_hash: bytes | None = None  # of block _fetched_to
        self._changes: list[_Change] = []
        self._lock = threading.Lock()
        self._by_topic: dict[str, str] = {}
        abi: list[Mapping[str, Any]] = [dict(item) for item in registry.abi]
        for item in abi:
            if item.get("type") == "event" and item.get("name") in _EVENTS:
                self._by_topic[event_topic(item)] = str(item["name"])
        self.requests = 0  # eth_getLogs calls made (for tests and reports)

    @property
    def address(self) -> str:
        return str(self._registry.address)

    def at(self, block: int) -> RegistryView:
        """The registry's state after ``block`` (every log of blocks ``<= block``)."""
        with self._lock:
            if self._fetched_hash is not None and self._block_hash(self._fetched_to) != (
                self._fetched_hash
            ):
                self._fetched_to, self._fetched_hash = self._from - 1, None
                self._changes = []
            self._fetch_to(block)
            view = RegistryView(block=block)
            for change in self._changes:
                if change.block > block:
                    break
                view._apply(change)
        return view

    def _block_hash(self, number: int) -> bytes | None:
        try:
            found = _retry(lambda: self._chain.w3.eth.get_block(number), what=f"block {number}")
        except BlockNotFound:
            return None
        return bytes(found["hash"]) if found.get("hash") is not None else None

    def _fetch_to(self, block: int) -> None:
        before = self._fetched_to
        start = self._fetched_to + 1
        size = max(1, self._chain.network.max_block_range)
        while start <= block:
            end = min(block, start + size - 1)
            try:
                logs = self._get_logs(start, end)
            except Web3RPCError as err:  # "range too large", "too many results", …
                if end == start:
                    raise RpcUnavailable(
                        f"the node refuses the registry's logs of block {start}: {err}"
                    ) from None
                size = max(1, (end - start + 1) // 2)
                continue
            self._changes.extend(self._decode(logs))
            self._fetched_to, start = end, end + 1
        if self._fetched_to >= self._from and self._fetched_to != before:
            self._fetched_hash = self._block_hash(self._fetched_to)

    def _get_logs(self, start: int, end: int) -> Sequence[Any]:
        self.requests += 1
        return _retry(
            lambda: self._chain.w3.eth.get_logs(
                {"address": self._registry.address, "fromBlock": start, "toBlock": end}
            ),
            what=f"registry logs {start}..{end}",
        )

    def _decode(self, logs: Sequence[Any]) -> list[_Change]:
        out: list[_Change] = []
        for raw in sorted(logs, key=lambda lg: (int(lg["blockNumber"]), int(lg["logIndex"]))):
            if not raw["topics"]:
                continue
            name = self._by_topic.get("0x" + bytes(raw["topics"][0]).hex())
            if name is None:
                continue
            event = self._registry.events[name]().process_log(raw)
            out.append(_Change(int(raw["blockNumber"]), name, dict(event["args"])))
        return out
