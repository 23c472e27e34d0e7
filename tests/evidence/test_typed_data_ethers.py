"""Every entry type's EIP-712 hashes against ethers' TypedDataEncoder (an independent encoder).

ethers runs in scripts/ethers_typed_data.mjs. eth_account checks the same hashes elsewhere
(tests/api/test_domain.py); ethers is the encoder JavaScript wallets and clients use, so a
type it encodes differently (a ``string`` field, an ``int256[]``, a type added after the
JavaScript client was written) would give signatures that do not verify here. The
messages are docs/evidence.md's signed examples, one or more per entry type, plus edge
values (negative ``int256``, empty and non-ASCII strings) that the examples do not reach.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from service.evidence.entries import ENTRY_CLASSES, SignedEntry

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ethers_typed_data.mjs"


def _examples() -> dict[str, SignedEntry]:
    spec = importlib.util.spec_from_file_location(
        "evidence_examples", ROOT / "scripts/evidence_examples.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built: dict[str, SignedEntry] = module.examples()
    return built


def _ethers(documents: list[dict[str, Any]]) -> list[dict[str, str]]:
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "ethers").is_dir():
        why = "ethers' TypedDataEncoder needs Node 20 and `npm ci`"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    out = subprocess.run(
        [node, str(SCRIPT)],
        input=json.dumps(documents),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    answers: list[dict[str, str]] = json.loads(out.stdout)
    return answers


FREE_TEXT = {"title": "电池遥测数据 — ünïcode ✓", "description": "", "keywords": "a,b,数据"}
"""Offer text fields (free text: any UTF-8, empty allowed) set to what the examples lack."""


def _edge_cases(examples: dict[str, SignedEntry]) -> list[SignedEntry]:
    """Copies of the examples with values the documented ones do not reach: non-ASCII and
    empty strings, negative and positive int256 values swapped."""
    cases: list[SignedEntry] = []
    for signed in examples.values():
        entry = signed.entry
        fields = dict(entry.eip712_type.fields)
        updates: dict[str, Any] = {k: v for k, v in FREE_TEXT.items() if fields.get(k) == "string"}
        for name, sol in fields.items():
            if sol == "int256[]":
                updates[name] = tuple(-v for v in getattr(entry, name))
        if updates:
            changed = type(entry).model_validate({**entry.model_dump(), **updates})
            cases.append(SignedEntry(entry=changed, domain=signed.domain, signatures={}))
    return cases


def test_every_entry_type_hashes_like_ethers() -> None:
    examples = _examples()
    cases = [*examples.values(), *_edge_cases(examples)]
    assert {type(s.entry).__name__ for s in cases} == set(ENTRY_CLASSES)
    assert {type(s.entry).__name__ for s in cases[len(examples) :]} == {
        "Offer",
        "ValuationResult",
    }
    documents = [s.entry.typed_data(s.domain) for s in cases]
    answers = _ethers(documents)
    assert len(answers) == len(cases)
    for signed, answer in zip(cases, answers, strict=True):
        name = type(signed.entry).__name__
        assert "error" not in answer, (name, answer)
        assert answer["primary"] == name
        assert answer["struct_hash"] == "0x" + signed.entry.struct_hash().hex(), name
        assert answer["digest"] == "0x" + signed.digest().hex(), name


def test_a_changed_field_changes_ethers_hash_too() -> None:
    """The comparison can fail: one unit more in a receipt is another hash on both sides."""
    receipt = _examples()["UsageReceipt"]
    more = receipt.entry.model_copy(update={"units": receipt.entry.units + 1})
    doc = more.typed_data(receipt.domain)
    (answer,) = _ethers([doc])
    assert answer["struct_hash"] == "0x" + more.struct_hash().hex()
    assert answer["struct_hash"] != "0x" + receipt.entry.struct_hash().hex()
