"""Compiled contract artifacts from ``contracts/build/`` (committed; no Node.js needed).

Two build profiles of the same sources, with one ABI (tests/chain/test_legacy_artifacts.py):
``default`` (solc 0.8.30, OpenZeppelin 5, ``paris``) in ``contracts/build/`` and ``legacy``
(solc 0.8.11, OpenZeppelin 4.9, ``istanbul``: FISCO BCOS-class EVMs) in
``contracts/build/legacy/``. A network's chain config names its profile; only deployments
(the bytecode and the artifact hash they record) depend on it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

from service.errors import ArtifactNotFound

BUILD_DIR = Path(__file__).resolve().parents[2] / "contracts" / "build"

Profile = Literal["default", "legacy"]
PROFILES: tuple[Profile, ...] = get_args(Profile)


def build_dir(profile: Profile = "default") -> Path:
    """The profile's artifact folder (``TALLY_ARTIFACTS_DIR`` replaces ``contracts/build``)."""
    base = Path(os.environ.get("TALLY_ARTIFACTS_DIR", BUILD_DIR))
    return base if profile == "default" else base / profile


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    sha256: str  # of the artifact file: recorded with each deployment


@cache
def load_artifact(name: str, profile: Profile = "default") -> Artifact:
    path = build_dir(profile) / f"{name}.json"
    if not path.is_file():
        raise ArtifactNotFound(
            f"no compiled artifact {name!r} in {build_dir(profile)} (run make compile)"
        )
    raw = path.read_bytes()
    data = json.loads(raw)
    return Artifact(
        name=name,
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def artifact_names(profile: Profile = "default") -> list[str]:
    return sorted(p.stem for p in build_dir(profile).glob("*.json"))


def _signature(item: dict[str, Any]) -> str:
    return f"{item['name']}({','.join(_abi_type(i) for i in item['inputs'])})"


def _abi_type(param: dict[str, Any]) -> str:
    t: str = param["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + t[len("tuple") :]
    return t


@dataclass(frozen=True)
class ErrorDef:
    name: str
    types: tuple[str, ...]


@cache
def error_registry() -> dict[bytes, ErrorDef]:
    """4-byte selector -> custom error, over every artifact of every profile (they share one
    ABI), plus Error(string) and Panic."""
    registry = {
        keccak(text="Error(string)")[:4]: ErrorDef("Error", ("string",)),
        keccak(text="Panic(uint256)")[:4]: ErrorDef("Panic", ("uint256",)),
    }
    for profile, name in ((p, n) for p in PROFILES for n in artifact_names(p)):
        for item in load_artifact(name, profile).abi:
            if item.get("type") == "error":
                sig = _signature(item)
                registry[keccak(text=sig)[:4]] = ErrorDef(
                    item["name"], tuple(_abi_type(i) for i in item["inputs"])
                )
    return registry


def decode_revert(data: bytes) -> tuple[str | None, tuple[Any, ...]]:
    """Decode revert data into (error name, args); (None, ()) when unknown or empty."""
    if len(data) < 4:
        return None, ()
    err = error_registry().get(data[:4])
    if err is None:
        return None, ()
    try:
        return err.name, tuple(abi_decode(list(err.types), data[4:]))
    except DecodingError:  # malformed payload for a known selector: keep the name
        return err.name, ()
