"""Request and response bodies of the HTTP API (pydantic models; they make the OpenAPI).

Conventions: addresses are EIP-55 ``0x`` hex; hashes and entry ids ``0x`` + 64 hex
digits; token amounts (uint256) are decimal strings; times are unix seconds.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidatorFunctionWrapHandler, WrapValidator

from service.evidence.entries import (
    Agreement,
    AgreementV2,
    CoalitionValues,
    ContributionDeclaration,
    Offer,
    OfferWithdrawal,
    QualityAttestation,
    RevenueDeclaration,
    UsageReceipt,
    ValuationResult,
)
from service.evidence.typed_data import SIGNED_BY

AddressStr = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$", examples=["0x" + "ab" * 20])]
Hash32 = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$")]
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
HASH_PATTERN = r"^0x[0-9a-fA-F]{64}$"
MAX_INDEX = 2**62  # offsets, leaf indices, sizes (BIGINT columns)
MAX_TIME = 2**63 - 1  # unix seconds in uint64 fields stored as BIGINT
TIME_HELP = (
    "Unix seconds (`1767225600`) or ISO 8601 (`2026-01-01`, `2026-01-01T08:00:00+08:00`;"
    " UTC when no offset is given)."
)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors -------------------------------------------------------------------------------


class FieldError(_Out):
    path: str
    message: str


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(description="Stable machine-readable code, e.g. `entry_not_found`.")
    message: str
    fields: list[FieldError] | None = None


class ErrorOut(_Out):
    error: ErrorDetail


# --- auth ---------------------------------------------------------------------------------


class ChallengeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: AddressStr


class ChallengeOut(_Out):
    message: str = Field(description="The EIP-4361 message to sign with personal_sign.")
    address: str
    nonce: str
    issued_at: str
    expires_at: str


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: Annotated[str, Field(min_length=1, max_length=4096)]
    signature: Annotated[str, Field(min_length=1, max_length=200)]


class TokenOut(_Out):
    access_token: str
    token_type: str = "bearer"
    expires_at: int
    address: str
    roles: list[str]


class WhoAmIOut(_Out):
    address: str
    roles: list[str]
    via: str


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Annotated[str, Field(min_length=1, max_length=200)]


class ApiKeyOut(_Out):
    key_id: str
    label: str
    address: str
    created_at: int
    revoked_at: int | None


class NewApiKeyOut(ApiKeyOut):
    api_key: str = Field(description="Shown once; only its SHA-256 is stored.")


class ApiKeysOut(_Out):
    keys: list[ApiKeyOut]


# --- evidence -----------------------------------------------------------------------------


class SignedEntryIn(BaseModel):
    """One signed entry as the server parses it: only the envelope is checked here; the
    message and signatures are checked per item (see the batch's results)."""

    model_config = ConfigDict(extra="forbid")

    entry_type: str = Field(
        description="Agreement, UsageReceipt, QualityAttestation, ContributionDeclaration "
        "or CoalitionValues.",
        max_length=64,
    )
    entry: dict[str, Any] = Field(description="The EIP-712 message (field names as signed).")
    signatures: dict[str, Any] = Field(
        description="Signer address -> 0x signature (65 bytes, hex)."
    )


# The documented form of an item: one named schema per entry type, chosen by
# ``entry_type`` (a discriminated ``oneOf``). Schema only: the server still parses items
# with ``SignedEntryIn`` above, so a malformed message is one rejected item, not a 422
# for the whole batch. Field rules: docs/evidence.md.
SignatureMap = Annotated[
    dict[
        Annotated[str, Field(pattern=ADDRESS_PATTERN)],
        Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{130}$")],
    ],
    Field(
        min_length=1,
        description="Signer address -> 0x signature (65 bytes r || s || v, hex; v 27/28 or "
        "0/1; low s).",
    ),
]


class SignedAgreement(BaseModel):
    __doc__ = f"An Agreement, signed by {SIGNED_BY['Agreement']}."
    model_config = ConfigDict(extra="forbid")

    entry_type: Literal["Agreement"]
    entry: Agreement
    signatures: SignatureMap


class SignedUsageReceipt(BaseModel):
    __doc__ = f"A UsageReceipt, signed by {SIGNED_BY['UsageReceipt']}."
    model_config = ConfigDict(extra="forbid")

    entry_type: Literal["UsageReceipt"]
    entry: UsageReceipt
    signatures: SignatureMap


class SignedQualityAttestation(BaseModel):
    __doc__ = f"A QualityAttestation, signed by {SIGNED_BY['QualityAttestation']}."
    model_config = ConfigDict(extra="forbid")

    entry_type: Literal["QualityAttestation"]
    entry: QualityAttestation
    signatures: SignatureMap


class SignedContributionDeclaration(BaseModel):
    __doc__ = f"A ContributionDeclaration, signed by {SIGNED_BY['ContributionDeclaration']}."
    model_config = ConfigDict(extra="forbid")

    entry_type: Literal["ContributionDeclaration"]
    entry: ContributionDeclaration
    signatures: SignatureMap


class SignedCoalitionValues(BaseModel):
    __doc__ = f"A CoalitionValues entry, signed by {SIGNED_BY['CoalitionValues']}."
    model_config = ConfigDict(extra="forbid")

    entry_type: Literal["CoalitionValues"]
    entry: CoalitionValues
    signatures: SignatureMap


class SignedAgreementV2(BaseModel):
    __doc__ = f"An AgreementV2 (offer terms, home space), signed by {SIGNED_BY['AgreementV2']}."
    model_config = ConfigDict(extra="forbid")

    entry_type: Literal["AgreementV2"]
    entry: AgreementV2
    signatures: SignatureMap


class SignedOffer(BaseModel):
    __doc__ = f"An Offer (a catalog data product), signed by {SIGNED_BY['Offer']}."
    model_config = ConfigDict(extra="forbid")

    entry_type: Literal["Offer"]
    entry: Offer
    signatures: SignatureMap


class SignedOfferWithdrawal(BaseModel):
    __doc__ = f"An OfferWithdrawal, signed by {SIGNED_BY['OfferWithdrawal']}."
    model_config = ConfigDict(extra="forbid")

    entry_type: Literal["OfferWithdrawal"]
    entry: OfferWithdrawal
    signatures: SignatureMap


class SignedRevenueDeclaration(BaseModel):
    __doc__ = (
        "A RevenueDeclaration (the consumer's revenue from an agreement's data in a period), "
        f"signed by {SIGNED_BY['RevenueDeclaration']}."
    )
    model_config = ConfigDict(extra="forbid")

    entry_type: Literal["RevenueDeclaration"]
    entry: RevenueDeclaration
    signatures: SignatureMap


class SignedValuationResult(BaseModel):
    __doc__ = (
        "A ValuationResult (per-provider data values of an agreement in a period), "
        f"signed by {SIGNED_BY['ValuationResult']}."
    )
    model_config = ConfigDict(extra="forbid")

    entry_type: Literal["ValuationResult"]
    entry: ValuationResult
    signatures: SignatureMap


SignedEntryDoc = Annotated[
    SignedAgreement
    | SignedUsageReceipt
    | SignedQualityAttestation
    | SignedContributionDeclaration
    | SignedCoalitionValues
    | SignedAgreementV2
    | SignedOffer
    | SignedOfferWithdrawal
    | SignedRevenueDeclaration
    | SignedValuationResult,
    Field(discriminator="entry_type"),
]


def _as_parsed(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    return handler(value)


SignedEntryItem = Annotated[
    SignedEntryIn, WrapValidator(_as_parsed, json_schema_input_type=SignedEntryDoc)
]


class EvidenceBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entries: Annotated[list[SignedEntryItem], Field(min_length=1)]


class ItemResultOut(_Out):
    index: int
    status: str = Field(description="accepted | duplicate | rejected")
    entry_id: str | None = None
    leaf_index: int | None = None
    code: str | None = None
    message: str | None = None
    errors: list[dict[str, str]] | None = None
    salt: str | None = Field(
        default=None,
        description="0x hex of the entry's 32-byte salt (accepted and duplicate items with a "
        "commitment leaf): with the entry it opens the leaf's commitment and the receipt's "
        "per-field disclosures. Keep it with the entry.",
    )


class BatchOut(_Out):
    accepted: int
    duplicate: int
    rejected: int
    results: list[ItemResultOut]


class EvidenceOut(_Out):
    entry_id: str
    leaf_index: int
    received_at: int
    entry_type: str
    entry: dict[str, Any]
    signatures: dict[str, str]
    data: str = Field(description="Canonical entry bytes, 0x hex (the Merkle leaf's input).")
    struct_hash: str = Field(description="EIP-712 hashStruct of the message, 0x hex.")
    eip712_digest: str = Field(
        description="keccak256(0x1901 || domainSeparator || structHash): what every "
        "signature is over, 0x hex."
    )


class AnchorOut(_Out):
    chain_id: int
    contract: str
    checkpoint_seq: int
    tx_hash: str
    block_number: int


class ReceiptOut(_Out):
    """The receipt document (see service.evidence.receipts): everything an auditor needs.
    Version 1: a legacy leaf (the canonical bytes); version 2 ``form: full``: a commitment
    leaf, with the salt that opens it (``tally receipt disclose`` reduces it)."""

    version: int
    form: str | None = Field(default=None, description='Version 2: "full".')
    entry_type: str
    entry: dict[str, Any]
    signatures: dict[str, str]
    entry_id: str
    leaf_index: int
    tree_size: int
    root: str
    inclusion_proof: list[str]
    anchor: AnchorOut
    cosignatures: str | None = Field(
        default=None,
        description="The C2SP signed note of this checkpoint (origin, tree_size, root) "
        "signed by the space's note key, then the witnesses' cosignature/v1 lines.",
    )
    salt: str | None = Field(
        default=None, description="Version 2: 0x hex of the entry's 32-byte salt."
    )


# --- domain -------------------------------------------------------------------------------


class Eip712DomainOut(_Out):
    name: str = Field(description='Always "Tally".')
    version: str = Field(description='Always "1".')
    chainId: int  # noqa: N815 (the EIP-712 name)
    verifyingContract: str = Field(description="The EvidenceLedger address.")  # noqa: N815


class TypedFieldOut(_Out):
    name: str
    type: str = Field(description="Solidity type: bytes32, address, uint64, address[], ...")


class EntryTypeOut(_Out):
    tag: int = Field(description="The entry type byte of the canonical bytes.")
    type_string: str = Field(description="EIP-712 encodeType, e.g. `UsageReceipt(bytes32 ...)`.")
    type_hash: str = Field(description="keccak256(type_string), 0x hex.")
    signed_by: str


class DomainOut(_Out):
    """The EIP-712 domain and typed-data types to sign entries with (docs/evidence.md)."""

    domain: Eip712DomainOut
    domain_separator: str = Field(description="hashStruct(domain), 0x hex.")
    types: dict[str, list[TypedFieldOut]] = Field(
        description="`EIP712Domain` and every entry type, as eth_signTypedData_v4 takes them."
    )
    entry_types: dict[str, EntryTypeOut]
    encoding: str = Field(description="The canonical bytes' magic, `TALLY-ENTRY-V1`.")


# --- log ----------------------------------------------------------------------------------


class LogHeadOut(_Out):
    tree_size: int
    root: str


class CheckpointOut(_Out):
    seq: int
    tree_size: int
    root: str
    chain_id: int
    contract: str
    tx_hash: str
    block_number: int


class CheckpointsOut(_Out):
    log: LogHeadOut
    latest: CheckpointOut | None
    total: int
    offset: int
    checkpoints: list[CheckpointOut]


class LogEntryOut(_Out):
    """One leaf of the public log: what it commits to stays private (T15)."""

    leaf_index: int
    leaf_data: str = Field(
        description="0x hex of the leaf data: a commitment (0x02 || entry type || SHA-256, "
        "34 bytes) or, for a leaf appended before T15, the entry's canonical bytes."
    )
    leaf_hash: str = Field(description="SHA-256(0x00 || leaf data), 0x hex (RFC 9162).")


class LogPageOut(_Out):
    tree_size: int
    start: int
    end: int
    next: int | None = Field(description="Where the next page starts; null on the last one.")
    entries: list[LogEntryOut]


class FullEntryOut(_Out):
    leaf_index: int
    entry_id: str
    entry_type: str
    received_at: int = Field(description="Unix seconds when the log appended it.")
    agreement_id: str | None = Field(description="The agreement it names (null: none).")
    data: str = Field(description="0x hex of the entry's canonical bytes.")
    salt: str | None = Field(
        description="0x hex of the entry's 32-byte salt; null for a legacy leaf (appended "
        "before T15), whose leaf data is the canonical bytes themselves."
    )


class FullEntriesOut(_Out):
    tree_size: int
    anchored_size: int = Field(
        description="The latest checkpoint's tree size: a leaf below it has a receipt."
    )
    start: int
    end: int
    next: int | None = Field(description="Where the next page starts; null on the last one.")
    entries: list[FullEntryOut]


class InclusionOut(_Out):
    leaf_index: int
    tree_size: int
    leaf_hash: str = Field(description="SHA-256(0x00 || leaf data), 0x hex.")
    root: str
    proof: list[str]


class ConsistencyOut(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: int = Field(alias="from")
    to: int
    root_from: str
    root_to: str
    proof: list[str]


# --- participants -------------------------------------------------------------------------


class ParticipantOut(_Out):
    address: str
    roles: list[str]
    roles_mask: int
    status: str = Field(description="active | suspended | unregistered (operators, auditors)")
    identity_hash: str
    metadata_uri: str
    registered_block: int


class ParticipantsOut(_Out):
    total: int
    offset: int
    participants: list[ParticipantOut]


class ParticipantIn(BaseModel):
    """A participant to admit (operator only; the server's operator key sends it)."""

    model_config = ConfigDict(extra="forbid")

    address: AddressStr
    roles: list[Literal["provider", "consumer", "service"]] = Field(min_length=1, max_length=3)
    identity: str | None = Field(
        default=None,
        max_length=4096,
        description="A DID or legal identifier (its keccak256 is stored), or 0x + 64 hex "
        "digits (stored as the identity hash); none: the zero hash.",
    )
    metadata_uri: str = Field(default="", max_length=2048)


class ParticipantChangeOut(_Out):
    action: str = Field(description="registered | suspended | reinstated")
    participant: ParticipantOut
    tx_hash: str | None
    block: int | None


class AgreementOut(_Out):
    agreement_id: str
    asset_id: str
    consumer: str
    providers: list[str]
    unit_price: str
    policy_hash: str
    valid_from: int
    valid_until: int
    entry_id: str
    leaf_index: int


class AgreementsOut(_Out):
    party: str
    total: int
    offset: int
    agreements: list[AgreementOut]


# --- audit --------------------------------------------------------------------------------


class CheckOut(_Out):
    check: str
    ok: bool | None
    detail: str
    seq: int | None = None


class ReducedFieldsOut(_Out):
    """What a reduced receipt (T15) proves: the disclosed fields and their values."""

    proven: list[str] = Field(description="Disclosed fields, each opening its committed digest.")
    hidden: list[str] = Field(description="Fields committed in the leaf but not disclosed.")
    values: dict[str, Any] = Field(description="The disclosed values, by field name.")


class AuditReportOut(_Out):
    subject: str
    ok: bool
    verdict: str
    offline: bool
    first_failure: CheckOut | None
    checks: list[CheckOut]
    form: str | None = Field(
        default=None,
        description="The receipt's form: legacy (version 1), full or reduced (version 2).",
    )
    fields: ReducedFieldsOut | None = Field(
        default=None, description="A reduced receipt's proven and hidden fields."
    )


# --- ops ----------------------------------------------------------------------------------


class HealthOut(_Out):
    status: str


class ReadyOut(_Out):
    ready: bool
    checks: dict[str, Any]


# --- rounds -------------------------------------------------------------------------------

RoundId = Annotated[int, Field(ge=1, le=2**63 - 1, description="The round id on the vault.")]
UnixTime = Annotated[int, Field(ge=0, le=MAX_TIME)]


class RoundIn(BaseModel):
    """Compute a round (dry run): nothing is sent until ``propose``."""

    model_config = ConfigDict(extra="forbid")

    round_id: RoundId
    period_start: UnixTime
    period_end: UnixTime
    policy: dict[str, Any] = Field(description="The policy document (JSON form).")
    checkpoint_seq: Annotated[int | None, Field(ge=0, le=MAX_INDEX)] = Field(
        default=None, description="Anchored checkpoint to settle from; default the latest."
    )


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class RoundDraftOut(_Loose):
    status: str
    statement: dict[str, Any]


class RoundOut(_Loose):
    round_id: int
    status: str = Field(description="draft | Proposed | Disputed | Cancelled | Finalized | Closed")
    on_chain: dict[str, Any] | None
    computed: dict[str, Any] | None
    mirror: dict[str, Any] | None = Field(
        default=None,
        description="Claim progress from the indexer's mirror of the vault's events "
        "(`claimed_total`, `claim_count`, `swept_total`, `unclaimed`, as of `block_number`) "
        "and its `history`: each status-changing event (`event`, `status`, `block_number`); "
        "null until the indexer has seen the round.",
    )


class RoundSummaryOut(_Loose):
    round_id: int
    status: str
    payout_root: str | None
    total: str | None


class RoundsOut(_Out):
    total: int
    offset: int
    rounds: list[RoundSummaryOut]


class StatementOut(_Loose):
    round_id: int
    payout_root: str
    participant: dict[str, Any] | None
    bill: dict[str, Any] | None


class ClaimTxOut(_Out):
    to: str
    data: str
    value: str


class ClaimOut(_Out):
    round_id: int
    status: str
    index: int
    account: str
    amount: str
    proof: list[str]
    claimed: bool
    source: str = Field(description="'computed here' or 'published at <statementURI>'")
    transaction: ClaimTxOut


class BillOut(_Loose):
    consumer: str
    total: str
    agreements: list[dict[str, Any]]
    period: dict[str, int]
    checkpoint: dict[str, int]


class SettlementAuditOut(_Loose):
    subject: str
    ok: bool
    verdict: str
    checks: list[CheckOut]
