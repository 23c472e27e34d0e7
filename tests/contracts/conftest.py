"""Fixtures of the contract tests: one Tally deployment per session, a snapshot per test."""

from __future__ import annotations

import pytest
from web3.contract import Contract

from service.chain.client import Chain
from tests.contracts.helpers import Tally, deploy


@pytest.fixture(scope="session")
def _tally_deployment(_embedded: Chain) -> Tally:
    return deploy(_embedded)


@pytest.fixture
def tally(_tally_deployment: Tally, chain: Chain) -> Tally:
    """Registry, ledger, DemoToken and vault (1 h challenge window), reverted after the test.

    Session fixtures are set up before ``chain`` takes its snapshot, so the deployment
    outlives every test while each test's own transactions are rolled back.
    """
    return _tally_deployment


@pytest.fixture(scope="session")
def probe(_embedded: Chain) -> Contract:
    """LedgerProbe: many verifier calls to a ledger in one eth_call (stateless)."""
    contract, _ = _embedded.deploy("LedgerProbe", sender=_embedded.accounts[0])
    return contract
