"""The README's Operator guide, run as written: `tally chain up` to `tally claim` on anvil.

The ``sh`` block between ``<!-- operator-guide:begin -->`` and ``<!-- operator-guide:end -->``
runs with ``bash -euo pipefail`` in a scratch copy of what a clone holds: the repository's
files as the working tree has them (``git ls-files``: tracked, and untracked but not
ignored), with ``.venv`` and ``node_modules`` linked. ``PYTHONPATH`` names the copy, so the
``service`` package, its ``chain-config/`` and ``contracts/build/`` are the copy's: the
deployment file, ``.tally/`` and every file the guide writes stay in the scratch directory.
No ``TALLY_*`` variable of the caller reaches the block (``TALLY_ANVIL_BIN`` aside, which
only says where anvil is).

Then, on the chain the guide left running: the round is Finalized under the hash of
``examples/policy.toml``, every payee's leaf is claimed and the provider's DemoToken balance
is its payout in the statement (the fee's rest of the bill the consumer funded), the vault
holds no tokens, the statement mixed all three methods of the example policy from the
client's inputs, and both audits printed PASS. Whatever happens, the API (by its process
group) and anvil (``tally chain down``) are stopped at the end.

The guide uses the fixed ports of ``chain-config/anvil.toml`` (8545) and ``tally serve``
(8000): when one is taken, the test skips, and fails under ``CI``. So do a missing anvil,
Node.js or ``npm ci``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from service.chain.client import Chain
from service.chain.config import load_deployment, load_network
from service.chain.deploy import attach
from service.chain.devnode import anvil_binary, port_in_use
from service.chain.keys import dev_account
from service.errors import DevNodeError
from service.settlement.policy import load_policy
from service.settlement.rounds import read_round

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BEGIN, END = "<!-- operator-guide:begin -->", "<!-- operator-guide:end -->"
ANVIL_PORT, API_PORT = 8545, 8000
PROVIDER = dev_account(2).address  # the battery maker: the guide's provider
GUIDE_TIMEOUT_S = 240
REPO_DEPLOYMENT = ROOT / "chain-config" / "deployments" / "anvil.json"


def _state(path: Path) -> tuple[int, int] | None:
    """(mtime, size) of ``path``, None when it does not exist."""
    return (path.stat().st_mtime_ns, path.stat().st_size) if path.exists() else None


def guide_block(text: str) -> str:
    """The one ``sh`` block between the markers (exactly one pair, nothing else between)."""
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "one pair of operator-guide markers"
    inside = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    found = re.fullmatch(r"\s*```sh\n(.*?)```\s*", inside, flags=re.S)
    assert found, "the operator-guide markers must hold exactly one ```sh block"
    return found.group(1)


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def _require_tools() -> None:
    try:
        anvil_binary()
    except DevNodeError as err:
        _unavailable(str(err))
    missing = [
        what
        for what, ok in (
            (".venv/bin/tally", (ROOT / ".venv" / "bin" / "tally").is_file()),
            ("node", shutil.which("node") is not None),
            ("node_modules/ethers", (ROOT / "node_modules" / "ethers").is_dir()),
            ("node_modules/siwe", (ROOT / "node_modules" / "siwe").is_dir()),
            ("curl", shutil.which("curl") is not None),
            ("python3", shutil.which("python3") is not None),
            ("git", shutil.which("git") is not None),
        )
        if not ok
    ]
    if missing:
        _unavailable(f"the operator guide needs {', '.join(missing)} (`make demo`)")
    for port, what in ((ANVIL_PORT, "anvil"), (API_PORT, "tally serve")):
        if port_in_use(port):
            _unavailable(
                f"the operator guide runs {what} on 127.0.0.1:{port} as the README says, "
                f"and another process listens there: stop it to run this test"
            )


def _scratch_clone(dest: Path) -> Path:
    """The repository's files as a clone would hold them, with .venv and node_modules linked."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for link in (".venv", "node_modules"):
        (dest / link).symlink_to(ROOT / link)
    return dest


def _guide_env(clone: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("TALLY_") or k == "TALLY_ANVIL_BIN"
    }
    env["PYTHONPATH"] = str(clone)
    return env


