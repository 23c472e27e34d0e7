"""`audit_settlement`: recompute a round from the chain, the log and the policy, and name
the first thing that does not match."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.audit.settlement import (
    ExportFileSource,
    SettlementAuditReport,
    audit_settlement,
    overlapping_rounds,
)
from service.evidence.anchor import anchor_once
from service.evidence.entries import (
    Agreement,
    SignedEntry,
    UsageReceipt,
    decode_entry,
    entry_id,
    sign_entry,
)
from service.evidence.log import hex32
from service.evidence.merkle import leaf_hash
from service.evidence.models import AnchorRow, LogEntry
from service.evidence.sources import SqlLogSource, write_log_export
from service.evidence.tiles import MerkleLog, SqlTileStorage
from service.settlement.engine import RoundResult, compute_round, settle_entries
from service.settlement.payout_tree import PayoutTree, build_payout_tree
from service.settlement.policy import Policy
from service.settlement.rounds import deposit, propose
from tests.settlement.test_engine import (
    AG,
    P0,
    P1,
    T0,
    VALID_UNTIL,
    agreement,
    ingest_all,
    make_policy,
    quality,
    receipt,
    usage,
)
from tests.space import Space

CHECKS = [
    "round",
    "period",
    "overlap",
    "ledger",
    "checkpoint",
    "policy_hash",
    "log_entries",
    "log_root",
    "decode",
    "signatures",
    "agreements",
    "roles",
    "agreement_policies",
    "published_payouts",
    "payouts",
    "debits",
]
ROUND = 5


def _anchor(engine: Engine, space: Space) -> AnchorRow:
    row = anchor_once(
        engine=engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )
    assert row is not None
    return row


def _fund(space: Space, amount: int, consumer_index: int = 0) -> None:
    consumer, token = space.consumers[consumer_index], space.contracts.token
    space.chain.transact(token.functions.mint(consumer.address, amount), sender=space.operator)
    deposit(
        chain=space.chain, vault=space.contracts.vault, token=token, sender=consumer, amount=amount
    )


def _evidence(engine: Engine, space: Space) -> AnchorRow:
    ingest_all(
        engine,
        space,
        [
            agreement(space),
            *usage(space),
            quality(space, provider=0, score=9000, attester=space.auditor),
        ],
    )
    return _anchor(engine, space)


def _result(engine: Engine, cp: AnchorRow, policy: Policy) -> RoundResult:
    return compute_round(
        session_or_engine=engine,
        round_id=ROUND,
        period_start=P0,
        period_end=P1,
        checkpoint_size=cp.tree_size,
        checkpoint_seq=cp.seq,
        policy=policy,
    )


def _propose_tree(
    space: Space,
    tree: PayoutTree,
    cp: AnchorRow,
    policy: Policy,
    *,
    round_id: int = ROUND,
    period: tuple[int, int] = (P0, P1),
    funder: int = 0,
) -> None:
    """What a dishonest operator does: propose its own tree with the honest policy hash,
    debiting consumer ``funder`` for the whole total."""
    _fund(space, tree.total, funder)
    debits = [(space.consumers[funder].address, tree.total)]
    space.chain.transact(
        space.contracts.vault.functions.propose(
            round_id, tree.root, tree.total, cp.seq, policy.hash, *period, debits, ""
        ),
        sender=space.operator,
    )


def _payouts_doc(tree: PayoutTree) -> dict[str, Any]:
    return {
        "round_id": tree.round_id,
        "period": {"start": P0, "end": P1},
        "claims": [{"account": e.account, "amount": str(e.amount)} for e in tree.entries],
    }


def _audit(
    space: Space,
    source: Any,
    policy: Policy,
    payouts: dict[str, Any] | None = None,
    *,
    period: tuple[int, int] | None = (P0, P1),
) -> SettlementAuditReport:
    return audit_settlement(
        chain=space.chain,
        vault=space.contracts.vault,
        ledger=space.contracts.ledger,
        round_id=ROUND,
        entries_source=source,
        policy_doc=policy,
        payouts_doc=payouts,
        period=period,
    )


def _failure(report: SettlementAuditReport) -> tuple[str, str]:
    failed = report.first_failure
    assert failed is not None, report.verdict
    return failed.name, failed.detail


def _export(engine: Engine, cp: AnchorRow, path: Path) -> list[str]:
    write_log_export(engine=engine, seq=cp.seq, out=path)
    return path.read_text().splitlines()


# --- an honest round ------------------------------------------------------------------------


def test_honest_round_passes_from_the_export_file_and_from_sql(
    engine: Engine, space: Space, tmp_path: Path
) -> None:
    cp = _evidence(engine, space)
    ingest_all(engine, space, [receipt(space, 99, provider=1, units=5)])  # after the checkpoint
    policy = make_policy(space)
    result = _result(engine, cp, policy)
    _fund(space, result.pool)
    propose(chain=space.chain, vault=space.contracts.vault, result=result, sender=space.operator)
    export = tmp_path / "log.jsonl"
    lines = _export(engine, cp, export)
    assert len(lines) == 1 + cp.tree_size  # header + the checkpoint's entries, not the later one
    assert json.loads(lines[0])["tree_size"] == cp.tree_size

    # the period comes from the published payout file when not given
    by_file = _audit(
        space, ExportFileSource(export), policy, result.payouts_document(), period=None
    )
    assert by_file.ok, by_file.verdict
    assert [c.name for c in by_file.checks] == CHECKS
    assert all(c.ok is True for c in by_file.checks)
    assert by_file.recomputed is not None
    assert by_file.recomputed["payout_root"] == "0x" + result.root.hex()
    assert by_file.verdict.startswith("PASS settlement round 5")
    assert "funded by exactly the consumers' bills" in by_file.verdict
    assert by_file.to_json()["round"]["period"] == {"start": P0, "end": P1}
    assert by_file.to_json()["round"]["total"] == str(result.pool)

    by_sql = _audit(space, SqlLogSource(engine), policy)
    assert by_sql.ok, by_sql.verdict
    assert "published_payouts" not in [c.name for c in by_sql.checks]


# --- what it catches ------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_changed_policy_fails_the_policy_hash(engine: Engine, space: Space, tmp_path: Path) -> None:
    cp = _evidence(engine, space)
    policy = make_policy(space)
    result = _result(engine, cp, policy)
    _fund(space, result.pool)
    propose(chain=space.chain, vault=space.contracts.vault, result=result, sender=space.operator)
    export = tmp_path / "log.jsonl"
    _export(engine, cp, export)
    changed = make_policy(space, operator_fee_bps=100)
    report = _audit(space, ExportFileSource(export), changed)
    name, detail = _failure(report)
    assert name == "policy_hash"
    assert changed.hash_hex in detail and policy.hash_hex in detail
    assert report.checks[-2].name == "payouts" and report.checks[-2].ok is None  # skipped


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_hidden_and_altered_entries_fail_the_log_checks(
    engine: Engine, space: Space, tmp_path: Path
) -> None:
    cp = _evidence(engine, space)
    policy = make_policy(space)
    result = _result(engine, cp, policy)
    _fund(space, result.pool)
    propose(chain=space.chain, vault=space.contracts.vault, result=result, sender=space.operator)
    lines = _export(engine, cp, tmp_path / "log.jsonl")

    hidden = tmp_path / "hidden.jsonl"  # leaf 2 (a receipt) left out
    hidden.write_text("\n".join(lines[:3] + lines[4:]) + "\n")
    report = _audit(space, ExportFileSource(hidden), policy)
    assert _failure(report) == ("log_entries", "leaf 2 is missing from export file hidden.jsonl")
    assert report.checks[-1].ok is None  # no recomputation from that log

    truncated = tmp_path / "truncated.jsonl"  # the last entry left out
    truncated.write_text("\n".join(lines[:-1]) + "\n")
    name, detail = _failure(_audit(space, ExportFileSource(truncated), policy))
    assert name == "log_entries" and f"leaf {cp.tree_size - 1} is missing" in detail

    # leaf 1 replaced by a validly signed receipt for more units: same place, other bytes
    bigger = receipt(space, 1, provider=0, units=3000).encode()
    altered_lines = list(lines)
    altered_lines[2] = json.dumps({"leaf_index": 1, "data": bigger.hex()})
    altered = tmp_path / "altered.jsonl"
    altered.write_text("\n".join(altered_lines) + "\n")
    name, detail = _failure(_audit(space, ExportFileSource(altered), policy))
    assert name == "log_root" and "an entry was altered" in detail


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_extra_payout_is_named(engine: Engine, space: Space, tmp_path: Path) -> None:
    cp = _evidence(engine, space)
    policy = make_policy(space)
    honest = _result(engine, cp, policy)
    payouts = dict(honest.payouts)
    payouts[space.outsider.address.lower()] = 777
    tree = build_payout_tree(round_id=ROUND, payouts=payouts)
    _propose_tree(space, tree, cp, policy)
    report = _audit(space, SqlLogSource(engine), policy, _payouts_doc(tree))
    name, detail = _failure(report)
    assert name == "payouts"
    assert detail == f"extra payout of 777 to {space.outsider.address}"
    assert [m["kind"] for m in report.mismatches] == ["extra"]
    # without the payout file the root and totals are still compared
    name, detail = _failure(_audit(space, SqlLogSource(engine), policy))
    assert name == "payouts" and f"total {honest.pool}" in detail
    assert f"total {honest.pool + 777}" in detail


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_wrong_amount_is_named(engine: Engine, space: Space, tmp_path: Path) -> None:
    cp = _evidence(engine, space)
    policy = make_policy(space)
    honest = _result(engine, cp, policy)
    p0, p1 = (space.providers[i].address for i in (0, 1))
    payouts = dict(honest.payouts)
    payouts[p0.lower()] -= 10  # same total: only the split is wrong
    payouts[p1.lower()] += 10
    tree = build_payout_tree(round_id=ROUND, payouts=payouts)
    _propose_tree(space, tree, cp, policy)
    report = _audit(space, SqlLogSource(engine), policy, _payouts_doc(tree))
    name, detail = _failure(report)
    assert name == "payouts"
    first = min(p0, p1, key=str.lower)
    want = honest.payouts[first.lower()]
    got = want - 10 if first == p0 else want + 10
    assert detail == f"payout to {first} is {got}, recomputed {want} (and 1 more)"
    # a payout file that is not what was proposed cannot be used to name anything
    report = _audit(space, SqlLogSource(engine), policy, honest.payouts_document())
    assert _failure(report)[0] == "published_payouts"


def _append_raw(engine: Engine, data: bytes, entry_type: str, **columns: Any) -> None:
    """Append bytes to the log behind ingest's back (what a dishonest operator could do)."""
    with Session(engine) as session:
        storage = SqlTileStorage(session)
        size = storage.lock_state().size
        session.add(
            LogEntry(
                leaf_index=size,
                entry_id="0x" + entry_id(data).hex(),
                entry_type=entry_type,
                data=data,
                received_at=0,
                agreement_id=hex32(AG),
                **columns,
            )
        )
        session.flush()
        MerkleLog(storage).append(hashes=[leaf_hash(data)])
        session.commit()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_invented_receipt_in_the_anchored_log_fails_the_signatures(
    engine: Engine, space: Space
) -> None:
    ingest_all(engine, space, [agreement(space), *usage(space)])
    consumer, provider = space.consumers[0], space.providers[0]
    fake = UsageReceipt(
        agreementId=AG,
        consumer=consumer.address,
        provider=provider.address,
        units=10_000,
        periodStart=P0 + 5,
        periodEnd=P0 + 6,
        detailHash=b"\x00" * 32,
        nonce=777,
    )
    # the "provider's" signature is the consumer's: the provider never countersigned
    by_consumer = sign_entry(fake, space.domain, [space.key(consumer)]).signatures
    two = SignedEntry(
        entry=fake,
        domain=space.domain,
        signatures={
            consumer.address: by_consumer[consumer.address],
            provider.address: by_consumer[consumer.address],
        },
    )
    _append_raw(
        engine,
        two.encode(),
        "UsageReceipt",
        consumer=consumer.address,
        provider=provider.address,
        units=fake.units,
        period_start=fake.periodStart,
        period_end=fake.periodEnd,
        nonce=fake.nonce,
    )
    cp = _anchor(engine, space)
    policy = make_policy(space)
    result = _result(engine, cp, policy)  # the operator's SQL path counts it
    assert result.pool == (60 + 10_000) * 1000
    _fund(space, result.pool)
    propose(chain=space.chain, vault=space.contracts.vault, result=result, sender=space.operator)
    report = _audit(space, SqlLogSource(engine), policy)
    name, detail = _failure(report)
    assert name == "signatures" and detail.startswith("leaf 4 (UsageReceipt)")
    assert provider.address in detail
    assert report.checks[-2].name == "payouts" and report.checks[-2].ok is None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_unregistered_party_fails_the_roles(engine: Engine, space: Space) -> None:
    ingest_all(engine, space, [agreement(space), *usage(space)])
    outsider, p0 = space.outsider, space.providers[0]
    rogue = Agreement(
        agreementId=b"\xbb" * 32,
        assetId=b"\x01" * 32,
        consumer=outsider.address,
        providers=(p0.address,),
        unitPrice=1,
        policyHash=b"\x00" * 32,
        validFrom=T0,
        validUntil=VALID_UNTIL,
    )
    signed = sign_entry(rogue, space.domain, [space.key(outsider), space.key(p0)])
    _append_raw(engine, signed.encode(), "Agreement")
    cp = _anchor(engine, space)
    policy = make_policy(space)
    result = _result(engine, cp, policy)
    _fund(space, result.pool)
    propose(chain=space.chain, vault=space.contracts.vault, result=result, sender=space.operator)
    name, detail = _failure(_audit(space, SqlLogSource(engine), policy))
    assert name == "roles"
    assert detail == (
        f"leaf 4 (Agreement): consumer {outsider.address} is not registered with that role"
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_unknown_round_fails_cleanly(engine: Engine, space: Space) -> None:
    report = _audit(space, SqlLogSource(engine), make_policy(space))
    assert _failure(report) == ("round", f"round {ROUND} does not exist on the vault")
    assert all(c.ok is None for c in report.checks[1:])


def test_sql_entry_source_refuses_a_missing_database(tmp_path: Path) -> None:
    from service.errors import LogUnavailable

    with pytest.raises(LogUnavailable):
        SqlLogSource.from_url(f"sqlite:///{tmp_path}/absent.db")
    assert not (tmp_path / "absent.db").exists()  # no empty log was created to audit


# --- periods, debits and the agreements' policy (T9) ----------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_audit_flags_debits_that_differ_from_bills(engine: Engine, space: Space) -> None:
    # the right payouts, but funded with consumer 1's money for consumer 0's usage
    cp = _evidence(engine, space)
    policy = make_policy(space)
    honest = _result(engine, cp, policy)
    _propose_tree(space, honest.tree, cp, policy, funder=1)
    report = _audit(space, SqlLogSource(engine), policy)
    name, detail = _failure(report)
    c0, c1 = (c.address for c in space.consumers)
    assert name == "debits"
    first = min(c0, c1, key=str.lower)
    want = {c0: f"{c0} was debited 0, its bill is {honest.pool}"}
    want[c1] = f"{c1} was debited {honest.pool}, its bill is 0"
    assert detail == f"{want[first]} (and 1 more)"
    assert [c.name for c in report.checks if c.ok is True][-1] == "payouts"  # the split is right


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_audit_flags_a_statement_period_that_is_not_the_rounds(
    engine: Engine, space: Space
) -> None:
    cp = _evidence(engine, space)
    policy = make_policy(space)
    result = _result(engine, cp, policy)
    _fund(space, result.pool)
    propose(chain=space.chain, vault=space.contracts.vault, result=result, sender=space.operator)
    report = _audit(space, SqlLogSource(engine), policy, period=(P0, P1 + 1))
    assert _failure(report) == (
        "period",
        f"the statement's period [{P0}, {P1 + 1}) is not the round's on-chain period [{P0}, {P1})",
    )
    assert report.checks[-2].name == "payouts" and report.checks[-2].ok is True  # chain's period


def test_audit_flags_overlapping_round() -> None:
    # The vault refuses overlapping rounds (tests/settlement/test_rounds.py::
    # test_overlapping_or_second_pending_round_is_refused); the audit's own check is the
    # second line, against a vault that would let one through: its core on such a history.
    proposed = {1: (100, 200), 2: (200, 300), 3: (150, 250), 4: (250, 260)}
    assert overlapping_rounds(
        round_id=2, period=(200, 300), proposed=proposed, cancelled=set()
    ) == [
        (3, (150, 250)),
        (4, (250, 260)),
    ]
    assert (
        overlapping_rounds(round_id=2, period=(200, 300), proposed=proposed, cancelled={3, 4}) == []
    )
    assert overlapping_rounds(round_id=1, period=(100, 200), proposed=proposed, cancelled={3}) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_audit_overlap_reads_the_vaults_rounds(engine: Engine, space: Space) -> None:
    # round 5 for [P0, P1) was cancelled; round 6 for the same period is not an overlap
    cp = _evidence(engine, space)
    policy = make_policy(space)
    honest = _result(engine, cp, policy)
    _propose_tree(space, honest.tree, cp, policy)
    space.chain.transact(space.contracts.vault.functions.cancel(ROUND), sender=space.operator)
    again = build_payout_tree(round_id=ROUND + 1, payouts=dict(honest.payouts))
    _propose_tree(space, again, cp, policy, round_id=ROUND + 1)
    report = audit_settlement(
        chain=space.chain,
        vault=space.contracts.vault,
        ledger=space.contracts.ledger,
        round_id=ROUND + 1,
        entries_source=SqlLogSource(engine),
        policy_doc=policy,
    )
    overlap = next(c for c in report.checks if c.name == "overlap")
    assert overlap.ok is True and "of the 1 other(s)" in overlap.detail
    assert report.ok, report.verdict


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_audit_flags_agreement_of_another_policy(engine: Engine, space: Space) -> None:
    policy = make_policy(space)
    ingest_all(engine, space, [agreement(space, policy=b"\x07" * 32), *usage(space)])
    cp = _anchor(engine, space)
    # the operator settles it anyway, outside the engine's refusal, under the round's policy
    entries = [decode_entry(line) for _, line in SqlLogSource(engine).entries(size=cp.tree_size)]
    repointed = [agreement(space, policy=policy), *entries[1:]]
    tree = settle_entries(
        repointed, round_id=ROUND, period_start=P0, period_end=P1,
        checkpoint_size=cp.tree_size, policy=policy,
    ).tree  # fmt: skip
    _propose_tree(space, tree, cp, policy)
    report = _audit(space, SqlLogSource(engine), policy)
    name, detail = _failure(report)
    assert name == "agreement_policies"
    assert "0x" + AG.hex() in detail and "0x" + "07" * 32 in detail
    assert [c.ok for c in report.checks if c.name in ("payouts", "debits")] == [None, None]
