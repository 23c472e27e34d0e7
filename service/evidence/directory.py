"""Who is who: roles and status of addresses, as the ParticipantRegistry says.

Ingest asks a :class:`Directory`. :class:`ChainDirectory` reads the registry contract
(cached per instance: make one per batch); the indexer's SQL mirror offers the same
interface once it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from web3.contract import Contract

from service.chain.client import Chain

PROVIDER, CONSUMER, SERVICE = 1, 2, 4
STATUS_NONE, STATUS_ACTIVE, STATUS_SUSPENDED = 0, 1, 2


@dataclass(frozen=True)
class Party:
    address: str
    roles: int  # PROVIDER | CONSUMER | SERVICE bitmask; 0 when not registered
    registered: bool
    active: bool
    auditor: bool
    operator: bool


class Directory(Protocol):
    def party(self, address: str) -> Party: ...


class ChainDirectory:
    """Reads the registry contract; one instance caches what it read."""

    def __init__(self, chain: Chain, registry: Contract) -> None:
        self._chain = chain
        self._registry = registry
        self._cache: dict[str, Party] = {}
        self._auditor_role = chain.call(registry.functions.AUDITOR_ROLE())
        self._operator_role = chain.call(registry.functions.OPERATOR_ROLE())

    def party(self, address: str) -> Party:
        found = self._cache.get(address)
        if found is not None:
            return found
        fns = self._registry.functions
        info = self._chain.call(fns.participant(address))
        roles, status = int(info[0]), int(info[1])
        party = Party(
            address=address,
            roles=roles,
            registered=status != STATUS_NONE,
            active=status == STATUS_ACTIVE,
            auditor=bool(self._chain.call(fns.hasRole(self._auditor_role, address))),
            operator=bool(self._chain.call(fns.hasRole(self._operator_role, address))),
        )
        self._cache[address] = party
        return party
