"""The settlement engine through the evidence log: each method on cases computed by hand.

Every expected number below is worked out in the comment beside it from the definitions
(revenue = units x unit price; fee = floor(R x bps / 10000); the rest split by the
method's weights with the largest remainder, ties to the lower address), never copied
from the program. Each case runs through SQL (``compute_round``, receipts aggregated
by the database) on SQLite and PostgreSQL, and through ``settle_entries`` over the
decoded log (the auditor's way); both must agree bit for bit.
"""

from __future__ import annotations

import csv
import io
import random
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from service.bench.settlement import bench_settlement
from service.errors import ConfigError, NothingToSettle, PolicyMismatch, SettlementError
from service.evidence.directory import ChainDirectory
from service.evidence.entries import (
    Agreement,
    CoalitionValues,
    ContributionDeclaration,
    QualityAttestation,
    SignedEntry,
    UsageReceipt,
    decode_entry,
    sign_entry,
)
from service.evidence.log import append_entries
from service.evidence.models import LogEntry
from service.settlement.engine import RoundResult, compute_bills, compute_round, settle_entries
from service.settlement.payout_tree import leaf_hash, verify_proof
from service.settlement.policy import Policy, parse_policy
from tests.space import Space

AG = b"\xa1" * 32
AG2 = b"\xa2" * 32
T0 = 1_700_000_000  # agreements valid [T0, T0 + 10 days)
VALID_UNTIL = T0 + 10 * 86_400
P0, P1 = T0 + 86_400, T0 + 2 * 86_400  # the round's period: day 2
PRICE = 1000


# --- evidence helpers (shared with test_rounds and tests/audit/test_settlement) -------------


def lower(acct: LocalAccount) -> str:
    return acct.address.lower()


def agreement(
    space: Space,
    aid: bytes = AG,
    *,
    consumer: int = 0,
    providers: tuple[int, ...] = (0, 1),
    price: int = PRICE,
    policy: Policy | bytes | None = None,
) -> SignedEntry:
    """An Agreement naming ``policy`` (default :func:`make_policy`'s: the rounds settle
    only agreements that name the round's policy)."""
    c = space.consumers[consumer]
    if policy is None:
        policy = make_policy(space)
    policy_hash = policy.hash if isinstance(policy, Policy) else policy
    ps = sorted((space.providers[i] for i in providers), key=lambda a: a.address.lower())
    entry = Agreement(
        agreementId=aid,
        assetId=b"\xa5" * 32,
        consumer=c.address,
        providers=tuple(p.address for p in ps),
        unitPrice=price,
        policyHash=policy_hash,
        validFrom=T0,
        validUntil=VALID_UNTIL,
    )
    return sign_entry(entry, space.domain, [space.key(c), *(space.key(p) for p in ps)])


def receipt(
    space: Space,
    nonce: int,
    *,
    provider: int,
    units: int,
    aid: bytes = AG,
    consumer: int = 0,
    start: int = P0 + 60,
) -> SignedEntry:
    c, p = space.consumers[consumer], space.providers[provider]
    entry = UsageReceipt(
        agreementId=aid,
        consumer=c.address,
        provider=p.address,
        units=units,
        periodStart=start,
        periodEnd=start + 60,
        detailHash=nonce.to_bytes(32, "big"),
        nonce=nonce,
    )
    return sign_entry(entry, space.domain, [space.key(c), space.key(p)])


def quality(
    space: Space, *, provider: int, score: int, attester: LocalAccount, aid: bytes = AG
) -> SignedEntry:
    entry = QualityAttestation(
        agreementId=aid,
        provider=space.providers[provider].address,
        periodStart=P0,
        periodEnd=P1,
        scoreBps=score,
    )
    return sign_entry(entry, space.domain, [space.key(attester)])


def declaration(
    space: Space,
    *,
    provider: int,
    kind: int,
    value: int,
    countersign: bool = False,
    aid: bytes = AG,
    start: int = P0,
) -> SignedEntry:
    p = space.providers[provider]
    entry = ContributionDeclaration(
        agreementId=aid,
        provider=p.address,
        kind=kind,
        value=value,
        periodStart=start,
        periodEnd=start + 3600,
    )
    keys = [space.key(p)] + ([space.key(space.operator)] if countersign else [])
    return sign_entry(entry, space.domain, keys)


