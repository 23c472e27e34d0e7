"""``GET /v1/log/checkpoint``, ``GET /v1/log/key`` and ``POST /v1/log/cosignatures``.

The note is opened with :mod:`service.witness.note` under the vkey the API publishes, and
every Ed25519 signature is re-checked with PyNaCl (libsodium), over the bytes the C2SP
specs say are signed. Attacks on the cosignature endpoint are named after the attack;
each checks that nothing was stored.
"""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import nacl.signing
import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from service.api.context import ServiceContext
from service.db import create_schema, make_engine
from service.evidence.anchor import anchor_once
from service.evidence.models import AnchorRow
from service.witness.cosignatures import CosignatureRow, space_origin
from service.witness.note import (
    Checkpoint,
    CosignatureV1Signer,
    NoteSigner,
    NoteVerifier,
    cosign,
    cosignature_message,
    open_checkpoint,
    parse_note,
    parse_signature_line,
)
from tests.api.conftest import TestClient, bearer, get_token, make_client
from tests.api.test_log import code, fill
from tests.space import Space

# Storage tests run on SQLite and PostgreSQL; the rest (no storage difference) on SQLite.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

W1 = CosignatureV1Signer("witness-one.example/w", bytes([11]) * 32)
W2 = CosignatureV1Signer("witness-two.example/w", bytes([12]) * 32)
STRANGER = CosignatureV1Signer("stranger.example/w", bytes([13]) * 32)


@pytest.fixture
def wclient(space: Space, engine: Engine) -> Any:
    client, ctx = make_client(space, engine, witnesses=f"{W1.vkey()}, {W2.vkey()}")
    with client:
        yield client, ctx


def _fill_and_anchor(client: TestClient, ctx: ServiceContext, space: Space, n: int) -> AnchorRow:
    fill(client, space, lambda a: bearer(get_token(client, a)), n)
    row = anchor_once(
        engine=ctx.engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )
    assert row is not None
    return row


def _note(client: TestClient) -> bytes:
    r = client.get("/v1/log/checkpoint")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    return r.content


def _stored(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.exec(select(func.count()).select_from(CosignatureRow)).one())


def _post(client: TestClient, signer: CosignatureV1Signer, line: str, size: int) -> Any:
    return client.post(
        "/v1/log/cosignatures",
        json={"witness_vkey": signer.vkey(), "cosignature": line, "size": size},
    )


def _body(ctx: ServiceContext, size: int, root_hex: str) -> bytes:
    assert ctx.note_signer is not None
    return Checkpoint(ctx.note_signer.name, size, bytes.fromhex(root_hex[2:])).body()


# --- the served note ------------------------------------------------------------------------


@sqlite_only
def test_checkpoint_before_first_anchor_is_404(client: TestClient) -> None:
    r = client.get("/v1/log/checkpoint")
    assert (r.status_code, code(r)) == (404, "log_not_anchored")


@sqlite_only
def test_checkpoint_note_verifies_under_published_key_and_nacl(
    client: TestClient, ctx: ServiceContext, space: Space
) -> None:
    row = _fill_and_anchor(client, ctx, space, 3)
    key = client.get("/v1/log/key").json()
    origin = space_origin(
        space="tally.test", chain_id=space.chain.chain_id, ledger=space.contracts.ledger.address
    )
    assert key["origin"] == key["key_name"] == origin
    assert origin == f"tally.test/tally/{space.chain.chain_id}/{row.contract.lower()}"
    verifier = NoteVerifier.from_vkey(key["vkey"])
    note = _note(client)
    checkpoint, cosigs = open_checkpoint(note, verifier)
    assert (checkpoint.origin, checkpoint.size) == (origin, 3)
    assert "0x" + checkpoint.root.hex() == row.root  # the tree's root is the anchored one
    assert cosigs == []
    body, sigs = parse_note(note)
    assert body == f"{origin}\n3\n{base64.b64encode(checkpoint.root).decode()}\n".encode()
    nacl.signing.VerifyKey(verifier.public_key).verify(body, sigs[0].signature)
    # Ed25519 is deterministic: the same checkpoint is served byte for byte again.
    assert _note(client) == note


