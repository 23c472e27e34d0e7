"""Roles at the checkpoint block come from the registry's events, not from historical state:
`audit settlement` works on a node that keeps no history (anvil --prune-history), and the
replay gives what an archive node's eth_call would (T9 item 17)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web3.exceptions import Web3RPCError

from service.audit.roles import RegistryHistory
from service.chain.client import Chain
from service.chain.config import rpc_network
from service.chain.devnode import Anvil, anvil_binary
from service.db import create_schema, make_engine
from service.errors import DevNodeError
from service.evidence.directory import CONSUMER, PROVIDER, SERVICE, STATUS_NONE
from service.evidence.sources import SqlLogSource
from service.settlement.rounds import propose
from tests.audit.test_settlement import _audit, _evidence, _fund, _result
from tests.settlement.test_engine import make_policy
from tests.space import Space, build_space

PRUNE_KEEP = 2  # states anvil keeps in memory


@pytest.fixture(scope="module")
def pruned() -> Iterator[Chain]:
    """An anvil of its own that keeps only the last few states: no archive."""
    try:
        anvil_binary()
    except DevNodeError as err:
        pytest.skip(str(err))
    node = Anvil(extra_args=("--prune-history", str(PRUNE_KEEP))).start()
    try:
        yield Chain.connect(rpc_network(node.url, chain_id=31337))
    finally:
        node.stop()


@pytest.fixture
def pruned_space(pruned: Chain) -> Space:
    """A fresh deployment per test (no snapshots: a reverted pruned anvil may answer for a
    block number from the abandoned branch)."""
    return build_space(pruned)


def _history_gone(space: Space, block: int) -> None:
    """Assert that the node refuses to read state at ``block``."""
    space.chain.mine(PRUNE_KEEP + 4)
    reg = space.contracts.registry
    with pytest.raises(Web3RPCError):
        reg.functions.participant(space.providers[0].address).call(block_identifier=block)


def test_settlement_audit_on_a_node_without_history_reads_roles_from_events(
    pruned_space: Space, tmp_path: Path
) -> None:
    space = pruned_space
    engine = make_engine(f"sqlite:///{tmp_path}/tally.db")
    create_schema(engine)
    cp = _evidence(engine, space)
    policy = make_policy(space)
    result = _result(engine, cp, policy)
    _fund(space, result.pool)
    propose(chain=space.chain, vault=space.contracts.vault, result=result, sender=space.operator)
    # after the checkpoint the operator takes provider 0's role away: the audit must read
    # the role it held when the evidence was anchored, not today's
    reg = space.contracts.registry
    space.chain.transact(
        reg.functions.update(space.providers[0].address, CONSUMER, b"\x01" * 32, "did:p0"),
        sender=space.operator,
    )
    _history_gone(space, cp.block_number)

    report = _audit(space, SqlLogSource(engine), policy, result.payouts_document())
    roles = next(c for c in report.checks if c.name == "roles")
    assert roles.ok is True, roles.detail
    assert f"at block {cp.block_number}" in roles.detail
    assert report.ok, report.verdict
    engine.dispose()


def test_registry_replay_equals_eth_call_at_each_block(pruned_space: Space) -> None:
    space = pruned_space
    reg, chain = space.contracts.registry, space.chain
    p0, c0, aud, out = space.providers[0], space.consumers[0], space.auditor, space.outsider
    auditor_role = bytes(chain.call(reg.functions.AUDITOR_ROLE()))
    people = [p0, c0, aud, out]

    def read(block: int) -> tuple[list[tuple[int, int]], list[bool]]:
        parties = [
            tuple(reg.functions.participant(a.address).call(block_identifier=block)[:2])
            for a in people
        ]
        roles = [
            bool(reg.functions.hasRole(auditor_role, a.address).call(block_identifier=block))
            for a in people
        ]
        return parties, roles  # type: ignore[return-value]

    # every kind of change, one block each, read by eth_call while the state is still there
    steps = [
        reg.functions.register(out.address, SERVICE, b"\x05" * 32, "did:o"),
        reg.functions.update(p0.address, PROVIDER | CONSUMER, b"\x01" * 32, "did:p0"),
        reg.functions.suspend(c0.address),
        reg.functions.revokeRole(auditor_role, aud.address),
        reg.functions.reinstate(c0.address),
        reg.functions.grantRole(auditor_role, out.address),
    ]
    expected = []
    for fn in steps:
        block = int(chain.transact(fn, sender=space.operator)["blockNumber"])
        expected.append((block, read(block)))
    _history_gone(space, expected[0][0])

    history = RegistryHistory(chain, reg, from_block=space.contracts.deployment.deploy_block)
    for block, (parties, roles) in expected:
        view = history.at(block)
        assert [view.party(a.address) for a in people] == parties, block
        assert [view.has(auditor_role, a.address) for a in people] == roles, block
    first = history.at(expected[0][0] - 1)
    assert first.party(out.address) == (0, STATUS_NONE) and first.has(auditor_role, aud.address)
    assert history.requests >= 1


def test_registry_replay_in_small_ranges_gives_the_same_state(pruned_space: Space) -> None:
    space = pruned_space
    small = Chain(space.chain.w3, space.chain.network.model_copy(update={"max_block_range": 3}))
    head = space.chain.w3.eth.block_number
    whole = RegistryHistory(space.chain, space.contracts.registry).at(head)
    history = RegistryHistory(small, space.contracts.registry)
    ranged = history.at(head)
    assert history.requests == head // 3 + 1
    assert ranged == whole and len(whole.parties) == 5  # three providers, two consumers
    assert ranged.with_role(space.providers[0].address, PROVIDER)
    assert ranged.with_role(space.consumers[1].address, CONSUMER)


def test_registry_history_starts_over_when_the_chain_was_reverted(chain: Chain) -> None:
    space = build_space(chain)
    reg, fresh = space.contracts.registry, chain.accounts[11]
    history = RegistryHistory(chain, reg)
    snap = chain.snapshot()
    chain.transact(
        reg.functions.register(fresh.address, CONSUMER, b"\x03" * 32, "did:x"),
        sender=space.operator,
    )
    head = chain.w3.eth.block_number
    assert history.at(head).party(fresh.address)[0] == CONSUMER
    chain.revert(snap)  # the block is gone; another one takes its height
    chain.transact(
        reg.functions.register(fresh.address, PROVIDER, b"\x03" * 32, "did:x"),
        sender=space.operator,
    )
    assert chain.w3.eth.block_number == head
    assert history.at(head).party(fresh.address)[0] == PROVIDER
