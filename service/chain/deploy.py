"""Deploy a Tally contract set and describe it as a :class:`Deployment`."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.types import TxReceipt

from service.chain.artifacts import load_artifact
from service.chain.client import Chain
from service.chain.config import DEFAULT_WITHDRAWAL_DELAY_S, DeployedContract, Deployment
from service.errors import ConfigError

DAY_S = 86_400
DEFAULT_CHALLENGE_WINDOW_S = DAY_S
DEFAULT_CLAIM_EXPIRY_S = 365 * DAY_S

__all__ = [
    "DEFAULT_CHALLENGE_WINDOW_S",
    "DEFAULT_CLAIM_EXPIRY_S",
    "DEFAULT_WITHDRAWAL_DELAY_S",
    "TallyContracts",
    "attach",
    "deploy_tally",
]


@dataclass(frozen=True)
class TallyContracts:
    """Handles on one deployment's contracts."""

    registry: Contract
    ledger: Contract
    vault: Contract
    token: Contract
    deployment: Deployment


def _record(chain: Chain, name: str, contract: Contract, receipt: TxReceipt) -> DeployedContract:
    return DeployedContract(
        address=contract.address,
        block=receipt["blockNumber"],
        tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
        artifact_sha256=load_artifact(name, chain.network.profile).sha256,
    )


def deploy_tally(
    chain: Chain,
    *,
    admin: LocalAccount,
    operators: tuple[str, ...] = (),
    token_address: str | None = None,
    challenge_window_s: int = DEFAULT_CHALLENGE_WINDOW_S,
    claim_expiry_s: int = DEFAULT_CLAIM_EXPIRY_S,
    withdrawal_delay_s: int | None = None,
    network: str | None = None,
) -> TallyContracts:
    """Deploy registry, ledger and vault (and a DemoToken unless ``token_address``).

    ``admin`` holds the registry's admin role and is granted OPERATOR_ROLE, as is every
    address in ``operators``. ``withdrawal_delay_s`` (the vault's notice before a requested
    withdrawal) defaults to the network's ``withdrawal_delay_s`` in its chain config.
    """
    delay_s = chain.network.withdrawal_delay_s if withdrawal_delay_s is None else withdrawal_delay_s
    records: dict[str, DeployedContract] = {}

    registry, rcpt = chain.deploy("ParticipantRegistry", admin.address, sender=admin)
    records["ParticipantRegistry"] = _record(chain, "ParticipantRegistry", registry, rcpt)
    first_block = rcpt["blockNumber"]

    operator_role = chain.call(registry.functions.OPERATOR_ROLE())
    for operator in (admin.address, *operators):
        chain.transact(registry.functions.grantRole(operator_role, operator), sender=admin)

    ledger, rcpt = chain.deploy("EvidenceLedger", registry.address, sender=admin)
    records["EvidenceLedger"] = _record(chain, "EvidenceLedger", ledger, rcpt)

    if token_address is None:
        token, rcpt = chain.deploy(
            "DemoToken", "Tally Demo Token", "TDT", admin.address, sender=admin
        )
        records["DemoToken"] = _record(chain, "DemoToken", token, rcpt)
    else:
        token = chain.contract(
            "DemoToken", token_address
        )  # any ERC-20: only its ERC-20 ABI is used

    vault, rcpt = chain.deploy(
        "SettlementVault",
        token.address,
        registry.address,
        ledger.address,
        challenge_window_s,
        claim_expiry_s,
        delay_s,
        sender=admin,
    )
    records["SettlementVault"] = _record(chain, "SettlementVault", vault, rcpt)

    deployment = Deployment(
        network=network or chain.network.name,
        chain_id=chain.chain_id,
        deploy_block=first_block,
        contracts=records,
    )
    return TallyContracts(
        registry=registry, ledger=ledger, vault=vault, token=token, deployment=deployment
    )


def attach(chain: Chain, deployment: Deployment) -> TallyContracts:
    """Handles on an existing deployment (checked against the chain id)."""
    if deployment.chain_id != chain.chain_id:
        raise ConfigError(
            f"deployment is for chain {deployment.chain_id}, node is chain {chain.chain_id}"
        )
    token_name = "DemoToken"
    token_addr = deployment.address(token_name) if token_name in deployment.contracts else None
    vault = chain.contract("SettlementVault", deployment.address("SettlementVault"))
    if token_addr is None:
        token_addr = chain.call(vault.functions.token())
    return TallyContracts(
        registry=chain.contract("ParticipantRegistry", deployment.address("ParticipantRegistry")),
        ledger=chain.contract("EvidenceLedger", deployment.address("EvidenceLedger")),
        vault=vault,
        token=chain.contract("DemoToken", str(token_addr)),
        deployment=deployment,
    )