def coalition(
    space: Space, values: list[int], *, signer: LocalAccount, providers: tuple[int, ...] = (0, 1)
) -> SignedEntry:
    ps = sorted(space.providers[i].address for i in providers)
    ps.sort(key=str.lower)
    entry = CoalitionValues(
        agreementId=AG, periodStart=P0, periodEnd=P1, providers=tuple(ps), values=tuple(values)
    )
    return sign_entry(entry, space.domain, [space.key(signer)])


def ingest_all(engine: Engine, space: Space, entries: list[SignedEntry]) -> None:
    directory = ChainDirectory(space.chain, space.contracts.registry)
    results = append_entries(
        engine=engine, domain=space.domain, directory=directory, entries=entries
    )
    bad = [r for r in results if r.status != "accepted"]
    assert not bad, bad


def make_policy(space: Space, **over: Any) -> Policy:
    doc: dict[str, Any] = {
        "version": 1,
        "operator": space.operator.address,
        "operator_fee_bps": 250,
        "method": "output",
        "default_quality_bps": 6000,
    }
    doc.update(over)
    return parse_policy(doc)


def log_entries(engine: Engine) -> list[SignedEntry]:
    with Session(engine) as s:
        rows = s.exec(select(LogEntry).order_by(LogEntry.leaf_index)).all()  # type: ignore[arg-type]
        return [decode_entry(r.data) for r in rows]


def settle_both(
    engine: Engine,
    policy: Policy,
    *,
    size: int | None = None,
    round_id: int = 1,
    period: tuple[int, int] = (P0, P1),
) -> RoundResult:
    """The round from SQL and from the decoded entries; they must be identical."""
    entries = log_entries(engine)
    size = len(entries) if size is None else size
    by_sql = compute_round(
        session_or_engine=engine,
        round_id=round_id,
        period_start=period[0],
        period_end=period[1],
        checkpoint_size=size,
        policy=policy,
    )
    by_entries = settle_entries(
        entries,
        round_id=round_id,
        period_start=period[0],
        period_end=period[1],
        checkpoint_size=size,
        policy=policy,
    )
    assert by_sql.root == by_entries.root
    assert by_sql.statement() == by_entries.statement()
    return by_sql


def paid(result: RoundResult, space: Space) -> dict[str, int]:
    """Payouts by role name (p0, p1, p2, op) for readable asserts."""
    names = {lower(p): f"p{i}" for i, p in enumerate(space.providers)}
    names[lower(space.operator)] = "op"
    return {names[a]: v for a, v in result.payouts.items()}


def provider_lines(result: RoundResult, space: Space, i: int) -> list[dict[str, Any]]:
    account = space.providers[i].address
    (who,) = [p for p in result.statement()["participants"] if p["account"] == account]
    return [line for line in who["lines"] if line["role"] == "provider"]


# Usage in every case below (agreement AG, consumer c0, providers p0 and p1, price 1000):
# p0: 30 + 10 units (2 receipts), p1: 20 units (1 receipt).
# R = 60 x 1000 = 60000; fee = floor(60000 x 250 / 10000) = 1500; rest = 58500.


def usage(space: Space) -> list[SignedEntry]:
    return [
        receipt(space, 1, provider=0, units=30),
        receipt(space, 2, provider=0, units=10),
        receipt(space, 3, provider=1, units=20),
    ]


# --- one case per method --------------------------------------------------------------------


def test_output_method_units_times_mean_quality(engine: Engine, space: Space) -> None:
    auditor, consumer = space.auditor, space.consumers[0]
    ingest_all(
        engine,
        space,
        [
            agreement(space),
            *usage(space),
            quality(space, provider=0, score=8000, attester=consumer),
            quality(space, provider=0, score=9000, attester=auditor),
        ],
    )
    result = settle_both(engine, make_policy(space))
    # p0: 40 units x mean(8000, 9000)/10000 = 40 x 0.85 = 34; p1: 20 x default 0.6 = 12.
    # p0: 58500 x 34/46 = 43239 + 6/46;  p1: 58500 x 12/46 = 15260 + 40/46.
    # Floors sum to 58499: the last unit to the larger remainder, p1.
    assert paid(result, space) == {"p0": 43239, "p1": 15261, "op": 1500}
    assert result.pool == 60000
    (line,) = provider_lines(result, space, 0)
    assert line["factors"] == {
        "units": 40,
        "quality_attestations": 2,
        "quality_bps": "8500",
        "quality_default": False,
    }
    assert line["exact_share"] == "994500/23"  # 58500 x 34/46
    assert line["receipts"] == 2 and line["payout"] == "43239"