def _stop_group(pgid: int, *, timeout_s: float = 15.0) -> None:
    """SIGTERM the guide's process group (bash and the `tally serve` it put in the
    background), SIGKILL what is left after ``timeout_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            os.killpg(pgid, 0)  # ProcessLookupError once every member has exited
            time.sleep(0.1)
        os.killpg(pgid, signal.SIGKILL)


def test_operator_guide_keys_are_the_dev_accounts_they_name() -> None:
    block = guide_block(README.read_text(encoding="utf-8"))
    keys = re.findall(r"^(?:export )?(\w+_KEY)=(0x[0-9a-f]{64})\s+# dev account (\d+)", block, re.M)
    assert {name for name, _, _ in keys} == {"CONSUMER_KEY", "PROVIDER_KEY", "EVALUATOR_KEY"}
    for name, key, index in keys:
        assert key == "0x" + dev_account(int(index)).key.hex(), name
    # and examples/participants.csv admits each in the role it signs in
    lines = (ROOT / "examples" / "participants.csv").read_text().splitlines()
    roles = {row[0]: row[1] for row in (ln.split(",") for ln in lines) if row[0].startswith("0x")}
    wanted = {"CONSUMER_KEY": "consumer", "PROVIDER_KEY": "provider", "EVALUATOR_KEY": "service"}
    for name, _, index in keys:
        assert roles[dev_account(int(index)).address] == wanted[name], name
    table = re.findall(r"^\| (\d) \| `(0x[0-9a-f]{64})` \|$", README.read_text(), re.M)
    assert [int(i) for i, _ in table] == list(range(10))
    for index, key in table:
        assert key == "0x" + dev_account(int(index)).key.hex(), f"dev account {index}"


@pytest.mark.anvil
@pytest.mark.slow
def test_operator_guide_runs_from_chain_up_to_claim(tmp_path: Path) -> None:
    block = guide_block(README.read_text(encoding="utf-8"))
    assert f"127.0.0.1:{ANVIL_PORT}" in block and f"127.0.0.1:{API_PORT}" in block
    _require_tools()
    clone = _scratch_clone(tmp_path / "clone")
    script = tmp_path / "operator-guide.sh"
    script.write_text(block, encoding="utf-8")
    log_path = tmp_path / "guide.log"
    env = _guide_env(clone)
    repo_deployment = _state(REPO_DEPLOYMENT)
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", str(script)],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: `tally serve &` is in it
        )
    try:
        try:
            rc = proc.wait(timeout=GUIDE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            rc = None
        elapsed = time.monotonic() - started
        output = log_path.read_text(encoding="utf-8", errors="replace")
        print(output)  # shown with -rP: the guide's whole transcript
        print(f"operator guide: {elapsed:.1f} s")
        tail = output[-4000:]
        assert rc is not None, f"the guide did not end within {GUIDE_TIMEOUT_S} s:\n{tail}"
        assert rc == 0, f"the guide failed (exit {rc}):\n{tail}"
        assert "PASS receipt" in output and "PASS settlement round 1" in output

        # the chain the guide left running, through the deployment it wrote in the clone
        deployment = clone / "chain-config" / "deployments" / "anvil.json"
        assert _state(REPO_DEPLOYMENT) == repo_deployment, "the guide wrote into the repository"
        chain = Chain.connect(load_network("anvil"))
        contracts = attach(chain, load_deployment(deployment))
        statement = json.loads((clone / ".tally/rounds/1/statement.json").read_text())
        policy = load_policy(clone / "examples" / "policy.toml")

        state = read_round(chain=chain, vault=contracts.vault, round_id=1)
        assert state.status == "Finalized"
        assert "0x" + state.policy_hash.hex() == statement["policy_hash"] == policy.hash_hex
        assert state.total == state.paid == int(statement["total"]) > 0

        payees = {p["account"]: p for p in statement["participants"] if p["index"] is not None}
        assert {a.lower() for a in payees} == {PROVIDER.lower(), policy.operator}
        for who in payees.values():
            assert chain.call(contracts.vault.functions.isClaimed(1, who["index"])), who["account"]
        # the provider had no tokens before its claim: its balance is its payout, the bill
        # minus the operator's fee
        payout = int(payees[PROVIDER]["payout"])
        fee = int(statement["total"]) * policy.operator_fee_bps // 10_000
        assert payout == int(statement["total"]) - fee
        assert chain.call(contracts.token.functions.balanceOf(PROVIDER)) == payout
        assert chain.call(contracts.token.functions.balanceOf(contracts.vault.address)) == 0
        # the client's contribution inputs went into every method the example policy mixes
        (line,) = payees[PROVIDER]["lines"]
        factors = line["factors"]["mix"]
        assert set(factors) == set(policy.default.params.mix) == {"output", "cost", "shapley"}
        assert int(factors["cost"]["declared_cost"]) > 0
        assert factors["shapley"]["coalition_leaf"] is not None
    finally:
        _stop_group(proc.pid)
        subprocess.run(
            [str(clone / ".venv" / "bin" / "tally"), "chain", "down"],
            cwd=clone,
            env=env,
            capture_output=True,
            timeout=60,
        )
