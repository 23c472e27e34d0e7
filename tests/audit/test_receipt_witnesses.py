"""`audit_receipt` with a witness policy: at least K pinned witnesses cosigned the
receipt's checkpoint (check ``witness_cosignatures``), and ``tally audit receipt
--witness/--min-witnesses/--trust``.

The receipts come from a real log anchored on the embedded chain; the cosignatures are
posted through :func:`service.witness.cosignatures.add_cosignature` as a witness would.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from service.audit.receipt import (
    CHAIN_CHECKS,
    OFFLINE_CHECKS,
    WITNESS_CHECK,
    AuditReport,
    WitnessPolicy,
    audit_receipt,
)
from service.chain.client import Chain
from service.chain.keys import dev_note_seed
from service.cli import app
from service.db import create_schema, make_engine
from service.errors import ConfigError, TallyError
from service.evidence.anchor import anchor_once
from service.evidence.receipts import build_receipt
from service.witness.cosignatures import add_cosignature, space_origin
from service.witness.note import (
    Checkpoint,
    CosignatureV1Signer,
    NoteSigner,
    cosign,
    parse_note,
    parse_signature_line,
    sign_note,
)
from tests.audit.forge import pin
from tests.evidence.test_log import agreement, ingest, receipt
from tests.space import Space

W1 = CosignatureV1Signer("witness-one.example/w", bytes([21]) * 32)
W2 = CosignatureV1Signer("witness-two.example/w", bytes([22]) * 32)
W3 = CosignatureV1Signer("witness-three.example/w", bytes([23]) * 32)
Doc = dict[str, Any]
runner = CliRunner()


@dataclass
class Witnessed:
    space: Space
    signer: NoteSigner
    doc: Doc  # a receipt whose checkpoint W1 and W2 cosigned (W3 did not)


@pytest.fixture(scope="module")
def witnessed(
    _space: Space, _embedded: Chain, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Witnessed]:
    space = _space
    snap = _embedded.snapshot()
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('witnessed')}/tally.db")
    create_schema(engine)
    entries = [agreement(space), receipt(space, 1), receipt(space, 2)]
    assert all(r.ok for r in ingest(engine, space, entries))  # type: ignore[attr-defined]
    row = anchor_once(
        engine=engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )
    assert row is not None
    origin = space_origin(space="tally.test", chain_id=space.chain.chain_id, ledger=row.contract)
    signer = NoteSigner(origin, dev_note_seed(origin))
    witnesses = (W1.verifier(), W2.verifier(), W3.verifier())
    body = Checkpoint(origin, row.tree_size, bytes.fromhex(row.root[2:])).body()
    with Session(engine) as s:
        for w in (W1, W2):
            add_cosignature(
                session=s,
                signer=signer,
                witnesses=witnesses,
                witness_vkey=w.vkey(),
                cosignature=cosign(body, w, int(time.time()) - 5),
                size=row.tree_size,
            )
        doc = build_receipt(
            session=s, eid="0x" + entries[1].id().hex(), note_signer=signer, witnesses=witnesses
        )
    yield Witnessed(space, signer, doc)
    engine.dispose()
    _embedded.revert(snap)


def _policy(*signers: CosignatureV1Signer, k: int | None = None) -> WitnessPolicy:
    return WitnessPolicy.from_keys([s.vkey() for s in signers], k)


def _check(report: AuditReport) -> Any:
    return next(c for c in report.checks if c.name == WITNESS_CHECK)


def _with_note(doc: Doc, note: bytes) -> Doc:
    out = copy.deepcopy(doc)
    out["cosignatures"] = note.decode("utf-8")
    return out


def _cosigned(w: Witnessed, body: bytes, *lines: str) -> bytes:
    return sign_note(body, w.signer) + "".join(lines).encode("utf-8")


# --- the check ----------------------------------------------------------------------------


def test_two_of_three_pinned_witnesses_pass_offline(witnessed: Witnessed) -> None:
    report = audit_receipt(
        witnessed.doc, chain=None, trusted=None, witnesses=_policy(W1, W2, W3, k=2)
    )
    assert report.ok, report.verdict
    assert [c.name for c in report.checks][: len(OFFLINE_CHECKS) + 1] == [
        *OFFLINE_CHECKS,
        WITNESS_CHECK,
    ]
    assert "2 of the 3 pinned witnesses" in _check(report).detail
    assert "cosigned by at least 2 pinned witness(es)" in report.verdict


def test_witness_policy_passes_online_after_the_chain_checks(witnessed: Witnessed) -> None:
    report = audit_receipt(
        witnessed.doc,
        chain=witnessed.space.chain,
        trusted=pin(witnessed.space),
        witnesses=_policy(W1, W2, k=2),
    )
    assert report.ok, report.verdict
    assert [c.name for c in report.checks] == [*OFFLINE_CHECKS, WITNESS_CHECK, *CHAIN_CHECKS]


def test_fewer_than_k_cosignatures_fail(witnessed: Witnessed) -> None:
    report = audit_receipt(
        witnessed.doc, chain=None, trusted=None, witnesses=_policy(W1, W2, W3, k=3)
    )
    assert not report.ok
    assert report.first_failure is not None and report.first_failure.name == WITNESS_CHECK
    assert "2 of the 3 pinned witnesses" in report.first_failure.detail
    assert "at least 3 needed" in report.first_failure.detail


def test_receipt_without_cosignatures_fails_the_policy(witnessed: Witnessed) -> None:
    doc = copy.deepcopy(witnessed.doc)
    del doc["cosignatures"]
    report = audit_receipt(doc, chain=None, trusted=None, witnesses=_policy(W1))
    assert _check(report).ok is False
    assert "no cosigned checkpoint note" in _check(report).detail
    # Without a policy the field is optional: the receipt still passes.
    assert audit_receipt(doc, chain=None, trusted=None).ok


def test_duplicated_cosignature_lines_count_once(witnessed: Witnessed) -> None:
    body, sigs = parse_note(witnessed.doc["cosignatures"].encode())
    w1_line = next(s.line() for s in sigs if s.name == W1.name)
    doc = _with_note(witnessed.doc, _cosigned(witnessed, body, w1_line, w1_line, w1_line))
    report = audit_receipt(doc, chain=None, trusted=None, witnesses=_policy(W1, W2, k=2))
    assert _check(report).ok is False
    assert "1 of the 2" in _check(report).detail


def test_forged_cosignature_counts_for_nothing(witnessed: Witnessed) -> None:
    body, sigs = parse_note(witnessed.doc["cosignatures"].encode())
    w1 = next(s for s in sigs if s.name == W1.name)
    forged = bytearray(w1.signature)
    forged[40] ^= 1
    line = type(w1)(w1.name, w1.key_id, bytes(forged)).line()
    doc = _with_note(witnessed.doc, _cosigned(witnessed, body, line))
    report = audit_receipt(doc, chain=None, trusted=None, witnesses=_policy(W1))
    assert _check(report).ok is False
    assert "invalid line(s) from witness-one.example/w" in _check(report).detail


def test_cosignatures_of_a_fork_fail(witnessed: Witnessed) -> None:
    """The witnesses cosigned another root at the same size (the view they were shown)."""
    doc = witnessed.doc
    fork = Checkpoint(witnessed.signer.name, doc["tree_size"], bytes(32)).body()
    now = int(time.time())
    note = _cosigned(witnessed, fork, cosign(fork, W1, now), cosign(fork, W2, now))
    report = audit_receipt(
        _with_note(doc, note), chain=None, trusted=None, witnesses=_policy(W1, W2)
    )
    assert _check(report).ok is False
    assert "the receipt proves against size" in _check(report).detail


def test_cosignatures_of_another_size_fail(witnessed: Witnessed) -> None:
    doc = witnessed.doc
    root = bytes.fromhex(doc["root"][2:])
    other = Checkpoint(witnessed.signer.name, doc["tree_size"] + 1, root).body()
    note = _cosigned(witnessed, other, cosign(other, W1, int(time.time())))
    report = audit_receipt(_with_note(doc, note), chain=None, trusted=None, witnesses=_policy(W1))
    assert _check(report).ok is False


def test_cosignatures_for_another_origin_fail(witnessed: Witnessed) -> None:
    """Another deployment's note at the same size and root (witnessed for that space)."""
    doc = witnessed.doc
    elsewhere = space_origin(space="tally.test", chain_id=1, ledger=doc["anchor"]["contract"])
    other = Checkpoint(elsewhere, doc["tree_size"], bytes.fromhex(doc["root"][2:])).body()
    signer = NoteSigner(elsewhere, bytes(32))
    note = sign_note(other, signer) + cosign(other, W1, int(time.time())).encode()
    report = audit_receipt(_with_note(doc, note), chain=None, trusted=None, witnesses=_policy(W1))
    assert _check(report).ok is False
    assert "does not name the receipt's chain" in _check(report).detail


