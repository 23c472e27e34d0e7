"""The legacy build profile (solc 0.8.11, OpenZeppelin 4.9, istanbul) next to the default one:
the same contracts with one ABI, bytecode free of opcodes istanbul lacks, sources recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.chain.artifacts import (
    PROFILES,
    Profile,
    artifact_names,
    build_dir,
    error_registry,
    load_artifact,
)

ROOT = Path(__file__).resolve().parents[2]
SHIMS = ROOT / "contracts" / "legacy" / "openzeppelin"

PUSH1, PUSH32 = 0x60, 0x7F
CHAINID = 0x46
# Opcodes after istanbul (and so absent from FISCO BCOS-class EVMs): BASEFEE (london),
# PREVRANDAO (paris; DIFFICULTY before, which nothing here reads either), PUSH0 (shanghai),
# TLOAD, TSTORE, MCOPY, BLOBHASH, BLOBBASEFEE (cancun).
AFTER_ISTANBUL = {
    0x48: "BASEFEE",
    0x44: "PREVRANDAO",
    0x5F: "PUSH0",
    0x5C: "TLOAD",
    0x5D: "TSTORE",
    0x5E: "MCOPY",
    0x49: "BLOBHASH",
    0x4A: "BLOBBASEFEE",
}


def _code_without_metadata(hex_code: str) -> bytes:
    """Runtime code without solc's CBOR trailer (its last two bytes give its length)."""
    code = bytes.fromhex(hex_code.removeprefix("0x"))
    trailer = int.from_bytes(code[-2:], "big") + 2
    assert 2 < trailer < len(code)
    return code[:-trailer]


def _opcodes(code: bytes) -> set[int]:
    ops, i = set(), 0
    while i < len(code):
        op = code[i]
        ops.add(op)
        i += 1 + (op - PUSH1 + 1 if PUSH1 <= op <= PUSH32 else 0)
    return ops


def _raw(name: str, profile: Profile) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((build_dir(profile) / f"{name}.json").read_text())
    return data


def test_both_profiles_build_the_same_contracts() -> None:
    assert artifact_names("legacy") == artifact_names("default")
    assert {"ParticipantRegistry", "EvidenceLedger", "SettlementVault", "DemoToken"} <= set(
        artifact_names("legacy")
    )


@pytest.mark.parametrize("name", artifact_names("default"))
def test_profiles_share_one_abi(name: str) -> None:
    """Exactly equal, order and parameter names included: the Python side cannot tell."""
    assert load_artifact(name, "legacy").abi == load_artifact(name, "default").abi


@pytest.mark.parametrize("name", artifact_names("legacy"))
def test_legacy_bytecode_has_no_opcode_istanbul_lacks(name: str) -> None:
    art = load_artifact(name, "legacy")
    for kind, code in (("runtime", art.deployed_bytecode), ("init", art.bytecode)):
        found = _opcodes(_code_without_metadata(code)) & AFTER_ISTANBUL.keys()
        assert not found, f"{name} {kind} code uses {[AFTER_ISTANBUL[op] for op in found]}"


def test_opcode_check_sees_basefee_and_push0_outside_push_data() -> None:
    assert {0x48, 0x5F} <= _opcodes(bytes([0x48, 0x60, 0x01, 0x5F]))
    assert 0x48 not in _opcodes(bytes([0x60, 0x48]))
    # solc's trailer: a1 64 "solc" 43 <version> 00 0a; everything before it stays
    assert _code_without_metadata("0x6001a164736f6c634300080b000a") == bytes([0x60, 0x01])


def test_legacy_reads_openzeppelin_49_and_the_shims_never_5() -> None:
    data = _raw("SettlementVault", "legacy")
    sources = data["sources"]
    assert not [s for s in sources if s.startswith("@openzeppelin/contracts/")]
    assert "@openzeppelin/contracts-4.9/utils/cryptography/MerkleProof.sol" in sources
    assert "@openzeppelin/contracts-4.9/utils/StorageSlot.sol" in sources
    assert "contracts/legacy/openzeppelin/utils/Pausable.sol" in sources
    assert data["compiler"]["version"].startswith("0.8.11+")


def test_every_shim_is_remapped_and_the_rest_goes_to_openzeppelin_49() -> None:
    remappings = _raw("ParticipantRegistry", "legacy")["settings"]["remappings"]
    shims = sorted(p.relative_to(SHIMS).as_posix() for p in SHIMS.rglob("*.sol"))
    assert shims  # AccessControl, Ownable, ERC20, SafeERC20, Pausable, SafeCast, IERC20Errors
    assert remappings == [
        *(f"@openzeppelin/contracts/{s}=contracts/legacy/openzeppelin/{s}" for s in shims),
        "@openzeppelin/contracts/=@openzeppelin/contracts-4.9/",
    ]
    assert "remappings" not in _raw("ParticipantRegistry", "default")["settings"]


def test_default_profile_settings_are_unchanged_by_the_legacy_one() -> None:
    default = _raw("SettlementVault", "default")["settings"]
    legacy = _raw("SettlementVault", "legacy")["settings"]
    assert default["evmVersion"] == "paris" and legacy["evmVersion"] == "istanbul"
    assert {k: v for k, v in legacy.items() if k not in ("evmVersion", "remappings")} == {
        k: v for k, v in default.items() if k != "evmVersion"
    }


def test_revert_decoding_knows_the_shims_errors() -> None:
    names = {e.name for e in error_registry().values()}
    assert {
        "AccessControlUnauthorizedAccount",
        "EnforcedPause",
        "SafeERC20FailedOperation",
        "SafeCastOverflowedUintDowncast",
        "ERC20InsufficientAllowance",
        "OwnableUnauthorizedAccount",
    } <= names


@pytest.mark.parametrize("profile", PROFILES)
def test_no_contract_reads_chainid(profile: Profile) -> None:
    """A chain without CHAINID (0x46) still runs both builds: nothing on chain reads it (the
    EIP-712 domain of the evidence is computed and checked off chain; README "Networks")."""
    for name in artifact_names(profile):
        art = load_artifact(name, profile)
        for code in (art.deployed_bytecode, art.bytecode):
            assert CHAINID not in _opcodes(_code_without_metadata(code)), f"{profile}/{name}"
