"""The catalog as W3C DCAT 3 JSON-LD (``GET /v1/catalog.jsonld``), pure.

One ``dcat:Catalog`` (the data space, identified by its chain id and EvidenceLedger),
one ``dcat:Dataset`` per offer not withdrawn (its latest version), one
``dcat:Distribution`` per format, and the offer's usage terms as ``odrl:hasPolicy``: an
``odrl:Offer`` whose permission, constraints, duty and prohibitions are the terms
document's, written with full ODRL IRIs. The context is inline (no remote
``@context``), so any JSON-LD processor reads it offline.

Mapping: ``dct:identifier`` = offer id, ``dcat:version`` = version, ``dct:title``,
``dct:description``, ``dcat:keyword`` (one per keyword), ``dcat:theme`` and
``dct:license`` (IRIs), ``dct:publisher`` = the providers as ``did:pkh`` IRIs
(CAIP-10: ``did:pkh:eip155:<chain id>:<address>``), ``dcat:landingPage`` =
``metadataUrl``, ``dct:temporal`` = the valid period (``dcat:startDate`` /
``dcat:endDate``), ``dcat:mediaType`` = the IANA media type IRI of each format;
``tally:metadataHash``, ``tally:termsHash`` and ``tally:pricing`` (the canonical
pricing document) are Tally's own terms.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from service.catalog.models import OfferRow
from service.catalog.terms import PROFILE
from service.jsonsafe import loads

__all__ = ["CONTEXT", "catalog_jsonld"]

CONTEXT: Final = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "odrl": "http://www.w3.org/ns/odrl/2/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "tally": "https://tally.dev/odrl#",
}
MEDIA_TYPES: Final = "https://www.iana.org/assignments/media-types/"


def _iri(value: str) -> dict[str, str]:
    return {"@id": value}


def _time(seconds: int) -> dict[str, str]:
    text = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"@value": text, "@type": "xsd:dateTime"}


def _odrl(name: str) -> dict[str, str]:
    return {"@id": f"odrl:{name}"}


def _constraint(c: dict[str, Any]) -> dict[str, Any]:
    right = c["rightOperand"]
    if c["leftOperand"] == "dateTime":
        value: Any = {"@value": right, "@type": "xsd:dateTime"}
    elif c["leftOperand"] == "purpose":
        value = right if isinstance(right, list) else [right]
    else:
        value = right
    out: dict[str, Any] = {
        "@type": "odrl:Constraint",
        "odrl:leftOperand": _odrl(c["leftOperand"]),
        "odrl:operator": _odrl(c["operator"]),
        "odrl:rightOperand": value,
    }
    if "tally:window" in c:
        out["tally:window"] = c["tally:window"]
    return out


def _rule(rule: dict[str, Any], kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {"@type": f"odrl:{kind}", "odrl:action": _odrl(rule["action"])}
    if rule.get("constraint"):
        out["odrl:constraint"] = [_constraint(c) for c in rule["constraint"]]
    if rule.get("duty"):
        out["odrl:duty"] = [_rule(d, "Duty") for d in rule["duty"]]
    return out


def policy_jsonld(terms: dict[str, Any], terms_hash: str, target: str) -> dict[str, Any]:
    """An offer's terms document as an ``odrl:Offer`` with explicit IRIs."""
    policy: dict[str, Any] = {
        "@id": f"urn:tally:terms:{terms_hash}",
        "@type": "odrl:Offer",
        "odrl:profile": _iri(PROFILE),
        "odrl:target": _iri(target),
        "odrl:permission": [_rule(p, "Permission") for p in terms.get("permission", [])],
    }
    if terms.get("prohibition"):
        policy["odrl:prohibition"] = [_rule(p, "Prohibition") for p in terms["prohibition"]]
    return policy


def _dataset(row: OfferRow, chain_id: int) -> dict[str, Any]:
    iri = f"urn:tally:offer:{row.offer_id}"
    formats = [f for f in row.formats.split(",") if f]
    return {
        "@id": iri,
        "@type": "dcat:Dataset",
        "dct:identifier": row.offer_id,
        "dcat:version": str(row.version),
        "dct:title": row.title,
        "dct:description": row.description,
        "dcat:keyword": [k for k in row.keywords.split(",") if k],
        "dcat:theme": _iri(row.theme),
        "dct:license": _iri(row.license),
        "dct:publisher": [_iri(f"did:pkh:eip155:{chain_id}:{p}") for p in row.providers.split(",")],
        "dcat:landingPage": _iri(row.metadata_url),
        "dct:temporal": {
            "@type": "dct:PeriodOfTime",
            "dcat:startDate": _time(row.valid_from),
            "dcat:endDate": _time(row.valid_until),
        },
        "dcat:distribution": [
            {
                "@id": f"{iri}:distribution:{i}",
                "@type": "dcat:Distribution",
                "dct:title": f"{row.title} ({fmt})",
                "dcat:mediaType": _iri(MEDIA_TYPES + fmt),
                "dcat:accessURL": _iri(row.metadata_url),
            }
            for i, fmt in enumerate(formats)
        ],
        "odrl:hasPolicy": policy_jsonld(loads(row.terms), row.terms_hash, iri),
        "tally:metadataHash": row.metadata_hash,
        "tally:termsHash": row.terms_hash,
        "tally:pricing": row.pricing,
    }


def catalog_jsonld(*, offers: list[OfferRow], chain_id: int, ledger: str) -> dict[str, Any]:
    """The DCAT 3 JSON-LD document of ``offers`` (latest versions, not withdrawn)."""
    return {
        "@context": CONTEXT,
        "@id": f"urn:tally:catalog:{chain_id}:{ledger}",
        "@type": "dcat:Catalog",
        "dct:title": f"Tally data space catalog (chain {chain_id}, ledger {ledger})",
        "dct:description": "Data products offered in this data space, with their ODRL usage "
        "terms; every offer is a signed entry of the space's evidence log.",
        "dcat:dataset": [_dataset(row, chain_id) for row in offers],
    }
