"""The legacy profile end to end on a node configured like a FISCO BCOS-class chain: anvil
with ``--hardfork istanbul --gas-price 0 --base-fee 0`` (its own, on a free port), the legacy
artifacts deployed, the whole demo passing every audit, only type-0 transactions at gas price 0
and never a value; and the chain-config rules that go with it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from web3 import Web3

from service.chain.artifacts import load_artifact
from service.chain.client import Chain
from service.chain.config import CONFIG_DIR, at_rpc_url, load_network, parse_network
from service.chain.deploy import deploy_tally
from service.chain.devnode import LEGACY_NODE, Anvil
from service.chain.keys import dev_accounts
from service.cli import app
from service.errors import ChainError, ConfigError, TransactionReverted
from tests.nodes import running_anvil


@pytest.fixture(scope="module")
def istanbul_anvil() -> Iterator[Anvil]:
    """An anvil of this module's own: istanbul, gas price 0, base fee 0, on a free port."""
    yield from running_anvil(accounts=10, **LEGACY_NODE)


@pytest.fixture
def legacy_chain(istanbul_anvil: Anvil) -> Iterator[Chain]:
    chain = Chain.connect(at_rpc_url(load_network("anvil-legacy"), istanbul_anvil.url))
    snap = chain.snapshot()
    yield chain
    chain.revert(snap)


def _all_transactions(w3: Web3) -> list[Any]:
    latest = w3.eth.block_number
    return [
        tx
        for n in range(latest + 1)
        for tx in w3.eth.get_block(n, full_transactions=True)["transactions"]
    ]


def test_node_runs_istanbul_at_gas_price_zero(istanbul_anvil: Anvil) -> None:
    command = istanbul_anvil.command()
    assert command.count("--hardfork") == 1
    assert command[command.index("--hardfork") + 1] == "istanbul"
    assert command[command.index("--gas-price") + 1] == "0"
    assert command[command.index("--base-fee") + 1] == "0"
    w3 = Web3(Web3.HTTPProvider(istanbul_anvil.url))
    assert "baseFeePerGas" not in w3.eth.get_block("latest")  # no EIP-1559 on this node
    assert w3.eth.gas_price == 0


def test_default_node_is_unchanged() -> None:
    command = Anvil(port=1).command()
    assert command[command.index("--hardfork") + 1] == "prague"
    assert "--gas-price" not in command


