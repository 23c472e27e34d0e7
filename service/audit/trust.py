"""The deployment an auditor trusts: which EvidenceLedger and registry are the data space's.

A receipt names the contract it was anchored on, but anyone can deploy a registry and a
ledger of their own on the same chain, admit two fresh keys and anchor a receipt between
them: every proof in it then verifies against *that* ledger. So an online audit only
passes against a pinned deployment, taken from a source the auditor trusts:

- a deployment file (``chain-config/deployments/<network>.json``, written by
  ``tally deploy``, or one the data space publishes): ledger, registry, chain id and the
  registry's deployment block (where its events start);
- a ledger address alone (``--ledger``): its registry is the one the ledger itself
  names (``EvidenceLedger.registry()`` is immutable), read from block 0;
- the API uses the deployment it serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.chain.config import Deployment, load_deployment
from service.evidence.eip712 import parse_address

__all__ = ["TrustedDeployment"]


@dataclass(frozen=True)
class TrustedDeployment:
    """A pinned deployment. ``registry`` None: the ledger's own ``registry()``."""

    ledger: str
    source: str  # what pinned it, for messages ("deployment file x.json", "--ledger")
    chain_id: int | None = None
    registry: str | None = None
    from_block: int = 0  # the registry's logs start here

    @classmethod
    def from_deployment(cls, deployment: Deployment, *, source: str) -> TrustedDeployment:
        registry = deployment.contracts.get("ParticipantRegistry")
        return cls(
            ledger=parse_address(deployment.address("EvidenceLedger")),
            source=source,
            chain_id=deployment.chain_id,
            registry=None if registry is None else parse_address(registry.address),
            from_block=deployment.deploy_block if registry is None else registry.block,
        )

    @classmethod
    def from_file(cls, path: Path) -> TrustedDeployment:
        """The deployment in ``path`` (:class:`~service.errors.DeploymentNotFound` if none)."""
        return cls.from_deployment(load_deployment(path), source=f"deployment file {path}")

    @classmethod
    def from_ledger(cls, address: str) -> TrustedDeployment:
        """Only the ledger is pinned (a malformed address is a ``ValueError``)."""
        ledger = parse_address(address)
        return cls(ledger=ledger, source=f"--ledger {ledger}")
