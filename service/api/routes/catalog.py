"""``/v1/catalog``: the data catalog (offers from the log), its DCAT 3 export, and usage
terms documents (public reads; registering a narrowed terms document needs sign-in)."""

# ruff: noqa: N815  (the Offer entry's camelCase field names, as in the log)

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import CtxDep, PrincipalDep, SessionDep
from service.catalog.dcat import catalog_jsonld
from service.catalog.index import (
    PAGE_SIZE,
    all_offers,
    get_offer,
    offer_json,
    register_terms,
    search,
    terms_document,
)
from service.errors import NotFound

router = APIRouter(tags=["catalog"])

HASH = r"^0x[0-9a-fA-F]{64}$"
MAX_PAGE = 10_000


class OfferOut(BaseModel):
    """An offer's latest version as the catalog indexes it (fields of the Offer entry)."""

    model_config = ConfigDict(extra="forbid")

    offerId: str
    version: int
    providers: list[str]
    title: str
    description: str
    keywords: list[str]
    theme: str
    license: str
    formats: list[str]
    metadataHash: str
    metadataUrl: str
    pricing: str = Field(description="The canonical pricing document (JSON text).")
    terms: str = Field(description="The canonical ODRL usage-terms document (JSON text).")
    termsHash: str = Field(description="SHA-256 of `terms`: an AgreementV2's termsHash.")
    validFrom: int
    validUntil: int
    withdrawn: bool
    entryId: str
    leafIndex: int


class CatalogPageOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offers: list[OfferOut]
    total: int = Field(description="Matches over all pages.")
    page: int
    page_size: int


class OfferVersionOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    withdrawal: bool = Field(description="True for the OfferWithdrawal entry of `version`.")
    entry_id: str
    leaf_index: int
    terms_hash: str | None


class OfferDetailOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offer: OfferOut
    versions: list[OfferVersionOut] = Field(description="Every version, in log order.")


class TermsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    terms: dict[str, Any] = Field(description="An ODRL usage-terms document of the profile.")


class TermsOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    termsHash: str
    terms: str = Field(description="The canonical (RFC 8785) document.")


@router.get("/v1/catalog", response_model=CatalogPageOut)
def list_catalog(
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=256, description="Full-text query.")] = None,
    theme: Annotated[str | None, Query(max_length=256)] = None,
    provider: Annotated[str | None, Query(pattern=r"^0x[0-9a-fA-F]{40}$")] = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> dict[str, Any]:
    """Offers (latest versions, not withdrawn), newest first, 20 a page: every token of
    ``q`` must prefix-match a token of the title, description or keywords; ``theme``
    exactly; ``provider`` among the providers. Same results on SQLite and PostgreSQL."""
    found = search(session=session, q=q, theme=theme, provider=provider, page=page)
    return {
        "offers": [offer_json(r) for r in found.offers],
        "total": found.total,
        "page": found.page,
        "page_size": PAGE_SIZE,
    }


@router.get(
    "/v1/catalog.jsonld",
    response_class=JSONResponse,
    responses={200: {"content": {"application/ld+json": {}}}},
)
def catalog_dcat(ctx: CtxDep, session: SessionDep) -> JSONResponse:
    """The catalog as W3C DCAT 3 JSON-LD: ``dcat:Catalog``, a ``dcat:Dataset`` per offer
    with its ``dcat:Distribution``s and its terms as ``odrl:hasPolicy``."""
    doc = catalog_jsonld(
        offers=all_offers(session=session),
        chain_id=ctx.domain.chain_id,
        ledger=ctx.domain.verifying_contract,
    )
    return JSONResponse(doc, media_type="application/ld+json")


@router.post("/v1/catalog/terms", response_model=TermsOut)
def post_terms(body: TermsIn, session: SessionDep, _who: PrincipalDep) -> dict[str, Any]:
    """Register a usage-terms document (e.g. a narrowing of an offer's terms) so that an
    AgreementV2 can name it by ``termsHash``; content-addressed and idempotent. Refused
    (``terms_unsupported``) when it uses ODRL outside the profile."""
    terms_hash, text = register_terms(session=session, document=body.terms)
    return {"termsHash": terms_hash, "terms": text}


@router.get("/v1/catalog/terms/{terms_hash}", response_model=TermsOut)
def get_terms(
    session: SessionDep, terms_hash: Annotated[str, Path(pattern=HASH)]
) -> dict[str, Any]:
    """A terms document by its SHA-256 (an offer's, or a registered one)."""
    text = terms_document(session=session, terms_hash=terms_hash)
    if text is None:
        raise NotFound(f"no terms document {terms_hash}")
    return {"termsHash": terms_hash.lower(), "terms": text}


@router.get("/v1/catalog/{offer_id}", response_model=OfferDetailOut)
def get_catalog_offer(
    session: SessionDep, offer_id: Annotated[str, Path(pattern=HASH)]
) -> dict[str, Any]:
    """One offer: its latest version and every version (and withdrawal) in the log."""
    row, versions = get_offer(session=session, offer_id=offer_id)
    return {
        "offer": offer_json(row),
        "versions": [
            {
                "version": v.version,
                "withdrawal": v.withdrawal,
                "entry_id": v.entry_id,
                "leaf_index": v.leaf_index,
                "terms_hash": v.terms_hash,
            }
            for v in versions
        ],
    }
