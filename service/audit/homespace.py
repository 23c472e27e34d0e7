"""The auditor's view of cross-space providers: their standing in their home registry.

A cross-space agreement (``AgreementV2`` with ``homeChainId``/``homeRegistry``) pays
providers registered in another data space. The settlement audit checks them there,
on the home space's chain, which the auditor gives (``--home-rpc``/``--home-network``
and the registry it trusts for that space: ``--home-registry`` or the space's
``[[home_spaces]]`` config). A registry the auditor did not pin is not trusted: an
agreement naming another one fails the check (anyone can deploy a registry).

When: an entry at leaf ``i`` was appended after the checkpoint before the first one
covering it and before that one (the checkpoints' on-chain timestamps). The provider
must be registered with the provider role and active in its home registry at one of
those two times, read on the home chain at its last block at or before each (the home
registry's events replayed by :class:`~service.audit.roles.RegistryHistory`: no archive
node). A suspension and reinstatement both inside that window are not seen. Ingest
read the standing with a cache (``cache_s``), so a receipt accepted from a provider
suspended longer than one checkpoint window before fails here, as it should.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from service.audit.roles import RegistryHistory, RegistryView
from service.chain.client import Chain
from service.chain.config import NetworkConfig, load_network
from service.chain.homespace import home_key
from service.chain.participants import parse_address
from service.errors import ConfigError
from service.evidence.anchor import OnChainCheckpoint
from service.evidence.directory import PROVIDER, STATUS_ACTIVE, STATUS_NONE, STATUS_SUSPENDED

__all__ = ["HomeRegistries", "PinnedHome", "pin_homes"]

_STATUS = {STATUS_NONE: "unregistered", STATUS_ACTIVE: "active", STATUS_SUSPENDED: "suspended"}


@dataclass
class PinnedHome:
    """One home space the auditor trusts: its chain, registry and where its logs start."""

    chain: Chain
    registry: str
    from_block: int = 0
    _history: RegistryHistory | None = None
    _blocks: dict[int, int] = field(default_factory=dict)  # timestamp -> last block <= it
    _views: dict[int, RegistryView] = field(default_factory=dict)

    def describe(self) -> str:
        return f"home space chain {self.chain.chain_id} registry {self.registry}"

    def block_at(self, timestamp: int) -> int:
        """The home chain's last block with a timestamp ``<= timestamp`` (-1: none)."""
        if timestamp not in self._blocks:
            w3 = self.chain.w3
            head = int(self.chain.read(lambda: w3.eth.block_number, what="home head"))

            def ts(n: int) -> int:
                block = self.chain.read(lambda: w3.eth.get_block(n), what=f"home block {n}")
                return int(block["timestamp"])

            lo, hi = -1, head  # invariant: ts(lo) <= timestamp (lo = -1: before genesis)
            if ts(head) <= timestamp:
                lo = head
            else:
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if ts(mid) <= timestamp:
                        lo = mid
                    else:
                        hi = mid
            self._blocks[timestamp] = lo
        return self._blocks[timestamp]

    def view_at(self, block: int) -> RegistryView:
        if block not in self._views:
            if self._history is None:
                contract = self.chain.contract("ParticipantRegistry", self.registry)
                self._history = RegistryHistory(self.chain, contract, from_block=self.from_block)
            self._views[block] = self._history.at(block)
        return self._views[block]


class HomeRegistries:
    """The home spaces given to an audit, by (chain id, registry) (see the module doc)."""

    def __init__(self, homes: Iterable[PinnedHome] = ()) -> None:
        self._by_key = {home_key(h.chain.chain_id, h.registry): h for h in homes}

    def __len__(self) -> int:
        return len(self._by_key)

    def problem(
        self,
        *,
        chain_id: int,
        registry: str,
        address: str,
        leaf_index: int,
        checkpoints: Sequence[OnChainCheckpoint],
    ) -> str | None:
        """Why ``address`` was not an active provider in its home space when leaf
        ``leaf_index`` was appended (None: it was)."""
        home = self._by_key.get(home_key(chain_id, registry))
        if home is None:
            return (
                f"its home space (chain {chain_id}, registry {registry}) was not given to the "
                "audit (--home-rpc/--home-network with the registry it trusts)"
            )
        times = _window(leaf_index, checkpoints)
        seen: list[str] = []
        for when in times:
            block = home.block_at(when)
            roles, status = home.view_at(block).party(address) if block >= 0 else (0, STATUS_NONE)
            if status == STATUS_ACTIVE and roles & PROVIDER:
                return None
            state = _STATUS.get(status, "unregistered")
            if status == STATUS_ACTIVE:
                state = "active without the provider role"
            seen.append(f"{state} at home block {block}")
        return (
            f"was not an active provider in its {home.describe()} when the entry was "
            f"appended ({'; '.join(seen)})"
        )


def _window(leaf_index: int, checkpoints: Sequence[OnChainCheckpoint]) -> list[int]:
    """The timestamps of the first checkpoint covering ``leaf_index`` and of the one
    before it (the entry was appended between them)."""
    ordered = sorted(checkpoints, key=lambda c: c.seq)
    for k, cp in enumerate(ordered):
        if cp.tree_size > leaf_index:
            return [cp.timestamp] + ([ordered[k - 1].timestamp] if k > 0 else [])
    return [ordered[-1].timestamp] if ordered else []


def pin_homes(
    chains: Sequence[Chain],
    *,
    registries: Sequence[str] = (),
    config: NetworkConfig | None = None,
    from_block: int = 0,
) -> list[PinnedHome]:
    """The home spaces an auditor gives: ``chains`` with ``registries`` in the same order,
    or, without registries, each chain's registry from ``config``'s ``[[home_spaces]]``
    (the audited space's network config) by chain id; with no chains at all, every home
    space ``config`` lists (connected now)."""
    if registries and len(registries) != len(chains):
        raise ConfigError(
            f"give one --home-registry per home chain ({len(chains)} chain(s), "
            f"{len(registries)} registr{'y' if len(registries) == 1 else 'ies'})"
        )
    listed = [
        (load_network(ref.network), ref.registry) for ref in (config.home_spaces if config else ())
    ]
    if not chains:
        return [
            PinnedHome(Chain.connect(net, accounts=[]), registry, from_block)
            for net, registry in listed
        ]
    if registries:
        return [
            PinnedHome(c, parse_address(r), from_block)
            for c, r in zip(chains, registries, strict=True)
        ]
    out = []
    for c in chains:
        found = [registry for net, registry in listed if net.chain_id == c.chain_id]
        if len(found) != 1:
            raise ConfigError(
                f"home chain {c.chain_id}: give --home-registry (the audited network's "
                f"[[home_spaces]] list {len(found)} registr{'y' if len(found) == 1 else 'ies'} "
                "on that chain)"
            )
        out.append(PinnedHome(c, found[0], from_block))
    return out
