"""Settlement benchmark: a round over ``n`` usage receipts vs a bare SQL ``GROUP BY``.

:func:`bench_settlement` fills an empty database at ``url`` with ``agreements`` signed
Agreement entries and ``n`` usage-receipt rows spread over them (direct inserts, COPY on
PostgreSQL: the operator's settlement reads the receipts' SQL columns and never decodes
or verifies them, so the rows carry a real receipt's canonical bytes as ballast but no
per-row signatures), then times, in one process over the same rows:

- ``sql_groupby_s``: the bare aggregate ``SELECT agreement_id, provider, SUM(units)
  FROM log_entries GROUP BY agreement_id, provider``, all rows fetched;
- ``settle_s``: :func:`~service.settlement.engine.compute_round` end to end: the filtered
  aggregate (receipt type, below the checkpoint, in the period), the decoded agreements,
  weights, fee, largest-remainder apportionment, payout tree;
- ``statement_s`` (reported, not in the ratio): the statement with every proof.

After one warm-up of the aggregate, the two are run ``repeat`` times, interleaved; the
fastest run of each counts.
``ratio = settle_s / sql_groupby_s`` (the T5 goal: at most 3). The result is checked:
the pool must equal ``unit price x units`` summed at generation time.
"""

from __future__ import annotations

import random
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service.db import bulk_insert, create_schema, is_postgres, make_engine, table_of
from service.errors import ConfigError, SettlementError
from service.evidence.eip712 import Domain, keccak256, private_key_to_address
from service.evidence.entries import Agreement, UsageReceipt, sign_entry
from service.evidence.models import AgreementRow, LogEntry
from service.settlement.engine import compute_round
from service.settlement.policy import parse_policy

__all__ = ["bench_settlement"]

PERIOD_START = 1_767_225_600
PERIOD_END = PERIOD_START + 31 * 86_400
UNIT_PRICE = 2 * 10**15
_COLUMNS = (
    "leaf_index",
    "entry_id",
    "entry_type",
    "data",
    "received_at",
    "agreement_id",
    "consumer",
    "provider",
    "units",
    "period_start",
    "period_end",
    "nonce",
)


def _key(label: str) -> bytes:
    return keccak256(f"tally-bench/{label}".encode())


def _agreement_rows(
    domain: Domain, agreements: int, per_agreement: int, policy_hash: bytes
) -> tuple[list[dict[str, Any]], list[tuple[str, str, list[str]]], bytes]:
    """Signed Agreement rows, and per agreement (id, consumer, providers); plus a
    receipt's canonical bytes to use as ballast."""
    rows: list[dict[str, Any]] = []
    terms: list[tuple[str, str, list[str]]] = []
    ballast = b""
    for a in range(agreements):
        consumer_key = _key(f"consumer-{a}")
        provider_keys = [_key(f"provider-{a}-{p}") for p in range(per_agreement)]
        by_address = sorted(
            ((private_key_to_address(k), k) for k in provider_keys), key=lambda x: x[0].lower()
        )
        consumer = private_key_to_address(consumer_key)
        aid = keccak256(f"bench-agreement-{a}".encode())
        entry = Agreement(
            agreementId=aid,
            assetId=keccak256(b"bench-asset"),
            consumer=consumer,
            providers=tuple(addr for addr, _ in by_address),
            unitPrice=UNIT_PRICE,
            policyHash=policy_hash,
            validFrom=PERIOD_START,
            validUntil=PERIOD_END,
        )
        signed = sign_entry(entry, domain, [consumer_key, *(k for _, k in by_address)])
        data = signed.encode()
        rows.append(
            {
                "leaf_index": a,
                "entry_id": "0x" + signed.id().hex(),
                "entry_type": "Agreement",
                "data": data,
                "received_at": 0,
                "agreement_id": "0x" + aid.hex(),
                "consumer": consumer,
                "provider": None,
                "units": None,
                "period_start": PERIOD_START,
                "period_end": PERIOD_END,
                "nonce": None,
            }
        )
        terms.append(("0x" + aid.hex(), consumer, [addr for addr, _ in by_address]))
        if a == 0:
            receipt = UsageReceipt(
                agreementId=aid,
                consumer=consumer,
                provider=by_address[0][0],
                units=1,
                periodStart=PERIOD_START,
                periodEnd=PERIOD_START + 60,
                detailHash=b"\x00" * 32,
                nonce=0,
            )
            ballast = sign_entry(receipt, domain, [consumer_key, by_address[0][1]]).encode()
    return rows, terms, ballast


