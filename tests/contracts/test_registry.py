"""ParticipantRegistry: roles (AccessControl) and participants (bitmask, identity, status)."""

from __future__ import annotations

from eth_utils.crypto import keccak

from service.chain.client import Chain
from tests.contracts.helpers import (
    ACTIVE,
    ADMIN_ROLE,
    AUDITOR_ROLE,
    CONSUMER,
    OPERATOR_ROLE,
    PROVIDER,
    SERVICE,
    SUSPENDED,
    UNREGISTERED,
    Tally,
    deploy_revert,
    expect_revert,
    one_event,
)

ZERO = "0x" + "00" * 20
ID = b"\x42" * 32


def _register(t: Tally, who: str, roles: int = PROVIDER, uri: str = "did:web:x") -> dict:
    receipt = t.tx(t.registry.functions.register(who, roles, ID, uri))
    return one_event(t.registry, receipt, "ParticipantRegistered")


def test_role_constants(tally: Tally) -> None:
    reg = tally.registry
    assert (
        tally.call(reg.functions.OPERATOR_ROLE()) == keccak(text="OPERATOR_ROLE") == OPERATOR_ROLE
    )
    assert tally.call(reg.functions.AUDITOR_ROLE()) == keccak(text="AUDITOR_ROLE") == AUDITOR_ROLE
    assert tally.call(reg.functions.DEFAULT_ADMIN_ROLE()) == ADMIN_ROLE
    assert [
        tally.call(getattr(reg.functions, n)()) for n in ("PROVIDER", "CONSUMER", "SERVICE")
    ] == [
        1,
        2,
        4,
    ]
    assert tally.call(reg.functions.ALL_ROLES()) == 7


def test_constructor_grants_admin_only(chain: Chain) -> None:
    admin = chain.accounts[0]
    reg, _ = chain.deploy("ParticipantRegistry", admin.address, sender=chain.accounts[1])
    assert chain.call(reg.functions.hasRole(ADMIN_ROLE, admin.address))
    assert not chain.call(reg.functions.hasRole(OPERATOR_ROLE, admin.address))
    assert not chain.call(reg.functions.hasRole(ADMIN_ROLE, chain.accounts[1].address))


def test_constructor_zero_admin_reverts(chain: Chain) -> None:
    got = deploy_revert(chain, "ParticipantRegistry", ZERO, sender=chain.accounts[0])
    assert got == ("ParticipantRegistryZeroAddress", ())


def test_grant_and_revoke_role_emit_events(tally: Tally) -> None:
    reg, who = tally.registry, tally.outsider.address
    receipt = tally.tx(reg.functions.grantRole(AUDITOR_ROLE, who), tally.admin)
    assert one_event(reg, receipt, "RoleGranted") == {
        "role": AUDITOR_ROLE,
        "account": who,
        "sender": tally.admin.address,
    }
    assert tally.call(reg.functions.hasRole(AUDITOR_ROLE, who))
    receipt = tally.tx(reg.functions.revokeRole(AUDITOR_ROLE, who), tally.admin)
    assert one_event(reg, receipt, "RoleRevoked") == {
        "role": AUDITOR_ROLE,
        "account": who,
        "sender": tally.admin.address,
    }
    assert not tally.call(reg.functions.hasRole(AUDITOR_ROLE, who))


def test_grant_role_by_non_admin_reverts(tally: Tally) -> None:
    expect_revert(
        lambda: tally.tx(
            tally.registry.functions.grantRole(OPERATOR_ROLE, tally.outsider.address),
            tally.operator,
        ),
        "AccessControlUnauthorizedAccount",
        (tally.operator.address, ADMIN_ROLE),
    )


def test_register_records_participant_and_emits(tally: Tally) -> None:
    who = tally.outsider.address
    roles = PROVIDER | SERVICE
    receipt = tally.tx(
        tally.registry.functions.register(who, roles, ID, "did:web:provider.example")
    )
    assert one_event(tally.registry, receipt, "ParticipantRegistered") == {
        "participant": who,
        "roles": roles,
        "identityHash": ID,
        "metadataURI": "did:web:provider.example",
    }
    assert tally.call(tally.registry.functions.participant(who)) == (
        roles,
        ACTIVE,
        receipt["blockNumber"],
        ID,
        "did:web:provider.example",
    )
    assert tally.call(tally.registry.functions.isActive(who))
    assert tally.call(tally.registry.functions.rolesOf(who)) == roles


def test_unknown_participant_views_are_empty(tally: Tally) -> None:
    who = tally.outsider.address
    assert tally.call(tally.registry.functions.participant(who)) == (
        0,
        UNREGISTERED,
        0,
        bytes(32),
        "",
    )
    assert not tally.call(tally.registry.functions.isActive(who))
    assert tally.call(tally.registry.functions.rolesOf(who)) == 0


def test_register_by_non_operator_reverts(tally: Tally) -> None:
    for sender in (tally.outsider, tally.admin, tally.auditor):
        expect_revert(
            lambda s=sender: tally.tx(
                tally.registry.functions.register(tally.outsider.address, PROVIDER, ID, ""), s
            ),
            "AccessControlUnauthorizedAccount",
            (sender.address, OPERATOR_ROLE),
        )


