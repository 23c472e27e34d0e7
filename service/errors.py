"""Errors Tally raises on purpose.

Each subclass has a stable ``code`` (used by the API's error body and the CLI's
one-line message) and the HTTP ``status`` the API maps it to. Messages are safe
to show to callers: no keys, SQL or stack traces.
"""

from __future__ import annotations

from typing import Any, ClassVar


class TallyError(Exception):
    """Base of every error Tally raises on purpose."""

    code: ClassVar[str] = "tally_error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return self.message


# --- configuration ---------------------------------------------------------------------


class ConfigError(TallyError):
    """A configuration file or setting is missing, malformed or unsafe."""

    code = "config_invalid"
    status = 500


class NetworkNotFound(ConfigError):
    """No chain-config file for the named network."""

    code = "network_not_found"


class DeploymentNotFound(ConfigError):
    """No recorded deployment for the network."""

    code = "deployment_not_found"


class ArtifactNotFound(ConfigError):
    """A compiled contract artifact is missing from contracts/build/."""

    code = "artifact_not_found"


# --- chain ------------------------------------------------------------------------------


class ChainError(TallyError):
    """The chain node failed or answered something unusable."""

    code = "chain_error"
    status = 502


class RpcUnavailable(ChainError):
    """The JSON-RPC endpoint cannot be reached (after retries)."""

    code = "rpc_unavailable"
    status = 503


class TransactionReverted(ChainError):
    """A transaction or call reverted; ``error_name``/``error_args`` decode the reason."""

    code = "transaction_reverted"
    status = 409

    def __init__(
        self,
        message: str,
        *,
        error_name: str | None = None,
        error_args: tuple[Any, ...] = (),
        tx_hash: str | None = None,
    ) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.error_args = error_args
        self.tx_hash = tx_hash


class DevNodeError(ChainError):
    """The local anvil dev node could not be started or stopped."""

    code = "devnode_error"
    status = 500


class PortInUse(DevNodeError):
    """Another process already listens on the dev node's port."""

    code = "port_in_use"


# --- input ------------------------------------------------------------------------------


class InvalidInput(TallyError):
    """The request or file is malformed."""

    code = "invalid_input"
    status = 400


class InvalidDisclosure(InvalidInput):
    """A selective-disclosure string (T15) is not base64url JSON [salt, name, value]."""

    code = "invalid_disclosure"


class JsonTooDeep(InvalidInput):
    """A JSON document nests deeper than Tally parses (a stack-exhaustion attack)."""

    code = "json_too_deep"


class InvalidSignature(InvalidInput):
    """A signature is malformed, high-s, or recovers to someone other than the named party."""

    code = "invalid_signature"
    status = 422


class NotFound(TallyError):
    """The requested object does not exist."""

    code = "not_found"
    status = 404


# --- settlement -------------------------------------------------------------------------


class InvalidPolicy(InvalidInput):
    """A settlement policy or a method's parameters are malformed or inconsistent."""

    code = "policy_invalid"
    status = 422


class SettlementError(TallyError):
    """Payouts cannot be computed from the given inputs (no one to pay, bad amounts, …)."""

    code = "settlement_error"
    status = 422


# --- evidence entries (appended by T3 evidence/entries) ---------------------------------


class InvalidEntry(InvalidInput):
    """An evidence entry is malformed: bad or missing fields, or undecodable entry bytes."""

    code = "invalid_entry"
    status = 422


class SignerMismatch(InvalidSignature):
    """An entry's signers are not exactly the parties that must sign it (missing or extra)."""

    code = "signer_mismatch"


# --- evidence ingest --------------------------------------------------------------------


class UnknownParticipant(InvalidInput):
    """A party is not registered in the ParticipantRegistry."""

    code = "unknown_participant"
    status = 422


class ParticipantSuspended(InvalidInput):
    """A party is registered but suspended."""

    code = "participant_suspended"
    status = 403


class WrongRole(InvalidInput):
    """A party lacks the role its part in the entry needs."""

    code = "wrong_role"
    status = 422


class UnknownAgreement(InvalidInput):
    """An entry refers to an agreement the log does not hold."""

    code = "unknown_agreement"
    status = 422


class AgreementMismatch(InvalidInput):
    """An entry contradicts its agreement (parties, validity window)."""

    code = "agreement_mismatch"
    status = 422


class NonceReused(InvalidInput):
    """A consumer's receipt nonce was already used for the agreement."""

    code = "nonce_reused"
    status = 409


