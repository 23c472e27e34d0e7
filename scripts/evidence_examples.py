"""Write the signed examples of docs/evidence.md from the real code (``--check``: fail if stale).

Every example is built with :mod:`service.evidence.entries`, signed with the dev
mnemonic's keys (the accounts of ``tally chain up``) in the example domain below, and
written between ``<!-- example: NAME -->`` and ``<!-- /example -->`` as the JSON item a
client POSTs to ``/v1/evidence`` followed by the values derived from it (struct hash,
digest, entry id, leaf hash). ``tests/api/test_docs_evidence.py`` parses them back and
checks them against the encoder, so the document cannot drift from the code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from service.chain.keys import dev_account  # noqa: E402
from service.evidence.eip712 import Domain  # noqa: E402
from service.evidence.entries import (  # noqa: E402
    ZERO_ADDRESS,
    Agreement,
    AgreementV2,
    CoalitionValues,
    ContributionDeclaration,
    Offer,
    OfferWithdrawal,
    QualityAttestation,
    RevenueDeclaration,
    SignedEntry,
    UsageReceipt,
    ValuationResult,
    sign_entry,
)
from service.evidence.merkle import leaf_hash  # noqa: E402

TARGET = ROOT / "docs" / "evidence.md"
# chain 31337 (anvil); the EvidenceLedger address of a first `tally deploy --network anvil`
DOMAIN = Domain(chain_id=31337, verifying_contract="0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0")
OPERATOR, AUDITOR, PROVIDER_A, PROVIDER_B, EVALUATOR, CONSUMER = (
    dev_account(i) for i in (0, 1, 2, 3, 4, 5)
)
JAN_1, JAN_2, JAN_3, FEB_1, NEXT_YEAR = 1767225600, 1767312000, 1767398400, 1769904000, 1798761600
BLOCK = re.compile(r"(<!-- example: (?P<name>[\w-]+) -->\n).*?(<!-- /example -->)", re.S)


def _h(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


AGREEMENT_ID = _h("agreement: ev-risk-score 2026")


def _keys(*accounts: object) -> list[bytes]:
    return [bytes(a.key) for a in accounts]  # type: ignore[attr-defined]


def examples() -> dict[str, SignedEntry]:
    """The documented examples, by block name, in an order the log accepts."""
    providers = sorted((PROVIDER_A.address, PROVIDER_B.address), key=lambda a: int(a, 16))
    agreement = Agreement(
        agreementId=AGREEMENT_ID,
        assetId=_h("asset: ev-battery-telemetry"),
        consumer=CONSUMER.address,
        providers=tuple(providers),
        unitPrice=3 * 10**15,
        policyHash=_h("terms: odrl profile v1"),
        validFrom=JAN_1,
        validUntil=NEXT_YEAR,
    )
    receipt = UsageReceipt(
        agreementId=AGREEMENT_ID,
        consumer=CONSUMER.address,
        provider=PROVIDER_A.address,
        units=120,
        periodStart=JAN_2,
        periodEnd=JAN_3,
        detailHash=_h("detail log: 2026-01-02"),
        nonce=1,
    )
    quality = QualityAttestation(
        agreementId=AGREEMENT_ID,
        provider=PROVIDER_A.address,
        periodStart=JAN_1,
        periodEnd=FEB_1,
        scoreBps=9200,
    )
    cost = ContributionDeclaration(
        agreementId=AGREEMENT_ID,
        provider=PROVIDER_B.address,
        kind=1,
        value=250 * 10**18,
        periodStart=JAN_1,
        periodEnd=FEB_1,
    )
    risk = ContributionDeclaration(
        agreementId=AGREEMENT_ID,
        provider=PROVIDER_A.address,
        kind=2,
        value=3,
        periodStart=JAN_1,
        periodEnd=FEB_1,
    )
    coalition = CoalitionValues(
        agreementId=AGREEMENT_ID,
        periodStart=JAN_1,
        periodEnd=FEB_1,
        providers=tuple(providers),
        values=(0, 4100, 3600, 7300),
    )
    offer_agreement = AgreementV2(
        agreementId=_h("agreement: charging sessions 2026, offer v2"),
        assetId=_h("asset: charging-sessions"),
        consumer=CONSUMER.address,
        providers=(PROVIDER_A.address,),
        unitPrice=10**15,
        policyHash=_h("settlement policy"),
        validFrom=JAN_1,
        validUntil=NEXT_YEAR,
        offerId=_h("offer: charging-sessions"),
        offerVersion=2,
        termsHash=hashlib.sha256(_offer().terms.encode()).digest(),  # the Offer example's
        homeChainId=0,
        homeRegistry=ZERO_ADDRESS,
    )
    revenue = RevenueDeclaration(
        agreementId=AGREEMENT_ID,
        consumer=CONSUMER.address,
        periodStart=JAN_1,
        periodEnd=FEB_1,
        revenue=40_000 * 10**18,
        reportHash=_h("revenue report: ev-risk-score premiums 2026-01"),
        nonce=2,
    )
    return {
        "Agreement": sign_entry(agreement, DOMAIN, _keys(CONSUMER, PROVIDER_A, PROVIDER_B)),
        "UsageReceipt": sign_entry(receipt, DOMAIN, _keys(CONSUMER, PROVIDER_A)),
        "QualityAttestation": sign_entry(quality, DOMAIN, _keys(CONSUMER)),
        "ContributionDeclaration-cost": sign_entry(cost, DOMAIN, _keys(PROVIDER_B)),
        "ContributionDeclaration-risk": sign_entry(risk, DOMAIN, _keys(PROVIDER_A, OPERATOR)),
        "CoalitionValues": sign_entry(coalition, DOMAIN, _keys(EVALUATOR)),
        # the Offer precedes the AgreementV2 that takes it up (the log accepts them in order)
        "Offer": sign_entry(_offer(), DOMAIN, _keys(PROVIDER_A)),
        "AgreementV2": sign_entry(offer_agreement, DOMAIN, _keys(CONSUMER, PROVIDER_A)),
        "RevenueDeclaration": sign_entry(revenue, DOMAIN, _keys(CONSUMER)),
        "ValuationResult": sign_entry(_valuation(providers), DOMAIN, _keys(EVALUATOR)),
        "OfferWithdrawal": sign_entry(
            OfferWithdrawal(
                offerId=_h("offer: charging-sessions"), version=2, providers=(PROVIDER_A.address,)
            ),
            DOMAIN,
            _keys(PROVIDER_A),
        ),
    }


def _offer() -> Offer:
    """Version 2 of the charging-sessions offer (T11): the AgreementV2 example's offer."""
    from service.catalog.canonical import canonical_text
    from service.catalog.terms import CONTEXT, PROFILE

    terms = {
        "@context": CONTEXT,
        "@type": "Offer",
        "profile": PROFILE,
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {"leftOperand": "count", "operator": "lteq", "rightOperand": 100000},
                    {
                        "leftOperand": "count",
                        "operator": "lteq",
                        "rightOperand": 5000,
                        "tally:window": 86400,
                    },
                    {"leftOperand": "purpose", "operator": "isAnyOf",
                     "rightOperand": ["insurance-pricing", "risk-assessment"]},
                ],
                "duty": [{"action": "compensate"}],
            }
        ],
        "prohibition": [{"action": "distribute"}],
    }  # fmt: skip
    return Offer(
        offerId=_h("offer: charging-sessions"),
        version=2,
        providers=(PROVIDER_A.address,),
        title="Charging sessions, Shenzhen",
        description="Anonymised EV charging sessions (start, end, kWh, station class).",
        keywords="ev,charging,sessions",
        theme="http://publications.europa.eu/resource/authority/data-theme/TRAN",
        license="https://creativecommons.org/licenses/by-nc/4.0/",
        formats="text/csv,application/parquet",
        metadataHash=_h("metadata: charging-sessions v2"),
        metadataUrl="https://data.example/charging-sessions.json",
        pricing=canonical_text(
            {"model": "per_unit", "payment": "postpaid", "unitPrice": "10" + "0" * 14, "version": 1}
        ),
        terms=canonical_text(terms),
        validFrom=JAN_1,
        validUntil=NEXT_YEAR,
    )