def test_cost_method_sums_declared_costs(engine: Engine, space: Space) -> None:
    policy = make_policy(space, method="cost")
    ingest_all(
        engine,
        space,
        [
            agreement(space, policy=policy),
            *usage(space),
            declaration(space, provider=0, kind=1, value=300),
            declaration(space, provider=0, kind=1, value=200, start=P0 + 3600),
            declaration(space, provider=1, kind=1, value=200),
            declaration(space, provider=1, kind=1, value=999, start=P1),  # next period
        ],
    )
    result = settle_both(engine, policy)
    # costs p0 = 300 + 200 = 500, p1 = 200 (the 999 is declared for the next period): 5 : 2.
    # p0: 58500 x 5/7 = 41785 + 5/7; p1: 58500 x 2/7 = 16714 + 2/7; the spare unit to p0.
    assert paid(result, space) == {"p0": 41786, "p1": 16714, "op": 1500}


def test_risk_method_uses_the_last_declared_tier(engine: Engine, space: Space) -> None:
    policy = make_policy(space, method="risk", risk_multipliers={"1": 1, "2": "3/2", "3": 2})
    ingest_all(
        engine,
        space,
        [
            agreement(space, policy=policy),
            *usage(space),
            declaration(space, provider=0, kind=2, value=3),
            declaration(space, provider=1, kind=2, value=1),
            declaration(space, provider=1, kind=2, value=2),  # later: replaces tier 1
        ],
    )
    result = settle_both(engine, policy)
    # multipliers p0 (tier 3) = 2, p1 (tier 2) = 3/2: 4 : 3.
    # p0: 58500 x 4/7 = 33428 + 4/7; p1: 58500 x 3/7 = 25071 + 3/7; the spare unit to p0.
    assert paid(result, space) == {"p0": 33429, "p1": 25071, "op": 1500}
    (line,) = provider_lines(result, space, 1)
    assert line["factors"] == {"risk_tier": "2", "tier_default": False, "multiplier": "3/2"}


def test_shapley_method_uses_the_evaluators_coalition_values(engine: Engine, space: Space) -> None:
    low, high = sorted((0, 1), key=lambda i: lower(space.providers[i]))
    # bit 0 = the lower address. v({}) = 0, v({low}) = 60, v({high}) = 20, v(both) = 100.
    # phi_low = 1/2 (60 - 0) + 1/2 (100 - 20) = 70; phi_high = 1/2 (20) + 1/2 (100 - 60) = 30.
    policy = make_policy(space, method="shapley", evaluator=space.auditor.address)
    ingest_all(
        engine,
        space,
        [
            agreement(space, policy=policy),
            *usage(space),
            coalition(space, [0, 60, 20, 100], signer=space.auditor),
            coalition(space, [0, 0, 100, 100], signer=space.operator),  # not the evaluator
        ],
    )
    result = settle_both(engine, policy)
    # 58500 x 70/100 = 40950 and 58500 x 30/100 = 17550, exactly.
    assert paid(result, space) == {f"p{low}": 40950, f"p{high}": 17550, "op": 1500}
    statement = result.statement()
    (ignored,) = statement["ignored"]
    assert ignored["entry_type"] == "CoalitionValues" and "evaluator" in ignored["reason"]


def test_mix_method_mixes_normalized_shares(engine: Engine, space: Space) -> None:
    policy = make_policy(space, method="mix", mix={"output": "1/2", "cost": "1/2"})
    ingest_all(
        engine,
        space,
        [
            agreement(space, policy=policy),
            *usage(space),
            quality(space, provider=0, score=8000, attester=space.consumers[0]),
            quality(space, provider=0, score=9000, attester=space.auditor),
            declaration(space, provider=0, kind=1, value=500),
            declaration(space, provider=1, kind=1, value=200),
        ],
    )
    result = settle_both(engine, policy)
    # output shares 34/46, 12/46; cost shares 5/7, 2/7.
    # p0 = 1/2 x 34/46 + 1/2 x 5/7 = 117/161; p1 = 1/2 x 12/46 + 1/2 x 2/7 = 44/161.
    # p0: 58500 x 117/161 = 42512 + 68/161; p1: 58500 x 44/161 = 15987 + 93/161: p1 gets the unit.
    assert paid(result, space) == {"p0": 42512, "p1": 15988, "op": 1500}
    (line,) = provider_lines(result, space, 0)
    assert line["weight"] == "117/161"
    assert line["factors"]["mix"]["cost"] == {
        "coefficient": "1/2",
        "declared_cost": "500",
        "share": "5/7",
    }