def test_register_zero_address_reverts(tally: Tally) -> None:
    expect_revert(
        lambda: tally.tx(tally.registry.functions.register(ZERO, PROVIDER, ID, "")),
        "ParticipantRegistryZeroAddress",
        (),
    )


def test_register_invalid_roles_reverts(tally: Tally) -> None:
    for roles in (0, 8, 0xFF, PROVIDER | 16):
        expect_revert(
            lambda r=roles: tally.tx(
                tally.registry.functions.register(tally.outsider.address, r, ID, "")
            ),
            "ParticipantRegistryInvalidRoles",
            (roles,),
        )


def test_register_twice_reverts(tally: Tally) -> None:
    expect_revert(
        lambda: _register(tally, tally.provider.address),
        "ParticipantRegistryAlreadyRegistered",
        (tally.provider.address,),
    )


def test_update_replaces_fields_and_keeps_status(tally: Tally) -> None:
    who = tally.outsider.address
    registered = tally.tx(tally.registry.functions.register(who, PROVIDER, ID, "old"))
    tally.tx(tally.registry.functions.suspend(who))
    new_id = b"\x07" * 32
    receipt = tally.tx(tally.registry.functions.update(who, CONSUMER | SERVICE, new_id, "new"))
    assert one_event(tally.registry, receipt, "ParticipantUpdated") == {
        "participant": who,
        "roles": CONSUMER | SERVICE,
        "identityHash": new_id,
        "metadataURI": "new",
    }
    assert tally.call(tally.registry.functions.participant(who)) == (
        CONSUMER | SERVICE,
        SUSPENDED,
        registered["blockNumber"],
        new_id,
        "new",
    )


def test_update_unregistered_reverts(tally: Tally) -> None:
    expect_revert(
        lambda: tally.tx(tally.registry.functions.update(tally.outsider.address, PROVIDER, ID, "")),
        "ParticipantRegistryNotRegistered",
        (tally.outsider.address,),
    )


def test_update_invalid_roles_reverts(tally: Tally) -> None:
    expect_revert(
        lambda: tally.tx(tally.registry.functions.update(tally.provider.address, 0, ID, "")),
        "ParticipantRegistryInvalidRoles",
        (0,),
    )


def test_update_by_non_operator_reverts(tally: Tally) -> None:
    expect_revert(
        lambda: tally.tx(
            tally.registry.functions.update(tally.provider.address, PROVIDER, ID, ""),
            tally.provider,
        ),
        "AccessControlUnauthorizedAccount",
        (tally.provider.address, OPERATOR_ROLE),
    )


def test_suspend_and_reinstate(tally: Tally) -> None:
    reg, who = tally.registry, tally.provider.address
    receipt = tally.tx(reg.functions.suspend(who))
    assert one_event(reg, receipt, "ParticipantSuspended") == {"participant": who}
    assert not tally.call(reg.functions.isActive(who))
    assert tally.call(reg.functions.rolesOf(who)) == PROVIDER  # roles kept while suspended
    assert tally.call(reg.functions.participant(who))[1] == SUSPENDED
    receipt = tally.tx(reg.functions.reinstate(who))
    assert one_event(reg, receipt, "ParticipantReinstated") == {"participant": who}
    assert tally.call(reg.functions.isActive(who))


def test_suspend_reverts(tally: Tally) -> None:
    reg = tally.registry
    expect_revert(
        lambda: tally.tx(reg.functions.suspend(tally.outsider.address)),
        "ParticipantRegistryNotRegistered",
        (tally.outsider.address,),
    )
    tally.tx(reg.functions.suspend(tally.provider.address))
    expect_revert(
        lambda: tally.tx(reg.functions.suspend(tally.provider.address)),
        "ParticipantRegistryAlreadySuspended",
        (tally.provider.address,),
    )
    expect_revert(
        lambda: tally.tx(reg.functions.suspend(tally.consumer.address), tally.consumer),
        "AccessControlUnauthorizedAccount",
        (tally.consumer.address, OPERATOR_ROLE),
    )


def test_reinstate_reverts(tally: Tally) -> None:
    reg = tally.registry
    expect_revert(
        lambda: tally.tx(reg.functions.reinstate(tally.outsider.address)),
        "ParticipantRegistryNotRegistered",
        (tally.outsider.address,),
    )
    expect_revert(
        lambda: tally.tx(reg.functions.reinstate(tally.provider.address)),
        "ParticipantRegistryNotSuspended",
        (tally.provider.address,),
    )
    tally.tx(reg.functions.suspend(tally.provider.address))
    expect_revert(
        lambda: tally.tx(reg.functions.reinstate(tally.provider.address), tally.auditor),
        "AccessControlUnauthorizedAccount",
        (tally.auditor.address, OPERATOR_ROLE),
    )


def test_revoked_operator_can_no_longer_register(tally: Tally) -> None:
    tally.tx(
        tally.registry.functions.revokeRole(OPERATOR_ROLE, tally.operator.address), tally.admin
    )
    expect_revert(
        lambda: _register(tally, tally.outsider.address),
        "AccessControlUnauthorizedAccount",
        (tally.operator.address, OPERATOR_ROLE),
    )
