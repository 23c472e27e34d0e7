"""Builders for catalog tests: dev keys, a static directory, offers, agreements, receipts.

The directory is a real :class:`service.evidence.directory.Directory` over a fixed table
of parties (the roles a registry would hold), so ingest tests need no chain; the
registry-backed directory has its own tests in tests/evidence.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service.catalog.canonical import canonical_text
from service.catalog.terms import CONTEXT, PROFILE, purpose_nonce
from service.chain.keys import dev_account
from service.db import create_schema, make_engine
from service.evidence.directory import CONSUMER, PROVIDER, Party
from service.evidence.eip712 import Domain
from service.evidence.entries import (
    ZERO_ADDRESS,
    AgreementV2,
    Offer,
    OfferWithdrawal,
    SignedEntry,
    UsageReceipt,
    sign_entry,
)
from service.evidence.log import ItemResult, append_entries
from service.evidence.models import LogEntry

DOMAIN = Domain(chain_id=31337, verifying_contract="0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0")
ACCOUNTS = [dev_account(i) for i in range(8)]
PROVIDERS = sorted((ACCOUNTS[2], ACCOUNTS[3]), key=lambda a: int(a.address, 16))
CONSUMER_ACCT = ACCOUNTS[5]
OTHER_CONSUMER = ACCOUNTS[6]
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
T1 = 1_798_761_600  # 2027-01-01T00:00:00Z
DAY = 86_400


def h(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@dataclass
class StaticDirectory:
    """Providers 2 and 3, consumers 5 and 6 (all active); everyone else unregistered."""

    roles: dict[str, int] = field(
        default_factory=lambda: {
            **{a.address: PROVIDER for a in PROVIDERS},
            CONSUMER_ACCT.address: CONSUMER,
            OTHER_CONSUMER.address: CONSUMER,
        }
    )

    def party(self, address: str) -> Party:
        roles = self.roles.get(address, 0)
        return Party(address, roles, roles != 0, roles != 0, False, False)


def terms_doc(
    *constraints: dict[str, Any], prohibitions: list[Any] | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "Set",
        "profile": PROFILE,
        "permission": [
            {"action": "use", "constraint": list(constraints), "duty": [{"action": "compensate"}]}
        ],
    }
    if prohibitions is not None:
        doc["prohibition"] = prohibitions
    return doc


def count(limit: int, window: int | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"leftOperand": "count", "operator": "lteq", "rightOperand": limit}
    if window is not None:
        c["tally:window"] = window
    return c


def purpose(*codes: str) -> dict[str, Any]:
    return {"leftOperand": "purpose", "operator": "isAnyOf", "rightOperand": list(codes)}


def date(op: str, when: str) -> dict[str, Any]:
    return {"leftOperand": "dateTime", "operator": op, "rightOperand": when}


PRICING = canonical_text(
    {"model": "per_unit", "payment": "postpaid", "unitPrice": "1000", "version": 1}
)


def offer(
    name: str = "battery",
    *,
    version: int = 1,
    terms: dict[str, Any] | None = None,
    providers: list[Any] | None = None,
    **over: Any,
) -> SignedEntry:
    signers = providers if providers is not None else PROVIDERS
    fields: dict[str, Any] = dict(
        offerId=h(f"offer: {name}"),
        version=version,
        providers=tuple(a.address for a in signers),
        title=f"EV {name} telemetry",
        description=f"Hourly {name} data from electric vehicles in Shenzhen",
        keywords=f"ev,{name},telemetry",
        theme="http://publications.europa.eu/resource/authority/data-theme/TRAN",
        license="https://creativecommons.org/licenses/by/4.0/",
        formats="application/json,text/csv",
        metadataHash=h(f"metadata: {name}"),
        metadataUrl=f"https://data.example/{name}.json",
        pricing=PRICING,
        terms=canonical_text(terms if terms is not None else terms_doc(count(1000))),
        validFrom=T0,
        validUntil=T1,
    )
    fields.update(over)
    return sign_entry(Offer.model_validate(fields), DOMAIN, [bytes(a.key) for a in signers])


def withdrawal(name: str = "battery", *, version: int = 1) -> SignedEntry:
    w = OfferWithdrawal(
        offerId=h(f"offer: {name}"),
        version=version,
        providers=tuple(a.address for a in PROVIDERS),
    )
    return sign_entry(w, DOMAIN, [bytes(a.key) for a in PROVIDERS])


def agreement(
    name: str = "battery",
    *,
    agreement: str = "a1",
    version: int = 1,
    terms: dict[str, Any] | None = None,
    terms_hash: bytes | None = None,
    consumer: Any = CONSUMER_ACCT,
    **over: Any,
) -> SignedEntry:
    from service.catalog.canonical import document_hash

    if terms_hash is None:
        terms_hash = document_hash(terms if terms is not None else terms_doc(count(1000)))
    fields: dict[str, Any] = dict(
        agreementId=h(f"agreement: {agreement}"),
        assetId=h(f"asset: {name}"),
        consumer=consumer.address,
        providers=tuple(a.address for a in PROVIDERS),
        unitPrice=1000,
        policyHash=h("policy"),
        validFrom=T0,
        validUntil=T1,
        offerId=h(f"offer: {name}"),
        offerVersion=version,
        termsHash=terms_hash,
        homeChainId=0,
        homeRegistry=ZERO_ADDRESS,
    )
    fields.update(over)
    signers = [consumer, *PROVIDERS]
    return sign_entry(AgreementV2.model_validate(fields), DOMAIN, [bytes(a.key) for a in signers])


def receipt(
    counter: int,
    *,
    units: int = 10,
    agreement: str = "a1",
    purpose_code: str | None = None,
    start: int = T0 + 3600,
    end: int | None = None,
    consumer: Any = CONSUMER_ACCT,
) -> SignedEntry:
    r = UsageReceipt(
        agreementId=h(f"agreement: {agreement}"),
        consumer=consumer.address,
        provider=PROVIDERS[0].address,
        units=units,
        periodStart=start,
        periodEnd=end if end is not None else start + 3600,
        detailHash=h(f"detail {counter}"),
        nonce=purpose_nonce(purpose_code, counter),
    )
    return sign_entry(r, DOMAIN, [bytes(consumer.key), bytes(PROVIDERS[0].key)])


def ingest(engine: Engine, entries: list[SignedEntry]) -> list[ItemResult]:
    return append_entries(
        engine=engine, domain=DOMAIN, directory=StaticDirectory(), entries=entries, workers=1
    )


def codes(results: list[ItemResult]) -> list[str]:
    return [r.code or r.status for r in results]


def resign(signed: SignedEntry, domain: Domain) -> SignedEntry:
    """The same message signed by the same dev accounts in another deployment's domain."""
    keys = {a.address: bytes(a.key) for a in ACCOUNTS}
    return sign_entry(signed.entry, domain, [keys[s] for s in signed.signatures])


