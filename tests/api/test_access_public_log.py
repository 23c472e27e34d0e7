"""The attack: a competitor reads our usage from the public log (T15).

An Agreement (consumer c0, providers p0 and p1) and three UsageReceipts, anchored. A
caller with no credential walks every public log route (checkpoints, every page of
entries, every inclusion proof, the consistency proofs, the signed checkpoint note, the
note key) and finds no party address, agreement or asset id, entry id, detail hash,
price or signature in any answer: only commitment leaves, hashes and the tree.
"""

from __future__ import annotations

import pytest

from service.api.context import ServiceContext
from service.evidence.commitment import COMMITMENT_LEAF_SIZE, LEAF_COMMITMENT
from tests.api.conftest import SignIn, TestClient
from tests.api.test_rounds import prepare
from tests.settlement.test_engine import PRICE, agreement, usage
from tests.space import Space


def _secrets(space: Space) -> list[str]:
    entries = [agreement(space), *usage(space)]
    out = ["0x" + e.id().hex() for e in entries]
    out += ["a1" * 32, "a5" * 32]  # agreement id, asset id
    out += [e.entry.detailHash.hex() for e in entries[1:]]  # type: ignore[union-attr]
    for acct in (*space.consumers, *space.providers):
        out += [acct.address, acct.address.lower(), acct.address[2:].lower()]
    for e in entries:
        out += [sig.hex() for sig in e.signatures.values()]
    return out


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_public_log_reveals_no_usage_to_a_competitor(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn
) -> None:
    prepare(client, ctx, space, sign_in)  # 4 entries, anchored at size 4
    size = client.get("/v1/log/checkpoints").json()["log"]["tree_size"]
    assert size == 4
    bodies = [client.get("/v1/log/checkpoints").text, client.get("/v1/log/key").text]
    bodies.append(client.get("/v1/log/checkpoint").text)
    page = client.get("/v1/log/entries", params={"start": 0, "end": size})
    bodies.append(page.text)
    for item in page.json()["entries"]:
        data = bytes.fromhex(item["leaf_data"][2:])
        assert len(data) == COMMITMENT_LEAF_SIZE and data[0] == LEAF_COMMITMENT
        assert set(item) <= {"leaf_index", "leaf_data", "leaf_hash"}
    for leaf in range(size):
        bodies.append(
            client.get("/v1/log/proof/inclusion", params={"leaf": leaf, "size": size}).text
        )
    for old in range(size + 1):
        bodies.append(
            client.get("/v1/log/proof/consistency", params={"from": old, "to": size}).text
        )
    text = "\n".join(bodies).lower()
    leaked = [s for s in _secrets(space) if s.lower() in text]
    assert not leaked, leaked
    assert f'"{PRICE}"' not in text and '"units"' not in text and '"entry_id"' not in text