# --- rules ----------------------------------------------------------------------------------


def test_equal_remainders_go_to_the_lower_address(engine: Engine, space: Space) -> None:
    policy = make_policy(space, operator_fee_bps=1000)
    ingest_all(
        engine,
        space,
        [
            agreement(space, price=5, policy=policy),
            receipt(space, 1, provider=0, units=1),
            receipt(space, 2, provider=1, units=1),
        ],
    )
    result = settle_both(engine, policy)
    # R = 2 x 5 = 10; fee = floor(10 x 1000 / 10000) = 1; rest 9 split 1 : 1 = 4.5 each;
    # the one spare unit goes to the lower address.
    low, high = sorted((0, 1), key=lambda i: lower(space.providers[i]))
    assert paid(result, space) == {f"p{low}": 5, f"p{high}": 4, "op": 1}


def test_two_agreements_sum_per_address_and_bill_each_consumer(
    engine: Engine, space: Space
) -> None:
    override = {"0x" + AG2.hex(): {"method": "cost"}}
    policy = make_policy(space, agreements=override)
    ingest_all(
        engine,
        space,
        [
            agreement(space, policy=policy),
            agreement(space, AG2, consumer=1, providers=(1, 2), price=7, policy=policy),
            *usage(space),
            receipt(space, 1, provider=1, units=11, aid=AG2, consumer=1),
            receipt(space, 2, provider=2, units=3, aid=AG2, consumer=1),
            declaration(space, provider=1, kind=1, value=1, aid=AG2),
            declaration(space, provider=2, kind=1, value=3, aid=AG2),
        ],
    )
    result = settle_both(engine, policy)
    # AG as in the output case without attestations: p0 40 x 0.6 = 24, p1 20 x 0.6 = 12 -> 2 : 1
    #   58500 x 2/3 = 39000, 58500 x 1/3 = 19500; fee 1500.
    # AG2 (cost, 1 : 3): R = 14 x 7 = 98; fee = floor(98 x 250 / 10000) = 2; rest 96:
    #   p1 = 96 x 1/4 = 24, p2 = 96 x 3/4 = 72.
    assert paid(result, space) == {"p0": 39000, "p1": 19500 + 24, "p2": 72, "op": 1500 + 2}
    assert result.pool == 60000 + 98 == sum(result.payouts.values())
    bills = {b.consumer: b.total for b in result.bills}
    assert bills == {lower(space.consumers[0]): 60000, lower(space.consumers[1]): 98}
    assert (
        compute_bills(session_or_engine=engine, period_start=P0, period_end=P1, checkpoint_size=9)
        == result.bills
    )


def test_only_the_period_and_the_checkpoint_count(engine: Engine, space: Space) -> None:
    policy = make_policy(space, operator_fee_bps=0, default_quality_bps=10_000)
    ingest_all(
        engine,
        space,
        [
            agreement(space, policy=policy),
            receipt(space, 1, provider=0, units=5, start=P0 - 30),  # straddles in: before P0
            receipt(space, 2, provider=0, units=7, start=P0),  # first second of the period
            receipt(space, 3, provider=1, units=3, start=P1 - 30),  # straddles out: counts
            receipt(space, 4, provider=1, units=100, start=P1),  # next period
        ],
    )
    ingest_all(engine, space, [receipt(space, 5, provider=0, units=1000)])  # leaf 5
    result = settle_both(engine, policy, size=5)
    # below size 5, in [P0, P1): 7 units for p0, 3 for p1 -> 7000 and 3000.
    assert paid(result, space) == {"p0": 7000, "p1": 3000}
    assert settle_both(engine, policy, size=6).pool == 10_000 + 1_000_000
    with pytest.raises(NothingToSettle):
        settle_both(engine, policy, period=(P1 + 86_400, P1 + 2 * 86_400))


