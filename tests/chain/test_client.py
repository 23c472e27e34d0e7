"""Deploy, transact, call and decode reverts on the embedded chain and on a real anvil;
nonces shared by the clients of one process and resynced at once against another's."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from service.chain.client import STATS, Chain, NonceBook
from service.chain.devnode import Anvil
from service.errors import TransactionReverted

ROOT = Path(__file__).resolve().parents[2]

UNIT = 10**18


def _token(chain: Chain) -> object:
    owner = chain.accounts[0]
    token, receipt = chain.deploy("DemoToken", "Demo", "DMO", owner.address, sender=owner)
    assert receipt["status"] == 1 and receipt["contractAddress"] == token.address
    return token


@pytest.fixture(params=["embedded", "anvil"])
def any_chain(request: pytest.FixtureRequest) -> Chain:
    name = "chain" if request.param == "embedded" else "anvil_chain"
    c: Chain = request.getfixturevalue(name)
    return c


def test_deploy_and_call(any_chain: Chain) -> None:
    chain = any_chain
    owner, alice = chain.accounts[0], chain.accounts[1]
    token = _token(chain)
    receipt = chain.transact(token.functions.mint(alice.address, 5 * UNIT), sender=owner)
    (transfer,) = token.events.Transfer().process_receipt(receipt)
    assert transfer["args"]["to"] == alice.address and transfer["args"]["value"] == 5 * UNIT
    assert chain.call(token.functions.balanceOf(alice.address)) == 5 * UNIT
    assert chain.call(token.functions.symbol()) == "DMO"


def test_custom_error_decoded_before_sending(any_chain: Chain) -> None:
    chain = any_chain
    owner, mallory = chain.accounts[0], chain.accounts[2]
    token = _token(chain)
    nonce_before = chain.w3.eth.get_transaction_count(mallory.address)
    with pytest.raises(TransactionReverted) as info:
        chain.transact(token.functions.mint(mallory.address, 1), sender=mallory)
    assert info.value.error_name == "OwnableUnauthorizedAccount"
    assert info.value.error_args == (mallory.address.lower(),)
    assert chain.w3.eth.get_transaction_count(mallory.address) == nonce_before  # nothing sent
    # the sender's nonce tracking is not disturbed: its next transaction goes through
    chain.transact(token.functions.approve(owner.address, 1), sender=mallory)


def test_mined_failure_is_replayed_for_its_reason(any_chain: Chain) -> None:
    chain = any_chain
    owner, bob = chain.accounts[0], chain.accounts[3]
    token = _token(chain)
    with pytest.raises(TransactionReverted) as info:  # explicit gas: no estimate, it is mined
        chain.transact(token.functions.transfer(bob.address, 7), sender=owner, gas=100_000)
    assert info.value.error_name == "ERC20InsufficientBalance"
    assert info.value.error_args == (owner.address.lower(), 0, 7)
    assert info.value.tx_hash is not None
    receipt = chain.w3.eth.get_transaction_receipt(info.value.tx_hash)
    assert receipt["status"] == 0


def test_view_revert_is_decoded(chain: Chain) -> None:
    token = _token(chain)
    with pytest.raises(TransactionReverted) as info:
        chain.call(
            token.functions.transferFrom(chain.accounts[0].address, chain.accounts[1].address, 1)
        )
    assert info.value.error_name == "ERC20InsufficientAllowance"


def test_snapshot_revert_and_time(chain: Chain) -> None:
    token = _token(chain)
    owner = chain.accounts[0]
    snap = chain.snapshot()
    chain.transact(token.functions.mint(owner.address, 9), sender=owner)
    chain.revert(snap)
    assert chain.call(token.functions.totalSupply()) == 0
    before = chain.w3.eth.get_block("latest")["timestamp"]
    chain.increase_time(3_600)
    assert chain.w3.eth.get_block("latest")["timestamp"] >= before + 3_600
    chain.transact(token.functions.mint(owner.address, 9), sender=owner)
    assert chain.call(token.functions.totalSupply()) == 9


def test_constructor_revert_is_decoded(any_chain: Chain) -> None:
    owner = any_chain.accounts[0]
    with pytest.raises(TransactionReverted) as info:
        any_chain.deploy("DemoToken", "Demo", "DMO", "0x" + "00" * 20, sender=owner)
    assert info.value.error_name == "OwnableInvalidOwner"
    assert info.value.error_args == ("0x" + "00" * 20,)


# --- nonces: one manager per key and process; another process's nonce is resynced -------


def _approvals(chain: Chain, token: Any, sender: LocalAccount, count: int, start: int) -> int:
    """Send ``count`` approvals from ``sender``; the number that landed (status 1)."""
    landed = 0
    for i in range(count):
        receipt = chain.transact(
            token.functions.approve(chain.accounts[0].address, start + i), sender=sender
        )
        landed += receipt["status"] == 1
    return landed


def test_two_clients_in_one_process_share_one_nonce_manager(anvil_chain: Chain) -> None:
    chain_a = anvil_chain
    chain_b = Chain.connect(anvil_chain.network)  # a second client, same process, same key
    token = _token(chain_a)
    sender = chain_a.accounts[4]
    before_nonce = chain_a.w3.eth.get_transaction_count(sender.address)
    before = dict(STATS)
    per_thread = 10
    with ThreadPoolExecutor(4) as pool:
        jobs = [
            pool.submit(
                _approvals, c, c.contract("DemoToken", token.address), sender, per_thread, i * 100
            )
            for i, c in enumerate([chain_a, chain_b, chain_a, chain_b])
        ]
        landed = sum(job.result() for job in jobs)
    assert landed == 4 * per_thread
    assert chain_a.w3.eth.get_transaction_count(sender.address) == before_nonce + 4 * per_thread
    assert STATS["nonce_resyncs"] == before.get("nonce_resyncs", 0)  # never collided
    assert STATS["backoff_sleeps"] == before.get("backoff_sleeps", 0)


def test_nonce_taken_by_another_process_is_resent_at_once(anvil_chain: Chain) -> None:
    """A client with its own nonce book stands for another process with the same key:
    strictly interleaved, every send after the other's finds its cached nonce taken."""
    ours = anvil_chain
    theirs = Chain.connect(anvil_chain.network, nonces=NonceBook())
    token = _token(ours)
    sender = ours.accounts[5]
    before_nonce = ours.w3.eth.get_transaction_count(sender.address)
    before = dict(STATS)
    rounds = 6
    landed = 0
    for i in range(rounds):
        landed += _approvals(ours, token, sender, 1, 2 * i)
        landed += _approvals(
            theirs, theirs.contract("DemoToken", token.address), sender, 1, 2 * i + 1
        )
    assert landed == 2 * rounds
    assert ours.w3.eth.get_transaction_count(sender.address) == before_nonce + 2 * rounds
    resyncs = STATS["nonce_resyncs"] - before.get("nonce_resyncs", 0)
    assert resyncs >= 2 * rounds - 2  # each client but at its first send found its nonce used
    assert STATS["backoff_sleeps"] == before.get("backoff_sleeps", 0)  # no sleep path


