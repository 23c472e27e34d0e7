"""A real ``tally serve`` signs its checkpoint with the note key from the network's key
source (``env``: ``TALLY_NOTE_KEY``) and never writes the key text to its log, even at
DEBUG; without a key it says so in one WARNING line and answers 503."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from service.api.process import ServeProcess
from service.chain.devnode import free_port
from service.chain.keys import dev_account, new_note_skey
from service.db import create_schema, make_engine
from service.evidence.anchor import anchor_once
from service.witness.cosignatures import space_origin
from service.witness.note import NoteSigner, open_checkpoint
from tests.api.test_serve import serve_env
from tests.evidence.test_log import agreement, ingest, receipt
from tests.space import Space


def _env(tmp: Path, space: Space, db_url: str, **extra: str) -> dict[str, str]:
    """test_serve's environment, with the keys from ``env`` (operator and note key)."""
    return {
        **serve_env(tmp, space, space.chain, db_url, log_level="DEBUG", key_source="env"),
        "TALLY_SPACE_NAME": "space-a.example",
        "TALLY_OPERATOR_KEY": "0x" + bytes(dev_account(0).key).hex(),
        **extra,
    }


@pytest.mark.anvil
def test_serve_signs_with_the_env_note_key_and_never_logs_it(
    anvil_space: Space, tmp_path: Path
) -> None:
    space = anvil_space
    db_url = f"sqlite:///{tmp_path}/tally.db"
    engine = make_engine(db_url)
    create_schema(engine)
    entries = [agreement(space), receipt(space, 1), receipt(space, 2)]
    assert all(r.ok for r in ingest(engine, space, entries))  # type: ignore[attr-defined]
    row = anchor_once(
        engine=engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )
    engine.dispose()
    assert row is not None
    origin = space_origin(space="space-a.example", chain_id=31337, ledger=row.contract)
    skey = new_note_skey(origin)
    secret = skey.split("+", 4)[4]
    log = tmp_path / "serve.log"
    server = ServeProcess(
        env=_env(tmp_path, space, db_url, TALLY_NOTE_KEY=skey), port=free_port(), log_path=log
    ).start()
    try:
        r = httpx.get(server.url + "/v1/log/checkpoint", timeout=30)
        assert r.status_code == 200, r.text
        verifier = NoteSigner.from_skey(skey).verifier()
        checkpoint, _ = open_checkpoint(r.content, verifier)
        assert (checkpoint.origin, checkpoint.size, "0x" + checkpoint.root.hex()) == (
            origin,
            3,
            row.root,
        )
        assert httpx.get(server.url + "/v1/log/key").json()["vkey"] == verifier.vkey()
    finally:
        server.stop()
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "DEBUG" in text or "INFO" in text  # the log was written at all
    assert secret not in text and skey not in text

    # Without TALLY_NOTE_KEY: one WARNING at start, 503 note_key_unavailable, the rest served.
    log2 = tmp_path / "serve2.log"
    server = ServeProcess(env=_env(tmp_path, space, db_url), port=free_port(), log_path=log2)
    server.start()
    try:
        r = httpx.get(server.url + "/v1/log/checkpoint", timeout=30)
        assert (r.status_code, r.json()["error"]["code"]) == (503, "note_key_unavailable")
        assert httpx.get(server.url + "/v1/log/checkpoints").status_code == 200
    finally:
        server.stop()
    assert "no note key" in log2.read_text(encoding="utf-8", errors="replace")


@pytest.mark.anvil
def test_tally_log_keygen_makes_the_key_serve_signs_with(
    anvil_space: Space, tmp_path: Path
) -> None:
    """``tally log keygen`` names the key after the origin ``tally serve`` computes from the
    same settings (serve refuses a key named otherwise): served with it, ``/v1/log/key``
    gives the printed origin and vkey. The file is 0600, the key is not printed, and a
    second run does not overwrite it."""
    import os
    import stat
    import subprocess
    import sys

    db_url = f"sqlite:///{tmp_path}/tally.db"
    env = _env(tmp_path, anvil_space, db_url)
    key = tmp_path / "note.key"
    cmd = [sys.executable, "-m", "service.cli", "log", "keygen", "--out", str(key)]
    made = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    skey = key.read_text().strip()
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert skey.split("+", 4)[4] not in made.stdout + made.stderr
    printed = dict(line.split(maxsplit=1) for line in made.stdout.splitlines())
    ledger = anvil_space.contracts.ledger.address
    origin = space_origin(space="space-a.example", chain_id=31337, ledger=ledger)
    signer = NoteSigner.from_skey(skey)
    assert printed["origin"] == origin == signer.name
    assert printed["vkey"] == signer.verifier().vkey()
    server = ServeProcess(
        env=env | {"TALLY_NOTE_KEY": skey}, port=free_port(), log_path=tmp_path / "serve.log"
    ).start()
    try:
        served = httpx.get(server.url + "/v1/log/key", timeout=30).json()
        assert (served["origin"], served["vkey"]) == (origin, printed["vkey"])
    finally:
        server.stop()
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and key.read_text().strip() == skey
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error[config_invalid]")