def test_countersign_rule_ignores_lone_declarations(engine: Engine, space: Space) -> None:
    strict = make_policy(space, method="cost", require_operator_countersign=True)
    ingest_all(
        engine,
        space,
        [
            agreement(space, policy=strict),
            *usage(space),
            declaration(space, provider=0, kind=1, value=1, countersign=True),
            declaration(space, provider=1, kind=1, value=1, countersign=True),
            declaration(space, provider=1, kind=1, value=100),  # provider alone: ignored
        ],
    )
    result = settle_both(engine, strict)
    assert paid(result, space) == {"p0": 29250, "p1": 29250, "op": 1500}  # 1 : 1
    assert [i["leaf_index"] for i in result.statement()["ignored"]] == [6]
    # the lax policy over the same evidence (its agreement names the strict one: the
    # decoded-entry core is run on the facts with the agreement re-pointed)
    lax_policy = make_policy(space, method="cost")
    entries = log_entries(engine)
    entries[0] = agreement(space, policy=lax_policy)
    lax = settle_entries(
        entries, round_id=1, period_start=P0, period_end=P1, checkpoint_size=7, policy=lax_policy
    )
    # 1 : 101 -> p0 = 58500/102 = 573 + 54/102, p1 = 58500 x 101/102 = 57926 + 48/102
    assert paid(lax, space) == {"p0": 574, "p1": 57926, "op": 1500}


def test_a_method_without_facts_is_an_error_naming_the_agreement(
    engine: Engine, space: Space
) -> None:
    cost = make_policy(space, method="cost")
    shapley = make_policy(space, method="shapley", evaluator=space.auditor.address)
    entries = [*usage(space)]
    with pytest.raises(SettlementError, match=r"0xa1a1.*cost.*every weight is zero"):
        settle_entries(
            [agreement(space, policy=cost), *entries], round_id=1, period_start=P0,
            period_end=P1, checkpoint_size=4, policy=cost,
        )  # fmt: skip
    with pytest.raises(SettlementError, match="coalition values"):
        settle_entries(
            [agreement(space, policy=shapley), *entries], round_id=1, period_start=P0,
            period_end=P1, checkpoint_size=4, policy=shapley,
        )  # fmt: skip


def test_round_with_foreign_policy_agreement_is_refused(engine: Engine, space: Space) -> None:
    # AG names the round's policy, AG2 another one (the 0 hash, as agreements signed before
    # the rule carried): the round is refused, naming AG2 only, on both ways in
    policy = make_policy(space)
    ingest_all(
        engine,
        space,
        [
            agreement(space, policy=policy),
            agreement(space, AG2, consumer=1, providers=(1, 2), price=7, policy=b"\x00" * 32),
            *usage(space),
            receipt(space, 1, provider=1, units=11, aid=AG2, consumer=1),
        ],
    )
    with pytest.raises(PolicyMismatch) as err:
        compute_round(
            session_or_engine=engine, round_id=1, period_start=P0, period_end=P1,
            checkpoint_size=6, policy=policy,
        )  # fmt: skip
    assert err.value.detail["agreements"] == ["0x" + AG2.hex()]
    assert "0x" + AG2.hex() in err.value.message and policy.hash_hex in err.value.message
    assert "0x" + AG.hex() not in err.value.message
    with pytest.raises(PolicyMismatch):
        settle_entries(
            log_entries(engine), round_id=1, period_start=P0, period_end=P1,
            checkpoint_size=6, policy=policy,
        )  # fmt: skip
    # an agreement without usage in the period does not matter; bills need no policy
    assert settle_both(engine, policy, size=5).pool == 60000
    bills = compute_bills(
        session_or_engine=engine, period_start=P0, period_end=P1, checkpoint_size=6
    )
    assert sorted(b.total for b in bills) == [77, 60000]


def test_debits_are_the_bills_by_ascending_address(engine: Engine, space: Space) -> None:
    policy = make_policy(space)
    ingest_all(
        engine,
        space,
        [
            agreement(space, policy=policy),
            agreement(space, AG2, consumer=1, providers=(1, 2), price=7, policy=policy),
            *usage(space),
            receipt(space, 1, provider=1, units=11, aid=AG2, consumer=1),
        ],
    )
    result = settle_both(engine, policy)
    c0, c1 = (c.address for c in space.consumers)
    assert dict(result.debits) == {c0: 60000, c1: 77}
    assert [a.lower() for a, _ in result.debits] == sorted(a.lower() for a in (c0, c1))
    assert sum(v for _, v in result.debits) == result.pool