@contextmanager
def empty_postgres_log(url: str) -> Iterator[Engine]:
    """An engine on the run's PostgreSQL database ``url``, schema created and the log empty.

    The run's database is shared: on exit the schema is dropped and recreated empty, as the
    ``db_url`` fixture leaves it.
    """
    engine = make_engine(url)
    create_schema(engine)
    try:
        with engine.begin() as conn:
            for table in reversed(LogEntry.metadata.sorted_tables):
                conn.execute(table.delete())
        yield engine
    finally:
        engine.dispose()
        with make_engine(url, pool=False).begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))


def _race_worker(
    url: str,
    first: int,
    per_process: int,
    batch: int,
    purpose_code: str | None,
    start: Any,
    out: Any,
) -> None:
    engine = make_engine(url)
    receipts = [receipt(first + i, units=1, purpose_code=purpose_code) for i in range(per_process)]
    start.wait()
    results: list[str] = []
    for i in range(0, len(receipts), batch):
        results.extend(codes(ingest(engine, receipts[i : i + batch])))
    engine.dispose()
    out.put(results)


def race_two_processes(
    url: str, *, per_process: int, batch: int, purpose_code: str | None = None
) -> list[list[str]]:
    """Two spawned processes append one-unit receipts of agreement ``a1`` to one log at once.

    Each has its own engine and pool (as two API workers do), both are released by one event
    and send batches of ``batch``, so their appends interleave on the log's state-row lock.
    Returns each process's result codes, in order; both processes must exit 0.
    """
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_race_worker,
            args=(url, 1 + k * 1000, per_process, batch, purpose_code, start, out),
        )
        for k in range(2)
    ]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results
