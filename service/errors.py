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


# --- input ------------------------------------------------------------------------------


class InvalidInput(TallyError):
    """The request or file is malformed."""

    code = "invalid_input"
    status = 400


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
