"""examples/js/client.mjs against a served deployment on anvil, checked again in Python.

The test deploys on anvil and registers the participants (the Python registry calls of
``tests.space``), serves the API as a real ``tally serve`` process with a short
anchoring interval, and runs ``node examples/js/client.mjs`` with the consumer's and
the provider's keys. The client signs in with SIWE, signs an Agreement and a
UsageReceipt with ethers, submits them, waits for the anchor and verifies the receipt
itself (canonical bytes, inclusion proof, the checkpoint on chain). Then, without the
client: the entry is in the log at the leaf it reported, its bytes hash to its id, and
the receipt passes the Python auditor on chain. Without Node.js (or ``npm ci``) the
test is skipped locally and fails under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from service.api.process import ServeProcess
from service.audit.receipt import audit_receipt
from service.audit.trust import TrustedDeployment
from service.chain.client import Chain
from service.chain.devnode import free_port
from service.evidence.commitment import commit
from service.evidence.entries import UsageReceipt, decode_entry, entry_id
from service.evidence.merkle import leaf_hash
from tests.api.test_serve import serve_env, token
from tests.space import build_space

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "examples" / "js" / "client.mjs"


def _node() -> str:
    node = shutil.which("node")
    missing = [
        what
        for what, ok in (
            ("node", node is not None),
            ("node_modules/ethers", (ROOT / "node_modules" / "ethers").is_dir()),
            ("node_modules/siwe", (ROOT / "node_modules" / "siwe").is_dir()),
        )
        if not ok
    ]
    if missing:
        why = f"the JS example needs {', '.join(missing)} (Node 20 and `npm ci`)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    assert node is not None
    return node


@pytest.mark.anvil
@pytest.mark.slow
def test_js_client_signs_submits_and_verifies_its_receipt_on_chain(
    anvil_chain: Chain, tmp_path: Path
) -> None:
    node = _node()
    space = build_space(anvil_chain)
    consumer, provider = space.consumers[0], space.providers[0]
    env = serve_env(tmp_path, space, anvil_chain, f"sqlite:///{tmp_path}/tally.db")
    server = ServeProcess(
        env=env, port=free_port(), anchor_every_s=0.5, log_path=tmp_path / "serve.log"
    ).start()
    try:
        run = subprocess.run(
            [node, str(CLIENT)],
            env={
                **os.environ,
                "TALLY_API_URL": server.url,
                "TALLY_RPC_URL": anvil_chain.network.rpc_url or "",
                "TALLY_CONSUMER_KEY": "0x" + space.key(consumer).hex(),
                "TALLY_PROVIDER_KEY": "0x" + space.key(provider).hex(),
            },
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        out = json.loads(run.stdout.strip().splitlines()[-1])
        print(run.stdout)  # shown with -rP: what the client reports
        assert out["verified"] is True and out["on_chain_inclusion"] is True
        assert out["leaf_index"] == 1  # the agreement is leaf 0, its receipt leaf 1
        assert out["tree_size"] >= 2
        assert out["chain_id"] == 31337
        assert out["ledger"] == space.contracts.ledger.address

        # independently of the client: the public log shows only the commitment at that
        # leaf, and the entry behind it (read as its consumer) opens it
        page = httpx.get(f"{server.url}/v1/log/entries", params={"start": 0}).json()
        row = page["entries"][out["leaf_index"]]
        assert set(row) == {"leaf_index", "leaf_data", "leaf_hash"}
        leaf_data = bytes.fromhex(row["leaf_data"][2:])
        assert "0x" + leaf_hash(leaf_data).hex() == out["leaf_hash"] == row["leaf_hash"]
        with httpx.Client(base_url=server.url) as http:
            headers = token(http, consumer)
        full = httpx.get(f"{server.url}/v1/evidence/{out['entry_id']}", headers=headers).json()
        data = bytes.fromhex(full["data"][2:])
        assert out["entry_id"] == "0x" + entry_id(data).hex()
        signed = decode_entry(data)
        receipt = httpx.get(f"{server.url}/v1/receipts/{out['entry_id']}", headers=headers).json()
        assert commit(signed, bytes.fromhex(receipt["salt"][2:])).leaf_data == leaf_data
        assert isinstance(signed.entry, UsageReceipt)
        assert set(signed.signatures) == {consumer.address, provider.address}
        assert signed.recover() == {consumer.address, provider.address}
        # the checkpoint the client read is on chain, and the receipt audits there
        ledger = space.contracts.ledger
        size, root, _, _ = anvil_chain.call(ledger.functions.checkpoint(out["checkpoint_seq"]))
        assert (size, "0x" + bytes(root).hex()) == (out["tree_size"], out["root"])
        pinned = TrustedDeployment.from_deployment(space.contracts.deployment, source="test")
        report = audit_receipt(receipt, chain=anvil_chain, trusted=pinned)
        assert report.ok, report.verdict
    finally:
        server.stop()
