"""The browser's receipt verifier (service/web/static/tally-verify.js, run by node through
scripts/web/verify_cli.mjs) gives the Python auditor's verdict on the same receipts.

Receipts of a mixed log (legacy leaves, then T15 commitment leaves: version-1, full and
reduced version-2 receipts) with two checkpoints on a real anvil node (the JS verifier
reads the chain over JSON-RPC like the page does), untampered and tampered in every way
the dashboard's tests name (signature, units, leaf index, proof hash, root, contract
address) and more: offline, and online against the EvidenceLedger with and without a
pinned deployment, each check the JS verifier runs has the Python auditor's outcome, and
the first failing check is the same. The browser skips ``roles`` (no registry replay), and
``deployment`` when nothing is pinned: those are null, never true.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from service.audit.receipt import CHAIN_CHECKS, OFFLINE_CHECKS, AuditReport, audit_receipt
from service.chain.devnode import Anvil
from service.db import create_schema, make_engine
from service.evidence.anchor import anchor_once
from service.evidence.commitment import make_disclosure, parse_disclosure
from service.evidence.directory import ChainDirectory
from service.evidence.eip712 import SECP256K1_N, Domain
from service.evidence.entries import sign_entry
from service.evidence.log import append_entries
from service.evidence.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
)
from service.evidence.receipts import build_receipt, reduce_receipt
from tests.audit.forge import foreign_ledger, one_leaf_receipt
from tests.audit.forge import pin as _pin
from tests.evidence.test_log import agreement, attestation, receipt
from tests.space import Space

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "scripts" / "web" / "verify_cli.mjs"
BUNDLE = ROOT / "service" / "web" / "static" / "tally-verify.js"
Doc = Any  # a receipt document (or, for one case, not even an object)


@dataclass
class Log:
    space: Space
    anvil: Anvil
    docs: dict[str, Doc]  # untampered receipts by name
    second_tx: str  # the tx that anchored checkpoint 1


def _append(engine: Any, space: Space, entries: list[Any], *, commitments: bool) -> None:
    directory = ChainDirectory(space.chain, space.contracts.registry)
    results = append_entries(
        engine=engine,
        domain=space.domain,
        directory=directory,
        entries=entries,
        commitments=commitments,
    )
    assert all(r.ok for r in results), results


@pytest.fixture(scope="module")
def log(
    anvil_space: Space, anvil: Anvil, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Log]:
    """A mixed log on anvil: checkpoint 0 (size 4) of legacy leaves (version-1 receipts),
    checkpoint 1 (size 8) adds commitment leaves (version-2 full receipts, and reduced ones
    made from them)."""
    space = anvil_space
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('jsverify')}/tally.db")
    create_schema(engine)
    attest = attestation(space)
    first = [agreement(space), receipt(space, 1), receipt(space, 2, provider=1), receipt(space, 3)]
    second = [receipt(space, 4, units=40), receipt(space, 5, units=50), attest, receipt(space, 6)]
    txs = []
    for batch, commitments in ((first, False), (second, True)):
        _append(engine, space, batch, commitments=commitments)
        row = anchor_once(
            engine=engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
        )
        assert row is not None
        txs.append(row.tx_hash)
    names = ["agreement", "receipt1", "receipt2", "receipt3", "r4", "receipt", "attestation", "r6"]
    with Session(engine) as s:
        docs = {
            name: build_receipt(session=s, eid="0x" + e.id().hex())
            for name, e in zip(names, first + second, strict=True)
        }
    assert (docs["receipt"]["leaf_index"], docs["receipt"]["tree_size"]) == (5, 8)
    assert [docs[n]["version"] for n in ("receipt1", "receipt", "attestation")] == [1, 2, 2]
    docs["reduced"] = reduce_receipt(docs["receipt"], ["consumer", "provider", "units"])
    docs["reduced.unsigned"] = reduce_receipt(docs["receipt"], ["units"], signed=False)
    docs["reduced.attestation"] = reduce_receipt(docs["attestation"], ["scoreBps"])
    docs["reduced.r4"] = reduce_receipt(docs["r4"], ["consumer", "provider", "units"])
    yield Log(space, anvil, docs, txs[1])
    engine.dispose()


# --- the 50 receipts ---------------------------------------------------------------------------


def _flip(hex_str: str, at: int = -1) -> str:
    chars = list(hex_str)
    chars[at] = "0" if chars[at] != "0" else "1"
    return "".join(chars)


def _sig(doc: Doc, i: int, change: Callable[[bytes], bytes]) -> None:
    signer = sorted(doc["signatures"])[i]
    sig = bytes.fromhex(doc["signatures"][signer][2:])
    doc["signatures"][signer] = "0x" + change(sig).hex()


def _high_s(sig: bytes) -> bytes:
    s = SECP256K1_N - int.from_bytes(sig[32:64], "big")
    return sig[:32] + s.to_bytes(32, "big") + bytes([55 - sig[64]])


def _set(path: str, value: Any) -> Callable[[Doc, Log], None]:
    def mutate(doc: Doc, lg: Log) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        key: Any = int(last) if isinstance(target, list) else last
        target[key] = value(target[key], lg) if callable(value) else value

    return mutate


def _do(fn: Callable[[Doc], Any]) -> Callable[[Doc, Log], None]:
    return lambda doc, lg: fn(doc) and None


def _swap_signatures(doc: Doc) -> None:
    one, two = sorted(doc["signatures"])
    sigs = doc["signatures"]
    sigs[one], sigs[two] = sigs[two], sigs[one]


def _lowercase_signers(doc: Doc) -> None:
    doc["signatures"] = {k.lower(): v for k, v in doc["signatures"].items()}


def _bad_checksum(address: str) -> str:
    at = next(i for i, c in enumerate(address) if i > 1 and c.isalpha())
    return address[:at] + address[at].swapcase() + address[at + 1 :]


# (name, base receipt, mutation); None: the receipt as built
TAMPERINGS: list[tuple[str, str, Callable[[Doc, Log], None]]] = [
    ("units", "receipt", _set("entry.units", lambda v, lg: v + 1)),
    ("units.max", "receipt", _set("entry.units", 2**64 - 1)),  # exact beyond 2**53
    ("units.overflow", "receipt", _set("entry.units", 2**64)),
    ("agreementId", "receipt", _set("entry.agreementId", lambda v, lg: _flip(v))),
    ("consumer", "receipt", _set("entry.consumer", lambda v, lg: lg.space.consumers[1].address)),
    ("nonce", "receipt", _set("entry.nonce", lambda v, lg: v + 1)),
    ("periodEnd", "receipt", _set("entry.periodEnd", lambda v, lg: v + 1)),
    ("detailHash", "receipt", _set("entry.detailHash", lambda v, lg: _flip(v))),
    ("signature[0].r", "receipt", _do(lambda d: _sig(d, 0, lambda s: bytes([s[0] ^ 1]) + s[1:]))),
    (
        "signature[1].s",
        "receipt",
        _do(lambda d: _sig(d, 1, lambda s: s[:40] + bytes([s[40] ^ 1]) + s[41:])),
    ),
    ("signature[0].high_s", "receipt", _do(lambda d: _sig(d, 0, _high_s))),
    (
        "signature[1].v",
        "receipt",
        _do(lambda d: _sig(d, 1, lambda s: s[:64] + bytes([55 - s[64]]))),
    ),
    ("signature.drop", "receipt", _do(lambda d: d["signatures"].pop(sorted(d["signatures"])[0]))),
    ("signatures.swap", "receipt", _do(_swap_signatures)),
    (
        "signatures.extra",
        "receipt",
        lambda d, lg: d["signatures"].update(
            {lg.space.outsider.address: next(iter(d["signatures"].values()))}
        ),
    ),
    ("leaf_index+1", "receipt", _set("leaf_index", lambda v, lg: v + 1)),
    ("leaf_index-1", "receipt", _set("leaf_index", lambda v, lg: v - 1)),
    ("leaf_index=size", "receipt", _set("leaf_index", 8)),
    ("tree_size-1", "receipt", _set("tree_size", lambda v, lg: v - 1)),
    ("tree_size+1", "receipt", _set("tree_size", lambda v, lg: v + 1)),
    ("tree_size-2", "receipt", _set("tree_size", lambda v, lg: v - 2)),
    ("root", "receipt", _set("root", lambda v, lg: _flip(v))),
    ("proof[0]", "receipt", _set("inclusion_proof.0", lambda v, lg: _flip(v))),
    ("proof[1]", "receipt", _set("inclusion_proof.1", lambda v, lg: _flip(v))),
    ("proof[2]", "receipt", _set("inclusion_proof.2", lambda v, lg: _flip(v))),
    ("proof.drop", "receipt", _set("inclusion_proof", lambda v, lg: v[:-1])),
    ("proof.extra", "receipt", _set("inclusion_proof", lambda v, lg: [*v, v[0]])),
    ("proof.swap", "receipt", _set("inclusion_proof", lambda v, lg: [v[1], v[0], *v[2:]])),
    (
        "anchor.contract",
        "receipt",
        _set("anchor.contract", lambda v, lg: lg.space.contracts.registry.address),
    ),
    (
        "anchor.contract.checksum",
        "receipt",
        _set("anchor.contract", lambda v, lg: _bad_checksum(v)),
    ),
    ("anchor.chain_id", "receipt", _set("anchor.chain_id", 1)),
    ("anchor.checkpoint_seq", "receipt", _set("anchor.checkpoint_seq", 0)),
    ("anchor.checkpoint_seq.unknown", "receipt", _set("anchor.checkpoint_seq", 7)),
    ("anchor.block_number", "receipt", _set("anchor.block_number", lambda v, lg: v - 1)),
    ("anchor.tx_hash", "receipt", _set("anchor.tx_hash", lambda v, lg: _flip(v))),
    ("anchor.tx_hash.other", "agreement", _set("anchor.tx_hash", lambda v, lg: lg.second_tx)),
    ("anchor.tx_hash.zero", "receipt", _set("anchor.tx_hash", "0x" + "00" * 32)),
    ("entry_id", "receipt", _set("entry_id", lambda v, lg: _flip(v))),
    ("entry_type", "receipt", _set("entry_type", "Agreement")),
    ("version", "receipt", _set("version", 3)),
    ("missing.root", "receipt", _do(lambda d: d.pop("root"))),
    ("leaf_index.string", "receipt", _set("leaf_index", lambda v, lg: str(v))),
    ("root.short", "receipt", _set("root", lambda v, lg: v[:-2])),
    ("entry.invalid", "receipt", _set("entry.periodEnd", 1)),
    ("entry.extra_field", "receipt", _set("entry.price", 1)),
    ("agreement.unitPrice", "agreement", _set("entry.unitPrice", lambda v, lg: str(int(v) + 1))),
    ("agreement.validUntil", "agreement", _set("entry.validUntil", lambda v, lg: v + 1)),
    ("attestation.scoreBps", "attestation", _set("entry.scoreBps", lambda v, lg: v - 1)),
    ("lowercase.signers", "receipt", _do(_lowercase_signers)),  # still valid
    ("signature.v01", "receipt", _do(lambda d: _sig(d, 0, lambda s: s[:64] + bytes([s[64] - 27])))),
    # a full (version 2) receipt's salt; the legacy receipts of checkpoint 0
    ("salt", "receipt", _set("salt", lambda v, lg: _flip(v))),
    ("salt.missing", "receipt", _do(lambda d: d.pop("salt"))),
    ("legacy.with_salt", "receipt1", _set("salt", "0x" + "11" * 32)),
    ("legacy.units", "receipt1", _set("entry.units", lambda v, lg: v + 1)),
    (
        "legacy.signature[0].r",
        "receipt1",
        _do(lambda d: _sig(d, 0, lambda s: bytes([s[0] ^ 1]) + s[1:])),
    ),
    ("legacy.leaf_index+1", "receipt1", _set("leaf_index", lambda v, lg: v + 1)),
    ("legacy.proof[0]", "receipt1", _set("inclusion_proof.0", lambda v, lg: _flip(v))),
    ("legacy.root", "receipt1", _set("root", lambda v, lg: _flip(v))),
    (
        "legacy.anchor.contract",
        "receipt1",
        _set("anchor.contract", lambda v, lg: lg.space.contracts.vault.address),
    ),
    # reduced receipts (selective disclosure)
    ("reduced.disclosure.changed", "reduced", lambda d, lg: _redisclose(d, "units", 10**6)),
    ("reduced.disclosure.foreign", "reduced", lambda d, lg: _borrow(d, lg, "units")),
    (
        "reduced.disclosure.twice",
        "reduced",
        lambda d, lg: d["disclosures"].append(d["disclosures"][0]),
    ),
    ("reduced.disclosure.garbage", "reduced", _set("disclosures.0", "not*base64")),
    ("reduced.signer_field.hidden", "reduced", lambda d, lg: _hide(d, "provider")),
    ("reduced.field_digest", "reduced", _set("field_digests.0", lambda v, lg: _flip(v))),
    ("reduced.field_digests.short", "reduced", _set("field_digests", lambda v, lg: v[:-1])),
    ("reduced.commitment_salt", "reduced", _set("commitment_salt", lambda v, lg: _flip(v))),
    ("reduced.struct_hash", "reduced", _set("signed.struct_hash", lambda v, lg: _flip(v))),
    (
        "reduced.signature[0].r",
        "reduced",
        _do(lambda d: _sig(d["signed"], 0, lambda s: bytes([s[0] ^ 1]) + s[1:])),
    ),
    (
        "reduced.signature.drop",
        "reduced",
        _do(lambda d: d["signed"]["signatures"].pop(sorted(d["signed"]["signatures"])[0])),
    ),
    ("reduced.signers_digest", "reduced.unsigned", _set("signers_digest", lambda v, lg: _flip(v))),
    ("reduced.leaf_index", "reduced", _set("leaf_index", lambda v, lg: v - 1)),
    ("reduced.proof[1]", "reduced", _set("inclusion_proof.1", lambda v, lg: _flip(v))),
    ("reduced.root", "reduced", _set("root", lambda v, lg: _flip(v))),
    ("reduced.anchor.block_number", "reduced", _set("anchor.block_number", lambda v, lg: v + 1)),
    (
        "reduced.with_entry_id",
        "reduced",
        lambda d, lg: d.update(entry_id=lg.docs["receipt"]["entry_id"]),
    ),
    ("reduced.both_forms", "reduced", _set("signers_digest", "0x" + "22" * 32)),
    ("reduced.version1", "reduced", _set("version", 1)),
    (
        "reduced.attestation.two_signatures",
        "reduced.attestation",
        lambda d, lg: d["signed"]["signatures"].update(
            {lg.space.consumers[1].address: next(iter(d["signed"]["signatures"].values()))}
        ),
    ),
]


def _redisclose(doc: Doc, name: str, value: Any) -> None:
    """Replace the disclosure of ``name`` with one of another value under the same salt."""
    for i, text in enumerate(doc["disclosures"]):
        item = parse_disclosure(text)
        if item.name == name:
            doc["disclosures"][i] = make_disclosure(item.salt, name, value)


def _borrow(doc: Doc, lg: Log, name: str) -> None:
    """Swap in the disclosure of ``name`` from another receipt (its own salt and digest)."""
    other = next(
        t for t in lg.docs["reduced.r4"]["disclosures"] if parse_disclosure(t).name == name
    )
    doc["disclosures"] = [
        t if parse_disclosure(t).name != name else other for t in doc["disclosures"]
    ]


def _hide(doc: Doc, name: str) -> None:
    doc["disclosures"] = [t for t in doc["disclosures"] if parse_disclosure(t).name != name]


def _cases(lg: Log) -> dict[str, Doc]:
    """Every receipt of the cross-check, by name: the untampered ones, the tamperings and
    three forged ones that are flawless in themselves."""
    cases: dict[str, Doc] = dict(lg.docs)
    for name, base, mutate in TAMPERINGS:
        doc = copy.deepcopy(lg.docs[base])
        mutate(doc, lg)
        assert doc != lg.docs[base], name
        cases[name] = doc
    space = lg.space
    cases["not.an.object"] = [1, 2, 3]
    # a one-leaf log of the forger's own, never anchored: flawless offline
    cases["unanchored.root"] = one_leaf_receipt(
        receipt(space, 98), chain_id=space.chain.chain_id, contract=space.contracts.ledger.address
    )
    nowhere = Domain(chain_id=space.chain.chain_id, verifying_contract="0x" + "5a" * 20)
    keys = [space.key(space.consumers[0]), space.key(space.providers[0])]
    cases["contract.without.code"] = one_leaf_receipt(
        sign_entry(receipt(space, 97).entry, nowhere, keys),
        chain_id=nowhere.chain_id,
        contract=nowhere.verifying_contract,
    )
    return cases


@pytest.fixture(scope="module")
def cases(log: Log) -> dict[str, Doc]:
    found = _cases(log)
    assert len(found) == 94  # 12 as built, 79 tamperings, 3 forged
    return found


# --- running both verifiers --------------------------------------------------------------------


def _run_js(docs: dict[str, Doc], tmp: Path, *args: str) -> dict[str, dict[str, Any]]:
    node = shutil.which("node")
    assert node is not None, "node is installed by make test (npm ci)"
    files = []
    for i, (name, doc) in enumerate(docs.items()):
        path = tmp / f"{i:03d}.json"
        path.write_text(json.dumps(doc, indent=1))
        files.append((name, path))
    done = subprocess.run(
        [node, str(CLI), *args, *(str(p) for _, p in files)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr
    assert done.stderr == "", done.stderr
    reports = json.loads(done.stdout)
    assert [r["file"] for r in reports] == [str(p) for _, p in files]
    return {name: r for (name, _), r in zip(files, reports, strict=True)}


def _outcomes(report: AuditReport) -> list[tuple[str, bool | None]]:
    return [(c.name, c.ok) for c in report.checks]


def _js_outcomes(report: dict[str, Any]) -> list[tuple[str, bool | None]]:
    return [(c["name"], c["ok"]) for c in report["checks"]]


def _first(report: dict[str, Any]) -> str | None:
    first = report["firstFailure"]
    return None if first is None else str(first["name"])


def _py_first(report: AuditReport) -> str | None:
    first = report.first_failure
    return None if first is None else first.name


def test_js_verdicts_equal_the_python_auditor_offline(
    cases: dict[str, Doc], tmp_path: Path
) -> None:
    js = _run_js(cases, tmp_path)
    for name, doc in cases.items():
        py = audit_receipt(doc, chain=None, trusted=None)
        assert _js_outcomes(js[name]) == _outcomes(py), name
        assert _first(js[name]) == _py_first(py), name
        assert js[name]["ok"] is py.ok and js[name]["offline"] is True, name
        as_json = py.to_json()
        assert js[name]["form"] == as_json.get("form"), name
        if js[name]["form"] == "reduced":
            ours, theirs = js[name]["fields"], as_json["fields"]
            if theirs is None:  # a malformed reduced document
                assert ours is None, name
            else:
                assert (ours["proven"], ours["hidden"]) == (theirs["proven"], theirs["hidden"])
    # the tamperings the dashboard's browser test names fail offline where they must
    expected = {
        "signature[0].r": "signatures",
        "units": "signatures",
        "leaf_index+1": "inclusion",
        "proof[1]": "inclusion",
        "root": "inclusion",
        "anchor.contract": "signatures",
    }
    assert {n: _first(js[n]) for n in expected} == expected
    assert all(js[n]["ok"] for n in ("receipt", "agreement", "lowercase.signers", "signature.v01"))
    forms = {n: js[n]["form"] for n in ("receipt1", "receipt", "reduced", "reduced.unsigned")}
    assert forms == {
        "receipt1": "legacy",
        "receipt": "full",
        "reduced": "reduced",
        "reduced.unsigned": "reduced",
    }
    assert js["reduced"]["fields"]["values"]["units"] == "50"
    assert "units" not in js["reduced.unsigned"]["fields"]["hidden"]
    assert _first(js["reduced.disclosure.foreign"]) == "disclosures"
    assert _first(js["reduced.signer_field.hidden"]) == "signer_fields"


def test_js_verdicts_equal_the_python_auditor_online(
    log: Log, cases: dict[str, Doc], tmp_path: Path
) -> None:
    ledger = log.space.contracts.ledger.address
    registry = log.space.contracts.registry.address
    js = _run_js(
        cases,
        tmp_path,
        *("--rpc", log.anvil.url, "--ledger", ledger, "--registry", registry),
        *("--chain-id", str(log.space.chain.chain_id)),
    )
    pinned = _pin(log.space)
    failures = set()
    for name, doc in cases.items():
        py = audit_receipt(doc, chain=log.space.chain, trusted=pinned)
        ours, theirs = _js_outcomes(js[name]), _outcomes(py)
        assert [n for n, _ in ours] == [n for n, _ in theirs], name
        for (check, ok), (_, py_ok) in zip(ours, theirs, strict=True):
            if check == "roles":
                assert ok is None, name  # not replayed in the browser: never "passed"
            else:
                assert ok is py_ok, (name, check, js[name]["checks"], py.to_json()["checks"])
        assert _first(js[name]) == _py_first(py), (name, py.verdict)
        assert js[name]["ok"] is py.ok and js[name]["offline"] is False, name
        if not py.ok:
            failures.add(_py_first(py))
    assert failures >= {"document", "signatures", "entry_id", "inclusion", "deployment"}
    assert failures >= {"disclosures", "signer_fields"}
    assert failures >= {"checkpoint", "anchor_tx"}
    first = {n: _first(js[n]) for n in ("tree_size-1", "anchor.block_number", "anchor.tx_hash")}
    assert first == {
        "tree_size-1": "checkpoint",
        "anchor.block_number": "checkpoint",
        "anchor.tx_hash": "anchor_tx",
    }


def test_js_without_a_pin_skips_the_deployment_check_and_still_reads_the_chain(
    log: Log, cases: dict[str, Doc], tmp_path: Path
) -> None:
    js = _run_js(cases, tmp_path, "--rpc", log.anvil.url)
    pinned = _pin(log.space)
    for name, doc in cases.items():
        report = js[name]
        by_name = {c["name"]: c for c in report["checks"]}
        py = {
            c.name: c.ok for c in audit_receipt(doc, chain=log.space.chain, trusted=pinned).checks
        }
        if by_name.get("chain_id", {}).get("ok") is True:
            assert (
                by_name["deployment"]["ok"] is None
                and "no deployment pinned" in (by_name["deployment"]["detail"])
            )
        if py.get("deployment") is True:  # the rest is what the pinned audit says
            for check in CHAIN_CHECKS[2:-1]:
                assert by_name[check]["ok"] is py[check], (name, check)
    # the one receipt on a ledger without code fails on the chain even without a pin
    nowhere = {c["name"]: c for c in js["contract.without.code"]["checks"]}
    assert nowhere["checkpoint"]["ok"] is False
    assert "no EvidenceLedger answers" in nowhere["checkpoint"]["detail"]
    assert js["receipt"]["ok"] is True and "deployment" in js["receipt"]["verdict"]


def test_js_pinned_to_the_real_deployment_refuses_a_receipt_of_a_foreign_ledger(
    log: Log, tmp_path: Path
) -> None:
    space = log.space
    a = space.chain.accounts  # 7 and 8 are no party of the space; 9 is its outsider
    forged = foreign_ledger(space.chain, a[7], (a[8], a[9]))
    ledger, registry = space.contracts.ledger.address, space.contracts.registry.address
    pinned = _run_js({"forged": forged.doc}, tmp_path, "--rpc", log.anvil.url, "--ledger", ledger)
    assert _first(pinned["forged"]) == "deployment"
    assert f"ledger {forged.ledger.address}, not on the pinned" in pinned["forged"]["verdict"]
    python = audit_receipt(forged.doc, chain=space.chain, trusted=_pin(space))
    assert _js_outcomes(pinned["forged"]) == _outcomes(python)
    # unpinned, the browser cannot know the ledger is not the space's: it does not say PASS
    # on deployment, it says skipped
    loose = _run_js({"forged": forged.doc}, tmp_path, "--rpc", log.anvil.url)["forged"]
    assert {c["name"]: c["ok"] for c in loose["checks"]}["deployment"] is None
    wrong = _run_js(
        {"r": log.docs["receipt"]},
        tmp_path,
        *("--rpc", log.anvil.url, "--ledger", ledger, "--registry", space.contracts.vault.address),
    )["r"]
    assert _first(wrong) == "deployment" and "reads roles from registry" in wrong["verdict"]
    assert registry in wrong["verdict"]


def test_js_with_an_unreachable_node_fails_the_chain_id_check(log: Log, tmp_path: Path) -> None:
    js = _run_js({"r": log.docs["receipt"]}, tmp_path, "--rpc", "http://127.0.0.1:9")["r"]
    names = [c["name"] for c in js["checks"]]
    assert names == [*OFFLINE_CHECKS, *CHAIN_CHECKS]
    assert _first(js) == "chain_id" and "cannot be reached" in js["verdict"]
    assert all(c["ok"] is None for c in js["checks"][len(OFFLINE_CHECKS) + 1 :])


# --- the building blocks the dashboard also uses -------------------------------------------------


def _node_eval(script: str) -> Any:
    node = shutil.which("node")
    assert node is not None
    source = f"const m = await import({json.dumps(BUNDLE.as_uri())});\n{script}"
    done = subprocess.run(
        [node, "--no-warnings", "--input-type=module", "-e", source],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_js_entry_types_are_the_python_eip712_types() -> None:
    from service.evidence.entries import ENTRY_CLASSES

    js = _node_eval(
        "console.log(JSON.stringify(Object.fromEntries(Object.entries(m.ENTRY_TYPES)"
        ".map(([k, t]) => [k, [t.tag, t.typeString]]))))"
    )
    py = {
        name: [int(cls.entry_type), cls.eip712_type.type_string]
        for name, cls in ENTRY_CLASSES.items()
    }
    assert js == py


def test_js_inclusion_and_consistency_proofs_match_python() -> None:
    leaves = [leaf_hash(bytes([i]) * (i + 1)) for i in range(13)]
    cases = []
    for size in (1, 2, 5, 8, 13):
        root = root_from_leaf_hashes(leaves[:size])
        for index in range(size):
            proof = inclusion_proof(leaves[:size], index)
            cases.append(
                [
                    "inc",
                    leaves[index].hex(),
                    index,
                    size,
                    [p.hex() for p in proof],
                    root.hex(),
                    True,
                ]
            )
            if proof:
                bad = [_flip(p.hex()) for p in proof[:1]] + [p.hex() for p in proof[1:]]
                cases.append(["inc", leaves[index].hex(), index, size, bad, root.hex(), False])
        for old in range(0, size + 1):
            old_root = root_from_leaf_hashes(leaves[:old])
            proof = consistency_proof(leaves[:size], old)
            cases.append(
                ["con", old, size, old_root.hex(), root.hex(), [p.hex() for p in proof], True]
            )
            if proof:
                cases.append(
                    [
                        "con",
                        old,
                        size,
                        old_root.hex(),
                        _flip(root.hex()),
                        [p.hex() for p in proof],
                        False,
                    ]
                )
    script = f"""
