"""The committed artifacts are exactly what the pinned compiler makes of the sources."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from service.chain.artifacts import BUILD_DIR, artifact_names, decode_revert, load_artifact

ROOT = Path(__file__).resolve().parents[2]

PUSH1, PUSH32, PUSH0 = 0x60, 0x7F, 0x5F


def _opcodes(code: bytes) -> list[int]:
    ops, i = [], 0
    while i < len(code):
        op = code[i]
        ops.append(op)
        i += 1 + (op - PUSH1 + 1 if PUSH1 <= op <= PUSH32 else 0)
    return ops


def test_recompiling_reproduces_committed_artifacts(tmp_path: Path) -> None:
    if shutil.which("node") is None or not (ROOT / "node_modules" / "solc").is_dir():
        if os.environ.get("CI"):
            pytest.fail("CI must compile: node or node_modules/solc missing")
        pytest.skip("Node.js or node_modules absent")
    subprocess.run(
        ["node", "scripts/compile.mjs", "--out", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    fresh = sorted(p.name for p in tmp_path.glob("*.json"))
    committed = sorted(p.name for p in BUILD_DIR.glob("*.json"))
    assert fresh == committed
    for name in fresh:
        assert (tmp_path / name).read_bytes() == (BUILD_DIR / name).read_bytes(), name


def test_artifacts_record_compiler_settings_and_source_hashes() -> None:
    names = artifact_names()
    assert {"ParticipantRegistry", "EvidenceLedger", "SettlementVault", "DemoToken"} <= set(names)
    for name in names:
        data = json.loads((BUILD_DIR / f"{name}.json").read_text())
        assert data["settings"]["evmVersion"] == "paris"
        assert data["settings"]["optimizer"]["enabled"] is True
        assert data["compiler"]["version"].startswith("0.8.")
        own = data["sourceName"]
        assert own in data["sources"] and len(data["sources"][own]) == 64
        assert data["sources"][own] == hashlib.sha256((ROOT / own).read_bytes()).hexdigest()


def test_bytecode_has_no_push0() -> None:
    for name in artifact_names():
        code = bytes.fromhex(load_artifact(name).deployed_bytecode[2:])
        assert code, name
        assert PUSH0 not in _opcodes(code), f"{name} uses PUSH0 (not paris)"


def test_opcode_walker_sees_push0_but_not_inside_push_data() -> None:
    assert PUSH0 in _opcodes(bytes([0x60, 0x01, PUSH0]))
    assert PUSH0 not in _opcodes(bytes([0x60, PUSH0, 0x01]))


def test_decode_revert_unknown_and_short_data() -> None:
    assert decode_revert(b"") == (None, ())
    assert decode_revert(b"\xde\xad\xbe\xef") == (None, ())