def _valuation(providers: list[str]) -> ValuationResult:
    """T13's example: MSR Banzhaf values of the two providers (one negative)."""
    return ValuationResult(
        agreementId=AGREEMENT_ID,
        periodStart=JAN_1,
        periodEnd=FEB_1,
        method=3,
        paramsHash=_h("valuation params: msr-banzhaf"),
        checkpointSize=12,
        seed=_h("valuation seed"),
        utilityHash=_h("utility: examples:logreg_utility"),
        providers=tuple(providers),
        values=(3650, -120),
        stderrs=(41, 38),
        utilityCalls=256,
    )


def derived(signed: SignedEntry) -> dict[str, str]:
    """The values a reader can recompute from an example (the ``text`` block)."""
    data = signed.encode()
    return {
        "struct_hash": "0x" + signed.entry.struct_hash().hex(),
        "eip712_digest": "0x" + signed.digest().hex(),
        "entry_id": "0x" + signed.id().hex(),
        "leaf_hash": "0x" + leaf_hash(data).hex(),
        "bytes": str(len(data)),
    }


def layout(signed: SignedEntry) -> list[tuple[str, str]]:
    """The canonical bytes split into their fields (``<!-- example: bytes -->``)."""
    data = signed.encode()
    n = int.from_bytes(data[131:135], "big")
    k = int.from_bytes(data[135 + n : 137 + n], "big")
    parts = [
        ("magic", data[0:14]),
        ("type tag", data[14:15]),
        ("chainId", data[15:47]),
        ("verifyingContract", data[47:67]),
        ("domain separator", data[67:99]),
        ("struct hash", data[99:131]),
        ("message length", data[131:135]),
        *[(f"message word {i}", data[135 + 32 * i : 167 + 32 * i]) for i in range(n // 32)],
        ("signature count", data[135 + n : 137 + n]),
    ]
    pos = 137 + n
    for i in range(k):
        parts.append((f"signature {i} signer", data[pos : pos + 20]))
        parts.append((f"signature {i} r||s||v", data[pos + 20 : pos + 85]))
        pos += 85
    return [(name, value.hex()) for name, value in parts]


def render_block(name: str, built: dict[str, SignedEntry]) -> str:
    if name == "bytes":
        rows = layout(built["UsageReceipt"])
        width = max(len(n) for n, _ in rows)
        body = "\n".join(f"{n.ljust(width)}  {v}" for n, v in rows)
        return f"```text\n{body}\n```\n"
    signed = built[name]
    item = json.dumps(signed.to_json(), indent=2)
    values = derived(signed)
    width = max(len(k) for k in values)
    text = "\n".join(f"{k.ljust(width)}  {v}" for k, v in values.items())
    return f"```json\n{item}\n```\n\n```text\n{text}\n```\n"


def render(doc: str) -> str:
    built = examples()

    def replace(m: re.Match[str]) -> str:
        return m.group(1) + render_block(m.group("name"), built) + m.group(3)

    return BLOCK.sub(replace, doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the examples are stale")
    args = parser.parse_args(argv)
    current = TARGET.read_text(encoding="utf-8")
    text = render(current)
    if args.check:
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run python scripts/evidence_examples.py")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
