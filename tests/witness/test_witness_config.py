"""The witness config pins each space; nothing a space serves can add or change a pin."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from service.errors import ConfigError
from service.witness.config import load_config
from service.witness.cosignatures import space_origin
from service.witness.note import CosignatureV1Signer, NoteSigner

LEDGER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ORIGIN = space_origin(space="space-a.test", chain_id=31337, ledger=LEDGER)
LOG = NoteSigner(ORIGIN, hashlib.sha256(b"log").digest())


def config(tmp: Path, **over: str) -> Path:
    table = {
        "url": '"http://127.0.0.1:8001/"',
        "vkey": f'"{LOG.vkey()}"',
        "rpc": '"http://127.0.0.1:8545"',
        "chain_id": "31337",
        "ledger": f'"{LEDGER}"',
    }
    table.update(over)
    body = "\n".join(f"{k} = {v}" for k, v in table.items() if v)
    path = tmp / "witness.toml"
    path.write_text(f'[witness]\ndatabase = "w.db"\n\n[spaces.a]\n{body}\n', encoding="utf-8")
    return path


def test_config_pins_url_vkey_chain_and_ledger(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path))
    [space] = cfg.select(["http://127.0.0.1:8001"])  # trailing slash or not: one URL
    assert space.origin == ORIGIN and space.ledger == LEDGER
    assert space.network.chain_id == 31337
    assert cfg.database == tmp_path / "w.db"
    assert cfg.evidence_dir == tmp_path / "split-views"


def test_unpinned_url_is_refused_never_trusted_on_first_use(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path))
    with pytest.raises(ConfigError, match="is not pinned"):
        cfg.select(["http://127.0.0.1:9999"])
    with pytest.raises(ConfigError, match="is not pinned"):
        load_config(None).select(["http://127.0.0.1:8001"])


def test_origin_naming_another_ledger_is_refused(tmp_path: Path) -> None:
    other = "0x" + "11" * 20
    with pytest.raises(ConfigError, match="names another chain or ledger"):
        load_config(config(tmp_path, ledger=f'"{other}"'))
    with pytest.raises(ConfigError, match="names another chain or ledger"):
        load_config(config(tmp_path, chain_id="1"))


@pytest.mark.parametrize(
    "over, message",
    [
        ({"vkey": f'"{CosignatureV1Signer("w", b"1" * 32).vkey()}"'}, "not an Ed25519 note key"),
        ({"vkey": '"not+a+vkey"'}, "vkey"),
        ({"origin": '"space-b.test/log"'}, "is not the vkey's name"),
        ({"rpc": ""}, "exactly one of network"),
        ({"chain_id": ""}, "chain_id"),
        ({"ledger": '"0x12"'}, "not an address"),
        ({"extra": '"x"'}, "unknown keys"),
    ],
)
def test_bad_pin_is_one_config_error(tmp_path: Path, over: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(config(tmp_path, **over))