_SENDER_SCRIPT = """
import json, sys
from service.chain.client import STATS, Chain
from service.chain.config import rpc_network
url, token, count, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
chain = Chain.connect(rpc_network(url, chain_id=31337))
contract = chain.contract("DemoToken", token)
sender = chain.accounts[6]
sys.stdin.readline()  # start together
landed = 0
for i in range(count):
    fn = contract.functions.approve(chain.accounts[0].address, start + i)
    r = chain.transact(fn, sender=sender)
    landed += r["status"] == 1
print(json.dumps({"landed": landed, **STATS}))
"""


def test_two_processes_with_one_key_all_land_without_sleeping(
    anvil_chain: Chain, anvil: Anvil
) -> None:
    """Real processes. (Their approvals never set a zero allowance: another process's
    transaction can land between our gas estimate and our send, and a zero-to-nonzero
    write costs more than the nonzero-to-nonzero one estimated.)"""
    token = _token(anvil_chain)
    sender = anvil_chain.accounts[6]
    before_nonce = anvil_chain.w3.eth.get_transaction_count(sender.address)
    count = 15
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _SENDER_SCRIPT,
                anvil.url,
                token.address,
                str(count),
                str(k * 1000 + 1),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    outs = []
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(o["landed"] for o in outs) == 2 * count
    assert anvil_chain.w3.eth.get_transaction_count(sender.address) == before_nonce + 2 * count
    assert all(o.get("backoff_sleeps", 0) == 0 for o in outs)  # recovered without sleeping
