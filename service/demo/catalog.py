"""The demo's catalog: the EV data products published as Offers, taken up under three
pricing models, and two receipts the usage terms refuse.

- "EV battery telemetry" (the battery maker): tiered, taken up by insurer X;
- "EV charging sessions" (the charging network): a free trial of 500 units, then per
  unit, taken up by insurer Y;
- "EV risk score, premium share" (all four providers): a 5% revenue share of the premiums
  insurer Y prices with the score, which it declares in a signed RevenueDeclaration.

Every offer carries ODRL terms (:mod:`service.catalog.terms`): the battery telemetry has
a quota of 1600 units in total, so an eleventh receipt of 150 units is refused
(``quota_exceeded``); the charging sessions may be used for insurance pricing only, so a
receipt declaring marketing is refused (``purpose_not_permitted``). Settlement bills each
agreement with its offer's model (:mod:`service.catalog.pricing`); the policy splits
these agreements by output (units x quality), since no cost or model-value evidence is
declared for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from service.catalog.canonical import canonical_text, document_hash
from service.catalog.pricing import canonical_pricing_bytes, parse_pricing
from service.catalog.terms import CONTEXT, PROFILE, purpose_nonce
from service.evidence.eip712 import Domain, keccak256
from service.evidence.entries import (
    ZERO_ADDRESS,
    AgreementV2,
    Offer,
    RevenueDeclaration,
    SignedEntry,
    UsageReceipt,
    sign_entry,
)

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from service.demo.scenario import Cast

__all__ = [
    "CatalogResult",
    "OfferSpec",
    "catalog_agreement_ids",
    "catalog_policy_overrides",
    "demo_points",
    "offer_specs",
    "run_catalog",
]

TOKEN: Final = 10**18
DAY: Final = 86_400
THEME: Final = "http://publications.europa.eu/resource/authority/data-theme/TRAN"
LICENSE: Final = "https://creativecommons.org/licenses/by-nc/4.0/"


@dataclass(frozen=True)
class OfferSpec:
    """One data product of the demo's catalog and the insurer that takes it up."""

    name: str
    title: str
    description: str
    keywords: str
    providers: tuple[str, ...]
    """Provider names in the cast (``()``: every provider); a name the cast lacks (a demo
    run with other providers) falls back to the first provider for the first name and
    the last provider for the others."""
    insurer: int
    """Index into ``cast.insurers``."""
    pricing: dict[str, Any]
    constraints: tuple[dict[str, Any], ...]
    receipts: tuple[int, ...]
    """Units of each accepted receipt, in order (the providers serve them in turn)."""
    revenue: int = 0
    """What the insurer declares it earned with the product (revenue share)."""


def _terms(*constraints: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "@type": "Offer",
        "profile": PROFILE,
        "permission": [
            {"action": "use", "constraint": list(constraints), "duty": [{"action": "compensate"}]}
        ],
        "prohibition": [{"action": "distribute"}],
    }


def _purposes(*codes: str) -> dict[str, Any]:
    return {"leftOperand": "purpose", "operator": "isAnyOf", "rightOperand": list(codes)}


def offer_specs() -> list[OfferSpec]:
    """The three products (amounts in the token's smallest unit, 18 decimals)."""
    return [
        OfferSpec(
            name="battery-telemetry",
            title="EV battery telemetry",
            description="State of health, charge cycles and thermal events per vehicle, hourly",
            keywords="ev,battery,telemetry,state-of-health",
            providers=("battery maker",),
            insurer=0,
            pricing={
                "model": "tiered",
                "tiers": [
                    {"upTo": "1000", "unitPrice": str(3 * 10**15)},
                    {"upTo": "5000", "unitPrice": str(2 * 10**15)},
                    {"upTo": None, "unitPrice": str(10**15)},
                ],
            },
            constraints=(
                {"leftOperand": "count", "operator": "lteq", "rightOperand": 1600},
                _purposes("insurance-pricing", "risk-assessment"),
            ),
            receipts=(150,) * 10,
        ),
        OfferSpec(
            name="charging-sessions",
            title="EV charging sessions",
            description="Charging sessions (time, energy, fast or slow) per vehicle",
            keywords="ev,charging,sessions",
            providers=("charging network",),
            insurer=1,
            pricing={
                "model": "free_trial",
                "freeUnits": "500",
                "then": {"model": "per_unit", "unitPrice": str(10**15)},
            },
            constraints=(_purposes("insurance-pricing"),),
            receipts=(100,) * 8,
        ),
        OfferSpec(
            name="ev-risk-score-share",
            title="EV risk score, premium share",
            description="The EV risk score, paid as a share of the premiums priced with it",
            keywords="ev,risk,score,insurance",
            providers=(),
            insurer=1,
            pricing={"model": "revenue_share", "shareBps": 500},
            constraints=(_purposes("insurance-pricing"),),
            receipts=(60, 40, 30, 50),
            revenue=120 * TOKEN,
        ),
    ]


