"""Statements and the published round document show no party's usage to another (T15 §4).

Round 1 settles two agreements: AG (consumer c0, providers p0 and p1) and AG2 (consumer
c1, provider p2). A participant's statement holds its own lines, bill and agreements
only; the operator and auditors see the whole round; another participant's statement is
403. What the round publishes on chain (its statementURI) is the claim file: every
payee's amount and proof, and nothing of the usage behind them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.api.context import ServiceContext
from service.evidence.anchor import anchor_once
from service.settlement.engine import compute_round
from service.settlement.published import verify_published
from service.settlement.rounds import OnChainRound
from tests.api.conftest import SignIn, TestClient
from tests.api.test_rounds import round_body
from tests.settlement.test_engine import (
    AG2,
    P0,
    P1,
    agreement,
    ingest_all,
    make_policy,
    receipt,
    usage,
)
from tests.space import Space

AG_HEX, AG2_HEX = "0x" + "a1" * 32, "0x" + AG2.hex()


def _two_agreements(ctx: ServiceContext, space: Space) -> None:
    ingest_all(
        ctx.engine,
        space,
        [
            agreement(space),
            *usage(space),
            agreement(space, AG2, consumer=1, providers=(2,)),
            receipt(space, 1, provider=2, units=5, aid=AG2, consumer=1),
        ],
    )
    anchor_once(
        engine=ctx.engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_statement_shows_a_participant_its_own_lines_only(
    client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn
) -> None:
    _two_agreements(ctx, space)
    r = client.post("/v1/rounds", json=round_body(space), headers=sign_in(space.operator))
    assert r.status_code == 200, r.text
    _, c1 = space.consumers
    p0, _, p2 = space.providers

    mine = client.get(f"/v1/rounds/1/statement/{p0.address}", headers=sign_in(p0)).json()
    assert [a["agreement_id"] for a in mine["agreements"]] == [AG_HEX]
    assert "ignored" not in mine and "participants" not in mine and "bills" not in mine
    assert mine["participant"]["account"] == p0.address
    assert {line["agreement_id"] for line in mine["participant"]["lines"]} == {AG_HEX}
    assert AG2_HEX not in json.dumps(mine) and c1.address not in json.dumps(mine)

    bill = client.get(f"/v1/rounds/1/statement/{c1.address}", headers=sign_in(c1)).json()
    assert [a["agreement_id"] for a in bill["agreements"]] == [AG2_HEX]
    assert bill["bill"]["consumer"] == c1.address and bill["participant"] is None
    assert AG_HEX not in json.dumps(bill) and p0.address not in json.dumps(bill)

    r = client.get(f"/v1/rounds/1/statement/{p2.address}", headers=sign_in(p0))
    assert (r.status_code, r.json()["error"]["code"]) == (403, "role_required")

    for staff in (space.auditor, space.operator):
        full = client.get(f"/v1/rounds/1/statement/{p0.address}", headers=sign_in(staff)).json()
        assert {a["agreement_id"] for a in full["agreements"]} == {AG_HEX, AG2_HEX}
        assert "ignored" in full


def test_published_claim_file_reveals_amounts_but_no_usage(space: Space, tmp_path: Path) -> None:
    """The document a round publishes (payouts.json, what its statementURI names by default)
    gives each payee's amount and proof; no agreement, consumer, unit count, receipt count,
    price or line; and it verifies as the round's published document."""
    from service.db import create_schema, make_engine

    engine = make_engine(f"sqlite:///{tmp_path}/t.db")
    create_schema(engine)
    ingest_all(
        engine,
        space,
        [
            agreement(space),
            *usage(space),
            agreement(space, AG2, consumer=1, providers=(2,)),
            receipt(space, 1, provider=2, units=5, aid=AG2, consumer=1),
        ],
    )
    result = compute_round(
        session_or_engine=engine,
        round_id=1,
        period_start=P0,
        period_end=P1,
        checkpoint_size=6,
        policy=make_policy(space),
    )
    doc = result.payouts_document()
    text = json.dumps(doc)
    for secret in (AG_HEX, AG2_HEX, *(c.address for c in space.consumers)):
        assert secret.lower() not in text.lower(), secret
    for key in ("agreements", "participants", "bills", "lines", "units", "receipts", "ignored"):
        assert f'"{key}"' not in text, key
    assert set(doc) == {
        "format",
        "round_id",
        "period",
        "checkpoint",
        "policy_hash",
        "payout_root",
        "total",
        "claims",
        "tree",
    }
    payees = {c["account"].lower(): int(c["amount"]) for c in doc["claims"]}
    assert payees == {a.lower(): v for a, v in result.payouts.items() if v}
    rnd = OnChainRound(
        round_id=1,
        status="Proposed",
        payout_root=result.tree.root,
        total=result.pool,
        paid=0,
        period_start=P0,
        period_end=P1,
        policy_hash=result.policy.hash,
        evidence_seq=0,
        challenge_deadline=0,
        finalized_at=0,
        statement_uri="file:///payouts.json",
    )
    published = verify_published(doc, rnd, uri=rnd.statement_uri)
    served = published.statement()
    assert all(p["lines"] is None for p in served["participants"]) and served["bills"] == []
    engine.dispose()