class CheckpointNotFound(NotFound):
    """No such checkpoint (anchor) exists."""

    code = "checkpoint_not_found"


class EntryNotFound(NotFound):
    """No log entry has that id."""

    code = "entry_not_found"


class NotAnchored(NotFound):
    """The entry is in the log but no anchored checkpoint covers it yet."""

    code = "not_anchored"


class LogBoundElsewhere(TallyError):
    """The log database belongs to another deployment (chain id or EvidenceLedger)."""

    code = "log_deployment_mismatch"
    status = 409


# --- indexer (appended by T4 indexer) ---------------------------------------------------


class IndexerError(TallyError):
    """The chain indexer cannot go on (its cursor stays where it was)."""

    code = "indexer_error"
    status = 500


class IndexerRpcError(IndexerError):
    """The node keeps failing a request the indexer cannot split any further."""

    code = "indexer_rpc_error"
    status = 502


class IndexerConflict(IndexerError):
    """Another indexer moved the cursor of the same deployment meanwhile."""

    code = "indexer_conflict"
    status = 409


# --- audit (appended by T3 audit) -------------------------------------------------------


class LogUnavailable(TallyError):
    """The operator's log cannot be read to serve a root or a proof."""

    code = "log_unavailable"
    status = 503


# --- HTTP API (appended by T6 api) ------------------------------------------------------


class Unauthenticated(TallyError):
    """The request needs a valid bearer token or API key and has none."""

    code = "unauthenticated"
    status = 401


class InvalidToken(Unauthenticated):
    """The bearer token or API key is malformed, forged, expired or revoked."""

    code = "invalid_token"


class SignInRejected(Unauthenticated):
    """A Sign-In with Ethereum message is malformed or names another domain, URI or chain."""

    code = "sign_in_rejected"


class ChallengeUnknown(SignInRejected):
    """The sign-in nonce was never issued (or was issued for another address)."""

    code = "challenge_unknown"


class ChallengeExpired(SignInRejected):
    """The sign-in nonce is past its expiry time."""

    code = "challenge_expired"


class ChallengeUsed(SignInRejected):
    """The sign-in nonce was already redeemed (a replay)."""

    code = "challenge_used"


class SignatureMismatch(SignInRejected):
    """The sign-in signature was not made by the address the message names."""

    code = "signature_mismatch"


class Forbidden(TallyError):
    """The caller is authenticated but may not do this."""

    code = "forbidden"
    status = 403


class RoleRequired(Forbidden):
    """The caller lacks every role the endpoint accepts."""

    code = "role_required"


class NotAParticipant(Forbidden):
    """The address is neither a registered participant nor an operator or auditor."""

    code = "not_a_participant"


class ParticipantNotFound(NotFound):
    """The registry knows nothing about that address."""

    code = "participant_not_found"


class ApiKeyNotFound(NotFound):
    """No API key has that id."""

    code = "api_key_not_found"


class TreeSizeNotFound(NotFound):
    """The log has not reached the requested tree size."""

    code = "tree_size_not_found"


class PayloadTooLarge(TallyError):
    """The request body is larger than the configured limit."""

    code = "payload_too_large"
    status = 413


class BatchTooLarge(PayloadTooLarge):
    """An evidence batch has more entries than the configured limit."""

    code = "batch_too_large"


class RateLimited(TallyError):
    """The caller sent more requests than its rate limit allows; retry after a while."""

    code = "rate_limited"
    status = 429


class MirrorNotReady(TallyError):
    """The indexer's SQL mirror has not indexed this deployment yet."""

    code = "indexer_not_ready"
    status = 503


# --- settlement rounds (appended by T5 settlement) --------------------------------------


class NothingToSettle(SettlementError):
    """The round's period has no revenue below the checkpoint: there is nothing to pay."""

    code = "nothing_to_settle"
    status = 422


class InsufficientUnallocated(SettlementError):
    """The vault's unallocated balance is below the round's pool: deposit first."""

    code = "insufficient_unallocated"
    status = 409


class RoundMismatch(SettlementError):
    """A payout file or computed round disagrees with the round on chain."""

    code = "round_mismatch"
    status = 409


class RoundNotFound(NotFound):
    """No settlement round with that id exists on the vault."""

    code = "round_not_found"


class LogExportInvalid(InvalidInput):
    """A log export file (or entry source) is malformed or not the one asked for."""

    code = "log_export_invalid"
    status = 422