@sqlite_only
def test_checkpoint_follows_the_latest_anchor_not_the_log_head(
    client: TestClient, ctx: ServiceContext, space: Space
) -> None:
    _fill_and_anchor(client, ctx, space, 3)
    first = _note(client)
    h = bearer(get_token(client, space.consumers[0]))
    from tests.evidence.test_log import receipt

    r = client.post("/v1/evidence", json={"entries": [receipt(space, 9).to_json()]}, headers=h)
    assert r.json()["accepted"] == 1
    assert _note(client) == first  # the log grew, nothing new is anchored
    anchor_once(
        engine=ctx.engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )
    assert Checkpoint.parse(parse_note(_note(client))[0]).size == 4


@sqlite_only
def test_rewritten_database_serves_another_root(
    client: TestClient, ctx: ServiceContext, space: Space, tmp_path: Any
) -> None:
    """An operator who swaps the log under an anchor serves a root the chain does not have."""
    row = _fill_and_anchor(client, ctx, space, 3)
    forked = make_engine(f"sqlite:///{tmp_path / 'forked.db'}")
    create_schema(forked)
    try:
        fork_client, fork_ctx = make_client(space, forked)
        with fork_client:
            h = bearer(get_token(fork_client, space.consumers[0]))
            from tests.evidence.test_log import agreement, receipt

            items = [agreement(space).to_json()] + [receipt(space, i).to_json() for i in (1, 7)]
            r = fork_client.post("/v1/evidence", json={"entries": items}, headers=h)
            assert r.json()["accepted"] == 3
            with Session(forked) as s:  # the anchor row copied over, as if rewritten in place
                s.add(AnchorRow(**row.model_dump()))
                s.commit()
            assert fork_ctx.note_signer is not None
            checkpoint, _ = open_checkpoint(_note(fork_client), fork_ctx.note_signer.verifier())
            assert checkpoint.size == row.tree_size
            assert "0x" + checkpoint.root.hex() != row.root
    finally:
        forked.dispose()


@sqlite_only
def test_note_key_is_refused_without_a_key(space: Space, engine: Engine) -> None:
    client, ctx = make_client(space, engine)
    ctx.note_signer = None
    with client:
        r = client.get("/v1/log/checkpoint")
        assert (r.status_code, code(r)) == (503, "note_key_unavailable")
        r = client.get("/v1/log/key")
        assert (r.status_code, code(r)) == (503, "note_key_unavailable")


# --- cosignatures ---------------------------------------------------------------------------


def test_cosignature_is_stored_and_served_with_the_note(wclient: Any, space: Space) -> None:
    client, ctx = wclient
    row = _fill_and_anchor(client, ctx, space, 3)
    body = _body(ctx, 3, row.root)
    now = int(time.time())
    for witness in (W1, W2):
        r = _post(client, witness, cosign(body, witness, now), 3)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "stored" and r.json()["timestamp"] == now
        assert r.json()["root"] == row.root
    note = _note(client)
    checkpoint, cosigs = open_checkpoint(
        note, ctx.note_signer.verifier(), [W1.verifier(), W2.verifier()]
    )
    assert checkpoint.size == 3
    assert sorted((s.name, s.timestamp) for s in cosigs) == [
        (W1.name, now),
        (W2.name, now),
    ]
    for sig, witness in zip(parse_note(note)[1][1:], (W1, W2), strict=True):
        nacl.signing.VerifyKey(witness.public_key).verify(
            cosignature_message(body, now), sig.signature[8:]
        )
    assert client.get("/v1/log/key").json()["witnesses"] == [W1.vkey(), W2.vkey()]


def test_cosignature_replay_is_idempotent_and_newest_wins(wclient: Any, space: Space) -> None:
    client, ctx = wclient
    row = _fill_and_anchor(client, ctx, space, 3)
    body = _body(ctx, 3, row.root)
    t0 = int(time.time()) - 100
    old, new = cosign(body, W1, t0), cosign(body, W1, t0 + 50)
    assert _post(client, W1, old, 3).json()["status"] == "stored"
    assert _post(client, W1, old, 3).json()["status"] == "unchanged"
    # The alias the witness process sends (`vkey`) is accepted too.
    r = client.post("/v1/log/cosignatures", json={"vkey": W1.vkey(), "cosignature": new, "size": 3})
    assert r.json()["status"] == "replaced"
    assert _stored(ctx.engine) == 1
    assert new.encode() in _note(client) and old.encode() not in _note(client)


