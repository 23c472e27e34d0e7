"""The dashboard's committed static assets are exactly what `make assets` builds from the
lockfile, and the lockfile names no download address outside the npm registry."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "service" / "web" / "static"
BUILT = ("tally-verify.js", "htmx.min.js", "uPlot.min.js", "uPlot.min.css")
BUILD_DEPS = ("@noble/curves", "@noble/hashes", "esbuild", "htmx.org", "uplot")


def _node() -> str:
    node = shutil.which("node")
    if node is None:  # make test installs node_modules with npm: node is there
        pytest.fail("node is not on PATH")
    return node


def test_rebuilding_the_assets_gives_the_committed_bytes(tmp_path: Path) -> None:
    subprocess.run(
        [_node(), "scripts/web/build.mjs", "--out", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    for name in BUILT:
        committed = (STATIC / name).read_bytes()
        rebuilt = (tmp_path / name).read_bytes()
        assert rebuilt == committed, f"{name} differs from a rebuild: run make assets"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(BUILT)


def test_verifier_bundle_is_small_and_self_contained() -> None:
    bundle = (STATIC / "tally-verify.js").read_text(encoding="utf-8")
    assert len(bundle.encode()) < 150_000
    assert "export{" in bundle.replace(" ", "")  # an ES module
    # no import of anything at run time: no CDN, no node_modules path, no bytecode
    assert "import(" not in bundle and 'from"' not in bundle.replace(" ", "")
    assert "node_modules" not in bundle and "/work/" not in bundle
    assert "deployedBytecode" not in bundle


def test_lockfile_pins_the_build_tools_from_the_npm_registry_only() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    dev = package["devDependencies"]
    for dep in BUILD_DEPS:
        assert dev[dep][0].isdigit(), f"{dep} is pinned to an exact version"
        assert lock["packages"][f"node_modules/{dep}"]["version"] == dev[dep]
    for where, entry in lock["packages"].items():
        resolved = entry.get("resolved")
        if resolved is not None:
            assert resolved.startswith("https://registry.npmjs.org/"), (where, resolved)
        assert entry.get("integrity", "sha512-").startswith("sha512-"), where