# --- HTTP API: rounds (appended by T6 api) ----------------------------------------------


class RoundExists(TallyError):
    """A round with that id is already on the vault; compute a new round under a new id."""

    code = "round_exists"
    status = 409


class StatementNotFound(NotFound):
    """The round pays nothing to that address and it took part in no agreement of it."""

    code = "statement_not_found"


class ClaimNotFound(NotFound):
    """The round has no payout for that address."""

    code = "claim_not_found"


class OperatorKeyUnavailable(TallyError):
    """This server has no operator key configured, so it cannot send operator transactions."""

    code = "operator_key_unavailable"
    status = 503


# --- settlement vault v2 (appended by T9 settlement) ------------------------------------


class InsufficientBalance(InsufficientUnallocated):
    """A funding consumer's free balance on the vault is below its bill for the round."""

    code = "insufficient_balance"
    status = 409


class PolicyMismatch(SettlementError):
    """A settled agreement names another policy hash than the round's policy."""

    code = "policy_mismatch"
    status = 422


class StatementUnavailable(TallyError):
    """The round's published statement (its statementURI) cannot be fetched or read (409:
    the round on chain and what it publishes disagree; the message names the URI only)."""

    code = "statement_unavailable"
    status = 409


# --- participant admin (appended by T17) ------------------------------------------------


class UnknownRole(InvalidInput):
    """A participant role name is not provider, consumer or service."""

    code = "unknown_role"
    status = 422


class InvalidAddress(InvalidInput):
    """Not a chain address (0x + 40 hex digits, a correct EIP-55 checksum if mixed case)."""

    code = "invalid_address"
    status = 422


class ParticipantAlreadyRegistered(TallyError):
    """The address is registered already (update it, or suspend it)."""

    code = "already_registered"
    status = 409


class ParticipantAlreadySuspended(TallyError):
    """The participant is suspended already."""

    code = "already_suspended"
    status = 409


class ParticipantNotSuspended(TallyError):
    """The participant is active: there is nothing to reinstate."""

    code = "not_suspended"
    status = 409


# --- cross-space usage (appended by T10 interconnection) --------------------------------


class HomeSpaceUnknown(InvalidInput):
    """An agreement names a home space (chain id + registry) this space does not accept."""

    code = "home_space_unknown"
    status = 422


class ProviderNotActiveInHomeSpace(InvalidInput):
    """A cross-space provider is not a registered, active provider in its home registry."""

    code = "provider_not_active_in_home_space"
    status = 403


class HomeSpaceUnreachable(TallyError):
    """The home space's chain cannot be read now; nothing was stored, retry later."""

    code = "home_space_unreachable"
    status = 503


# --- catalog and usage terms (appended by T11 catalog) ----------------------------------


class TermsUnsupported(InvalidInput):
    """A usage-terms document uses ODRL the profile does not support, or is malformed."""

    code = "terms_unsupported"
    status = 422


class TermsNotNarrower(InvalidInput):
    """An agreement's terms allow something its offer's terms do not."""

    code = "terms_not_narrower"
    status = 422


class UnknownTerms(InvalidInput):
    """An agreement's termsHash names no terms document the catalog holds."""

    code = "unknown_terms"
    status = 422


class OfferInvalid(InvalidInput):
    """An Offer or OfferWithdrawal contradicts the catalog (version order, providers)."""

    code = "offer_invalid"
    status = 422


class UnknownOffer(InvalidInput):
    """An entry names an offer version the log does not hold (or one withdrawn)."""

    code = "unknown_offer"
    status = 422


class OfferNotFound(NotFound):
    """The catalog has no offer with that id."""

    code = "offer_not_found"


class QuotaExceeded(InvalidInput):
    """A receipt would take its agreement's usage beyond a quota of its terms."""

    code = "quota_exceeded"
    status = 409


class AgreementNotValid(InvalidInput):
    """A receipt's period lies outside the validity its agreement's terms allow."""

    code = "agreement_not_valid"
    status = 422


class PurposeNotPermitted(InvalidInput):
    """A receipt's purpose is not one its agreement's terms permit."""

    code = "purpose_not_permitted"
    status = 403


class PrepaidExhausted(InvalidInput):
    """A receipt under a prepaid offer would cost more than the consumer's vault balance
    still covers (:mod:`service.catalog.billing`)."""

    code = "prepaid_exhausted"
    status = 402
