"""Providers of other data spaces: their standing in their home space's registry.

A cross-space agreement (an ``AgreementV2`` with ``homeChainId``/``homeRegistry`` set)
names the providers' home space: the chain id and ParticipantRegistry of the space
they are registered in. This space accepts such an agreement only when its network
config lists that space under ``[[home_spaces]]`` (:class:`~service.chain.config.HomeSpaceRef`:
another chain-config network for the chain, the registry's address, a cache time).

:class:`HomeSpaces` answers "is this address an active provider over there?" from the
home registry on the home chain (``participant(address)``: registered, provider role,
not suspended). Answers are cached per home space for its ``cache_s`` (default 10 s):
a suspension in the home space is seen here within that time, and so is a
reinstatement. A home chain that cannot be read is :class:`HomeSpaceUnreachable`
(retryable, never cached: the next call tries again, reconnecting first); a home space
that is not configured is :class:`HomeSpaceUnknown`.

Connections are opened lazily (this space starts even while a home chain is down) and
dropped after a failure. The home network must be an RPC network: an embedded chain
lives inside another process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from web3.exceptions import Web3Exception

from service.chain.client import Chain
from service.chain.config import HomeSpaceRef, NetworkConfig, load_network
from service.errors import (
    ChainError,
    ConfigError,
    HomeSpaceUnknown,
    HomeSpaceUnreachable,
    ProviderNotActiveInHomeSpace,
)
from service.evidence.directory import PROVIDER, STATUS_ACTIVE, STATUS_NONE, STATUS_SUSPENDED

__all__ = ["HomeSpace", "HomeSpaces", "HomeStanding", "home_key"]

log = logging.getLogger(__name__)

MAX_CACHED = 100_000  # standings kept per home space at most (cleared when it grows past)
HOME_RPC_TIMEOUT_S = 5.0  # per request to a home chain (a slow home must not stall ingest)
_STATUS = {STATUS_NONE: "unregistered", STATUS_ACTIVE: "active", STATUS_SUSPENDED: "suspended"}


def home_key(chain_id: int, registry: str) -> tuple[int, str]:
    """How a home space is looked up: (chain id, registry address in lower case)."""
    return int(chain_id), str(registry).lower()


@dataclass(frozen=True)
class HomeStanding:
    """One address as its home registry said, and when (monotonic clock)."""

    address: str
    roles: int
    status: str  # "active" | "suspended" | "unregistered"
    read_at: float

    @property
    def active_provider(self) -> bool:
        return self.status == "active" and bool(self.roles & PROVIDER)


class HomeSpace:
    """One foreign space: its chain (connected on first use) and its registry."""

    def __init__(
        self,
        *,
        network: NetworkConfig,
        registry: str,
        cache_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if network.kind != "rpc":
            raise ConfigError(
                f"home space network {network.name!r} must be an RPC network (an embedded "
                "chain lives inside another process)"
            )
        self.network = network
        self.chain_id = network.chain_id
        self.registry = registry
        self.cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._chain: Chain | None = None
        self._cache: dict[str, HomeStanding] = {}

    def describe(self) -> str:
        return f"home space {self.network.name} (chain {self.chain_id}, registry {self.registry})"

    def _connected(self) -> Chain:
        with self._lock:
            chain = self._chain
        if chain is None:
            chain = Chain.connect(self.network, accounts=[], timeout_s=HOME_RPC_TIMEOUT_S)
            with self._lock:
                self._chain = chain
        return chain

    def standing(self, address: str) -> HomeStanding:
        """``address`` in the home registry (cached for ``cache_s``);
        :class:`HomeSpaceUnreachable` when the home chain cannot be read.

        The lock guards the cache and the connection only: a slow or dead home chain
        holds up the callers that need it, not the cache hits of other threads."""
        now = self._clock()
        with self._lock:
            hit = self._cache.get(address)
        if hit is not None and now - hit.read_at < self.cache_s:
            return hit
        try:
            chain = self._connected()
            registry = chain.contract("ParticipantRegistry", self.registry)
            roles, status, *_ = chain.call(registry.functions.participant(address))
        except (ChainError, Web3Exception, OSError) as err:
            with self._lock:
                self._chain = None  # reconnect (and re-probe the chain id) next time
            # the caller sees the error's code only: a node URL may carry an API key
            reason = err.code if isinstance(err, ChainError) else type(err).__name__
            log.warning("%s cannot be read: %s", self.describe(), err)
            raise HomeSpaceUnreachable(
                f"{self.describe()} cannot be read now ({reason}); nothing was stored, retry later"
            ) from None
        found = HomeStanding(address, int(roles), _STATUS.get(int(status), "unregistered"), now)
        if self.cache_s > 0:
            with self._lock:
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
                self._cache[address] = found
        return found

    def require_provider(self, address: str, what: str = "provider") -> HomeStanding:
        """The standing of an active provider; :class:`ProviderNotActiveInHomeSpace` else."""
        found = self.standing(address)
        if not found.active_provider:
            why = (
                found.status if found.status != "active" else "active but without the provider role"
            )
            raise ProviderNotActiveInHomeSpace(
                f"{what} {address} is not an active provider in its {self.describe()}: {why}"
            )
        return found

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()


class HomeSpaces:
    """The home spaces one space accepts, by (chain id, registry)."""

    def __init__(self, spaces: Iterable[HomeSpace] = ()) -> None:
        self._by_key: dict[tuple[int, str], HomeSpace] = {}
        for space in spaces:
            key = home_key(space.chain_id, space.registry)
            if key in self._by_key:
                raise ConfigError(
                    f"home space chain {key[0]} registry {space.registry} is listed twice"
                )
            self._by_key[key] = space

    @classmethod
    def from_network(cls, network: NetworkConfig, *, config_dir: Path | None = None) -> HomeSpaces:
        """The ``[[home_spaces]]`` of ``network``, their networks loaded from chain-config."""
        return cls(_load(ref, config_dir) for ref in network.home_spaces)

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[HomeSpace]:
        return iter(self._by_key.values())

    def get(self, chain_id: int, registry: str) -> HomeSpace:
        """The configured home space; :class:`HomeSpaceUnknown` when it is not one."""
        found = self._by_key.get(home_key(chain_id, registry))
        if found is None:
            raise HomeSpaceUnknown(
                f"home space chain {chain_id} registry {registry} is not one this space "
                "accepts (its network config lists them under [[home_spaces]])"
            )
        return found


def _load(ref: HomeSpaceRef, config_dir: Path | None) -> HomeSpace:
    return HomeSpace(
        network=load_network(ref.network, config_dir=config_dir),
        registry=ref.registry,
        cache_s=ref.cache_s,
    )