def test_malformed_cosignature_note_is_a_failed_check(witnessed: Witnessed) -> None:
    for bad in ("", "no blank line", witnessed.doc["cosignatures"].replace("\n\n", "\n"), 7):
        doc = copy.deepcopy(witnessed.doc)
        doc["cosignatures"] = bad
        report = audit_receipt(doc, chain=None, trusted=None, witnesses=_policy(W1))
        assert _check(report).ok is False, bad


def test_pinned_log_key_must_have_signed(witnessed: Witnessed) -> None:
    body, sigs = parse_note(witnessed.doc["cosignatures"].encode())
    good = WitnessPolicy.from_keys([W1.vkey()], log_vkey=witnessed.signer.vkey())
    assert audit_receipt(witnessed.doc, chain=None, trusted=None, witnesses=good).ok
    impostor = NoteSigner(witnessed.signer.name, bytes([5]) * 32)
    lines = "".join(s.line() for s in sigs[1:])
    note = sign_note(body, impostor) + lines.encode()
    report = audit_receipt(
        _with_note(witnessed.doc, note), chain=None, trusted=None, witnesses=good
    )
    assert _check(report).ok is False
    assert "the space's own signature" in _check(report).detail


def test_policy_refuses_impossible_or_bad_settings() -> None:
    with pytest.raises(ConfigError, match="can never hold"):
        _policy(W1, W2, k=3)
    with pytest.raises(ConfigError, match="can never hold"):
        _policy(W1, k=0)
    with pytest.raises(ConfigError, match="twice"):
        _policy(W1, W1)
    with pytest.raises(ConfigError, match="witness 1"):
        WitnessPolicy.from_keys([NoteSigner("w", bytes(32)).vkey()])  # alg 0x01, not 0x04


