"""Fixtures of the indexer tests: a dedicated anvil and the chains built on it.

The indexer tests reorganize the chain (``anvil_reorg``), toggle automine and kill
processes, so they get an anvil of their own (one per module) instead of the session
one other modules share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from service.bench.indexer import populate
from service.chain.client import Chain
from service.chain.config import Deployment, rpc_network, save_deployment
from service.chain.deploy import deploy_tally
from service.chain.devnode import Anvil
from service.indexer.runner import Indexer
from service.indexer.source import RpcSource
from tests.indexer.helpers import Bulk, Scenario, run_scenario
from tests.nodes import running_anvil


@pytest.fixture(scope="module")
def node() -> Iterator[Anvil]:
    yield from running_anvil(accounts=10)


def connect(node: Anvil) -> Chain:
    """A new connection: its own nonce cache (another connection's transactions, or a
    reorg, leave a cached nonce stale)."""
    return Chain.connect(rpc_network(node.url, chain_id=31337))


@pytest.fixture
def rpc_chain(node: Anvil) -> Chain:
    return connect(node)


@pytest.fixture(scope="module")
def scenario(node: Anvil) -> Scenario:
    return run_scenario(connect(node), node.url)


@pytest.fixture(scope="module")
def bulk(node: Anvil, tmp_path_factory: pytest.TempPathFactory) -> Bulk:
    """About 1,500 events over ~160 blocks (volume for crash and range tests)."""
    chain = connect(node)
    admin = chain.accounts[0]
    t = deploy_tally(chain, admin=admin, challenge_window_s=0, network="anvil")
    pop = populate(t, node.url, 1500, admin=admin.address, per_block=5)
    path = tmp_path_factory.mktemp("bulk") / "deployment.json"
    save_deployment(t.deployment, path)
    return Bulk(t, pop, chain.w3.eth.block_number, path)


@pytest.fixture
def make_indexer(engine: Engine) -> Callable[..., Indexer]:
    def make(url: str, deployment: Deployment, **kw: Any) -> Indexer:
        return Indexer(
            source=RpcSource(url), engine=engine, deployment=deployment, network="anvil", **kw
        )

    return make