def test_replay_of_an_older_cosignature_is_refused(wclient: Any, space: Space) -> None:
    client, ctx = wclient
    row = _fill_and_anchor(client, ctx, space, 3)
    body = _body(ctx, 3, row.root)
    t0 = int(time.time()) - 100
    newer = cosign(body, W1, t0 + 50)
    assert _post(client, W1, newer, 3).status_code == 200
    r = _post(client, W1, cosign(body, W1, t0), 3)
    assert (r.status_code, code(r)) == (409, "cosignature_stale")
    assert newer.encode() in _note(client)


@sqlite_only
def test_forged_cosignature_is_refused(wclient: Any, space: Space) -> None:
    client, ctx = wclient
    row = _fill_and_anchor(client, ctx, space, 3)
    sig = parse_signature_line(cosign(_body(ctx, 3, row.root), W1, int(time.time())))
    forged = bytearray(sig.signature)
    forged[30] ^= 0x40
    line = type(sig)(sig.name, sig.key_id, bytes(forged)).line()
    r = _post(client, W1, line, 3)
    assert (r.status_code, code(r)) == (422, "cosignature_invalid")
    # A stranger's valid cosignature relabelled with a configured witness's name and id.
    stolen = parse_signature_line(cosign(_body(ctx, 3, row.root), STRANGER, int(time.time())))
    relabelled = type(stolen)(W1.name, W1.key_id, stolen.signature).line()
    r = _post(client, W1, relabelled, 3)
    assert (r.status_code, code(r)) == (422, "cosignature_invalid")
    assert _stored(ctx.engine) == 0


@sqlite_only
def test_cosignature_over_another_size_or_root_is_refused(wclient: Any, space: Space) -> None:
    client, ctx = wclient
    row = _fill_and_anchor(client, ctx, space, 3)
    now = int(time.time())
    other_root = cosign(_body(ctx, 3, "0x" + "ab" * 32), W1, now)
    r = _post(client, W1, other_root, 3)
    assert (r.status_code, code(r)) == (422, "cosignature_invalid")
    other_size = cosign(_body(ctx, 2, row.root), W1, now)
    r = _post(client, W1, other_size, 3)
    assert (r.status_code, code(r)) == (422, "cosignature_invalid")
    r = _post(client, W1, cosign(_body(ctx, 2, row.root), W1, now), 2)  # 2 is not anchored
    assert (r.status_code, code(r)) == (404, "checkpoint_not_found")
    assert _stored(ctx.engine) == 0


@sqlite_only
def test_cosignature_for_another_origin_is_refused(wclient: Any, space: Space) -> None:
    client, ctx = wclient
    row = _fill_and_anchor(client, ctx, space, 3)
    elsewhere = Checkpoint(
        space_origin(space="other.example", chain_id=space.chain.chain_id, ledger=row.contract),
        3,
        bytes.fromhex(row.root[2:]),
    )
    r = _post(client, W1, cosign(elsewhere.body(), W1, int(time.time())), 3)
    assert (r.status_code, code(r)) == (422, "cosignature_invalid")
    assert _stored(ctx.engine) == 0


@sqlite_only
def test_cosignature_from_unknown_witness_is_refused(wclient: Any, space: Space) -> None:
    client, ctx = wclient
    row = _fill_and_anchor(client, ctx, space, 3)
    line = cosign(_body(ctx, 3, row.root), STRANGER, int(time.time()))
    r = _post(client, STRANGER, line, 3)
    assert (r.status_code, code(r)) == (403, "witness_unknown")
    # Same name and key id as W1 cannot be faked without W1's key: another key is unknown.
    twin = CosignatureV1Signer(W1.name, bytes([99]) * 32)
    r = _post(client, twin, cosign(_body(ctx, 3, row.root), twin, int(time.time())), 3)
    assert (r.status_code, code(r)) == (403, "witness_unknown")
    # An ordinary (alg 0x01) note key is not a cosigner key.
    plain = NoteSigner(W1.name, bytes([11]) * 32)
    r = client.post(
        "/v1/log/cosignatures",
        json={"witness_vkey": plain.vkey(), "cosignature": line, "size": 3},
    )
    assert (r.status_code, code(r)) == (400, "note_key_invalid")
    assert _stored(ctx.engine) == 0


