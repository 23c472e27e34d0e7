"""End to end on the embedded chain: evaluate, log, audit (bit for bit), tamper, settle.

The log is real (Agreement, receipts and the ValuationResult through ``append_entries`` with
the registry as directory; the checkpoint anchored on the EvidenceLedger); the utility is the
shipped scikit-learn logistic regression.
"""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from service.evidence.anchor import anchor_once, read_all_checkpoints
from service.evidence.entries import SignedEntry, ValuationResult, sign_entry
from service.evidence.models import AnchorRow
from service.settlement.policy import Policy
from service.valuation.estimators import ValuationError
from service.valuation.examples import logreg_utility
from service.valuation.run import (
    Checkpoint,
    ValuationRun,
    audit_valuation,
    evaluate,
    params_document,
)
from service.valuation.utility import ResultCache
from tests.cli.test_participants_cli import tally
from tests.settlement.test_engine import (
    AG,
    P0,
    P1,
    agreement,
    ingest_all,
    make_policy,
    paid,
    receipt,
    settle_both,
)
from tests.space import Space

UTILITY = "service.valuation.examples:logreg_utility"
BANZHAF = params_document("msr-banzhaf", UTILITY, {"min_samples": 24, "max_samples": 48})


def _policy(space: Space) -> Policy:
    return make_policy(space, method="valuation", evaluator=space.auditor.address)


def _logged(engine: Engine, space: Space) -> None:
    """The agreement (3 providers) and usage in the log, then one anchored checkpoint."""
    ingest_all(engine, space, [agreement(space, providers=(0, 1, 2), policy=_policy(space))])
    ingest_all(engine, space, [receipt(space, n, provider=n % 3, units=10) for n in range(6)])
    row = anchor_once(
        engine=engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )
    assert row is not None


def _evaluate(engine: Engine, space: Space, document: dict[str, Any] = BANZHAF) -> ValuationRun:
    with Session(engine) as session:
        return evaluate(
            session=session,
            agreement_id=AG,
            period=(P0, P1),
            document=document,
            evaluator_key=space.key(space.auditor),
        )


def _audit(engine: Engine, signed: SignedEntry, document: dict[str, Any] = BANZHAF) -> Any:
    with Session(engine) as session:
        return audit_valuation(
            session=session, signed=signed, document=document, evaluator=space_auditor(signed)
        )


def space_auditor(signed: SignedEntry) -> str:
    return next(iter(signed.signatures))


def _resigned(space: Space, signed: SignedEntry, **change: Any) -> SignedEntry:
    entry = signed.entry
    assert isinstance(entry, ValuationResult)
    forged = ValuationResult.model_validate({**entry.model_dump(), **change})
    return sign_entry(forged, space.domain, [space.key(space.auditor)])


def test_audit_valuation_reproduces_bit_for_bit(engine: Engine, space: Space) -> None:
    _logged(engine, space)
    run = _evaluate(engine, space)
    ingest_all(engine, space, [run.signed])
    report = _audit(engine, run.signed)
    assert report.ok, report.verdict
    assert [c.name for c in report.checks][-3:] == ["utility-calls", "values", "stderrs"]
    assert _evaluate(engine, space).signed.entry == run.signed.entry


def test_tampered_values_fail_the_values_check(engine: Engine, space: Space) -> None:
    _logged(engine, space)
    run = _evaluate(engine, space)
    entry = run.signed.entry
    assert isinstance(entry, ValuationResult)
    inflated = (entry.values[0] + 500, *entry.values[1:])
    report = _audit(engine, _resigned(space, run.signed, values=inflated))
    assert not report.ok and report.first_failure is not None
    assert report.first_failure.name == "values"


def test_ground_seed_fails_the_seed_check(engine: Engine, space: Space) -> None:
    _logged(engine, space)
    run = _evaluate(engine, space)
    report = _audit(engine, _resigned(space, run.signed, seed=b"\x42" * 32))
    assert report.first_failure is not None and report.first_failure.name == "seed"


def test_other_parameters_fail_the_params_hash_check(engine: Engine, space: Space) -> None:
    _logged(engine, space)
    run = _evaluate(engine, space)
    other = params_document("msr-banzhaf", UTILITY, {"min_samples": 24, "max_samples": 47})
    report = _audit(engine, run.signed, other)
    assert report.first_failure is not None and report.first_failure.name == "params-hash"


def test_evaluate_refuses_before_any_checkpoint_covers_the_agreement(
    engine: Engine, space: Space
) -> None:
    ingest_all(engine, space, [agreement(space, providers=(0, 1, 2), policy=_policy(space))])
    with pytest.raises(ValuationError, match=r"no anchored checkpoint|bound to no deployment"):
        _evaluate(engine, space)


def test_resumed_run_gives_the_same_entry_with_fewer_calls(
    engine: Engine, space: Space, tmp_path: Path
) -> None:
    _logged(engine, space)
    whole = _evaluate(engine, space)
    path = tmp_path / "cache.txt"
    calls = {"n": 0}

    def crashing(subset: tuple[int, ...]) -> int:
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt  # the process dies mid-run
        return logreg_utility(subset)

    with Session(engine) as session, pytest.raises(KeyboardInterrupt):
        evaluate(
            session=session,
            agreement_id=AG,
            period=(P0, P1),
            document=BANZHAF,
            evaluator_key=space.key(space.auditor),
            cache=ResultCache(path, run_id="r1"),
            utility=_with_hash_of(crashing),
        )
    with path.open("a") as f:
        f.write("3 12")  # a half-written last line is ignored
    cache = ResultCache(path, run_id="r1")
    assert len(cache.loaded) == 5
    with Session(engine) as session:
        resumed = evaluate(
            session=session,
            agreement_id=AG,
            period=(P0, P1),
            document=BANZHAF,
            evaluator_key=space.key(space.auditor),
            cache=cache,
        )
    assert resumed.signed.entry == whole.signed.entry
    with pytest.raises(ValuationError, match="another run"):
        ResultCache(path, run_id="r2")


