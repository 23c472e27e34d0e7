"""Sign-In with Ethereum, bearer tokens, roles and operator API keys, through the real app.

Every failure is checked for its status and stable code: replayed nonce, expired nonce
(by the message's expiry and by the stored one), a signature by another key, another
domain / URI / chain, an unknown nonce, a suspended participant (at sign-in and with a
token issued before the suspension), an address with no role, forged and expired tokens.
"""

from __future__ import annotations

import threading
import time

import jwt
import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from service.api import auth
from service.api.context import ServiceContext
from service.api.models import ApiKey, AuthNonce
from service.api.siwe import parse
from service.errors import ChallengeUsed, InvalidToken
from tests.api.conftest import SECRET, TestClient, bearer, get_token, sign_message
from tests.space import Space


def challenge(client: TestClient, address: str) -> str:
    r = client.post("/v1/auth/challenge", json={"address": address})
    assert r.status_code == 200, r.text
    message: str = r.json()["message"]
    return message


def redeem(client: TestClient, message: str, signature: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    r = client.post("/v1/auth/token", json={"message": message, "signature": signature})
    return r.status_code, r.json()


def code(body: dict) -> str:  # type: ignore[type-arg]
    value: str = body["error"]["code"]
    return value


def suspend(space: Space, who: str) -> None:
    space.chain.transact(space.contracts.registry.functions.suspend(who), sender=space.operator)


# --- the happy path ---------------------------------------------------------------------


def test_challenge_is_an_eip4361_message_for_this_server(client: TestClient, space: Space) -> None:
    consumer = space.consumers[0]
    r = client.post("/v1/auth/challenge", json={"address": consumer.address.lower()})
    assert r.status_code == 200
    body = r.json()
    msg = parse(body["message"])
    assert msg.domain == "tally.test" and msg.uri == "https://tally.test"
    assert msg.address == consumer.address  # checksummed, whatever case was sent
    assert msg.chain_id == space.chain.chain_id
    assert msg.nonce == body["nonce"] and len(msg.nonce) >= 8
    assert msg.expires is not None and 0 < msg.expires.timestamp() - time.time() <= 300


def test_sign_in_gives_a_token_with_the_registry_roles(client: TestClient, space: Space) -> None:
    for acct, roles in [
        (space.consumers[0], ["consumer"]),
        (space.providers[1], ["provider"]),
        (space.operator, ["operator"]),
        (space.auditor, ["auditor"]),
    ]:
        message = challenge(client, acct.address)
        status, body = redeem(client, message, sign_message(acct, message))
        assert status == 200, body
        assert body["roles"] == roles and body["address"] == acct.address
        claims = jwt.decode(
            body["access_token"], SECRET, algorithms=["HS256"], audience="tally-api"
        )
        assert claims["sub"] == acct.address and claims["exp"] == body["expires_at"]
        me = client.get("/v1/auth/me", headers=bearer(body["access_token"]))
        assert me.status_code == 200 and me.json()["roles"] == roles


# --- refused sign-ins ---------------------------------------------------------------------


def test_replayed_nonce_is_refused(client: TestClient, space: Space) -> None:
    acct = space.consumers[0]
    message = challenge(client, acct.address)
    signature = sign_message(acct, message)
    assert redeem(client, message, signature)[0] == 200
    status, body = redeem(client, message, signature)
    assert (status, code(body)) == (401, "challenge_used")


def test_expired_nonce_is_refused(client: TestClient, ctx: ServiceContext, space: Space) -> None:
    acct = space.consumers[0]
    s = ctx.settings
    # a challenge issued ten minutes ago: its message says it expired
    old = auth.new_challenge(
        engine=ctx.engine,
        address=acct.address,
        domain=s.siwe_domain,
        uri=s.siwe_uri,
        chain_id=space.chain.chain_id,
        ttl_s=s.nonce_ttl_s,
        now=time.time() - 600,
    )
    status, body = redeem(client, old.text(), sign_message(acct, old.text()))
    assert (status, code(body)) == (401, "challenge_expired")
    # a fresh message whose stored nonce expired (the database is the authority)
    message = challenge(client, acct.address)
    with Session(ctx.engine) as session:
        session.exec(update(AuthNonce).values(expires_at=int(time.time()) - 1))  # type: ignore[call-overload]
        session.commit()
    status, body = redeem(client, message, sign_message(acct, message))
    assert (status, code(body)) == (401, "challenge_expired")


def test_signature_by_another_key_is_refused(client: TestClient, space: Space) -> None:
    message = challenge(client, space.consumers[0].address)
    status, body = redeem(client, message, sign_message(space.consumers[1], message))
    assert (status, code(body)) == (401, "signature_mismatch")
    # the nonce is still good for its owner
    assert redeem(client, message, sign_message(space.consumers[0], message))[0] == 200


def test_message_for_another_domain_uri_or_chain_is_refused(
    client: TestClient, space: Space
) -> None:
    acct = space.consumers[0]
    message = challenge(client, acct.address)
    for old, new in [
        ("tally.test wants", "evil.test wants"),
        ("URI: https://tally.test", "URI: https://evil.test"),
        (f"Chain ID: {space.chain.chain_id}", "Chain ID: 1"),
    ]:
        forged = message.replace(old, new)
        status, body = redeem(client, forged, sign_message(acct, forged))
        assert (status, code(body)) == (401, "sign_in_rejected"), old


def test_nonce_not_issued_to_that_address_is_refused(client: TestClient, space: Space) -> None:
    message = challenge(client, space.consumers[0].address)
    other = space.consumers[1]
    forged = message.replace(space.consumers[0].address, other.address)
    status, body = redeem(client, forged, sign_message(other, forged))
    assert (status, code(body)) == (401, "challenge_unknown")


def test_malformed_input_gives_its_code(client: TestClient, space: Space) -> None:
    r = client.post("/v1/auth/challenge", json={"address": "0x1234"})
    assert r.status_code == 422 and code(r.json()) == "validation_error"
    assert r.json()["error"]["fields"][0]["path"] == "body.address"
    bad_checksum = "0x" + space.consumers[0].address[2:].swapcase()
    r = client.post("/v1/auth/challenge", json={"address": bad_checksum})
    assert (r.status_code, code(r.json())) == (400, "invalid_input")
    status, body = redeem(client, "hello", "0x00")
    assert (status, code(body)) == (401, "sign_in_rejected")
    message = challenge(client, space.consumers[0].address)
    status, body = redeem(client, message, "0x" + "11" * 65)
    assert (status, code(body)) == (422, "invalid_signature")


def test_suspended_participant_is_refused(client: TestClient, space: Space) -> None:
    acct = space.consumers[0]
    token = get_token(client, acct)  # issued while active
    suspend(space, acct.address)
    message = challenge(client, acct.address)
    status, body = redeem(client, message, sign_message(acct, message))
    assert (status, code(body)) == (403, "participant_suspended")
    r = client.get("/v1/auth/me", headers=bearer(token))
    assert (r.status_code, code(r.json())) == (403, "participant_suspended")


def test_address_without_any_role_is_refused(client: TestClient, space: Space) -> None:
    message = challenge(client, space.outsider.address)
    status, body = redeem(client, message, sign_message(space.outsider, message))
    assert (status, code(body)) == (403, "not_a_participant")


def test_missing_forged_and_expired_tokens_are_401(client: TestClient, space: Space) -> None:
    r = client.get("/v1/auth/me")
    assert (r.status_code, code(r.json())) == (401, "unauthenticated")
    assert r.headers["WWW-Authenticate"] == "Bearer"
    forged = auth.issue_token(
        address=space.operator.address, secret="another" * 8, ttl_s=60, issuer="tally.test"
    )
    expired = auth.issue_token(
        address=space.operator.address,
        secret=SECRET,
        ttl_s=60,
        issuer="tally.test",
        now=time.time() - 3600,
    )
    for token, message in [(forged.token, "not valid"), (expired.token, "expired"), ("x.y.z", "")]:
        r = client.get("/v1/auth/me", headers=bearer(token))
        assert (r.status_code, code(r.json())) == (401, "invalid_token")
        assert message in r.json()["error"]["message"]
    # a bad credential is refused on public endpoints too
    r = client.get("/v1/log/checkpoints", headers=bearer("x.y.z"))
    assert (r.status_code, code(r.json())) == (401, "invalid_token")


def test_a_remembered_token_still_expires_and_binds_its_secret_and_issuer(space: Space) -> None:
    who = space.consumers[0].address
    issued = auth.issue_token(address=who, secret=SECRET, ttl_s=2, issuer="tally.test")
    assert auth.verify_token(token=issued.token, secret=SECRET, issuer="tally.test") == who
    assert auth.verify_token(token=issued.token, secret=SECRET, issuer="tally.test") == who
    # remembered under its secret and issuer only: another secret or issuer decodes it
    with pytest.raises(InvalidToken, match="not valid"):
        auth.verify_token(token=issued.token, secret="another" * 8, issuer="tally.test")
    with pytest.raises(InvalidToken, match="not valid"):
        auth.verify_token(token=issued.token, secret=SECRET, issuer="elsewhere.test")
    # a forged variant (one signature character changed) is not the remembered text
    head, _, sig = issued.token.rpartition(".")
    forged = head + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
    with pytest.raises(InvalidToken, match="not valid"):
        auth.verify_token(token=forged, secret=SECRET, issuer="tally.test")
    time.sleep(max(0.0, issued.expires_at - time.time()) + 0.05)
    with pytest.raises(InvalidToken, match="expired"):
        auth.verify_token(token=issued.token, secret=SECRET, issuer="tally.test")


def test_concurrent_redemptions_of_one_nonce_succeed_once(
    ctx: ServiceContext, space: Space
) -> None:
    acct = space.consumers[0]
    s = ctx.settings
    msg = auth.new_challenge(
        engine=ctx.engine,
        address=acct.address,
        domain=s.siwe_domain,
        uri=s.siwe_uri,
        chain_id=space.chain.chain_id,
        ttl_s=60,
    )
    signature = sign_message(acct, msg.text())
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def attempt() -> None:
        barrier.wait()
        try:
            auth.redeem_challenge(
                engine=ctx.engine,
                message=msg.text(),
                signature=signature,
                domain=s.siwe_domain,
                uri=s.siwe_uri,
                chain_id=space.chain.chain_id,
            )
            outcomes.append("ok")
        except ChallengeUsed:
            outcomes.append("used")

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] + ["used"] * 5