def catalog_agreement_ids() -> list[bytes]:
    """The catalog agreements' ids (the policy names them before they are signed)."""
    return [keccak256(f"catalog/{spec.name}".encode()) for spec in offer_specs()]


def demo_points() -> dict[str, Any]:
    """The demo space's contribution points: one point per 0.01 token of revenue; 300
    points on an agreement make a high contributor, who gets back half its share of that
    agreement's operator fee (:mod:`service.settlement.points`)."""
    return {"unit": str(10**16), "threshold": 300, "fee_discount_bps": 5000}


def catalog_policy_overrides() -> dict[str, Any]:
    """The policy's per-agreement table for the catalog agreements: split by output."""
    return {"0x" + aid.hex(): {"method": "output"} for aid in catalog_agreement_ids()}


@dataclass
class CatalogResult:
    offers: list[SignedEntry] = field(default_factory=list)
    agreements: list[SignedEntry] = field(default_factory=list)
    receipts: list[SignedEntry] = field(default_factory=list)
    declarations: list[SignedEntry] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    """The two receipts the terms refuse: ``{"offer", "why", "code", "message"}``."""
    models: dict[str, str] = field(default_factory=dict)
    """Agreement id (hex) -> the offer's name."""

    @property
    def entries(self) -> int:
        return len(self.offers) + len(self.agreements) + len(self.receipts) + len(self.declarations)


def _keys(accounts: Sequence[LocalAccount]) -> list[bytes]:
    return [bytes(a.key) for a in accounts]


def _offer(
    spec: OfferSpec, providers: Sequence[LocalAccount], domain: Domain, start: int, end: int
) -> SignedEntry:
    entry = Offer(
        offerId=keccak256(f"offer/{spec.name}".encode()),
        version=1,
        providers=tuple(p.address for p in providers),
        title=spec.title,
        description=spec.description,
        keywords=spec.keywords,
        theme=THEME,
        license=LICENSE,
        formats="application/json,text/csv",
        metadataHash=keccak256(f"metadata/{spec.name}".encode()),
        metadataUrl=f"https://catalog.example/ev/{spec.name}.json",
        pricing=canonical_pricing_bytes(parse_pricing(spec.pricing)).decode(),
        terms=canonical_text(_terms(*spec.constraints)),
        validFrom=start,
        validUntil=end,
    )
    return sign_entry(entry, domain, _keys(providers))


def _receipt(
    agreement: AgreementV2,
    insurer: LocalAccount,
    provider: LocalAccount,
    *,
    counter: int,
    units: int,
    start: int,
    purpose: str | None,
    domain: Domain,
) -> SignedEntry:
    entry = UsageReceipt(
        agreementId=agreement.agreementId,
        consumer=insurer.address,
        provider=provider.address,
        units=units,
        periodStart=start,
        periodEnd=start + 3_600,
        detailHash=keccak256(f"catalog-call-log/{agreement.agreementId.hex()}/{counter}".encode()),
        nonce=purpose_nonce(purpose, counter),
    )
    return sign_entry(entry, domain, _keys([insurer, provider]))


def _indices(cast: Cast, names: tuple[str, ...]) -> set[int]:
    """Positions in ``cast.providers`` of the named providers (see :attr:`OfferSpec.providers`)."""
    if not names:
        return set(range(len(cast.providers)))
    known = {role.name: i for i, role in enumerate(cast.providers)}
    fallback = [0] + [len(cast.providers) - 1] * (len(names) - 1)
    return {known.get(name, fallback[k]) for k, name in enumerate(names)}


