"""The witness configuration: what the witness pins for each space it follows.

A space's API can serve anything; what a witness checks it against must come from
somewhere the API cannot change. So every followed space is a table in a TOML file the
witness operator writes (never learnt from the space on first contact)::

    [witness]
    database = "witness.db"        # the witness's own SQLite file (relative to this file)
    key_file = "witness.key"       # optional; --key-file or TALLY_WITNESS_KEY otherwise
    metrics_file = "witness.prom"  # optional Prometheus textfile

    [spaces.space-a]
    url = "https://space-a.example/"            # its public API
    vkey = "space-a.example/log+1a2b3c4d+AU..."  # its note key (origin = the key's name)
    network = "consortium"     # a chain-config network name or .toml path, or:
    # rpc = "https://rpc.space-a.example"; chain_id = 31337
    ledger = "0x..."           # its EvidenceLedger address on that chain

``origin`` may be given too; it must then equal the vkey's name (Tally's checkpoints
name their origin after the note key, and :func:`~service.witness.note.open_checkpoint`
requires it). A Tally origin ``<space>/tally/<chain id>/<ledger>`` must name the pinned
chain id and ledger. ``tally witness --follow URL`` selects the tables whose ``url`` is URL;
a URL without a table is an error, not a new pin.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress
from web3 import Web3

from service.chain.config import NetworkConfig, load_network, rpc_network
from service.errors import ConfigError
from service.witness.cosignatures import ORIGIN_APP, origin_binds
from service.witness.note import NoteError, NoteVerifier


@dataclass(frozen=True)
class PinnedSpace:
    """One followed space and what the witness trusts about it."""

    label: str
    url: str
    verifier: NoteVerifier
    network: NetworkConfig
    ledger: ChecksumAddress

    @property
    def origin(self) -> str:
        return self.verifier.name


@dataclass(frozen=True)
class WitnessConfig:
    path: Path | None
    database: Path
    key_file: Path | None
    metrics_file: Path | None
    spaces: tuple[PinnedSpace, ...]

    @property
    def evidence_dir(self) -> Path:
        """Where split-view proofs are written as files (next to the database)."""
        return self.database.parent / "split-views"

    def select(self, urls: list[str]) -> list[PinnedSpace]:
        """The spaces to follow: those whose URL is in ``urls`` (all when it is empty)."""
        if not urls:
            if not self.spaces:
                raise ConfigError("no space to follow: give --follow URL and a [spaces] table")
            return list(self.spaces)
        chosen: list[PinnedSpace] = []
        for url in urls:
            matches = [s for s in self.spaces if s.url == normalize_url(url)]
            if not matches:
                where = self.path or "the witness config (--config FILE)"
                raise ConfigError(
                    f"{url} is not pinned: add a [spaces.<name>] table with its url, vkey, "
                    f"chain and ledger to {where} (a witness never trusts a space on first use)"
                )
            chosen.extend(m for m in matches if m not in chosen)
        return chosen


def normalize_url(url: str) -> str:
    return url.strip().rstrip("/")


def _text(table: dict[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = table.get(key)
    if value is None:
        if required:
            raise ConfigError(f"{where}: {key} is missing")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {key} must be a non-empty string")
    return value.strip()


def _path(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _network(table: dict[str, Any], where: str, base: Path) -> NetworkConfig:
    network = _text(table, "network", where, required=False)
    rpc = _text(table, "rpc", where, required=False)
    if (network is None) == (rpc is None):
        raise ConfigError(f"{where}: give exactly one of network (a chain-config) or rpc")
    if network is not None:
        path = base / network if network.endswith(".toml") else None
        return load_network(path if path is not None and path.is_file() else network)
    chain_id = table.get("chain_id")
    if not isinstance(chain_id, int) or isinstance(chain_id, bool) or chain_id <= 0:
        raise ConfigError(f"{where}: rpc needs chain_id (a positive integer) pinned with it")
    assert rpc is not None
    return rpc_network(rpc, chain_id=chain_id)


def _space(label: str, table: Any, base: Path) -> PinnedSpace:
    where = f"[spaces.{label}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(table) - {"url", "vkey", "origin", "network", "rpc", "chain_id", "ledger"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    url = _text(table, "url", where)
    vkey = _text(table, "vkey", where)
    assert url is not None and vkey is not None
    try:
        verifier = NoteVerifier.from_vkey(vkey)
    except NoteError as err:
        raise ConfigError(f"{where}: vkey: {err.message}") from None
    if type(verifier) is not NoteVerifier:
        raise ConfigError(f"{where}: vkey is not an Ed25519 note key (alg 0x01)")
    origin = _text(table, "origin", where, required=False)
    if origin is not None and origin != verifier.name:
        raise ConfigError(f"{where}: origin {origin!r} is not the vkey's name {verifier.name!r}")
    ledger = _text(table, "ledger", where)
    assert ledger is not None
    if not Web3.is_address(ledger):
        raise ConfigError(f"{where}: ledger is not an address")
    network = _network(table, where, base)
    if f"/{ORIGIN_APP}/" in verifier.name and not origin_binds(
        verifier.name, chain_id=network.chain_id, ledger=ledger
    ):
        raise ConfigError(
            f"{where}: the vkey's origin {verifier.name!r} names another chain or ledger "
            f"than chain {network.chain_id}, ledger {ledger}"
        )
    return PinnedSpace(
        label=label,
        url=normalize_url(url),
        verifier=verifier,
        network=network,
        ledger=Web3.to_checksum_address(ledger),
    )


def load_config(path: Path | None, *, database: Path | None = None) -> WitnessConfig:
    """Read the witness config (``None``: no spaces, only ``database``)."""
    if path is None:
        db = database or Path("witness.db")
        return WitnessConfig(None, db, None, None, ())
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no witness config at {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path.name}: not valid TOML: {err}") from None
    base = path.resolve().parent
    head = data.get("witness", {})
    if not isinstance(head, dict):
        raise ConfigError(f"{path.name}: [witness] must be a table")
    unknown = set(head) - {"database", "key_file", "metrics_file"}
    if unknown:
        raise ConfigError(f"{path.name}: [witness]: unknown keys {sorted(unknown)}")
    spaces = data.get("spaces", {})
    if not isinstance(spaces, dict):
        raise ConfigError(f"{path.name}: [spaces] must hold one table per space")
    pinned = tuple(_space(label, table, base) for label, table in spaces.items())
    origins = [s.origin for s in pinned]
    if len(set(origins)) != len(origins):
        raise ConfigError(f"{path.name}: two spaces pin the same origin")
    configured = _path(base, _text(head, "database", "[witness]", required=False))
    return WitnessConfig(
        path=path,
        database=database or configured or base / "witness.db",
        key_file=_path(base, _text(head, "key_file", "[witness]", required=False)),
        metrics_file=_path(base, _text(head, "metrics_file", "[witness]", required=False)),
        spaces=pinned,
    )
