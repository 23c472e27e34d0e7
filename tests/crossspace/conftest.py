"""Two data spaces on two real chains: space A (the providers' home) and space B.

Both are anvil nodes started from node_modules on free ports: B on chain id 31337 (a dev
chain: `tally` CLI commands reach it by --rpc), A on chain id 31338 with its state in a
file, so a test can stop A's chain and start it again with everything it held. A's
registry admits the providers of A (dev accounts 10..12, never registered in B); B is
``tests/space.py``'s space (its consumers are B's participants).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from service.chain.client import Chain
from service.chain.config import rpc_network
from service.chain.deploy import TallyContracts, deploy_tally
from service.chain.devnode import Anvil, anvil_binary
from service.chain.keys import dev_accounts
from service.errors import DevNodeError
from service.evidence.directory import PROVIDER
from tests.space import Space, build_space

HOME_CHAIN_ID = 31338
HOME_PROVIDERS = (10, 11, 12)  # dev accounts registered as providers in A only


@dataclass
class HomeAnvil(Anvil):
    """An anvil node on another chain id than the dev default (a second space's chain)."""

    chain_id: int = HOME_CHAIN_ID

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--chain-id") + 1] = str(self.chain_id)
        return cmd


@dataclass
class HomeSpaceA:
    node: HomeAnvil
    chain: Chain
    contracts: TallyContracts
    operator: LocalAccount
    providers: list[LocalAccount]

    @property
    def registry(self) -> str:
        return str(self.contracts.registry.address)

    def suspend(self, who: LocalAccount) -> None:
        reg = self.contracts.registry
        self.chain.transact(reg.functions.suspend(who.address), sender=self.operator)

    def reinstate(self, who: LocalAccount) -> None:
        reg = self.contracts.registry
        self.chain.transact(reg.functions.reinstate(who.address), sender=self.operator)


def _need_anvil() -> None:
    try:
        anvil_binary()
    except DevNodeError as err:
        pytest.skip(str(err))


def home_chain(node: Anvil) -> Chain:
    return Chain.connect(rpc_network(node.url, chain_id=HOME_CHAIN_ID), accounts=dev_accounts(20))


def start_home_space(state: Path | None = None, *, register: bool = True) -> HomeSpaceA:
    """A's node and its deployment (providers 10..12 registered unless ``register`` is off)."""
    _need_anvil()
    node = HomeAnvil(state_path=state).start()
    chain = home_chain(node)
    accounts = chain.accounts
    operator = accounts[0]
    contracts = deploy_tally(chain, admin=operator)
    providers = [accounts[i] for i in HOME_PROVIDERS]
    for i, p in enumerate(providers):
        if register:
            fn = contracts.registry.functions.register(
                p.address, PROVIDER, bytes([0x70 + i]) * 32, f"did:a:p{i}"
            )
            chain.transact(fn, sender=operator)
    return HomeSpaceA(node, chain, contracts, operator, providers)


@pytest.fixture(scope="module")
def space_a() -> Iterator[HomeSpaceA]:
    a = start_home_space()
    yield a
    a.node.stop()


@pytest.fixture(scope="module")
def space_b() -> Iterator[Space]:
    _need_anvil()
    node = Anvil().start()
    chain = Chain.connect(rpc_network(node.url, chain_id=31337), accounts=dev_accounts(20))
    yield build_space(chain)
    node.stop()
