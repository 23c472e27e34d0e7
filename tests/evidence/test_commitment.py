"""Commitment leaves at ingest (T15): a salt per entry, its row, the leaf over the
commitment; legacy leaves with ``commitments=False``; duplicates answer the same salt."""

from __future__ import annotations

import base64
import hashlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from service.evidence import commitment
from service.evidence.directory import ChainDirectory
from service.evidence.entries import SignedEntry
from service.evidence.log import ItemResult, append_entries, leaf_data_at
from service.evidence.merkle import leaf_hash, root_from_leaf_hashes
from service.evidence.models import EntryCommitment
from service.evidence.tiles import MerkleLog, SqlTileStorage
from tests.evidence.test_log import agreement, receipt
from tests.space import Space


def _append(
    engine: Engine, space: Space, entries: list[SignedEntry], *, commitments: bool = True
) -> list[ItemResult]:
    directory = ChainDirectory(space.chain, space.contracts.registry)
    return append_entries(
        engine=engine,
        domain=space.domain,
        directory=directory,
        entries=entries,
        commitments=commitments,
    )


def _salt(result: ItemResult) -> bytes:
    assert result.salt is not None and result.salt.startswith("0x")
    return bytes.fromhex(result.salt[2:])


def test_each_accepted_entry_gets_a_fresh_salt_and_a_commitment_leaf(
    engine: Engine, space: Space
) -> None:
    batch = [agreement(space), receipt(space, 1), receipt(space, 2)]
    results = _append(engine, space, batch)
    salts = [_salt(r) for r in results]
    assert len(set(salts)) == 3 and all(len(t) == commitment.SALT_SIZE for t in salts)
    with Session(engine) as s:
        rows = s.exec(select(EntryCommitment).order_by(EntryCommitment.leaf_index)).all()  # type: ignore[arg-type]
        assert [r.leaf_index for r in rows] == [0, 1, 2]
        for row, signed, salt in zip(rows, batch, salts, strict=True):
            assert row.salt == salt
            assert row.leaf_data == commitment.commit(signed, salt).leaf_data
            assert commitment.leaf_version(row.leaf_data) == commitment.LEAF_COMMITMENT
            assert row.leaf_data[1] == int(signed.entry_type)
            assert leaf_data_at(session=s, leaf_index=row.leaf_index) == row.leaf_data
        root = MerkleLog(SqlTileStorage(s)).root()
    assert root == root_from_leaf_hashes(
        [
            leaf_hash(commitment.leaf_data_for(e.encode(), t))
            for e, t in zip(batch, salts, strict=True)
        ]
    )


def test_duplicate_answers_the_salt_drawn_once(engine: Engine, space: Space) -> None:
    first = _append(engine, space, [agreement(space), receipt(space, 1)])
    again = _append(engine, space, [receipt(space, 1), receipt(space, 2), receipt(space, 2)])
    assert [r.status for r in again] == ["duplicate", "accepted", "duplicate"]
    assert again[0].salt == first[1].salt and again[0].leaf_index == 1
    assert again[2].salt == again[1].salt and again[2].leaf_index == again[1].leaf_index == 2
    with Session(engine) as s:
        assert len(s.exec(select(EntryCommitment)).all()) == 3


def test_commitments_false_appends_legacy_leaves_without_salt(engine: Engine, space: Space) -> None:
    batch = [agreement(space), receipt(space, 1)]
    results = _append(engine, space, batch, commitments=False)
    assert [r.salt for r in results] == [None, None]
    dup = _append(engine, space, [receipt(space, 1)])  # later default ingest: still legacy
    assert dup[0].status == "duplicate" and dup[0].salt is None
    with Session(engine) as s:
        assert s.exec(select(EntryCommitment)).all() == []
        assert leaf_data_at(session=s, leaf_index=1) == batch[1].encode()
        assert MerkleLog(SqlTileStorage(s)).root() == root_from_leaf_hashes(
            [leaf_hash(e.encode()) for e in batch]
        )


def test_rejected_entry_gets_no_salt(engine: Engine, space: Space) -> None:
    results = _append(engine, space, [receipt(space, 1)])  # no agreement yet
    assert results[0].status == "rejected" and results[0].salt is None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**300), max_value=2**300)
    | st.text() | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


def _stdlib_disclosure(salt: str, name: str, value: object) -> str:
    """The module docstring's definition, with nothing but the standard library."""
    text = json.dumps([salt, name, value], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode("utf-8")).rstrip(b"=").decode("ascii")


@settings(max_examples=300, deadline=None)
@given(salt=st.text(), name=st.text(), value=_JSON)
def test_disclosure_is_byte_for_byte_the_stdlib_json_and_base64(
    salt: str, name: str, value: object
) -> None:
    assert commitment.make_disclosure(salt, name, value) == _stdlib_disclosure(salt, name, value)


def test_every_field_disclosure_of_a_receipt_is_the_stdlib_one(space: Space) -> None:
    signed = receipt(space, nonce=5)
    salt = bytes(range(32))
    message = signed.entry.message()
    expected = []
    for name in commitment.field_names(type(signed.entry)):
        h = hashlib.sha256(b"tally/field-salt\x00" + salt + name.encode()).digest()[:16]
        field = base64.urlsafe_b64encode(h).rstrip(b"=").decode()
        expected.append(_stdlib_disclosure(field, name, message[name]))
    assert commitment.disclosures(signed, salt) == expected
    struct_hash = signed.entry.struct_hash()
    assert commitment.commit(signed, salt, struct_hash=struct_hash) == commitment.commit(
        signed, salt
    )
