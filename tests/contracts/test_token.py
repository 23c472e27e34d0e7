"""DemoToken: a plain ERC-20 whose owner mints."""

from __future__ import annotations

from service.chain.client import Chain
from tests.contracts.helpers import ONE, Tally, deploy_revert, expect_revert, one_event

ZERO = "0x" + "00" * 20


def test_metadata(tally: Tally) -> None:
    token = tally.token
    assert tally.call(token.functions.name()) == "Demo"
    assert tally.call(token.functions.symbol()) == "DEMO"
    assert tally.call(token.functions.decimals()) == 18
    assert tally.call(token.functions.owner()) == tally.admin.address
    assert tally.call(token.functions.totalSupply()) == 0


def test_mint_by_owner_credits_and_emits_transfer(tally: Tally) -> None:
    to = tally.provider.address
    receipt = tally.tx(tally.token.functions.mint(to, 5 * ONE), tally.admin)
    assert one_event(tally.token, receipt, "Transfer") == {"from": ZERO, "to": to, "value": 5 * ONE}
    assert tally.call(tally.token.functions.balanceOf(to)) == 5 * ONE
    assert tally.call(tally.token.functions.totalSupply()) == 5 * ONE


def test_mint_by_other_reverts(tally: Tally) -> None:
    expect_revert(
        lambda: tally.tx(tally.token.functions.mint(tally.outsider.address, 1), tally.outsider),
        "OwnableUnauthorizedAccount",
        (tally.outsider.address,),
    )


def test_mint_to_zero_address_reverts(tally: Tally) -> None:
    expect_revert(
        lambda: tally.tx(tally.token.functions.mint(ZERO, 1), tally.admin),
        "ERC20InvalidReceiver",
        (ZERO,),
    )


def test_transfer_moves_balance(tally: Tally) -> None:
    a, b = tally.provider, tally.consumer
    tally.tx(tally.token.functions.mint(a.address, 10), tally.admin)
    receipt = tally.tx(tally.token.functions.transfer(b.address, 4), a)
    assert one_event(tally.token, receipt, "Transfer") == {
        "from": a.address,
        "to": b.address,
        "value": 4,
    }
    assert tally.call(tally.token.functions.balanceOf(a.address)) == 6
    assert tally.call(tally.token.functions.balanceOf(b.address)) == 4
    expect_revert(
        lambda: tally.tx(tally.token.functions.transfer(b.address, 7), a),
        "ERC20InsufficientBalance",
        (a.address, 6, 7),
    )


def test_ownership_transfer_moves_mint_right(tally: Tally) -> None:
    token = tally.token
    tally.tx(token.functions.transferOwnership(tally.operator.address), tally.admin)
    tally.tx(token.functions.mint(tally.operator.address, 1), tally.operator)
    expect_revert(
        lambda: tally.tx(token.functions.mint(tally.admin.address, 1), tally.admin),
        "OwnableUnauthorizedAccount",
        (tally.admin.address,),
    )


def test_deploy_with_zero_owner_reverts(chain: Chain) -> None:
    assert deploy_revert(chain, "DemoToken", "X", "X", ZERO, sender=chain.accounts[0]) == (
        "OwnableInvalidOwner",
        (ZERO,),
    )
