"""`audit_log`: every checkpoint on chain against the operator's log, first break reported."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from service.audit.log import audit_log
from service.audit.receipt import AuditReport
from service.chain.client import Chain
from service.db import create_schema, make_engine
from service.errors import LogUnavailable
from service.evidence import merkle
from service.evidence.anchor import anchor_once
from service.evidence.entries import SignedEntry
from service.evidence.merkle import leaf_hash
from service.evidence.models import AnchorRow
from service.evidence.sources import SqlLogSource
from tests.evidence.test_log import agreement, receipt
from tests.space import Space, build_space


def ingest(engine: Engine, space: Space, entries: list[SignedEntry]) -> list[object]:
    """Append ``entries`` as legacy leaves (T15's ``commitments=False``): these tests
    rebuild forged histories from the same entries, and fresh salts would change every
    leaf of them; commitment leaves are audited in tests/audit/test_log_mixed.py."""
    from service.evidence.directory import ChainDirectory
    from service.evidence.log import append_entries

    legacy = "commitments" in inspect.signature(append_entries).parameters
    return append_entries(  # type: ignore[return-value]
        engine=engine,
        domain=space.domain,
        directory=ChainDirectory(space.chain, space.contracts.registry),
        entries=entries,
        **({"commitments": False} if legacy else {}),
    )


SIZES = (3, 6, 10)  # the three checkpoints
EXTRA = 2  # entries appended after the last checkpoint


def _anchor(engine: Engine, space: Space) -> AnchorRow:
    row = anchor_once(
        engine=engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )
    assert row is not None
    return row


def _entries(space: Space) -> list[SignedEntry]:
    return [agreement(space), *(receipt(space, n) for n in range(1, SIZES[-1] + EXTRA))]


def _build(engine: Engine, space: Space, entries: list[SignedEntry], *, anchor: bool) -> None:
    """Ingest ``entries``, anchoring at each size of SIZES when ``anchor``."""
    done = 0
    for size in (*SIZES, len(entries)):
        size = min(size, len(entries))
        results = ingest(engine, space, entries[done:size])
        assert all(r.ok for r in results)  # type: ignore[attr-defined]
        done = size
        if anchor and size in SIZES:
            _anchor(engine, space)


def _rebuilt(tmp_path: Path, space: Space, entries: list[SignedEntry]) -> Engine:
    """A fresh SQL log over ``entries``: what an operator that rewrote history serves."""
    engine = make_engine(f"sqlite:///{tmp_path}/rewritten.db")
    create_schema(engine)
    assert all(r.ok for r in ingest(engine, space, entries))  # type: ignore[attr-defined]
    return engine


@dataclass
class Anchored:
    space: Space
    entries: list[SignedEntry]


@pytest.fixture(scope="module")
def anchored(_embedded: Chain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anchored]:
    """A log of 12 entries with checkpoints at 3, 6 and 10, on a ledger of its own."""
    snap = _embedded.snapshot()
    space = build_space(_embedded)
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('audit-log')}/tally.db")
    create_schema(engine)
    entries = _entries(space)
    _build(engine, space, entries, anchor=True)
    yield Anchored(space, entries)
    engine.dispose()
    _embedded.revert(snap)


def _audit(space: Space, engine: Engine) -> AuditReport:
    return audit_log(chain=space.chain, ledger=space.contracts.ledger, proofs=SqlLogSource(engine))


def test_log_with_several_checkpoints_passes(engine: Engine, space: Space) -> None:
    _build(engine, space, _entries(space), anchor=True)
    report = _audit(space, engine)
    assert report.ok, report.verdict
    assert [(c.name, c.seq) for c in report.checks] == [
        ("checkpoint 0 root", 0),
        ("checkpoint 0 entries", 0),
        ("checkpoint 1 consistency", 1),
        ("checkpoint 1 root", 1),
        ("checkpoint 1 entries", 1),
        ("checkpoint 2 consistency", 2),
        ("checkpoint 2 root", 2),
        ("checkpoint 2 entries", 2),
        ("head", None),
    ]
    assert all(c.ok is True for c in report.checks)
    assert "size 10 -> 12" in report.checks[-1].detail
    assert report.verdict.startswith("PASS") and "3 checkpoint(s) up to size 10" in report.verdict


def test_rewritten_entry_breaks_at_the_first_checkpoint_covering_it(
    anchored: Anchored, tmp_path: Path
) -> None:
    doctored = list(anchored.entries)
    doctored[4] = receipt(anchored.space, 4, units=1_000)  # after checkpoint 0, in checkpoint 1
    rewritten = _rebuilt(tmp_path, anchored.space, doctored)
    report = _audit(anchored.space, rewritten)
    assert not report.ok
    first = report.first_failure
    assert first is not None and first.seq == 1 and first.name == "checkpoint 1 consistency"
    assert report.checks[0].name == "checkpoint 0 root" and report.checks[0].ok is True
    failed = {c.name for c in report.checks if c.ok is False}
    assert failed == {
        "checkpoint 1 consistency",
        "checkpoint 1 root",
        "checkpoint 1 entries",
        "checkpoint 2 consistency",
        "checkpoint 2 root",
        "checkpoint 2 entries",
        "head",
    }
    assert report.verdict.startswith("FAIL") and "checkpoint 1" in report.verdict
    assert report.to_json()["first_failure"]["seq"] == 1
    rewritten.dispose()


def test_rewrite_after_the_last_checkpoint_is_not_a_break(
    anchored: Anchored, tmp_path: Path
) -> None:
    doctored = list(anchored.entries)
    doctored[-1] = receipt(anchored.space, len(doctored) - 1, units=7)  # not anchored yet
    rewritten = _rebuilt(tmp_path, anchored.space, doctored)
    report = _audit(anchored.space, rewritten)
    assert report.ok, report.verdict
    rewritten.dispose()


def test_truncated_log_breaks_where_it_ends(anchored: Anchored, tmp_path: Path) -> None:
    # checkpoint 2 anchored 10 leaves
    rewritten = _rebuilt(tmp_path, anchored.space, anchored.entries[:8])
    report = _audit(anchored.space, rewritten)
    first = report.first_failure
    assert first is not None and first.seq == 2 and first.name == "checkpoint 2 consistency"
    assert "cannot serve a proof" in first.detail
    by_name = {c.name: c for c in report.checks}
    assert "serves only 8" in by_name["checkpoint 2 root"].detail
    assert by_name["head"].ok is False
    rewritten.dispose()


def test_no_checkpoints_yet_passes_and_says_so(engine: Engine, space: Space) -> None:
    ingest(engine, space, [agreement(space)])
    report = _audit(space, engine)
    assert report.ok and "no checkpoints" in report.verdict


def test_sql_source_refuses_a_missing_database(tmp_path: Path) -> None:
    with pytest.raises(LogUnavailable):
        SqlLogSource.from_url(f"sqlite:///{tmp_path}/absent.db")
    assert not (tmp_path / "absent.db").exists()


def test_sql_source_serves_what_the_log_holds(engine: Engine, space: Space) -> None:
    _build(engine, space, _entries(space), anchor=False)
    source = SqlLogSource(engine)
    size, root = source.head()
    assert size == SIZES[-1] + EXTRA and source.root(size) == root
    assert source.consistency_proof(size, size) == []


def test_sql_source_never_shows_the_database_password() -> None:
    source = SqlLogSource.from_url("postgresql+psycopg://tally:s3cret@db.invalid/tally")
    assert "s3cret" not in source.describe() and "db.invalid" in source.describe()
    source.close()


# --- a checkpoint whose size is not its root's (T9 item 9) ---------------------------------


def _mislabel(space: Space, size: int, entries: list[SignedEntry], real: int, old: int) -> None:
    """What only the operator can do: anchor the root of the first ``real`` entries as
    checkpoint ``size``, with the consistency proof from ``old`` to ``real``."""
    hashes = [leaf_hash(e.encode()) for e in entries[:real]]
    proof = merkle.consistency_proof(hashes, old) if old else []
    root = merkle.root_from_leaf_hashes(hashes)
    space.chain.transact(
        space.contracts.ledger.functions.anchor(size, root, proof), sender=space.operator
    )


def test_mislabelled_checkpoint_size_is_named(engine: Engine, space: Space) -> None:
    entries = _entries(space)[:8]
    ingest(engine, space, entries[:4])
    _anchor(engine, space)
    ingest(engine, space, entries[4:])
    _mislabel(space, 8, entries, real=6, old=4)  # the ledger accepts it
    assert space.chain.call(space.contracts.ledger.functions.checkpoint(1))[0] == 8
    report = _audit(space, engine)
    first = report.first_failure
    assert first is not None and (first.name, first.seq) == ("checkpoint 1 size", 1)
    assert first.detail == (
        "checkpoint 1 claims size 8 but its root is the root of the first 6 leaves; "
        "the consistency proof from size 4 cannot tell 6 from 8"
    )
    assert report.verdict.startswith("FAIL") and "check 'checkpoint 1 size' failed" in (
        report.verdict
    )
    failed = {c.name for c in report.checks if c.ok is False}
    assert {"checkpoint 1 consistency", "checkpoint 1 root"} <= failed
    assert report.checks[0].name == "checkpoint 0 root" and report.checks[0].ok is True


def test_mislabelled_checkpoint_beyond_the_log_is_named(engine: Engine, space: Space) -> None:
    entries = _entries(space)[:6]
    ingest(engine, space, entries[:4])
    _anchor(engine, space)
    ingest(engine, space, entries[4:])
    _mislabel(space, 8, entries, real=6, old=4)  # the log holds only 6 entries
    first = _audit(space, engine).first_failure
    assert first is not None and first.name == "checkpoint 1 size"
    assert "claims size 8 but its root is the root of the first 6 leaves (the log has 6)" in (
        first.detail
    )


def test_mislabelled_first_checkpoint_is_named(engine: Engine, space: Space) -> None:
    entries = _entries(space)[:3]
    ingest(engine, space, entries)
    _mislabel(space, 5, entries, real=3, old=0)  # no proof comes with a first checkpoint
    first = _audit(space, engine).first_failure
    assert first is not None and first.name == "checkpoint 0 size"
    assert "claims size 5 but its root is the root of the first 3 leaves (the log has 3)" in (
        first.detail
    )


def test_consistency_shape_is_exactly_when_a_proof_verifies_mislabelled() -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(32)]
    roots = [merkle.root_from_leaf_hashes(hashes[:n]) for n in range(33)]
    accepted = total = 0
    for old in range(1, 32):
        for real in range(old + 1, 33):
            proof = merkle.consistency_proof(hashes[:real], old)
            for claimed in range(old + 1, 33):
                if claimed == real:
                    continue
                total += 1
                ok = merkle.verify_consistency(old, claimed, roots[old], roots[real], proof)
                same = merkle.consistency_shape(old, claimed) == merkle.consistency_shape(old, real)
                assert ok == same, (old, real, claimed)
                accepted += ok
    assert (accepted, total) == (total // 2, total)  # half of all mislabels verify