# --- the statement --------------------------------------------------------------------------


def test_statement_lines_proofs_and_csv(engine: Engine, space: Space) -> None:
    ingest_all(engine, space, [agreement(space), *usage(space)])
    result = settle_both(engine, make_policy(space), round_id=7)
    statement = result.statement()
    assert statement["round_id"] == 7 and statement["total"] == "60000"
    assert statement["policy_hash"] == result.policy.hash_hex
    for who in statement["participants"]:
        amount = int(who["payout"])
        assert amount == sum(int(line["payout"]) for line in who["lines"])
        leaf = leaf_hash(round_id=7, index=who["index"], account=who["account"], amount=amount)
        proof = [bytes.fromhex(p[2:]) for p in who["proof"]]
        assert verify_proof(leaf=leaf, proof=proof, root=result.root)
    rows = list(csv.DictReader(io.StringIO(result.statement_csv())))
    assert len(rows) == 3  # p0, p1 and the operator's fee on one agreement
    assert sum(int(r["line_payout"]) for r in rows) == 60000
    by_role = {r["role"]: r for r in rows}
    assert by_role["operator"]["line_payout"] == "1500"
    assert by_role["operator"]["method"] == "fee"
    # exact share vs payout: within one unit
    for r in rows:
        assert abs(Fraction(r["exact_share"]) - int(r["line_payout"])) < 1


def test_sql_and_decoded_entries_agree_on_a_random_log(engine: Engine, space: Space) -> None:
    rng = random.Random(5)
    policy = make_policy(space, operator_fee_bps=333)
    entries = [
        agreement(space, policy=policy),
        agreement(space, AG2, consumer=1, providers=(0, 1, 2), price=3, policy=policy),
    ]
    for n in range(60):
        two = rng.random() < 0.5
        entries.append(
            receipt(
                space,
                n,
                provider=rng.randrange(3) if two else rng.randrange(2),
                units=rng.randrange(1, 50),
                aid=AG2 if two else AG,
                consumer=1 if two else 0,
                start=rng.randrange(P0 - 3600, P1 + 3600),
            )
        )
    entries.append(quality(space, provider=2, score=4321, attester=space.auditor, aid=AG2))
    ingest_all(engine, space, entries)
    result = settle_both(engine, policy, size=50)
    # the pool is the revenue of the receipts below leaf 50 that start in the period
    expected = 0
    for e in entries[2:50]:
        r = e.entry
        assert isinstance(r, UsageReceipt)
        if P0 <= r.periodStart < P1:
            expected += r.units * (3 if r.agreementId == AG2 else PRICE)
    assert result.pool == expected == sum(result.payouts.values())


def test_coalition_of_other_providers_is_an_error_naming_the_agreement(space: Space) -> None:
    # ingest refuses such a table; the pure core must refuse it too (the auditor's path)
    policy = make_policy(space, method="shapley", evaluator=space.auditor.address)
    entries = [
        agreement(space, policy=policy),
        *usage(space),
        coalition(space, [0, 1, 2, 3], signer=space.auditor, providers=(0, 2)),
    ]
    with pytest.raises(SettlementError, match=r"agreement 0xa1a1.*not the agreement's") as err:
        settle_entries(
            entries, round_id=1, period_start=P0, period_end=P1, checkpoint_size=5, policy=policy
        )
    assert err.value.detail["agreement"] == "0x" + AG.hex()


def test_bench_settlement_runs_and_checks_its_pool(tmp_path: Path) -> None:
    out = bench_settlement(3_000, f"sqlite:///{tmp_path}/bench.db", agreements=4, repeat=1)
    assert out["receipts"] == 3_000 and out["groups"] == 4 * 20
    assert out["payees"] == 4 * 20 + 1  # every provider served something, plus the operator
    assert out["settle_s"] > 0 and out["sql_groupby_s"] > 0
    # both times are reported to 4 decimals and the ratio to 3: the ratio must lie inside
    # what the rounded times allow (at 3,000 receipts the group-by takes a few ms)
    settle, sql, half = out["settle_s"], out["sql_groupby_s"], 0.00005
    assert (settle - half) / (sql + half) - 0.0005 <= out["ratio"]
    assert out["ratio"] <= (settle + half) / (sql - half) + 0.0005
    with pytest.raises(ConfigError, match="empty database"):
        bench_settlement(10, f"sqlite:///{tmp_path}/bench.db")