def _receipt_rows(
    n: int, start: int, terms: list[tuple[str, str, list[str]]], ballast: bytes, seed: int
) -> tuple[list[tuple[Any, ...]], int]:
    """``n`` receipt rows (as tuples in :data:`_COLUMNS` order) and their total units."""
    rng = random.Random(seed)
    rows: list[tuple[Any, ...]] = []
    units_total = 0
    count = len(terms)
    for i in range(n):
        aid, consumer, providers = terms[i % count]
        provider = providers[rng.randrange(len(providers))]
        units = rng.randrange(1, 200)
        units_total += units
        begin = PERIOD_START + rng.randrange(0, 30 * 86_400)
        rows.append(
            (
                start + i,
                f"0x{start + i:064x}",
                "UsageReceipt",
                ballast,
                0,
                aid,
                consumer,
                provider,
                units,
                begin,
                begin + 3_600,
                i,
            )
        )
    return rows, units_total


def _insert(engine: Engine, rows: list[tuple[Any, ...]]) -> None:
    with engine.begin() as conn:  # COPY on PostgreSQL, as the evidence log inserts
        bulk_insert(conn, table_of(LogEntry), rows, columns=_COLUMNS)


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def bench_settlement(
    n: int,
    url: str,
    *,
    agreements: int = 50,
    providers_per_agreement: int = 20,
    repeat: int = 5,
    seed: int = 1,
) -> dict[str, Any]:
    """Fill the empty database at ``url`` and time settlement vs the bare aggregate."""
    engine = make_engine(url)
    try:
        create_schema(engine)
        with engine.connect() as conn:
            used = conn.execute(sa.text("SELECT COUNT(*) FROM log_entries")).scalar()
            used = used or conn.execute(sa.text("SELECT COUNT(*) FROM agreements")).scalar()
            if used:
                raise ConfigError("the settlement benchmark needs an empty database")
        domain = Domain(chain_id=31337, verifying_contract="0x" + "00" * 19 + "01")
        operator = private_key_to_address(_key("operator"))
        policy = parse_policy(
            {"version": 1, "operator": operator, "operator_fee_bps": 250, "method": "output"}
        )

        t0 = time.perf_counter()
        agreement_rows, terms, ballast = _agreement_rows(
            domain, agreements, providers_per_agreement, policy.hash
        )
        receipt_rows, units_total = _receipt_rows(n, agreements, terms, ballast, seed)
        with engine.begin() as conn:
            conn.execute(sa.insert(table_of(LogEntry)), agreement_rows)
            conn.execute(
                sa.insert(table_of(AgreementRow)),
                [
                    {
                        "agreement_id": aid,
                        "asset_id": "0x" + keccak256(b"bench-asset").hex(),
                        "consumer": consumer,
                        "providers": ",".join(providers),
                        "unit_price": UNIT_PRICE,
                        "policy_hash": policy.hash_hex,
                        "valid_from": PERIOD_START,
                        "valid_until": PERIOD_END,
                        "entry_id": row["entry_id"],
                        "leaf_index": row["leaf_index"],
                    }
                    for row, (aid, consumer, providers) in zip(agreement_rows, terms, strict=True)
                ],
            )
        _insert(engine, receipt_rows)
        del receipt_rows
        if is_postgres(engine):
            with engine.connect() as conn:
                conn.execute(sa.text("ANALYZE log_entries"))
                conn.commit()
        build_s = time.perf_counter() - t0

        bare = sa.text(
            "SELECT agreement_id, provider, SUM(units) FROM log_entries "
            "GROUP BY agreement_id, provider"
        )

        def groupby() -> list[Any]:
            with engine.connect() as conn:
                return list(conn.execute(bare))

        size = agreements + n

        def settle() -> Any:
            return compute_round(
                session_or_engine=engine,
                round_id=1,
                period_start=PERIOD_START,
                period_end=PERIOD_END,
                checkpoint_size=size,
                policy=policy,
                checkpoint_seq=0,
            )

        groups = groupby()  # warm-up: both measurements then read a warm cache
        sql_s = settle_s = float("inf")
        result = None
        for _ in range(repeat):  # interleaved, so a busy moment hits both alike
            sql_s = min(sql_s, _timed(groupby)[0])
            elapsed, result = _timed(settle)
            settle_s = min(settle_s, elapsed)
        assert result is not None
        t0 = time.perf_counter()
        result.statement()
        statement_s = time.perf_counter() - t0
        if result.pool != units_total * UNIT_PRICE:
            raise SettlementError(
                f"benchmark: the pool {result.pool} is not units x price {units_total * UNIT_PRICE}"
            )
        return {
            "receipts": n,
            "database": engine.dialect.name,
            "agreements": agreements,
            "providers": agreements * providers_per_agreement,
            "groups": len([g for g in groups if g[2] is not None]),
            "payees": len(result.tree),
            "pool": str(result.pool),
            "payout_root": "0x" + result.root.hex(),
            "build_s": round(build_s, 3),
            "sql_groupby_s": round(sql_s, 4),
            "settle_s": round(settle_s, 4),
            "statement_s": round(statement_s, 4),
            "ratio": round(settle_s / sql_s, 3),
            "goal_ratio": 3.0,
        }
    finally:
        engine.dispose()