def run_catalog(
    *,
    cast: Cast,
    domain: Domain,
    policy_hash: bytes,
    period: tuple[int, int],
    post: Callable[[list[SignedEntry]], dict[str, Any]],
) -> CatalogResult:
    """Publish the offers, sign the agreements, receipts and the revenue declaration, and
    submit them with ``post`` (``POST /v1/evidence``); then submit the two receipts the
    terms refuse and record their rejections. Raises RuntimeError if anything else is
    refused (the demo's evidence must be accepted)."""
    start, end = period
    out = CatalogResult()
    specs = offer_specs()
    ids = catalog_agreement_ids()
    by_address = sorted(
        range(len(cast.providers)), key=lambda i: cast.providers[i].account.address.lower()
    )
    for spec, aid in zip(specs, ids, strict=True):
        wanted = _indices(cast, spec.providers)
        chosen = [i for i in by_address if i in wanted]
        providers = [cast.providers[i].account for i in chosen]
        insurer = cast.insurers[spec.insurer].account
        offer = _offer(spec, providers, domain, start, end)
        assert isinstance(offer.entry, Offer)
        agreement = AgreementV2(
            agreementId=aid,
            assetId=keccak256(f"asset/{spec.name}".encode()),
            consumer=insurer.address,
            providers=tuple(p.address for p in providers),
            unitPrice=0,  # the offer's pricing bills it
            policyHash=policy_hash,
            validFrom=start,
            validUntil=end,
            offerId=offer.entry.offerId,
            offerVersion=1,
            termsHash=document_hash(_terms(*spec.constraints)),
            homeChainId=0,
            homeRegistry=ZERO_ADDRESS,
        )
        out.offers.append(offer)
        out.agreements.append(sign_entry(agreement, domain, _keys([insurer, *providers])))
        out.models["0x" + aid.hex()] = spec.name
        for n, units in enumerate(spec.receipts, start=1):
            provider = providers[(n - 1) % len(providers)]
            at = start + 2 * DAY + n * 2 * DAY
            out.receipts.append(
                _receipt(
                    agreement,
                    insurer,
                    provider,
                    counter=n,
                    units=units,
                    start=at,
                    purpose="insurance-pricing",
                    domain=domain,
                )
            )
        if spec.revenue:
            declaration = RevenueDeclaration(
                agreementId=aid,
                consumer=insurer.address,
                periodStart=start,
                periodEnd=end,
                revenue=spec.revenue,
                reportHash=keccak256(f"premium report/{spec.name}".encode()),
                nonce=purpose_nonce(None, len(spec.receipts) + 1),
            )
            out.declarations.append(sign_entry(declaration, domain, _keys([insurer])))
    for batch in (out.offers, out.agreements, out.receipts, out.declarations):
        bad = [r for r in post(batch)["results"] if r["status"] == "rejected"]
        if bad:
            raise RuntimeError(f"catalog entry rejected: {bad[0]['code']}: {bad[0]['message']}")
    out.rejected = _refused(cast, domain, specs, out, post)
    return out


def _refused(
    cast: Cast,
    domain: Domain,
    specs: list[OfferSpec],
    out: CatalogResult,
    post: Callable[[list[SignedEntry]], dict[str, Any]],
) -> list[dict[str, Any]]:
    """One receipt over the battery telemetry's quota, one for a purpose the charging
    sessions do not permit: both must be refused with the terms' codes."""
    tries: list[tuple[str, str, int, int, str]] = [
        # (offer, why, spec index, units, purpose)
        (
            "battery-telemetry",
            "an eleventh receipt of 150 units: 1650 > the 1600 allowed",
            0,
            150,
            "insurance-pricing",
        ),
        (
            "charging-sessions",
            "a receipt declaring marketing: only insurance-pricing is permitted",
            1,
            10,
            "marketing",
        ),
    ]
    rejected = []
    for name, why, k, units, purpose in tries:
        signed = out.agreements[k]
        agreement = signed.entry
        assert isinstance(agreement, AgreementV2)
        spec = specs[k]
        insurer = cast.insurers[spec.insurer].account
        provider = next(
            cast.providers[i].account
            for i in range(len(cast.providers))
            if cast.providers[i].account.address == agreement.providers[0]
        )
        receipt = _receipt(
            agreement, insurer, provider, counter=len(spec.receipts) + 10, units=units,
            start=agreement.validFrom + 25 * DAY, purpose=purpose, domain=domain,
        )  # fmt: skip
        (r,) = post([receipt])["results"]
        rejected.append(
            {"offer": name, "why": why, "status": r["status"], "code": r.get("code"),
             "message": r.get("message")}
        )  # fmt: skip
    return rejected
