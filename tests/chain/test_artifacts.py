"""The committed artifacts are exactly what the pinned compilers make of the sources, for
both build profiles (default in contracts/build/, legacy in contracts/build/legacy/)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from service.chain.artifacts import (
    BUILD_DIR,
    PROFILES,
    Profile,
    artifact_names,
    build_dir,
    decode_revert,
    load_artifact,
)

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
    compilers = [ROOT / "node_modules" / "solc", ROOT / "node_modules" / "solc-0.8.11"]
    if shutil.which("node") is None or not all(c.is_dir() for c in compilers):
        if os.environ.get("CI"):
            pytest.fail("CI must compile: node or node_modules/solc missing")
        pytest.skip("Node.js or node_modules absent")
    subprocess.run(
        ["node", "scripts/compile.mjs", "--out", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    for sub in ("", "legacy"):  # both profiles, from one run: what `make compile` does
        fresh = sorted(p.name for p in (tmp_path / sub).glob("*.json"))
        committed = sorted(p.name for p in (BUILD_DIR / sub).glob("*.json"))
        assert fresh and fresh == committed, sub
        for name in fresh:
            assert (tmp_path / sub / name).read_bytes() == (BUILD_DIR / sub / name).read_bytes(), (
                f"{sub}/{name}"
            )


@pytest.mark.parametrize(
    ("profile", "evm_version", "compiler"),
    [("default", "paris", "0.8.30+"), ("legacy", "istanbul", "0.8.11+")],
)
def test_artifacts_record_compiler_settings_and_source_hashes(
    profile: Profile, evm_version: str, compiler: str
) -> None:
    names = artifact_names(profile)
    assert {"ParticipantRegistry", "EvidenceLedger", "SettlementVault", "DemoToken"} <= set(names)
    for name in names:
        data = json.loads((build_dir(profile) / f"{name}.json").read_text())
        assert data["settings"]["evmVersion"] == evm_version
        assert data["settings"]["optimizer"]["enabled"] is True
        assert data["compiler"]["version"].startswith(compiler)
        own = data["sourceName"]
        assert own in data["sources"] and len(data["sources"][own]) == 64
        assert data["sources"][own] == hashlib.sha256((ROOT / own).read_bytes()).hexdigest()


@pytest.mark.parametrize("profile", PROFILES)
def test_bytecode_has_no_push0(profile: Profile) -> None:
    for name in artifact_names(profile):
        code = bytes.fromhex(load_artifact(name, profile).deployed_bytecode[2:])
        assert code, name
        assert PUSH0 not in _opcodes(code), f"{profile}/{name} uses PUSH0 (not paris)"


def test_opcode_walker_sees_push0_but_not_inside_push_data() -> None:
    assert PUSH0 in _opcodes(bytes([0x60, 0x01, PUSH0]))
    assert PUSH0 not in _opcodes(bytes([0x60, PUSH0, 0x01]))


def test_decode_revert_unknown_and_short_data() -> None:
    assert decode_revert(b"") == (None, ())
    assert decode_revert(b"\xde\xad\xbe\xef") == (None, ())