const cases = {json.dumps(cases)};
const h = (x) => m.hexToBytes(x);
const out = [];
for (const c of cases) {{
  if (c[0] === "inc") out.push(await m.verifyInclusion(h(c[1]), c[2], c[3], c[4].map(h), h(c[5])));
  else out.push(await m.verifyConsistency(c[1], c[2], h(c[3]), h(c[4]), c[5].map(h)));
}}
console.log(JSON.stringify(out));
"""
    assert _node_eval(script) == [c[-1] for c in cases]


def _examples() -> dict[str, Any]:
    """docs/evidence.md's signed example of every entry type (scripts/evidence_examples.py)."""
    spec = importlib.util.spec_from_file_location(
        "evidence_examples", ROOT / "scripts" / "evidence_examples.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built: dict[str, Any] = module.examples()
    return built


def test_js_verdicts_equal_python_on_every_entry_type_offline(tmp_path: Path) -> None:
    """One self-made receipt per example (every entry type: strings, int256[], uint256[],
    address[]), as made and with its first signature or its entry id changed."""
    docs: dict[str, Doc] = {}
    for name, signed in _examples().items():
        doc = one_leaf_receipt(
            signed, chain_id=signed.domain.chain_id, contract=signed.domain.verifying_contract
        )
        docs[name] = doc
        bad_sig = copy.deepcopy(doc)
        _sig(bad_sig, 0, lambda s: bytes([s[0] ^ 1]) + s[1:])
        docs[f"{name}.signature"] = bad_sig
        docs[f"{name}.entry_id"] = {**doc, "entry_id": _flip(doc["entry_id"])}
    types = {d["entry_type"] for d in docs.values()}
    from service.evidence.entries import ENTRY_CLASSES

    assert types == set(ENTRY_CLASSES)
    js = _run_js(docs, tmp_path)
    for name, doc in docs.items():
        py = audit_receipt(doc, chain=None, trusted=None)
        assert _js_outcomes(js[name]) == _outcomes(py), (name, js[name]["checks"])
        assert js[name]["ok"] is py.ok is ("." not in name), name
