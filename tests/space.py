"""A small deployed data space on the embedded chain, shared by evidence/settlement tests."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from service.chain.client import Chain
from service.chain.deploy import TallyContracts, deploy_tally
from service.evidence.directory import CONSUMER, PROVIDER
from service.evidence.eip712 import Domain


@dataclass
class Space:
    chain: Chain
    contracts: TallyContracts
    operator: LocalAccount
    auditor: LocalAccount
    providers: list[LocalAccount]
    consumers: list[LocalAccount]
    outsider: LocalAccount  # never registered
    domain: Domain

    def key(self, acct: LocalAccount) -> bytes:
        return bytes(acct.key)


def build_space(chain: Chain, *, challenge_window_s: int = 3_600) -> Space:
    a = chain.accounts
    operator, auditor = a[0], a[1]
    providers, consumers, outsider = [a[2], a[3], a[4]], [a[5], a[6]], a[9]
    contracts = deploy_tally(chain, admin=operator, challenge_window_s=challenge_window_s)
    reg = contracts.registry
    chain.transact(
        reg.functions.grantRole(chain.call(reg.functions.AUDITOR_ROLE()), auditor.address),
        sender=operator,
    )
    for i, p in enumerate(providers):
        chain.transact(
            reg.functions.register(p.address, PROVIDER, bytes([i + 1]) * 32, f"did:p{i}"),
            sender=operator,
        )
    for i, c in enumerate(consumers):
        chain.transact(
            reg.functions.register(c.address, CONSUMER, bytes([i + 9]) * 32, f"did:c{i}"),
            sender=operator,
        )
    domain = Domain(chain_id=chain.chain_id, verifying_contract=contracts.ledger.address)
    return Space(chain, contracts, operator, auditor, providers, consumers, outsider, domain)
