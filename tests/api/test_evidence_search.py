"""``GET /v1/evidence`` with filters: search by agreement, party, type and period.

The filters are checked against an independent reading of the same log: every entry
decoded from the auditor's unfiltered pages and filtered in Python, and, for ``party``,
against what ``GET /v1/evidence/{id}`` lets that participant read (the access rule of
T15). A participant searches only its own entries; the attack of searching another
party's is a 403 and leaks nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils import to_checksum_address

from service.api.context import ServiceContext
from service.evidence.entries import decode_entry
from service.evidence.log import append_entries
from tests.api.conftest import SignIn, TestClient
from tests.api.test_evidence import anchor
from tests.settlement.test_engine import AG, AG2, P0, P1, agreement, quality, receipt
from tests.space import Space

DAY = 86_400


def fill(ctx: ServiceContext, space: Space) -> None:
    """Two agreements (AG: c0 with p0 and p1; AG2: c1 with p2), receipts on both over
    three days, and a quality attestation on AG; the first part anchored."""
    entries = [
        agreement(space),
        agreement(space, AG2, consumer=1, providers=(2,)),
        receipt(space, 1, provider=0, units=3),
        receipt(space, 2, provider=1, units=4, start=P0 + DAY),
        receipt(space, 3, provider=2, units=5, aid=AG2, consumer=1, start=P0 - DAY),
        quality(space, provider=0, score=9000, attester=space.auditor),
    ]
    results = append_entries(
        engine=ctx.engine, domain=space.domain, directory=ctx.directory, entries=entries
    )
    assert all(r.status == "accepted" for r in results), results
    anchor(ctx, space)
    late = receipt(space, 4, provider=2, units=6, aid=AG2, consumer=1, start=P0 + 2 * DAY)
    (r,) = append_entries(
        engine=ctx.engine, domain=space.domain, directory=ctx.directory, entries=[late]
    )
    assert r.status == "accepted"


def everything(client: TestClient, head: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    start: int | None = 0
    while start is not None:
        page = client.get("/v1/evidence", params={"start": start, "limit": 2}, headers=head)
        assert page.status_code == 200, page.text
        out += page.json()["entries"]
        start = page.json()["next"]
    return out


def search(client: TestClient, head: dict[str, str], limit: int = 2, **q: Any) -> list[str]:
    """Every entry id the filters match, following ``next`` with small pages."""
    found: list[str] = []
    start: int | None = 0
    while start is not None:
        r = client.get("/v1/evidence", params={**q, "start": start, "limit": limit}, headers=head)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["entries"]) <= limit
        found += [e["entry_id"] for e in body["entries"]]
        start = body["next"]
    return found


def span(m: Any) -> tuple[int, int] | None:
    """An entry's own period: a receipt's or attestation's, an agreement's validity."""
    if hasattr(m, "periodStart"):
        return m.periodStart, m.periodEnd
    if hasattr(m, "validFrom"):
        return m.validFrom, m.validUntil
    return None


def message(item: dict[str, Any]) -> Any:
    return decode_entry(bytes.fromhex(item["data"][2:])).entry


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_filters_match_an_independent_reading_of_the_log(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn
) -> None:
    fill(ctx, space)
    auditor = sign_in(space.auditor)
    items = everything(client, auditor)
    assert len(items) == 7

    def ids(keep: Any) -> list[str]:
        return [i["entry_id"] for i in items if keep(i, message(i))]

    ag, ag2 = "0x" + AG.hex(), "0x" + AG2.hex()
    by_agreement = ids(lambda i, m: getattr(m, "agreementId", b"").hex() == AG.hex())
    assert search(client, auditor, agreement=ag) == by_agreement and len(by_agreement) == 4
    assert search(client, auditor, agreement=ag2.upper().replace("0X", "0x")) == ids(
        lambda i, m: getattr(m, "agreementId", b"") == AG2
    )
    receipts = ids(lambda i, m: i["entry_type"] == "UsageReceipt")
    assert search(client, auditor, type="UsageReceipt") == receipts and len(receipts) == 4
    # [P0, P1) overlaps receipt 1, the attestation and both agreements' validity, not
    # the receipts a day off
    overlapping = ids(lambda i, m: span(m) is not None and span(m)[1] > P0 and span(m)[0] < P1)
    assert search(client, auditor, **{"from": str(P0), "to": str(P1)}) == overlapping
    assert len(overlapping) == 4
    iso = {"from": "2023-11-15T22:13:20Z", "to": "2023-11-16T22:13:20+00:00"}  # P0, P1
    assert search(client, auditor, **iso) == overlapping
    both = search(client, auditor, agreement=ag, type="UsageReceipt", **{"from": str(P0)})
    assert both == [i for i in receipts if i in by_agreement]
    # anchored_size tells which have a receipt yet: all but the late one
    page = client.get("/v1/evidence", params={"agreement": ag2}, headers=auditor).json()
    assert [e["leaf_index"] < page["anchored_size"] for e in page["entries"]] == [
        True,
        True,
        False,
    ]
    assert all(e["agreement_id"] in (ag, ag2, None) for e in items)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_party_finds_exactly_the_entries_it_may_read(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn
) -> None:
    """For each participant, its own search gives the entries ``GET /v1/evidence/{id}``
    serves it (the T15 rule), signers aside: the attestation's signer is the auditor."""
    fill(ctx, space)
    items = everything(client, sign_in(space.auditor))
    for who in (*space.consumers, *space.providers):
        head = sign_in(who)
        readable = [
            i["entry_id"]
            for i in items
            if client.get(f"/v1/evidence/{i['entry_id']}", headers=head).status_code == 200
        ]
        assert readable, who.address
        assert search(client, head, party=who.address) == readable, who.address
        lower = search(client, head, party=who.address.lower(), limit=50)
        assert lower == readable


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_searching_another_partys_entries_is_refused_and_tells_nothing(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn
) -> None:
    """The attack: provider p2 searches consumer c0's entries, or the whole log, or by
    c0's agreement: 403 ``role_required``, with the body a party nobody logged gets."""
    fill(ctx, space)
    p2 = sign_in(space.providers[2])
    c0 = space.consumers[0].address
    nobody = "0x" + "12" * 20
    for query in ({"party": c0}, {"agreement": "0x" + AG.hex()}, {}, {"type": "Agreement"}):
        r = client.get("/v1/evidence", params=query, headers=p2)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "role_required"), query
    real = client.get("/v1/evidence", params={"party": c0}, headers=p2).json()
    none = client.get("/v1/evidence", params={"party": nobody}, headers=p2).json()
    assert real["error"]["message"].replace(c0, "X") == none["error"]["message"].replace(
        to_checksum_address(nobody), "X"
    )
    assert client.get("/v1/evidence", params={"party": c0}).status_code == 401


SHAPE = (422, "validation_error")  # a field that does not parse: named in `fields`
MEANING = (400, "invalid_input")  # parses, but is not a time / not an interval


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"party": "0x12"}, SHAPE),
        ({"agreement": "0x" + "zz" * 32}, SHAPE),
        ({"type": "Receipt"}, SHAPE),
        ({"from": "x" * 65}, SHAPE),
        ({"from": "yesterday"}, MEANING),
        ({"to": "9" * 60}, MEANING),
        ({"from": "2026-02-01", "to": "2026-01-01"}, MEANING),
    ],
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_filters_are_one_clear_error(
    client: TestClient,
    space: Space,
    sign_in: SignIn,
    query: dict[str, str],
    expected: tuple[int, str],
) -> None:
    r = client.get("/v1/evidence", params=query, headers=sign_in(space.auditor))
    assert (r.status_code, r.json()["error"]["code"]) == expected, r.text
    if expected == SHAPE:
        assert r.json()["error"]["fields"][0]["path"] == "query." + next(iter(query))
