from __future__ import annotations

from pathlib import Path

import pytest

from service.chain.config import (
    CONFIG_DIR,
    Deployment,
    load_deployment,
    load_network,
    rpc_network,
    save_deployment,
)
from service.errors import ConfigError, DeploymentNotFound, NetworkNotFound


@pytest.mark.parametrize("name", ["embedded", "anvil"])
def test_load_shipped_network(name: str) -> None:
    net = load_network(name)
    assert net.name == name
    assert net.evm_version == "paris"
    assert net.is_dev


def test_load_consortium_template_by_path() -> None:
    net = load_network(CONFIG_DIR / "consortium.example.toml")
    assert net.kind == "rpc" and not net.is_dev
    assert net.gas.policy == "fixed" and net.gas.fixed_gas_price_wei == 0
    assert net.keys.source == "keystore"


def test_load_unknown_network_names_it() -> None:
    with pytest.raises(NetworkNotFound, match="'mars'"):
        load_network("mars")


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "net.toml"
    path.write_text(body)
    return path


GOOD = """
name = "x"
kind = "rpc"
rpc_url = "http://127.0.0.1:1"
chain_id = 5
[keys]
source = "env"
"""


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (GOOD.replace("chain_id = 5\n", ""), "chain_id"),
        (GOOD.replace("chain_id = 5", "chain_id = -1"), "chain_id"),
        (GOOD.replace('rpc_url = "http://127.0.0.1:1"\n', ""), "rpc_url"),
        (GOOD.replace("http://127.0.0.1:1", "ftp://x"), "rpc_url"),
        (GOOD + "confirmations = 1\n", "keys.confirmations"),  # wrong table: unknown key there
        (GOOD.replace('source = "env"', 'source = "dev-mnemonic"'), "dev-mnemonic"),
        (GOOD + '\n[gas]\npolicy = "fixed"\n', "fixed_gas_price_wei"),
        (GOOD.replace('kind = "rpc"', 'kind = "ipc"'), "kind"),
        ("name = [", "not valid TOML"),
    ],
)
def test_bad_network_file_names_the_field(tmp_path: Path, body: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_network(_write(tmp_path, body))


def test_good_network_file_loads(tmp_path: Path) -> None:
    net = load_network(_write(tmp_path, GOOD))
    assert (net.chain_id, net.confirmations, net.is_dev) == (5, 0, False)


def test_rpc_network_anvil_is_dev_other_is_not() -> None:
    assert rpc_network("http://127.0.0.1:8545", chain_id=31337).is_dev
    other = rpc_network("http://127.0.0.1:8545", chain_id=1)
    assert not other.is_dev and other.keys.source == "env"


def _deployment(network: str = "anvil") -> Deployment:
    rec = {
        "address": "0x" + "11" * 20,
        "block": 3,
        "tx_hash": "0x" + "22" * 32,
        "artifact_sha256": "33" * 32,
    }
    return Deployment.model_validate(
        {
            "network": network,
            "chain_id": 31337,
            "deploy_block": 3,
            "contracts": {"EvidenceLedger": rec},
        }
    )


def test_deployment_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    save_deployment(_deployment(), path)
    again = load_deployment(path)
    assert again == _deployment()
    assert again.address("EvidenceLedger") == "0x" + "11" * 20
    with pytest.raises(DeploymentNotFound, match="SettlementVault"):
        again.address("SettlementVault")


def test_embedded_deployment_is_never_recorded() -> None:
    with pytest.raises(ConfigError, match="never written"):
        save_deployment(_deployment("embedded"), CONFIG_DIR / "deployments" / "embedded.json")
    assert not (CONFIG_DIR / "deployments" / "embedded.json").exists()


def test_bad_deployment_file(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('{"network": "x"}')
    with pytest.raises(ConfigError, match="chain_id"):
        load_deployment(path)
    with pytest.raises(DeploymentNotFound):
        load_deployment(tmp_path / "missing.json")