def test_legacy_demo_passes_every_audit_on_the_istanbul_node(
    istanbul_anvil: Anvil, tmp_path: Path
) -> None:
    w3 = Web3(Web3.HTTPProvider(istanbul_anvil.url))
    first_block = w3.eth.block_number + 1
    out = tmp_path / "demo"
    args = ["demo", "--network", "anvil-legacy", "--rpc", istanbul_anvil.url]
    args += ["--receipts", "60", "--checkpoints", "2", "--audit-receipts", "20"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output

    summary = json.loads((out / "summary.json").read_text())
    assert summary["network"] == "anvil-legacy"
    audit = summary["audit"]
    assert audit["receipts_checked"] == audit["receipts_valid"] == 20
    assert audit["log_consistent"] is True and audit["settlement_match"] is True
    assert summary["rejected_round"]["caught"] is True
    assert summary["rejected_round"]["dispute"]["status_after"] == "Cancelled"
    assert summary["claims"] and summary["vault"] == {"balance": "0", "unallocated": "0"}

    # the legacy build is what was deployed, and what runs there
    deployment = json.loads((out / "deployment.json").read_text())
    for name, record in deployment["contracts"].items():
        assert record["artifact_sha256"] == load_artifact(name, "legacy").sha256, name
        assert record["artifact_sha256"] != load_artifact(name).sha256, name
    registry = deployment["contracts"]["ParticipantRegistry"]["address"]  # no immutables
    assert w3.eth.get_code(registry).hex().removeprefix("0x") == load_artifact(
        "ParticipantRegistry", "legacy"
    ).deployed_bytecode.removeprefix("0x")

    # FISCO-style transactions only: type 0, gas price 0, no value
    txs = [tx for tx in _all_transactions(w3) if tx["blockNumber"] >= first_block]
    assert len(txs) > 20  # deploys, roles, admissions, anchors, deposits, rounds, claims
    assert {(int(tx["type"]), tx["gasPrice"], tx["value"]) for tx in txs} == {(0, 0, 0)}


def test_legacy_deployment_reverts_with_the_default_builds_error_names(
    legacy_chain: Chain,
) -> None:
    """The shims give OpenZeppelin 5's errors: the client decodes them as on any chain."""
    admin, stranger = legacy_chain.accounts[0], legacy_chain.accounts[5]
    space = deploy_tally(legacy_chain, admin=admin)
    role = legacy_chain.call(space.registry.functions.OPERATOR_ROLE())
    assert role == Web3.keccak(text="OPERATOR_ROLE")
    cases = [
        (
            space.registry.functions.grantRole(role, stranger.address),
            "AccessControlUnauthorizedAccount",
        ),
        (space.token.functions.mint(stranger.address, 1), "OwnableUnauthorizedAccount"),
        (space.vault.functions.deposit(10), "ERC20InsufficientAllowance"),
        (space.vault.functions.pause(), "SettlementVaultUnauthorizedAccount"),
    ]
    for fn, name in cases:
        with pytest.raises(TransactionReverted) as caught:
            legacy_chain.transact(fn, sender=stranger)
        assert caught.value.error_name == name
    legacy_chain.transact(space.vault.functions.pause(), sender=admin)
    with pytest.raises(TransactionReverted) as paused:
        legacy_chain.transact(space.vault.functions.deposit(10), sender=admin)
    assert paused.value.error_name == "EnforcedPause"


def test_value_is_refused_before_signing_on_a_chain_without_value_transfers(
    legacy_chain: Chain,
) -> None:
    admin = legacy_chain.accounts[0]
    store, _ = legacy_chain.deploy("NaiveHashStore", sender=admin)
    nonce = legacy_chain.w3.eth.get_transaction_count(admin.address)
    with pytest.raises(ChainError, match="value_transfers = false"):
        legacy_chain.transact(store.functions.store(b"\x01" * 32), sender=admin, value=1)
    assert legacy_chain.w3.eth.get_transaction_count(admin.address) == nonce  # nothing sent
    legacy_chain.transact(store.functions.store(b"\x01" * 32), sender=admin)  # value 0: sent
    assert legacy_chain.w3.eth.get_transaction_count(admin.address) == nonce + 1


def test_fisco_bcos_example_loads_with_the_fisco_facts() -> None:
    net = load_network(CONFIG_DIR / "fisco-bcos.example.toml")
    assert (net.profile, net.evm_version, net.value_transfers) == ("legacy", "istanbul", False)
    assert (net.gas.policy, net.gas.fixed_gas_price_wei) == ("fixed", 0)
    assert not net.is_dev and net.keys.source == "keystore"
    shipped = load_network("anvil-legacy")
    assert (shipped.profile, shipped.evm_version, shipped.value_transfers) == (
        "legacy",
        "istanbul",
        False,
    )
    assert load_network("anvil").profile == "default" and load_network("anvil").value_transfers


BASE: dict[str, Any] = {
    "name": "x",
    "kind": "rpc",
    "rpc_url": "http://127.0.0.1:1",
    "chain_id": 5,
    "keys": {"source": "env"},
}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"evm_version": "istanbul"}, "needs profile 'legacy'"),
        (
            {"evm_version": "istanbul", "profile": "legacy", "gas": {"policy": "eip1559"}},
            "needs a london or later EVM",
        ),
        ({"profile": "ancient"}, "profile"),
        ({"value_transfers": "sometimes"}, "value_transfers"),
    ],
)
def test_bad_legacy_settings_name_the_problem(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_network({**BASE, **extra}, source="net.toml")


def test_legacy_profile_may_run_on_a_newer_evm() -> None:
    net = parse_network({**BASE, "profile": "legacy"}, source="net.toml")
    assert (net.profile, net.evm_version, net.value_transfers) == ("legacy", "paris", True)


def test_at_rpc_url_keeps_everything_but_the_url() -> None:
    net = load_network("anvil-legacy")
    moved = at_rpc_url(net, "http://127.0.0.1:9")
    assert moved.rpc_url == "http://127.0.0.1:9"
    assert moved.model_dump(exclude={"rpc_url"}) == net.model_dump(exclude={"rpc_url"})
    with pytest.raises(ConfigError, match="embedded"):
        at_rpc_url(load_network("embedded"), "http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="rpc_url"):
        at_rpc_url(net, "ftp://x")


def test_dev_accounts_are_the_nodes(istanbul_anvil: Anvil) -> None:
    w3 = Web3(Web3.HTTPProvider(istanbul_anvil.url))
    assert [a.address for a in dev_accounts(3)] == w3.eth.accounts[:3]