# --- the CLI ------------------------------------------------------------------------------


def _run(*args: str) -> Any:
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def test_cli_audit_receipt_with_witnesses(witnessed: Witnessed, tmp_path: Path) -> None:
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(witnessed.doc), encoding="utf-8")
    args = ["audit", "receipt", str(path), "--offline"]
    r = _run(*args, "--witness", W1.vkey(), "--witness", W2.vkey(), "--min-witnesses", "2")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("PASS receipt 0x")
    r = _run(*args, "--witness", W3.vkey())
    assert r.exit_code == 1
    assert f"check '{WITNESS_CHECK}' failed" in r.output
    trust = tmp_path / "trust.toml"
    trust.write_text(
        f'witnesses = ["{W1.vkey()}", "{W3.vkey()}"]\nmin_witnesses = 2\n', encoding="utf-8"
    )
    r = _run(*args, "--trust", str(trust))
    assert r.exit_code == 1 and "1 of the 2 pinned witnesses" in r.output
    trust.write_text(f'witnesses = ["{W1.vkey()}", "{W2.vkey()}"]\nmin_witnesses = 2\n')
    assert _run(*args, "--trust", str(trust)).exit_code == 0


def test_cli_audit_receipt_bad_witness_options_are_one_line(
    witnessed: Witnessed, tmp_path: Path
) -> None:
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(witnessed.doc), encoding="utf-8")
    trust = tmp_path / "trust.toml"
    trust.write_text(f'witnesses = ["{W1.vkey()}"]\nmin_witnesses = "two"\n')
    args = ["audit", "receipt", str(path), "--offline"]
    for extra in (
        ["--witness", W1.vkey(), "--min-witnesses", "2"],
        ["--min-witnesses", "1"],
        ["--witness", "not-a-vkey"],
        ["--trust", str(trust)],
        ["--trust", str(trust), "--witness", W1.vkey()],
        ["--trust", str(tmp_path / "missing.toml")],
    ):
        r = _run(*args, *extra)
        assert r.exit_code != 0, extra
        # CliRunner bypasses the app's handler, which prints a TallyError as one line.
        assert isinstance(r.exception, TallyError), (extra, r.exception)
        assert "\n" not in r.exception.message


def test_receipt_cosignature_timestamps_are_the_posted_ones(witnessed: Witnessed) -> None:
    _, sigs = parse_note(witnessed.doc["cosignatures"].encode())
    assert [s.name for s in sigs] == [witnessed.signer.name, W1.name, W2.name]
    line = sigs[1].line()
    assert parse_signature_line(line) == sigs[1]
