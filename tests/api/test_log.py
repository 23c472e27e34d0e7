"""``/v1/log``: checkpoints, paged entries, inclusion and consistency proofs (public).

Proofs are checked with the pure RFC 9162 verifiers against roots rebuilt from the
entries' bytes, so the endpoints cannot agree with themselves by accident.
"""

from __future__ import annotations

from typing import Any

from service.api.context import ServiceContext
from service.evidence.anchor import anchor_once
from service.evidence.merkle import (
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from tests.api.conftest import SignIn, TestClient, make_client
from tests.evidence.test_log import agreement, receipt
from tests.space import Space


def code(r: Any) -> str:
    value: str = r.json()["error"]["code"]
    return value


def fill(client: TestClient, space: Space, sign_in: SignIn, n: int) -> None:
    h = sign_in(space.consumers[0])
    items = [agreement(space).to_json()] + [receipt(space, i).to_json() for i in range(1, n)]
    r = client.post("/v1/evidence", json={"entries": items}, headers=h)
    assert r.json()["accepted"] == n


def b(hex_str: str) -> bytes:
    return bytes.fromhex(hex_str[2:])


def test_entries_page_through_the_whole_log(space: Space, engine: Any) -> None:
    client, _ = make_client(space, engine, page_max=3)
    with client:
        from tests.api.conftest import bearer, get_token

        fill(client, space, lambda a: bearer(get_token(client, a)), 7)
        seen: list[dict[str, Any]] = []
        start: int | None = 0
        while start is not None:
            page = client.get("/v1/log/entries", params={"start": start}).json()
            assert len(page["entries"]) <= 3
            seen.extend(page["entries"])
            start = page["next"]
        assert [e["leaf_index"] for e in seen] == list(range(7))
        assert all(e.keys() == {"leaf_index", "leaf_data", "leaf_hash"} for e in seen)
        assert all(leaf_hash(b(e["leaf_data"])) == b(e["leaf_hash"]) for e in seen)
        root = root_from_leaf_hashes([b(e["leaf_hash"]) for e in seen])
        head = client.get("/v1/log/checkpoints").json()["log"]
        assert head == {"tree_size": 7, "root": "0x" + root.hex()}
        window = client.get("/v1/log/entries", params={"start": 2, "end": 4}).json()
        assert [e["leaf_index"] for e in window["entries"]] == [2, 3] and window["next"] is None
        beyond = client.get("/v1/log/entries", params={"start": 50}).json()
        assert beyond["entries"] == [] and beyond["next"] is None
        r = client.get("/v1/log/entries", params={"start": 5, "end": 2})
        assert (r.status_code, code(r)) == (400, "invalid_input")
        r = client.get("/v1/log/entries", params={"start": -1})
        assert (r.status_code, code(r)) == (422, "validation_error")
        assert r.json()["error"]["fields"][0]["path"] == "query.start"
        r = client.get("/v1/log/checkpoints", params={"limit": 4})
        assert (r.status_code, code(r)) == (400, "invalid_input")  # above TALLY_PAGE_MAX


def test_checkpoints_list_what_was_anchored(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn
) -> None:
    assert client.get("/v1/log/checkpoints").json()["checkpoints"] == []
    fill(client, space, sign_in, 3)
    row = anchor_once(
        engine=ctx.engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )
    assert row is not None
    body = client.get("/v1/log/checkpoints").json()
    assert body["total"] == 1 and body["latest"]["seq"] == 0
    cp = body["checkpoints"][0]
    assert (cp["tree_size"], cp["root"], cp["tx_hash"]) == (3, row.root, row.tx_hash)
    on_chain = space.chain.call(space.contracts.ledger.functions.checkpoint(0))
    assert "0x" + bytes(on_chain[1]).hex() == cp["root"]


def test_inclusion_proofs_verify_against_the_root(
    client: TestClient, space: Space, sign_in: SignIn
) -> None:
    fill(client, space, sign_in, 6)
    entries = client.get("/v1/log/entries").json()["entries"]
    leaves = [leaf_hash(b(e["leaf_data"])) for e in entries]
    for size in (1, 4, 6):
        root = root_from_leaf_hashes(leaves[:size])
        for leaf in range(size):
            p = client.get("/v1/log/proof/inclusion", params={"leaf": leaf, "size": size}).json()
            assert p["root"] == "0x" + root.hex() and p["leaf_hash"] == "0x" + leaves[leaf].hex()
            assert verify_inclusion(leaves[leaf], leaf, size, [b(h) for h in p["proof"]], root)
    r = client.get("/v1/log/proof/inclusion", params={"leaf": 6, "size": 6})
    assert (r.status_code, code(r)) == (400, "invalid_input")
    r = client.get("/v1/log/proof/inclusion", params={"leaf": 0, "size": 7})
    assert (r.status_code, code(r)) == (404, "tree_size_not_found")
    r = client.get("/v1/log/proof/inclusion", params={"leaf": 0})
    assert (r.status_code, code(r)) == (422, "validation_error")


def test_consistency_proofs_verify_between_sizes(
    client: TestClient, space: Space, sign_in: SignIn
) -> None:
    fill(client, space, sign_in, 6)
    entries = client.get("/v1/log/entries").json()["entries"]
    leaves = [leaf_hash(b(e["leaf_data"])) for e in entries]
    for old in range(1, 7):
        p = client.get("/v1/log/proof/consistency", params={"from": old, "to": 6}).json()
        assert p["from"] == old and p["to"] == 6
        assert verify_consistency(
            old,
            6,
            root_from_leaf_hashes(leaves[:old]),
            root_from_leaf_hashes(leaves),
            [b(h) for h in p["proof"]],
        )
    r = client.get("/v1/log/proof/consistency", params={"from": 5, "to": 3})
    assert (r.status_code, code(r)) == (400, "invalid_input")
    r = client.get("/v1/log/proof/consistency", params={"from": 1, "to": 9})
    assert (r.status_code, code(r)) == (404, "tree_size_not_found")
