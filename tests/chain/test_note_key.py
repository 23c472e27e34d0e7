"""The operator's note key from the chain key's source; the key text never leaks.

Dev chains derive it (HMAC-SHA256 of the dev operator key and the origin); ``env`` reads
a C2SP private key text; ``keystore`` an encrypted note keystore beside the chain one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from pathlib import Path

import nacl.signing
import pytest
from typer.testing import CliRunner

from service.chain.config import NetworkConfig, parse_network
from service.chain.keys import (
    DEV_NOTE_KEY_LABEL,
    NoteKeyMissing,
    dev_account,
    new_note_skey,
    note_keystore_path,
    note_signer,
    read_note_keystore,
    write_note_keystore,
)
from service.cli import app
from service.errors import ConfigError
from service.witness.note import NoteSigner

ORIGIN = "space.example/tally/31337/0x5fbdb2315678afecb367f032d93f642f64180aa3"


def _network(keys: dict[str, object], *, kind: str = "rpc", dev: bool = False) -> NetworkConfig:
    data: dict[str, object] = {"name": "n", "kind": kind, "chain_id": 7, "keys": keys}
    if kind == "rpc":
        data.update(rpc_url="http://127.0.0.1:1", dev=dev)
    return parse_network(data, source="test")


def test_dev_note_key_is_the_documented_derivation() -> None:
    signer = note_signer(_network({"source": "dev-mnemonic"}, kind="embedded"), ORIGIN)
    seed = hmac.new(
        bytes(dev_account(0).key), DEV_NOTE_KEY_LABEL + ORIGIN.encode(), hashlib.sha256
    ).digest()
    assert signer.name == ORIGIN
    assert signer.public_key == bytes(nacl.signing.SigningKey(seed).verify_key)
    other = note_signer(_network({"source": "dev-mnemonic"}, kind="embedded"), ORIGIN + "0")
    assert other.public_key != signer.public_key  # one key per deployment


def test_env_note_key_is_read_and_bound_to_the_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    skey = new_note_skey(ORIGIN)
    monkeypatch.setenv("TALLY_NOTE_KEY", skey)
    signer = note_signer(_network({"source": "env"}), ORIGIN)
    assert signer.skey() == skey
    monkeypatch.setenv("MY_NOTE", skey)
    mine = note_signer(_network({"source": "env", "note_env_var": "MY_NOTE"}), ORIGIN)
    assert mine.vkey() == signer.vkey()
    with pytest.raises(ConfigError, match="origin"):
        note_signer(_network({"source": "env"}), "other.example/tally/1/0xab")


def test_env_note_key_missing_is_note_key_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TALLY_NOTE_KEY", raising=False)
    with pytest.raises(NoteKeyMissing):
        note_signer(_network({"source": "env"}), ORIGIN)


def test_keystore_note_key_beside_the_chain_keystore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = {"source": "keystore", "keystore_path": str(tmp_path / "operator.json")}
    network = _network(keys)
    path = note_keystore_path(network.keys)
    assert path == tmp_path / "operator.note.json"
    monkeypatch.setenv("TALLY_KEYSTORE_PASSWORD", "pw-1")
    with pytest.raises(NoteKeyMissing):
        note_signer(network, ORIGIN)
    public = write_note_keystore(path, "pw-1", bytes([4]) * 32)
    signer = note_signer(network, ORIGIN)
    assert signer.public_key == public == NoteSigner("x", bytes([4]) * 32).public_key
    assert (path.stat().st_mode & 0o777) == 0o600
    monkeypatch.setenv("TALLY_KEYSTORE_PASSWORD", "wrong")
    with pytest.raises(ConfigError, match="cannot decrypt"):
        note_signer(network, ORIGIN)


def test_tampered_note_keystore_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.note.json"
    write_note_keystore(path, "pw", bytes([4]) * 32)
    doc = json.loads(path.read_text())
    doc["public_key"] = NoteSigner("x", bytes([5]) * 32).vkey().split("+", 2)[2][1:]
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError):
        read_note_keystore(path, "pw")
    path.write_text("{}")
    with pytest.raises(ConfigError, match="not a tally-note-keystore/1 file"):
        read_note_keystore(path, "pw")


def test_note_key_text_never_reaches_logs_errors_or_help(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    skey = new_note_skey("wrong.example/tally/1/0xab")
    secret = skey.split("+", 4)[4]
    monkeypatch.setenv("TALLY_NOTE_KEY", skey)
    messages = []
    for text in (skey, skey[:-4] + "AAAA", skey.replace("PRIVATE+KEY+", ""), skey + "x"):
        monkeypatch.setenv("TALLY_NOTE_KEY", text)
        with pytest.raises(ConfigError) as info:
            note_signer(_network({"source": "env"}), ORIGIN)
        messages.append(str(info.value))
    assert all(secret not in m and secret[:12] not in m for m in messages), messages
    signer = NoteSigner.from_skey(skey)
    assert secret not in repr(signer) and secret not in str(signer)
    runner = CliRunner()
    for args in (["--help"], ["serve", "--help"], ["audit", "receipt", "--help"]):
        out = runner.invoke(app, args, env={"TALLY_NOTE_KEY": skey, "COLUMNS": "200"}).output
        assert secret not in out
    assert secret not in caplog.text
