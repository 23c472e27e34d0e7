"""Ingest: signed entries are validated and appended with their leaves, per-item results."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from service.evidence.commitment import commit
from service.evidence.directory import ChainDirectory
from service.evidence.entries import (
    Agreement,
    QualityAttestation,
    SignedEntry,
    UsageReceipt,
    decode_entry,
    sign_entry,
)
from service.evidence.log import append_entries, get_entry, leaf_data_at
from service.evidence.merkle import leaf_hash, root_from_leaf_hashes
from service.evidence.models import LogEntry
from service.evidence.tiles import MerkleLog, SqlTileStorage
from tests.space import Space

AG = b"\xa1" * 32
T0, T1 = 1_700_000_000, 1_800_000_000


def agreement(space: Space, **over: object) -> SignedEntry:
    fields: dict[str, object] = dict(
        agreementId=AG,
        assetId=b"\xa5" * 32,
        consumer=space.consumers[0].address,
        providers=sorted(p.address for p in space.providers[:2]),
        unitPrice=3 * 10**15,
        policyHash=b"\x00" * 32,
        validFrom=T0,
        validUntil=T1,
    )
    fields.update(over)
    a = Agreement.model_validate(fields)
    signers = [space.consumers[0], *space.providers[:2]]
    return sign_entry(a, space.domain, [space.key(s) for s in signers])


def receipt(
    space: Space, nonce: int, *, units: int = 10, provider: int = 0, **over: object
) -> SignedEntry:
    fields: dict[str, object] = dict(
        agreementId=AG,
        consumer=space.consumers[0].address,
        provider=space.providers[provider].address,
        units=units,
        periodStart=T0 + 10,
        periodEnd=T0 + 20,
        detailHash=b"\x0d" * 32,
        nonce=nonce,
    )
    fields.update(over)
    r = UsageReceipt.model_validate(fields)
    signers = over.pop("_signers", None) or [space.consumers[0], space.providers[provider]]
    return sign_entry(r, space.domain, [space.key(s) for s in signers])  # type: ignore[union-attr]


def attestation(space: Space) -> SignedEntry:
    """A QualityAttestation of provider 0 for agreement AG, signed by its consumer."""
    q = QualityAttestation(
        agreementId=AG,
        provider=space.providers[0].address,
        periodStart=T0,
        periodEnd=T0 + 5,
        scoreBps=9000,
    )
    return sign_entry(q, space.domain, [space.key(space.consumers[0])])


def ingest(engine: Engine, space: Space, entries: list[SignedEntry]) -> list[object]:
    directory = ChainDirectory(space.chain, space.contracts.registry)
    return append_entries(engine=engine, domain=space.domain, directory=directory, entries=entries)  # type: ignore[return-value]


def stored(engine: Engine) -> list[LogEntry]:
    with Session(engine) as s:
        return list(s.exec(select(LogEntry).order_by(LogEntry.leaf_index)))  # type: ignore[arg-type]


def test_accepts_agreement_and_receipts_and_builds_the_tree(engine: Engine, space: Space) -> None:
    batch = [agreement(space), receipt(space, 1), receipt(space, 2, provider=1)]
    results = ingest(engine, space, batch)
    assert [r.status for r in results] == ["accepted"] * 3  # type: ignore[attr-defined]
    assert [r.leaf_index for r in results] == [0, 1, 2]  # type: ignore[attr-defined]
    rows = stored(engine)
    assert [decode_entry(r.data) for r in rows] == batch
    assert [r.entry_id for r in rows] == ["0x" + e.id().hex() for e in batch]
    with Session(engine) as s:
        log = MerkleLog(SqlTileStorage(s))
        assert log.size() == 3
        # each leaf commits to its entry under the salt returned to the submitter (T15)
        salts = [bytes.fromhex(r.salt[2:]) for r in results]  # type: ignore[attr-defined]
        leaves = [leaf_hash(commit(e, t).leaf_data) for e, t in zip(batch, salts, strict=True)]
        assert log.root() == root_from_leaf_hashes(leaves)


def test_resubmission_is_idempotent(engine: Engine, space: Space) -> None:
    batch = [agreement(space), receipt(space, 1)]
    ingest(engine, space, batch)
    again = ingest(engine, space, [batch[1], batch[1]])
    assert [(r.status, r.leaf_index) for r in again] == [("duplicate", 1), ("duplicate", 1)]  # type: ignore[attr-defined]
    assert len(stored(engine)) == 2


def _codes(results: list[object]) -> list[str | None]:
    return [r.code for r in results]  # type: ignore[attr-defined]


def test_rejections_change_nothing_and_name_the_reason(engine: Engine, space: Space) -> None:
    ingest(engine, space, [agreement(space), receipt(space, 1)])
    before = stored(engine)
    only_consumer = receipt(space, 2)
    only_consumer = SignedEntry(
        entry=only_consumer.entry,
        domain=space.domain,
        signatures={
            space.consumers[0].address: only_consumer.signatures[space.consumers[0].address]
        },
    )
    forged = receipt(space, 3)
    forged_sigs = dict(forged.signatures)
    forged_sigs[space.providers[0].address] = forged_sigs[space.consumers[0].address]
    forged = SignedEntry(entry=forged.entry, domain=space.domain, signatures=forged_sigs)
    cases = [
        only_consumer,  # provider's countersignature missing
        forged,  # "provider" signature made by the consumer's key
        receipt(space, 1, units=11),  # nonce reused (different message)
        receipt(space, 4, agreementId=b"\xee" * 32),  # unknown agreement
        receipt(space, 5, provider=2),  # not a provider of the agreement
        receipt(space, 6, periodEnd=T1 + 1),  # outside validity
    ]
    results = ingest(engine, space, cases)
    assert _codes(results) == [
        "signer_mismatch",
        "invalid_signature",
        "nonce_reused",
        "unknown_agreement",
        "agreement_mismatch",
        "agreement_mismatch",
    ]
    assert all(r.status == "rejected" and r.message for r in results)  # type: ignore[attr-defined]
    assert stored(engine) == before


def test_unregistered_and_suspended_parties_are_refused(engine: Engine, space: Space) -> None:
    outsider_agreement = agreement(space, consumer=space.outsider.address)
    outsider_agreement = sign_entry(
        outsider_agreement.entry,
        space.domain,
        [space.key(space.outsider), *(space.key(p) for p in space.providers[:2])],
    )
    assert _codes(ingest(engine, space, [outsider_agreement])) == ["unknown_participant"]
    space.chain.transact(
        space.contracts.registry.functions.suspend(space.consumers[0].address),
        sender=space.operator,
    )
    assert _codes(ingest(engine, space, [agreement(space)])) == ["participant_suspended"]
    assert stored(engine) == []


def test_wrong_domain_is_refused(engine: Engine, space: Space) -> None:
    other = replace(
        space,
        domain=type(space.domain)(chain_id=1, verifying_contract=space.domain.verifying_contract),
    )
    foreign = agreement(other)
    results = ingest(engine, space, [foreign])
    assert results[0].status == "rejected"  # type: ignore[attr-defined]
    assert "chain 1" in (results[0].message or "")  # type: ignore[attr-defined]


def test_quality_attestation_by_consumer_or_auditor(engine: Engine, space: Space) -> None:
    ingest(engine, space, [agreement(space)])
    by_consumer = attestation(space)
    q = by_consumer.entry
    by_auditor = sign_entry(q, space.domain, [space.key(space.auditor)])
    by_provider = sign_entry(q, space.domain, [space.key(space.providers[1])])
    assert _codes(ingest(engine, space, [by_consumer, by_auditor, by_provider])) == [
        None,
        None,
        "wrong_role",
    ]


def test_get_entry_round_trips(engine: Engine, space: Space) -> None:
    batch = [agreement(space), receipt(space, 7)]
    ingest(engine, space, batch)
    with Session(engine) as s:
        row, signed = get_entry(session=s, eid="0x" + batch[1].id().hex())
    assert row.leaf_index == 1 and signed == batch[1]
    assert row.units == 10 and row.nonce == 7


def test_concurrent_batches_leave_no_gap(engine: Engine, space: Space) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ingest(engine, space, [agreement(space)])
    batches = [[receipt(space, 100 * b + i) for i in range(5)] for b in range(4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda b: ingest(engine, space, b), batches))
    rows = stored(engine)
    assert [r.leaf_index for r in rows] == list(range(21))
    with Session(engine) as s:
        assert MerkleLog(SqlTileStorage(s)).root() == root_from_leaf_hashes(
            [leaf_hash(leaf_data_at(session=s, leaf_index=r.leaf_index)) for r in rows]
        )


def test_agreement_id_is_accepted_once(engine: Engine, space: Space) -> None:
    first = agreement(space)
    resigned = agreement(space, unitPrice=1)  # same id, another message
    results = ingest(engine, space, [first, resigned])
    assert [r.status for r in results] == ["accepted", "rejected"]
    assert results[1].code == "agreement_mismatch" and "already" in (results[1].message or "")
    assert _codes(ingest(engine, space, [agreement(space, unitPrice=2)])) == ["agreement_mismatch"]
    assert len(stored(engine)) == 1


def _log_lock_is_free(engine: Engine) -> bool:
    """Whether another connection could take the log's append lock right now (SQLite: the
    database write lock; PostgreSQL: the state row's lock), without waiting for it."""
    if engine.dialect.name == "sqlite":
        import sqlite3

        con = sqlite3.connect(str(engine.url.database), timeout=0, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            con.close()
    import psycopg

    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as con:
        try:
            con.execute("SELECT 1 FROM merkle_log_state WHERE log_id = 0 FOR UPDATE NOWAIT")
            return True
        except psycopg.errors.LockNotAvailable:
            return False


def test_registry_is_read_before_the_log_lock_once_per_party(engine: Engine, space: Space) -> None:
    """A registry read can be three RPC calls (an expired role cache): made inside the log
    lock, every other appender waits for them. Each party of a batch is asked once,
    before the lock is taken, and the checks inside it reuse the answers."""
    ingest(engine, space, [agreement(space)])  # the log's state row exists from here on
    chain_directory = ChainDirectory(space.chain, space.contracts.registry)
    asked: list[tuple[str, bool]] = []

    class Spy:
        def party(self, address: str) -> object:
            asked.append((address, _log_lock_is_free(engine)))
            return chain_directory.party(address)

    batch = [receipt(space, n, provider=n % 2) for n in range(6)]
    results = append_entries(engine=engine, domain=space.domain, directory=Spy(), entries=batch)  # type: ignore[arg-type]
    assert [r.status for r in results] == ["accepted"] * 6
    parties = {space.consumers[0].address, space.providers[0].address, space.providers[1].address}
    assert sorted(a for a, _ in asked) == sorted(parties)
    assert all(free for _, free in asked), asked
