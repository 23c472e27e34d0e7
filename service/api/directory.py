"""Who is calling: roles and standing of addresses, read from the ParticipantRegistry.

:class:`LiveDirectory` reads the registry contract (the same answers as
:class:`service.evidence.directory.ChainDirectory`) and keeps each answer for
``ttl_s`` seconds, shared by all requests of the process: authentication and evidence
ingest both ask it, so neither an authenticated request nor a batch costs three RPC
calls per party (measured on anvil: the reads were half of a 100-receipt batch's time).
A suspension or role change therefore takes effect within ``ttl_s``
(``TALLY_ROLE_CACHE_S``, default 5; 0 reads the registry on every request); sign-in
always reads afresh.

Both satisfy :class:`service.evidence.directory.Directory` (``party(address)``), the
seam where the indexer's SQL mirror can replace the chain reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from web3.contract import Contract

from service.chain.client import Chain
from service.evidence.directory import (
    CONSUMER,
    PROVIDER,
    SERVICE,
    STATUS_ACTIVE,
    STATUS_NONE,
    STATUS_SUSPENDED,
    Party,
)

ROLE_BITS = {"provider": PROVIDER, "consumer": CONSUMER, "service": SERVICE}
MAX_CACHED = 100_000  # addresses kept at most (the cache is cleared when it grows past)


def role_names(party: Party) -> list[str]:
    """The roles of ``party`` by name, in a fixed order."""
    names = [n for n in ("operator", "auditor") if getattr(party, n)]
    names.extend(n for n, bit in ROLE_BITS.items() if party.roles & bit)
    return names


@dataclass(frozen=True)
class ParticipantRecord:
    """A registry record: the :class:`Party` plus identity and registration facts."""

    party: Party
    status: str  # "active" | "suspended" | "unregistered"
    identity_hash: str
    metadata_uri: str
    registered_block: int


_STATUS = {STATUS_NONE: "unregistered", STATUS_ACTIVE: "active", STATUS_SUSPENDED: "suspended"}


class LiveDirectory:
    """Registry reads with a per-process time-to-live cache (see the module docstring)."""

    def __init__(
        self,
        chain: Chain,
        registry: Contract,
        *,
        ttl_s: float,
        guard: AbstractContextManager[object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._chain = chain
        self._registry = registry
        self._ttl = ttl_s
        self._guard: AbstractContextManager[object] = guard or nullcontext()
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Party]] = {}
        self._gates: dict[str, threading.Lock] = {}  # one registry read per address at a time
        with self._guard:
            self._auditor_role = chain.call(registry.functions.AUDITOR_ROLE())
            self._operator_role = chain.call(registry.functions.OPERATOR_ROLE())

    def record(self, address: str) -> ParticipantRecord:
        """Read the registry now (no cache): roles, standing, identity, metadata."""
        fns = self._registry.functions
        with self._guard:
            roles, status, registered_at, identity, uri = self._chain.call(fns.participant(address))
            auditor = bool(self._chain.call(fns.hasRole(self._auditor_role, address)))
            operator = bool(self._chain.call(fns.hasRole(self._operator_role, address)))
        party = Party(
            address=address,
            roles=int(roles),
            registered=int(status) != STATUS_NONE,
            active=int(status) == STATUS_ACTIVE,
            auditor=auditor,
            operator=operator,
        )
        return ParticipantRecord(
            party=party,
            status=_STATUS.get(int(status), "unregistered"),
            identity_hash="0x" + bytes(identity).hex(),
            metadata_uri=str(uri),
            registered_block=int(registered_at),
        )

    def cached(self, address: str) -> Party | None:
        """The cached party when it is younger than ``ttl_s`` (None: ask :meth:`party`)."""
        if self._ttl <= 0:
            return None
        with self._lock:
            hit = self._cache.get(address)
        if hit is not None and self._clock() - hit[0] < self._ttl:
            return hit[1]
        return None

    def party(self, address: str) -> Party:
        """The party, from the cache when it is younger than ``ttl_s``.

        When an answer expires, one thread reads the registry again and the others
        asking for the same address wait for its answer: before, every route thread
        that missed at the same moment made its own three calls (py-spy: 6% of a
        GET /v1/receipts load's samples were such reads)."""
        hit = self.cached(address)
        if hit is not None:
            return hit
        if self._ttl <= 0:
            return self.record(address).party
        with self._lock:
            gate = self._gates.setdefault(address, threading.Lock())
        with gate:
            hit = self.cached(address)  # another thread may have read it meanwhile
            if hit is not None:
                return hit
            now = self._clock()
            party = self.record(address).party
            with self._lock:
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
                    self._gates.clear()
                self._cache[address] = (now, party)
        return party

    def forget(self, address: str | None = None) -> None:
        """Drop one cached answer (or all of them)."""
        with self._lock:
            if address is None:
                self._cache.clear()
            else:
                self._cache.pop(address, None)