# --- operator API keys --------------------------------------------------------------------


def test_api_keys_act_as_their_operator_until_revoked(
    client: TestClient, ctx: ServiceContext, space: Space
) -> None:
    op = bearer(get_token(client, space.operator))
    r = client.post("/v1/auth/api-keys", json={"label": "ingest robot"}, headers=op)
    assert r.status_code == 201, r.text
    created = r.json()
    key, key_id = created["api_key"], created["key_id"]
    assert key.startswith("tly_") and created["address"] == space.operator.address
    with Session(ctx.engine) as session:  # hashed at rest
        rows = session.exec(select(ApiKey)).all()
        assert len(rows) == 1 and key not in repr(rows[0].model_dump())
    me = client.get("/v1/auth/me", headers={"X-API-Key": key})
    assert me.status_code == 200 and me.json()["via"] == "api_key"
    listed = client.get("/v1/auth/api-keys", headers={"X-API-Key": key}).json()["keys"]
    assert [k["key_id"] for k in listed] == [key_id] and "api_key" not in listed[0]
    r = client.delete(f"/v1/auth/api-keys/{key_id}", headers=op)
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    r = client.get("/v1/auth/me", headers={"X-API-Key": key})
    assert (r.status_code, code(r.json())) == (401, "invalid_token")
    r = client.delete("/v1/auth/api-keys/" + "0" * 16, headers=op)
    assert (r.status_code, code(r.json())) == (404, "api_key_not_found")
    r = client.delete("/v1/auth/api-keys/nothex", headers=op)
    assert (r.status_code, code(r.json())) == (422, "validation_error")


def test_api_key_endpoints_need_an_operator(client: TestClient, space: Space) -> None:
    assert client.post("/v1/auth/api-keys", json={"label": "x"}).status_code == 401
    consumer = bearer(get_token(client, space.consumers[0]))
    for method, path in [("post", "/v1/auth/api-keys"), ("get", "/v1/auth/api-keys")]:
        r = client.request(method, path, json={"label": "x"}, headers=consumer)
        assert (r.status_code, code(r.json())) == (403, "role_required")
    r = client.get("/v1/auth/me", headers={"X-API-Key": "tly_not-a-key"})
    assert (r.status_code, code(r.json())) == (401, "invalid_token")


def test_api_key_stops_working_when_its_operator_loses_the_role(
    client: TestClient, space: Space
) -> None:
    op = bearer(get_token(client, space.operator))
    key = client.post("/v1/auth/api-keys", json={"label": "k"}, headers=op).json()["api_key"]
    reg = space.contracts.registry
    role = space.chain.call(reg.functions.OPERATOR_ROLE())
    space.chain.transact(
        reg.functions.revokeRole(role, space.operator.address), sender=space.operator
    )
    r = client.get("/v1/auth/me", headers={"X-API-Key": key})
    assert r.status_code in (401, 403)
