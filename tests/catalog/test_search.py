"""Catalog search: FTS5 on SQLite and tsvector on PostgreSQL give the same results.

Every case states the expected offers; the ``engine`` fixture runs the module on both
databases, so passing on both is the "same results" check (and the expected lists are
written out, so both cannot agree on something wrong).
"""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.catalog.index import PAGE_SIZE, search, tokens
from tests.catalog.helpers import PROVIDERS, codes, ingest, offer, withdrawal

TRAN = "http://publications.europa.eu/resource/authority/data-theme/TRAN"
ENER = "http://publications.europa.eu/resource/authority/data-theme/ENER"

OFFERS = {
    "battery": dict(title="EV battery health", description="State of health of traction batteries"),
    "charging": dict(
        title="Charging sessions", description="Public charging station sessions, kWh per hour"
    ),
    "grid": dict(
        title="Grid load", description="Distribution grid load near chargers", theme=ENER
    ),
    "weather": dict(
        title="Weather", description="Hourly temperature; battery range depends on it",
        keywords="weather,temperature",
    ),
    "solo": dict(
        title="Fleet telematics", description="Taxi fleet GPS traces", providers=[PROVIDERS[0]]
    ),
    "gone": dict(title="Old battery data", description="withdrawn"),
}  # fmt: skip


@pytest.fixture
def catalog(engine: Engine) -> Engine:
    batch = [offer(name, **fields) for name, fields in OFFERS.items()]  # type: ignore[arg-type]
    assert codes(ingest(engine, batch)) == ["accepted"] * len(batch)
    assert codes(ingest(engine, [withdrawal("gone")])) == ["accepted"]
    return engine


def _titles(engine: Engine, **query: object) -> list[str]:
    with Session(engine) as s:
        return [r.title for r in search(session=s, **query).offers]  # type: ignore[arg-type]


CASES: list[tuple[dict[str, object], list[str]]] = [
    (
        {},
        ["Fleet telematics", "Weather", "Grid load", "Charging sessions", "EV battery health"],
    ),
    ({"q": "battery"}, ["Weather", "EV battery health"]),
    ({"q": "BATTERY health"}, ["EV battery health"]),
    ({"q": "batt"}, ["Weather", "EV battery health"]),  # prefix match
    ({"q": "charg"}, ["Grid load", "Charging sessions"]),
    ({"q": "kwh"}, ["Charging sessions"]),
    ({"q": "temperature"}, ["Weather"]),  # a keyword
    ({"q": "withdrawn"}, []),  # withdrawn offers are not listed
    ({"q": "nothing-like-this"}, []),
    ({"q": "state-of health!"}, ["EV battery health"]),  # punctuation is a separator
    ({"q": "'\" OR 1=1 --"}, []),  # query syntax of neither engine leaks through
    ({"q": "ev", "theme": ENER}, ["Grid load"]),
    ({"q": "battery", "theme": ENER}, []),
    ({"theme": ENER}, ["Grid load"]),
    ({"q": "fleet", "provider": PROVIDERS[0].address}, ["Fleet telematics"]),
    ({"q": "grid", "provider": PROVIDERS[0].address}, ["Grid load"]),
    ({"provider": "0x" + "11" * 20}, []),
]


def test_search_same_results_on_both_databases(catalog: Engine) -> None:
    got = [(query, _titles(catalog, **query)) for query, _ in CASES]
    assert got == CASES


def test_search_pages(engine: Engine) -> None:
    batch = [offer(f"bulk{i}", title=f"Bulk dataset {i}") for i in range(PAGE_SIZE + 3)]
    assert codes(ingest(engine, batch)) == ["accepted"] * len(batch)
    with Session(engine) as s:
        first = search(session=s, q="bulk", page=1)
        second = search(session=s, q="bulk", page=2)
    assert first.total == second.total == PAGE_SIZE + 3
    assert len(first.offers) == PAGE_SIZE and len(second.offers) == 3
    assert second.offers[-1].title == "Bulk dataset 0"


def test_a_new_version_replaces_the_indexed_text(catalog: Engine) -> None:
    assert codes(ingest(catalog, [offer("grid", version=2, title="Substation load")])) == [
        "accepted"
    ]
    assert _titles(catalog, q="substation") == ["Substation load"]
    assert _titles(catalog, q="grid") == ["Substation load"]  # still in the description
    assert _titles(catalog, q="load", theme=TRAN) == ["Substation load"]


def test_tokens_are_lowercase_letter_digit_runs() -> None:
    assert tokens("EV_Battery-2026, kWh/h 数据") == ["ev", "battery", "2026", "kwh", "h", "数据"]


def test_chinese_and_accented_text_search_the_same(engine: Engine) -> None:
    batch = [
        offer("cn", title="动力电池 数据目录", description="充电 记录", keywords="电池"),
        offer("fr", title="Données de recharge", description="bornes électriques"),
    ]
    assert codes(ingest(engine, batch)) == ["accepted", "accepted"]
    assert _titles(engine, q="电池") == ["动力电池 数据目录"]  # a keyword token
    assert _titles(engine, q="动力") == ["动力电池 数据目录"]  # prefix of a token run
    assert _titles(engine, q="données") == ["Données de recharge"]
    assert _titles(engine, q="ÉLECTRIQUES") == ["Données de recharge"]
    assert _titles(engine, q="donnees") == []  # diacritics are kept, on both databases