def _with_hash_of(fn: Any) -> Any:
    """``fn`` dressed as the shipped utility (same manifest): the entry's hash is the same."""
    fn.manifest = logreg_utility.manifest
    fn.__module__ = "service.valuation.examples"
    return fn


def test_settle_by_valuation_splits_by_clipped_values(engine: Engine, space: Space) -> None:
    _logged(engine, space)
    run = _evaluate(engine, space)
    entry = run.signed.entry
    assert isinstance(entry, ValuationResult)
    negative = _resigned(space, run.signed, values=(3_000, -200, 1_000))
    ingest_all(engine, space, [negative])
    result = settle_both(engine, _policy(space))
    by_provider = dict(zip(entry.providers, (3_000, 0, 1_000), strict=True))
    names = {p.address: f"p{i}" for i, p in enumerate(space.providers)}
    payouts = paid(result, space)
    rest = sum(payouts.values()) - payouts["op"]
    for address, value in by_provider.items():
        assert Fraction(payouts.get(names[address], 0)) == Fraction(rest * value, 4_000)
    assert names[entry.providers[1]] not in payouts or payouts[names[entry.providers[1]]] == 0


def test_settle_by_valuation_ignores_another_signers_result(engine: Engine, space: Space) -> None:
    _logged(engine, space)
    run = _evaluate(engine, space)
    entry = run.signed.entry
    assert isinstance(entry, ValuationResult)
    stranger = sign_entry(entry, space.domain, [space.key(space.operator)])
    ingest_all(engine, space, [stranger])
    with pytest.raises(Exception, match="ValuationResult"):
        settle_both(engine, _policy(space))


def test_cli_evaluate_then_audit_valuation_pass(
    engine: Engine,
    space: Space,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _logged(engine, space)
    monkeypatch.setenv("TALLY_TEST_EVALUATOR", "0x" + space.key(space.auditor).hex())
    out = tmp_path / "valuation.json"
    args = [
        "evaluate",
        "--agreement", "0x" + AG.hex(),
        "--period-start", str(P0),
        "--period-end", str(P1),
        "--utility", UTILITY,
        "--method", "leave-one-out",
        "--key-env", "TALLY_TEST_EVALUATOR",
        "--out", str(out),
        "--db", db_url,
    ]  # fmt: skip
    code, printed, err = tally(capsys, *args)
    assert code == 0, err
    assert "leave-one-out: 3 providers, 4 utility calls" in printed
    doc = json.loads(out.read_text())
    assert doc["signed_entry"]["entry_type"] == "ValuationResult"
    code, printed, _ = tally(capsys, "audit", "valuation", str(out), "--db", db_url)
    assert code == 0 and printed.startswith("PASS valuation"), printed
    doc["signed_entry"]["entry"]["values"][0] = "9999"
    out.write_text(json.dumps(doc))
    code, printed, _ = tally(capsys, "audit", "valuation", str(out), "--db", db_url)
    assert code == 1
    assert "check 'signature' failed" in printed


def test_cli_evaluate_refuses_a_missing_key(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = tally(
        capsys,
        "evaluate", "--agreement", "0x" + AG.hex(), "--period-start", "1", "--period-end", "2",
        "--utility", UTILITY, "--key-env", "TALLY_NO_SUCH_KEY", "--db", db_url,
    )  # fmt: skip
    assert (code, out) == (1, "")
    assert err.startswith("error[config_invalid]: ") and err.count("\n") == 1


def test_budget_too_small_for_exact_shapley_is_refused(engine: Engine, space: Space) -> None:
    _logged(engine, space)
    document = params_document("exact-shapley", UTILITY, {"max_utility_calls": 7})
    with pytest.raises(ValuationError, match="needs 8 utility calls"):
        _evaluate(engine, space, document)
    assert dataclasses.is_dataclass(ValuationRun)


def _onchain(space: Space) -> list[Checkpoint]:
    return [
        Checkpoint(c.tree_size, c.root)
        for c in read_all_checkpoints(space.chain, space.contracts.ledger)
    ]


def test_seed_checkpoint_is_checked_against_the_evidence_ledger(
    engine: Engine, space: Space
) -> None:
    _logged(engine, space)
    run = _evaluate(engine, space)
    with Session(engine) as session:
        report = audit_valuation(
            session=session, signed=run.signed, document=BANZHAF, onchain=_onchain(space)
        )
    assert report.ok, report.verdict
    assert next(c for c in report.checks if c.name == "checkpoint-on-chain").ok is True


def test_rewritten_anchor_row_fails_the_on_chain_checkpoint_check(
    engine: Engine, space: Space
) -> None:
    """The attack: the operator's database shows another root, so that the evaluator's seed
    (derived from it) is one they picked; the ledger's root gives it away."""
    _logged(engine, space)
    with Session(engine) as session:
        row = session.exec(select(AnchorRow)).one()
        row.root = "0x" + "ab" * 32
        session.add(row)
        session.commit()
    run = _evaluate(engine, space)
    with Session(engine) as session:
        report = audit_valuation(
            session=session, signed=run.signed, document=BANZHAF, onchain=_onchain(space)
        )
    assert report.first_failure is not None
    assert report.first_failure.name == "checkpoint-on-chain"
