"""Deploy, transact, call and decode reverts on the embedded chain and on a real anvil."""

from __future__ import annotations

import pytest

from service.chain.client import Chain
from service.errors import TransactionReverted

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
