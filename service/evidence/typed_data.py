"""What a client needs to sign entries itself: the EIP-712 domain and every entry type.

:func:`domain_document` is the body of ``GET /v1/domain``: the deployment's domain
(name "Tally", version "1", chain id, EvidenceLedger address), its separator, and the
typed-data ``types`` of every entry type with ``EIP712Domain`` included, in the shape of
``eth_signTypedData_v4`` documents. Libraries derive the primary type from the types they
are given, so a client signs with ``EIP712Domain`` plus the one entry type (eth_account's
``encode_typed_data(full_message=...)``) or the entry type alone (ethers'
``signTypedData``, which adds the domain type itself).
Per entry type it also gives the canonical-bytes tag, the type string and hash, and who
signs (the rules are in ``docs/evidence.md``). It depends only on the domain, so it is
there before the first entry or checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from service.evidence.eip712 import DOMAIN_TYPE, Domain
from service.evidence.entries import ENTRY_CLASSES, MAGIC

__all__ = ["SIGNED_BY", "domain_document", "eip712_types"]

SIGNED_BY: Final[Mapping[str, str]] = MappingProxyType(
    {
        "Agreement": "the consumer and every provider",
        "UsageReceipt": "the consumer and the provider",
        "QualityAttestation": "one attester: the agreement's consumer or an auditor",
        "ContributionDeclaration": "the provider, optionally countersigned by an operator",
        "CoalitionValues": "one evaluator (the settlement policy names it)",
        "AgreementV2": "the consumer and every provider",
        "Offer": "every provider of the offer",
        "OfferWithdrawal": "every provider of the offer",
        "RevenueDeclaration": "the consumer",
        "ValuationResult": "one evaluator (the settlement policy names it)",
    }
)
"""Who signs each entry type (:func:`service.evidence.entries.required_signers`)."""


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def eip712_types() -> dict[str, list[dict[str, str]]]:
    """``types`` of an EIP-712 document: ``EIP712Domain`` and every entry type."""
    types = {DOMAIN_TYPE.name: DOMAIN_TYPE.eip712_types()}
    for name, cls in ENTRY_CLASSES.items():
        types[name] = cls.eip712_type.eip712_types()
    return types


def domain_document(*, domain: Domain) -> dict[str, Any]:
    """The domain, its separator, the typed-data types and per-type facts (JSON-ready)."""
    return {
        "domain": domain.to_json(),
        "domain_separator": _hex(domain.separator),
        "types": eip712_types(),
        "entry_types": {
            name: {
                "tag": int(cls.entry_type),
                "type_string": cls.eip712_type.type_string,
                "type_hash": _hex(cls.eip712_type.type_hash),
                "signed_by": SIGNED_BY.get(name, "see docs/evidence.md"),
            }
            for name, cls in ENTRY_CLASSES.items()
        },
        "encoding": MAGIC.decode("ascii"),
    }
