"""Per-network facts from ``chain-config/<network>.toml``, loaded into typed models.

A file is validated as a whole when loaded; a missing or bad field is a
:class:`~service.errors.ConfigError` that names the file and the field.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.chain.artifacts import Profile
from service.errors import ConfigError, DeploymentNotFound, NetworkNotFound

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "chain-config"
DEPLOYMENTS_DIR = CONFIG_DIR / "deployments"

NonNegInt = Annotated[int, Field(ge=0)]

# A week of notice before a consumer's requested withdrawal can be made: the operator's
# settlement cycle plus a challenge window and the time to re-propose a cancelled round.
DEFAULT_WITHDRAWAL_DELAY_S = 7 * 86_400


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GasPolicy(_Strict):
    """How transactions are priced on this network."""

    policy: Literal["eip1559", "legacy", "fixed"] = "eip1559"
    fixed_gas_price_wei: NonNegInt | None = None
    max_fee_multiplier: Annotated[int, Field(ge=1, le=10)] = 2

    @model_validator(mode="after")
    def _fixed_needs_price(self) -> GasPolicy:
        if self.policy == "fixed" and self.fixed_gas_price_wei is None:
            raise ValueError("policy 'fixed' needs fixed_gas_price_wei")
        return self


class KeySource(_Strict):
    """Where the operator's signing key comes from.

    The operator's Ed25519 note key (C2SP signed notes: the checkpoints witnesses
    cosign, :func:`service.chain.keys.note_signer`) comes from the same source: derived
    from the dev operator key on dev chains, the C2SP private key text in
    ``note_env_var`` for ``env``, an encrypted note keystore (``note_keystore_path``,
    default ``<keystore_path stem>.note.json`` beside it, same password) for ``keystore``.
    """

    source: Literal["dev-mnemonic", "env", "keystore"]
    env_var: str = "TALLY_OPERATOR_KEY"
    keystore_path: Path | None = None
    password_env: str = "TALLY_KEYSTORE_PASSWORD"
    note_env_var: str = "TALLY_NOTE_KEY"
    note_keystore_path: Path | None = None

    @model_validator(mode="after")
    def _keystore_needs_path(self) -> KeySource:
        if self.source == "keystore" and self.keystore_path is None:
            raise ValueError("source 'keystore' needs keystore_path")
        return self


class HomeSpaceRef(_Strict):
    """A foreign data space whose providers this space accepts in cross-space agreements.

    ``network`` names another chain-config network (a name in ``chain-config/`` or a
    ``.toml`` path) for the home space's chain; ``registry`` is that space's
    ParticipantRegistry. A provider's standing read there is reused for ``cache_s``
    seconds (a suspension in the home space takes effect here within that time; 0 reads
    the home registry for every batch).
    """

    network: Annotated[str, Field(min_length=1)]
    registry: Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]
    cache_s: Annotated[float, Field(ge=0, le=3_600)] = 10.0


class NetworkConfig(_Strict):
    """One network: where it is, how deep to confirm, how to pay and sign."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    kind: Literal["embedded", "rpc"]
    dev: bool = False
    rpc_url: str | None = None
    chain_id: Annotated[int, Field(gt=0)]
    confirmations: NonNegInt = 0
    evm_version: Literal["istanbul", "paris", "shanghai", "cancun", "prague"] = "paris"
    # Which build of the contracts deploys here (service.chain.artifacts; one ABI): "legacy"
    # (solc 0.8.11, istanbul) for FISCO BCOS-class EVMs, which cannot run the default build.
    profile: Profile = "default"
    # Whether transactions may carry the native coin. False on chains without one (FISCO
    # BCOS): the client then refuses any transaction with a value before signing it.
    value_transfers: bool = True
    start_block: NonNegInt = 0
    poll_interval_s: Annotated[float, Field(gt=0)] = 2.0
    max_block_range: Annotated[int, Field(ge=1)] = 2000
    # SettlementVault's withdrawalDelay for deployments on this network (seconds).
    withdrawal_delay_s: NonNegInt = DEFAULT_WITHDRAWAL_DELAY_S
    gas: GasPolicy = GasPolicy()
    keys: KeySource
    # Cross-space usage (T10): other spaces whose providers agreements here may name
    # (``[[home_spaces]]`` tables; see :class:`HomeSpaceRef`).
    home_spaces: tuple[HomeSpaceRef, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> NetworkConfig:
        if self.kind == "rpc" and not self.rpc_url:
            raise ValueError("kind 'rpc' needs rpc_url")
        if self.kind == "rpc" and not str(self.rpc_url).startswith(("http://", "https://")):
            raise ValueError("rpc_url must be an http(s) URL")
        if self.evm_version == "istanbul" and self.profile != "legacy":
            raise ValueError(
                "evm_version 'istanbul' needs profile 'legacy' (the default build targets paris)"
            )
        if self.evm_version == "istanbul" and self.gas.policy == "eip1559":
            raise ValueError("gas.policy 'eip1559' needs a london or later EVM, not istanbul")
        if self.keys.source == "dev-mnemonic" and not self.is_dev:
            raise ValueError(
                "keys.source 'dev-mnemonic' is only allowed on dev networks "
                "(kind 'embedded' or dev = true)"
            )
        return self

    @property
    def is_dev(self) -> bool:
        return self.kind == "embedded" or self.dev


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(file)"
    return f"{where}: {first['msg']}"


def parse_network(data: dict[str, Any], *, source: str) -> NetworkConfig:
    """Validate a parsed chain-config document; errors name ``source`` and the field."""
    try:
        return NetworkConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {_describe(err)}") from None


def load_network(name_or_path: str | Path, *, config_dir: Path | None = None) -> NetworkConfig:
    """Load a network by name (``chain-config/<name>.toml``) or by file path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml":
        path = candidate
    else:
        path = (config_dir or CONFIG_DIR) / f"{name_or_path}.toml"
    if not path.is_file():
        raise NetworkNotFound(f"no chain config for network {str(name_or_path)!r} ({path})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path.name}: not valid TOML: {err}") from None
    return parse_network(data, source=path.name)


def at_rpc_url(network: NetworkConfig, rpc_url: str) -> NetworkConfig:
    """``network`` (an ``rpc`` one) reached at another URL: a dev node on a free port, say."""
    if network.kind != "rpc":
        raise ConfigError(f"network {network.name} is {network.kind}: it has no rpc_url to replace")
    data = network.model_dump(mode="json", exclude_unset=True)
    return parse_network({**data, "rpc_url": rpc_url}, source=f"{network.name} at {rpc_url}")


def rpc_network(rpc_url: str, *, chain_id: int, confirmations: int = 0) -> NetworkConfig:
    """An ad-hoc network for ``--rpc URL``; anvil's chain id 31337 counts as a dev chain."""
    dev = chain_id == 31337
    return parse_network(
        {
            "name": "rpc",
            "kind": "rpc",
            "dev": dev,
            "rpc_url": rpc_url,
            "chain_id": chain_id,
            "confirmations": confirmations,
            "keys": {"source": "dev-mnemonic" if dev else "env"},
        },
        source=rpc_url,
    )


# --- deployments ------------------------------------------------------------------------


class DeployedContract(_Strict):
    address: Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]
    block: NonNegInt
    tx_hash: Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$")]
    artifact_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Deployment(_Strict):
    """Where a set of Tally contracts lives on one chain."""

    network: str
    chain_id: Annotated[int, Field(gt=0)]
    deploy_block: NonNegInt
    contracts: dict[str, DeployedContract]

    def address(self, name: str) -> str:
        try:
            return self.contracts[name].address
        except KeyError:
            raise DeploymentNotFound(
                f"deployment on {self.network} has no contract {name!r}"
            ) from None


def load_deployment(path: Path) -> Deployment:
    if not path.is_file():
        raise DeploymentNotFound(f"no deployment file {path}")
    try:
        return Deployment.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path.name}: not valid JSON: {err}") from None
    except ValidationError as err:
        raise ConfigError(f"{path.name}: {_describe(err)}") from None


def deployment_path(network: str) -> Path:
    return DEPLOYMENTS_DIR / f"{network}.json"


def load_network_deployment(network: str) -> Deployment:
    return load_deployment(deployment_path(network))


def save_deployment(deployment: Deployment, path: Path) -> None:
    """Write a deployment file atomically (the embedded network is never recorded)."""
    if deployment.network == "embedded" and path.parent.resolve() == DEPLOYMENTS_DIR.resolve():
        raise ConfigError("the embedded network is never written to chain-config/deployments/")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(deployment.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