@sqlite_only
def test_cosignature_from_the_future_is_refused(wclient: Any, space: Space) -> None:
    client, ctx = wclient
    row = _fill_and_anchor(client, ctx, space, 3)
    line = cosign(_body(ctx, 3, row.root), W1, int(time.time()) + 3_600)
    r = _post(client, W1, line, 3)
    assert (r.status_code, code(r)) == (422, "cosignature_invalid")
    assert _stored(ctx.engine) == 0


@sqlite_only
def test_malformed_cosignature_posts_are_refused(wclient: Any, space: Space) -> None:
    client, ctx = wclient
    row = _fill_and_anchor(client, ctx, space, 3)
    good = cosign(_body(ctx, 3, row.root), W1, int(time.time()))
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"witness_vkey": "not a vkey", "cosignature": good, "size": 3}, 400, "note_key_invalid"),
        ({"witness_vkey": W1.vkey(), "cosignature": "- w AAAA", "size": 3}, 422, ""),
        ({"witness_vkey": W1.vkey(), "cosignature": good + "x\n", "size": 3}, 422, ""),
        ({"witness_vkey": W1.vkey(), "cosignature": good, "size": -1}, 422, "validation_error"),
        ({"witness_vkey": W1.vkey(), "cosignature": good}, 422, "validation_error"),
        ({"witness_vkey": W1.vkey(), "cosignature": good, "size": 3, "x": 1}, 422, ""),
    ]
    for payload, status, want in cases:
        r = client.post("/v1/log/cosignatures", json=payload)
        assert r.status_code == status, (payload, r.text)
        if want:
            assert code(r) == want
    assert _stored(ctx.engine) == 0


@sqlite_only
def test_huge_cosignature_body_is_refused(wclient: Any, space: Space) -> None:
    client, ctx = wclient
    row = _fill_and_anchor(client, ctx, space, 3)
    good = cosign(_body(ctx, 3, row.root), W1, int(time.time()))
    padded = good.rstrip("\n") + "A" * 5_000
    r = _post(client, W1, padded, 3)
    assert (r.status_code, code(r)) == (422, "validation_error")
    huge = "x" * (9 * 1024 * 1024)
    r = client.post(
        "/v1/log/cosignatures",
        content=b'{"witness_vkey": "' + huge.encode() + b'", "cosignature": "", "size": 3}',
        headers={"content-type": "application/json"},
    )
    assert (r.status_code, code(r)) == (413, "payload_too_large")
    assert _stored(ctx.engine) == 0


@sqlite_only
def test_old_checkpoint_cosignature_stays_with_its_size(wclient: Any, space: Space) -> None:
    """A cosignature of size 3 is not served with (nor accepted for) size 4."""
    client, ctx = wclient
    row3 = _fill_and_anchor(client, ctx, space, 3)
    line3 = cosign(_body(ctx, 3, row3.root), W1, int(time.time()) - 10)
    assert _post(client, W1, line3, 3).status_code == 200
    h = bearer(get_token(client, space.consumers[0]))
    from tests.evidence.test_log import receipt

    r = client.post("/v1/evidence", json={"entries": [receipt(space, 8).to_json()]}, headers=h)
    assert r.json()["accepted"] == 1
    anchor_once(
        engine=ctx.engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )
    note = _note(client)
    assert line3.encode() not in note
    assert Checkpoint.parse(parse_note(note)[0]).size == 4
    r = _post(client, W1, line3, 4)
    assert (r.status_code, code(r)) == (422, "cosignature_invalid")


@sqlite_only
def test_receipt_carries_the_cosigned_note(wclient: Any, space: Space) -> None:
    client, ctx = wclient
    row = _fill_and_anchor(client, ctx, space, 3)
    line = cosign(_body(ctx, 3, row.root), W1, int(time.time()))
    assert _post(client, W1, line, 3).status_code == 200
    from tests.evidence.test_log import receipt

    eid = "0x" + receipt(space, 1).id().hex()
    auditor = bearer(get_token(client, space.auditor))  # receipts go to parties and staff
    doc = client.get(f"/v1/receipts/{eid}", headers=auditor).json()
    checkpoint, cosigs = open_checkpoint(
        doc["cosignatures"].encode(), ctx.note_signer.verifier(), [W1.verifier()]
    )
    assert (checkpoint.size, "0x" + checkpoint.root.hex()) == (doc["tree_size"], doc["root"])
    assert [s.name for s in cosigs] == [W1.name]
    assert struct.unpack(">Q", parse_signature_line(line).signature[:8])[0] == cosigs[0].timestamp
