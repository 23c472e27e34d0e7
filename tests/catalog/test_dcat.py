"""The DCAT 3 JSON-LD export, read back with rdflib and queried with SPARQL.

The vocabulary check loads W3C's own files (copies in tests/catalog/vocab, sources in
its SOURCES.md): every dcat:/dct: IRI the export uses is a term DCAT 3 defines or
lists among the external terms it uses, and every odrl: IRI is in the ODRL 2.2
vocabulary.
"""

from __future__ import annotations

import json
from pathlib import Path

import rdflib
from rdflib.namespace import RDF
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.catalog.dcat import catalog_jsonld
from service.catalog.index import all_offers
from tests.catalog.helpers import (
    DOMAIN,
    codes,
    count,
    ingest,
    offer,
    purpose,
    terms_doc,
    withdrawal,
)

VOCAB = Path(__file__).parent / "vocab"
DCAT = rdflib.Namespace("http://www.w3.org/ns/dcat#")
DCT = rdflib.Namespace("http://purl.org/dc/terms/")
ODRL = rdflib.Namespace("http://www.w3.org/ns/odrl/2/")


def _export(engine: Engine) -> tuple[dict[str, object], rdflib.Graph]:
    terms = terms_doc(count(500), purpose("research"), prohibitions=[{"action": "distribute"}])
    batch = [
        offer("battery", terms=terms),
        offer("charging", formats="text/csv"),
        offer("grid"),
        offer("gone"),
    ]
    assert codes(ingest(engine, batch)) == ["accepted"] * 4
    assert codes(ingest(engine, [withdrawal("gone")])) == ["accepted"]
    with Session(engine) as s:
        doc = catalog_jsonld(
            offers=all_offers(session=s),
            chain_id=DOMAIN.chain_id,
            ledger=DOMAIN.verifying_contract,
        )
    graph = rdflib.Graph().parse(data=json.dumps(doc), format="json-ld")
    return doc, graph


def _vocabulary() -> set[str]:
    terms: set[str] = set()
    for name, fmt in (
        ("dcat3.ttl", "turtle"),
        ("dcat3-external.rdf", "xml"),
        ("ODRL22.ttl", "turtle"),
    ):
        g = rdflib.Graph().parse(VOCAB / name, format=fmt)
        terms |= {str(s) for s in g.subjects() if isinstance(s, rdflib.URIRef)}
    return terms


def test_every_offer_is_a_dataset_with_title_distributions_and_a_policy(engine: Engine) -> None:
    _, g = _export(engine)
    rows = g.query(
        """
        PREFIX dcat: <http://www.w3.org/ns/dcat#>
        PREFIX dct: <http://purl.org/dc/terms/>
        PREFIX odrl: <http://www.w3.org/ns/odrl/2/>
        SELECT ?title (COUNT(DISTINCT ?dist) AS ?n) ?action WHERE {
            ?catalog a dcat:Catalog ; dcat:dataset ?ds .
            ?ds a dcat:Dataset ; dct:title ?title ; dcat:distribution ?dist ;
                odrl:hasPolicy ?policy .
            ?dist a dcat:Distribution ; dcat:mediaType ?media .
            ?policy a odrl:Offer ; odrl:permission ?perm .
            ?perm odrl:action ?action .
        } GROUP BY ?title ?action ORDER BY ?title
        """
    )
    got = [(str(t), int(n), str(a)) for t, n, a in rows]  # type: ignore[misc]
    use = str(ODRL.use)
    assert got == [
        ("EV battery telemetry", 2, use),
        ("EV charging telemetry", 1, use),
        ("EV grid telemetry", 2, use),
    ]  # the withdrawn offer is not exported
    assert len(set(g.subjects(RDF.type, DCAT.Dataset))) == 3


def test_policy_constraints_are_odrl(engine: Engine) -> None:
    _, g = _export(engine)
    rows = g.query(
        """
        PREFIX dct: <http://purl.org/dc/terms/>
        PREFIX odrl: <http://www.w3.org/ns/odrl/2/>
        SELECT ?left ?op ?right WHERE {
            ?ds dct:title "EV battery telemetry" ; odrl:hasPolicy/odrl:permission ?perm .
            ?perm odrl:constraint [ odrl:leftOperand ?left ; odrl:operator ?op ;
                                    odrl:rightOperand ?right ] .
        } ORDER BY ?left
        """
    )
    got = [(str(a), str(b), str(c)) for a, b, c in rows]  # type: ignore[misc]
    assert got == [
        (str(ODRL["count"]), str(ODRL.lteq), "500"),
        (str(ODRL.purpose), str(ODRL.isAnyOf), "research"),
    ]
    prohibited = g.query(
        """
        PREFIX odrl: <http://www.w3.org/ns/odrl/2/>
        SELECT ?a WHERE { ?p odrl:prohibition/odrl:action ?a }
        """
    )
    assert [str(r[0]) for r in prohibited] == [str(ODRL.distribute)]  # type: ignore[index]


def test_terms_used_are_dcat3_and_odrl_vocabulary(engine: Engine) -> None:
    doc, g = _export(engine)
    vocab = _vocabulary()
    used = {str(p) for p in g.predicates()} | {str(o) for o in g.objects(None, RDF.type)}
    used |= {
        str(o) for p in (ODRL.action, ODRL.leftOperand, ODRL.operator) for o in g.objects(None, p)
    }
    checked = {u for u in used if u.startswith((str(DCAT), str(DCT), str(ODRL)))}
    assert checked, "the export uses DCAT and ODRL terms"
    assert checked - vocab == set()
    assert str(DCAT.notATerm) not in vocab  # the check can fail
    assert {str(DCAT.Catalog), str(DCAT.Dataset), str(DCAT.Distribution), str(ODRL.hasPolicy)} <= (
        checked
    )
    print(f"DCAT export of 3 offers: {len(g)} triples, {len(json.dumps(doc))} bytes")
