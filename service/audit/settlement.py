"""Audit a settlement round: recompute it from the chain, the public log and the policy.

The chain is the trusted side: the SettlementVault holds the round (payout root, total,
evidence checkpoint seq, policy hash) and the EvidenceLedger the checkpoint (tree size,
root). The log entries come from an :class:`~service.audit.sources.EntrySource` (a
Tally API's public routes, an export file written by ``tally log export``, or the
operator's database through :mod:`service.evidence.sources`); the policy document from
the auditor. Nothing the
operator serves is trusted: the entries must rebuild the anchored root, every signature
is re-verified, and the payouts are recomputed by the same pure core the operator runs
(:func:`service.settlement.engine.settle_entries`), this time from decoded entries.

Checks, in order (the name is what the CLI and the JSON report give):

===================  =================================================================
``round``            the round exists on the vault (any status; cancelled is noted)
``period``           the round's on-chain period is the statement's (the payout file's
                     ``period``, or the one the auditor gives); the recomputation always
                     uses the on-chain period
``overlap``          no other round on the vault that was not cancelled (its
                     ``RoundProposed`` and ``RoundCancelled`` events) overlaps the period,
                     so no evidence is paid twice
``ledger``           the given EvidenceLedger is the vault's
``checkpoint``       the round's evidence checkpoint is on the ledger
``policy_hash``      SHA-256 of the policy's canonical form is the round's policy hash
``log_entries``      the source gives exactly leaves 0 .. size-1 (none hidden, none extra)
``log_root``         the RFC 9162 root of those entries is the anchored root
``decode``           every entry is canonical TALLY-ENTRY-V1 bytes
``signatures``       every entry is signed in this deployment's EIP-712 domain by exactly
                     its required signers (recovered in parallel over the cores)
``agreements``       every entry names an agreement earlier in the log, its parties are the
                     agreement's, its period lies in the agreement's validity, receipt
                     nonces are unique, no entry appears twice
``roles``            at the checkpoint's block, the registry gives every party the role
                     its part needs, replayed from the registry's events (``eth_getLogs``
                     up to that block: no archive node needed; suspension is not checked:
                     evidence signed before a suspension stays valid, and the audit
                     cannot time it); a provider of a cross-space agreement instead is
                     a registered, active provider in its home space's registry when
                     the entry was appended (``home_registries``, the home spaces the
                     auditor trusts: :mod:`service.audit.homespace`)
``agreement_policies`` every agreement with receipts in the period names the round's policy
                     hash (``Agreement.policyHash``): the parties signed for that policy
``published_payouts`` (only with a payout file) the file's payouts rebuild the on-chain
                     root, so its lines can be compared one by one
``payouts``          the recomputed payout root and total equal the round's; on a
                     mismatch the first differing payout is named (with a payout file)
``debits``           what the round took from each consumer (``funders()``, the
                     ``RoundDebited`` events) is exactly its recomputed bill
===================  =================================================================

A check that cannot be meaningful after an earlier failure is reported as skipped (for
instance no recomputation from a log that does not match the anchored root, or under a
policy that is not the round's). The sources (:mod:`service.audit.sources`: the API,
the export file and its format) are one interface; a source that cannot give the
entries, or gives a bad answer, fails ``log_entries`` with what went wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from web3.contract import Contract

from service.audit.homespace import HomeRegistries
from service.audit.receipt import AuditReport
from service.audit.roles import RegistryHistory
from service.audit.sources import (
    EXPORT_FORMAT,
    EntrySource,
    ExportFileSource,
    entry_leaf_hash,
    leaves_of,
)
from service.chain.client import Chain
from service.errors import (
    InvalidEntry,
    InvalidInput,
    NotFound,
    PolicyMismatch,
    SettlementError,
    TallyError,
)
from service.evidence.anchor import OnChainCheckpoint, read_all_checkpoints, read_checkpoint
from service.evidence.directory import CONSUMER, PROVIDER, STATUS_NONE
from service.evidence.eip712 import Domain, to_checksum_address
from service.evidence.entries import (
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
    decode_entry,
    entry_id,
    verify_many,
)
from service.evidence.log import required_for
from service.evidence.merkle import root_from_leaf_hashes
from service.settlement.engine import RoundResult, settle_entries
from service.settlement.payout_tree import build_payout_tree
from service.settlement.policy import Policy, parse_policy
from service.settlement.rounds import OnChainRound, debits_of, read_round

__all__ = [
    "EXPORT_FORMAT",
    "EntrySource",
    "ExportFileSource",
    "SettlementAuditReport",
    "audit_settlement",
    "overlapping_rounds",
]
MAX_SQL_INT = 2**63 - 1


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


# --- the report ---------------------------------------------------------------------------


@dataclass
class SettlementAuditReport(AuditReport):
    """An :class:`AuditReport` with the round as read and the recomputation."""

    round: dict[str, Any] = field(default_factory=dict)
    recomputed: dict[str, Any] | None = None
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out["round"] = self.round
        out["recomputed"] = self.recomputed
        out["mismatches"] = self.mismatches
        return out


def _skip(report: AuditReport, names: Sequence[str], why: str) -> None:
    for name in names:
        report.add(name, None, f"skipped: {why}")


# --- entry checks -------------------------------------------------------------------------


@dataclass
class _AgreementView:
    consumer: str
    providers: frozenset[str]
    provider_list: tuple[str, ...]
    valid_from: int
    valid_until: int


def _agreement_problem(entries: Sequence[SignedEntry]) -> str | None:
    """The first entry that breaks an agreement rule, as ingest applies them (or None)."""
    agreements: dict[bytes, _AgreementView] = {}
    nonces: set[tuple[bytes, str, int]] = set()
    ids: set[bytes] = set()
    for index, signed in enumerate(entries):
        e = signed.entry
        eid = signed.id()
        if eid in ids:
            return f"leaf {index}: entry {_hex(eid)} appears twice in the log"
        ids.add(eid)
        if isinstance(e, Offer | OfferWithdrawal):  # catalog entries name no agreement (T11)
            continue
        if isinstance(e, Agreement):
            agreements.setdefault(
                e.agreementId,
                _AgreementView(
                    e.consumer,
                    frozenset(e.providers),
                    tuple(e.providers),
                    e.validFrom,
                    e.validUntil,
                ),
            )
            continue
        found = agreements.get(e.agreementId)
        what = f"leaf {index} ({signed.entry_type_name})"
        if found is None:
            return f"{what}: agreement {_hex(e.agreementId)} is not earlier in the log"
        if e.periodStart < found.valid_from or e.periodEnd > found.valid_until:
            return (
                f"{what}: period [{e.periodStart}, {e.periodEnd}) lies outside the agreement's "
                f"validity [{found.valid_from}, {found.valid_until})"
            )
        if isinstance(e, UsageReceipt):
            if e.consumer != found.consumer:
                return f"{what}: consumer {e.consumer} is not the agreement's consumer"
            if e.provider not in found.providers:
                return f"{what}: {e.provider} is not a provider of the agreement"
            if e.units > MAX_SQL_INT or e.nonce > MAX_SQL_INT:
                return f"{what}: units or nonce above 2**63 - 1"
            key = (e.agreementId, e.consumer, e.nonce)
            if key in nonces:
                return f"{what}: nonce {e.nonce} of {e.consumer} is used twice"
            nonces.add(key)
        elif isinstance(e, QualityAttestation | ContributionDeclaration):
            if e.provider not in found.providers:
                return f"{what}: {e.provider} is not a provider of the agreement"
        elif isinstance(e, CoalitionValues) and sorted(e.providers) != sorted(found.provider_list):
            return f"{what}: the coalition's providers are not the agreement's"
        elif isinstance(e, ValuationResult) and sorted(e.providers) != sorted(found.provider_list):
            return f"{what}: the valuation's providers are not the agreement's"  # T13
    return None


class _Registry:
    """Roles at one block, replayed from the registry's events (``eth_getLogs`` from
    ``from_block`` up to ``block``: :class:`~service.audit.roles.RegistryHistory`), so a
    node that keeps no historical state (not an archive node) serves the audit.

    Providers of cross-space agreements are checked in their home space instead
    (``homes``: the home spaces the auditor pinned; :mod:`service.audit.homespace`),
    at the time the entry was appended (the ledger's checkpoints, read when first needed).
    """

    def __init__(
        self,
        chain: Chain,
        registry: Contract,
        block: int,
        *,
        from_block: int = 0,
        homes: HomeRegistries | None = None,
        ledger: Contract | None = None,
    ) -> None:
        fns = registry.functions
        self.auditor_role = bytes(chain.call(fns.AUDITOR_ROLE()))  # constants: latest state
        self.operator_role = bytes(chain.call(fns.OPERATOR_ROLE()))
        self._view = RegistryHistory(chain, registry, from_block=from_block).at(block)
        self._chain = chain
        self._ledger = ledger
        self._homes = homes or HomeRegistries()
        self._checkpoints: list[OnChainCheckpoint] | None = None

    def party(self, address: str) -> tuple[int, int]:
        """(roles bitmask, status) at the block."""
        return self._view.party(address)

    def has(self, role: bytes, address: str) -> bool:
        return self._view.has(role, address)

    def with_role(self, address: str, bit: int) -> bool:
        return self._view.with_role(address, bit)

    def home_problem(self, agreement: AgreementV2, address: str, leaf_index: int) -> str | None:
        """Why ``address`` was not an active provider in ``agreement``'s home space when
        leaf ``leaf_index`` was appended (None: it was)."""
        if self._checkpoints is None:
            self._checkpoints = (
                [] if self._ledger is None else read_all_checkpoints(self._chain, self._ledger)
            )
        return self._homes.problem(
            chain_id=agreement.homeChainId,
            registry=agreement.homeRegistry,
            address=address,
            leaf_index=leaf_index,
            checkpoints=self._checkpoints,
        )


def _role_problem(entries: Sequence[SignedEntry], registry: _Registry) -> str | None:
    """The first entry whose parties lack their roles at the checkpoint block (or None).

    A provider of a cross-space agreement (T10) is checked in its home space instead:
    registered, provider role and active there when the entry was appended."""
    consumers: dict[bytes, str] = {}
    cross: dict[bytes, AgreementV2] = {}  # cross-space agreements by id
    for index, signed in enumerate(entries):
        e = signed.entry
        what = f"leaf {index} ({signed.entry_type_name})"
        needs: list[tuple[str, int, str]] = []  # (address, role bit, what it is)
        home_providers: list[tuple[AgreementV2, str]] = []
        if isinstance(e, Agreement):
            first = e.agreementId not in consumers
            consumers.setdefault(e.agreementId, e.consumer)
            needs.append((e.consumer, CONSUMER, "consumer"))
            if isinstance(e, AgreementV2) and e.cross_space:
                if first:
                    cross[e.agreementId] = e
                home_providers.extend((e, p) for p in e.providers)
            else:
                needs.extend((p, PROVIDER, "provider") for p in e.providers)
        elif isinstance(e, UsageReceipt):
            needs.append((e.consumer, CONSUMER, "consumer"))
            if e.agreementId in cross:
                home_providers.append((cross[e.agreementId], e.provider))
            else:
                needs.append((e.provider, PROVIDER, "provider"))
        elif isinstance(e, Offer | OfferWithdrawal):  # T11: signed by its providers
            needs.extend((p, PROVIDER, "provider") for p in e.providers)
        elif isinstance(e, RevenueDeclaration):  # T11: signed by the agreement's consumer
            if consumers.get(e.agreementId) != e.consumer:
                return f"{what}: consumer {e.consumer} is not the agreement's consumer"
            needs.append((e.consumer, CONSUMER, "consumer"))
        elif (
            isinstance(e, QualityAttestation | CoalitionValues | ValuationResult)
            and len(signed.signatures) != 1
        ):
            return f"{what}: {len(signed.signatures)} signers where one is expected"
        elif isinstance(e, QualityAttestation):
            _provider_need(e.agreementId, e.provider, cross, needs, home_providers)
            (attester,) = signed.signatures
            if attester == consumers.get(e.agreementId):
                needs.append((attester, CONSUMER, "attester (consumer)"))
            elif not registry.has(registry.auditor_role, attester):
                return f"{what}: attester {attester} is neither the consumer nor an auditor"
        elif isinstance(e, ContributionDeclaration):
            _provider_need(e.agreementId, e.provider, cross, needs, home_providers)
            for signer in signed.signatures:
                if signer != e.provider and not registry.has(registry.operator_role, signer):
                    return f"{what}: countersigner {signer} is not an operator"
        else:
            (evaluator,) = signed.signatures
            if not (
                registry.has(registry.auditor_role, evaluator)
                or registry.has(registry.operator_role, evaluator)
                or registry.party(evaluator)[1] != STATUS_NONE
            ):
                return f"{what}: evaluator {evaluator} is not registered"
        for address, bit, role in needs:
            if not registry.with_role(address, bit):
                return f"{what}: {role} {address} is not registered with that role"
        for agreement, address in home_providers:
            problem = registry.home_problem(agreement, address, index)
            if problem is not None:
                return f"{what}: provider {address} {problem}"
    return None


def _provider_need(
    agreement_id: bytes,
    provider: str,
    cross: Mapping[bytes, AgreementV2],
    needs: list[tuple[str, int, str]],
    home_providers: list[tuple[AgreementV2, str]],
) -> None:
    """A provider checked in its agreement's home space (cross-space) or here."""
    if agreement_id in cross:
        home_providers.append((cross[agreement_id], provider))
    else:
        needs.append((provider, PROVIDER, "provider"))


# --- payouts ------------------------------------------------------------------------------


def _payout_mismatches(
    recomputed: Mapping[str, int], published: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Every account whose published payout differs from the recomputed one, by address."""
    out: list[dict[str, Any]] = []
    for account in sorted(set(recomputed) | set(published)):
        want, got = recomputed.get(account, 0), published.get(account, 0)
        if want == got:
            continue
        if not want:
            kind, text = "extra", f"extra payout of {got} to {to_checksum_address(account)}"
        elif not got:
            kind, text = "missing", f"missing payout of {want} to {to_checksum_address(account)}"
        else:
            kind = "amount"
            text = f"payout to {to_checksum_address(account)} is {got}, recomputed {want}"
        out.append(
            {
                "kind": kind,
                "account": to_checksum_address(account),
                "published": str(got),
                "recomputed": str(want),
                "detail": text,
            }
        )
    return out


def _period_of(payouts_doc: Mapping[str, Any]) -> tuple[int, int] | None:
    period = payouts_doc.get("period")
    if not isinstance(period, Mapping):
        return None
    start, end = period.get("start"), period.get("end")
    if type(start) is not int or type(end) is not int:
        return None
    return start, end


def _published(payouts_doc: Mapping[str, Any]) -> tuple[dict[str, int], bytes]:
    try:
        claims = payouts_doc["claims"]
        amounts = {str(c["account"]).lower(): int(c["amount"]) for c in claims}
        round_id = int(payouts_doc["round_id"])
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidInput(f"the payout file is malformed: {err!r}") from None
    tree = build_payout_tree(round_id=round_id, payouts=amounts)
    return amounts, tree.root


# --- the audit ----------------------------------------------------------------------------


def audit_settlement(
    *,
    chain: Chain,
    vault: Contract,
    ledger: Contract,
    round_id: int,
    entries_source: EntrySource,
    policy_doc: Policy | Mapping[str, Any],
    payouts_doc: Mapping[str, Any] | None = None,
    period: tuple[int, int] | None = None,
    workers: int | None = None,
    from_block: int = 0,
    home_registries: HomeRegistries | None = None,
) -> SettlementAuditReport:
    """Recompute round ``round_id`` and check it against the chain (see the module doc).

    ``policy_doc``: the policy (parsed, or a document to parse). ``payouts_doc``: the
    round's published claim file (``payouts.json``), to name the first differing payout.
    ``period``: the statement's ``(start, end)`` to hold against the on-chain period (by
    default the payout file's ``period``); the recomputation uses the on-chain period.
    ``from_block``: where the vault's and the registry's events are read from for the
    ``overlap`` and ``roles`` checks (the deployment block). ``home_registries``: the
    home spaces (chain + trusted registry) whose providers cross-space agreements name.
    Returns the report; raises only when the chain cannot be read.
    """
    report = SettlementAuditReport(subject=f"settlement round {round_id}")
    names_after_round = [
        "period",
        "overlap",
        "ledger",
        "checkpoint",
        "policy_hash",
        "log_entries",
        "log_root",
        "decode",
        "signatures",
        "agreements",
        "roles",
        "agreement_policies",
        "payouts",
        "debits",
    ]
    try:
        rnd = read_round(chain=chain, vault=vault, round_id=round_id)
    except NotFound as err:
        report.add("round", False, err.message)
        _skip(report, names_after_round, "no such round")
        return report
    report.round = _round_json(rnd)
    report.add(
        "round",
        True,
        f"{rnd.status}: root {_hex(rnd.payout_root)}, total {rnd.total}, checkpoint "
        f"{rnd.evidence_seq}, policy {_hex(rnd.policy_hash)}",
    )
    if period is None and payouts_doc is not None:
        period = _period_of(payouts_doc)
    _check_period(report, rnd, period)
    _check_overlap(report, chain, vault, rnd, from_block)

    vault_ledger = str(chain.call(vault.functions.ledger()))
    if vault_ledger.lower() != str(ledger.address).lower():
        report.add("ledger", False, f"the vault's ledger is {vault_ledger}, not {ledger.address}")
        _skip(report, names_after_round[names_after_round.index("checkpoint") :], "wrong ledger")
        return report
    report.add("ledger", True, f"EvidenceLedger {ledger.address}")

    try:
        cp = read_checkpoint(chain, ledger, rnd.evidence_seq)
    except NotFound as err:
        report.add("checkpoint", False, err.message)
        _skip(report, names_after_round[names_after_round.index("policy_hash") :], "no checkpoint")
        return report
    report.add(
        "checkpoint",
        True,
        f"checkpoint {cp.seq}: size {cp.tree_size}, root {_hex(cp.root)}, block {cp.block_number}",
    )

    policy = _check_policy(report, policy_doc, rnd)

    entries = _check_log(report, entries_source, cp)
    if entries is None:
        _skip(
            report,
            names_after_round[names_after_round.index("decode") :],
            "the log does not match the anchored checkpoint",
        )
        return report

    decoded = _decode(report, entries)
    if decoded is None:
        _skip(
            report, names_after_round[names_after_round.index("signatures") :], "undecodable entry"
        )
        return report

    domain = Domain(chain_id=chain.chain_id, verifying_contract=ledger.address)
    entries_ok = _check_signatures(report, decoded, domain, workers)
    problem = _agreement_problem(decoded)
    report.add(
        "agreements",
        problem is None,
        problem or f"{len(decoded)} entries agree with their agreements",
    )
    entries_ok = entries_ok and problem is None
    registry = chain.contract("ParticipantRegistry", str(chain.call(vault.functions.registry())))
    role_problem = _role_problem(
        decoded,
        _Registry(
            chain,
            registry,
            cp.block_number,
            from_block=from_block,
            homes=home_registries,
            ledger=ledger,
        ),
    )
    report.add(
        "roles",
        role_problem is None,
        role_problem or f"every party held its role at block {cp.block_number}",
    )
    entries_ok = entries_ok and role_problem is None

    recomputing = ["agreement_policies", "payouts", "debits"]
    if policy is None:
        _skip(report, recomputing, "the policy is not the round's")
        return report
    if not entries_ok:
        _skip(report, recomputing, "the log holds evidence that is not valid")
        return report
    _check_payouts(report, chain, vault, decoded, rnd, cp, policy, payouts_doc)
    return report


def _round_json(rnd: OnChainRound) -> dict[str, Any]:
    return {
        "round_id": rnd.round_id,
        "status": rnd.status,
        "payout_root": _hex(rnd.payout_root),
        "total": str(rnd.total),
        "evidence_seq": rnd.evidence_seq,
        "policy_hash": _hex(rnd.policy_hash),
        "period": {"start": rnd.period_start, "end": rnd.period_end},
        "paid": str(rnd.paid),
        "statement_uri": rnd.statement_uri,
    }


def _check_period(report: AuditReport, rnd: OnChainRound, stated: tuple[int, int] | None) -> None:
    """The on-chain period against the statement's (when one is given)."""
    on_chain = (rnd.period_start, rnd.period_end)
    text = f"[{on_chain[0]}, {on_chain[1]})"
    if stated is None:
        report.add("period", True, f"on chain {text} (no statement period given to compare)")
    elif tuple(stated) != on_chain:
        report.add(
            "period",
            False,
            f"the statement's period [{stated[0]}, {stated[1]}) is not the round's on-chain "
            f"period {text}",
        )
    else:
        report.add("period", True, f"the statement's period is the on-chain period {text}")


def overlapping_rounds(
    *,
    round_id: int,
    period: tuple[int, int],
    proposed: Mapping[int, tuple[int, int]],
    cancelled: set[int],
) -> list[tuple[int, tuple[int, int]]]:
    """The rounds other than ``round_id`` in ``proposed`` (id -> half-open period), not
    cancelled, whose period intersects ``period``; by round id."""
    start, end = period
    return [
        (other, (a, b))
        for other, (a, b) in sorted(proposed.items())
        if other != round_id and other not in cancelled and a < end and start < b
    ]


def _check_overlap(
    report: AuditReport, chain: Chain, vault: Contract, rnd: OnChainRound, from_block: int
) -> None:
    """No other round that was not cancelled overlaps ``rnd``'s period (vault events)."""
    proposed = {
        int(ev["args"]["roundId"]): (int(ev["args"]["periodStart"]), int(ev["args"]["periodEnd"]))
        for ev in vault.events.RoundProposed().get_logs(from_block=from_block)
    }
    cancelled = {
        int(ev["args"]["roundId"])
        for ev in vault.events.RoundCancelled().get_logs(from_block=from_block)
    }
    start, end = rnd.period_start, rnd.period_end
    clashes = [
        f"round {other} [{a}, {b})"
        for other, (a, b) in overlapping_rounds(
            round_id=rnd.round_id, period=(start, end), proposed=proposed, cancelled=cancelled
        )
    ]
    others = len(set(proposed) - {rnd.round_id})
    if clashes:
        report.add(
            "overlap",
            False,
            f"the period [{start}, {end}) overlaps " + ", ".join(clashes) + ": the same "
            "evidence would be paid twice",
        )
    else:
        report.add(
            "overlap",
            True,
            f"no other non-cancelled round of the {others} other(s) on the vault overlaps "
            f"[{start}, {end})",
        )


def _check_policy(
    report: AuditReport, policy_doc: Policy | Mapping[str, Any], rnd: OnChainRound
) -> Policy | None:
    """The policy, if it is valid and its hash is the round's."""
    try:
        policy = policy_doc if isinstance(policy_doc, Policy) else parse_policy(policy_doc)
    except InvalidInput as err:
        report.add("policy_hash", False, f"the policy is not valid: {err.message}")
        return None
    if policy.hash != rnd.policy_hash:
        report.add(
            "policy_hash",
            False,
            f"the policy hashes to {policy.hash_hex}, the round names {_hex(rnd.policy_hash)}",
        )
        return None
    report.add("policy_hash", True, f"policy {policy.hash_hex}")
    return policy


def _check_log(
    report: AuditReport, source: EntrySource, cp: OnChainCheckpoint
) -> list[bytes] | None:
    """The entries below the checkpoint size, if they are exactly the anchored leaves."""
    size = cp.tree_size
    entries: list[bytes] = []
    hashes: list[bytes] = []
    problem = None
    try:
        for index, data, salt in leaves_of(source, size=size):
            if index != len(entries):
                problem = (
                    f"leaf {len(entries)} is missing from {source.describe()}"
                    if index > len(entries)
                    else f"{source.describe()} gives leaf {index} twice or out of order"
                )
                break
            entries.append(data)
            hashes.append(entry_leaf_hash(data, salt))
    except TallyError as err:
        report.add("log_entries", False, f"cannot read {source.describe()}: {err.message}")
        _skip(report, ["log_root"], "no log")
        return None
    if problem is None and len(entries) < size:
        problem = (
            f"{source.describe()} has {len(entries)} entries below the checkpoint size {size}: "
            f"leaf {len(entries)} is missing"
        )
    if problem is not None:
        report.add("log_entries", False, problem)
        _skip(report, ["log_root"], "entries missing")
        return None
    report.add("log_entries", True, f"{size} entries from {source.describe()}")
    root = root_from_leaf_hashes(hashes)
    if root != cp.root:
        report.add(
            "log_root",
            False,
            f"the entries give root {_hex(root)}, checkpoint {cp.seq} anchored {_hex(cp.root)}: "
            "an entry was altered, replaced or reordered",
        )
        return None
    report.add("log_root", True, f"the entries rebuild the anchored root {_hex(cp.root)}")
    return entries


def _decode(report: AuditReport, entries: Sequence[bytes]) -> list[SignedEntry] | None:
    decoded: list[SignedEntry] = []
    for index, data in enumerate(entries):
        try:
            decoded.append(decode_entry(data))
        except InvalidEntry as err:
            report.add("decode", False, f"leaf {index} ({_hex(entry_id(data))}): {err.message}")
            return None
    report.add("decode", True, f"{len(decoded)} canonical entries")
    return decoded


def _check_signatures(
    report: AuditReport, decoded: Sequence[SignedEntry], domain: Domain, workers: int | None
) -> bool:
    required: list[frozenset[str] | None] = []
    for index, signed in enumerate(decoded):
        try:
            required.append(required_for(signed))
        except (InvalidInput, ValueError) as err:
            text = err.message if isinstance(err, TallyError) else str(err)
            return report.add("signatures", False, f"leaf {index}: {text}")
    results = verify_many(decoded, domain, workers, required=required)
    for index, result in enumerate(results):
        if result.error is not None:
            return report.add(
                "signatures",
                False,
                f"leaf {index} ({decoded[index].entry_type_name}): {result.error.message}",
            )
    signatures = sum(len(s.signatures) for s in decoded)
    return report.add(
        "signatures", True, f"{signatures} signatures on {len(decoded)} entries verified"
    )


def _check_payouts(
    report: SettlementAuditReport,
    chain: Chain,
    vault: Contract,
    decoded: Sequence[SignedEntry],
    rnd: OnChainRound,
    cp: OnChainCheckpoint,
    policy: Policy,
    payouts_doc: Mapping[str, Any] | None,
) -> None:
    try:
        result: RoundResult = settle_entries(
            decoded,
            round_id=rnd.round_id,
            period_start=rnd.period_start,
            period_end=rnd.period_end,
            checkpoint_size=cp.tree_size,
            policy=policy,
            checkpoint_seq=cp.seq,
        )
    except PolicyMismatch as err:
        report.add("agreement_policies", False, err.message)
        _skip(report, ["payouts", "debits"], "agreements of another policy")
        return
    except (SettlementError, InvalidInput) as err:
        report.add("agreement_policies", None, "skipped: the round cannot be recomputed")
        report.add("payouts", False, f"the round cannot be recomputed: {err.message}")
        _skip(report, ["debits"], "no recomputation")
        return
    report.add(
        "agreement_policies",
        True,
        f"the {len(result.agreements)} settled agreement(s) name policy {policy.hash_hex}",
    )
    report.recomputed = {
        "payout_root": _hex(result.root),
        "total": str(result.pool),
        "payees": len(result.tree),
        "payouts": {to_checksum_address(a): str(v) for a, v in result.payouts.items()},
    }
    published_ok = False
    if payouts_doc is not None:
        try:
            published, published_root = _published(payouts_doc)
        except (InvalidInput, SettlementError) as err:
            report.add("published_payouts", False, err.message)
        else:
            if published_root != rnd.payout_root:
                report.add(
                    "published_payouts",
                    False,
                    f"the payout file gives root {_hex(published_root)}, the round's root is "
                    f"{_hex(rnd.payout_root)}: it is not what was proposed",
                )
            else:
                published_ok = report.add(
                    "published_payouts",
                    True,
                    f"{len(published)} published payouts rebuild the round's root",
                )
                report.mismatches = _payout_mismatches(result.payouts, published)
    if result.root == rnd.payout_root and result.pool == rnd.total:
        report.add(
            "payouts",
            True,
            f"recomputed root {_hex(result.root)} and total {result.pool} "
            f"({len(result.tree)} payees) equal the round's",
        )
        if _check_debits(report, chain, vault, rnd, result):
            report.summary = (
                f"round {rnd.round_id} ({rnd.status}) pays exactly what {cp.tree_size} anchored "
                f"entries of checkpoint {cp.seq} give under policy {policy.hash_hex}, funded "
                "by exactly the consumers' bills"
            )
        return
    _payouts_failed(report, rnd, result, published_ok)
    _check_debits(report, chain, vault, rnd, result)


def _check_debits(
    report: AuditReport, chain: Chain, vault: Contract, rnd: OnChainRound, result: RoundResult
) -> bool:
    """What the round took from each consumer (``funders()``) against the recomputed bills."""
    on_chain = {
        a.lower(): v for a, v in debits_of(chain=chain, vault=vault, round_id=rnd.round_id).items()
    }
    bills = {a.lower(): v for a, v in result.debits}
    wrong = []
    for account in sorted(set(on_chain) | set(bills)):
        took, owes = on_chain.get(account, 0), bills.get(account, 0)
        if took != owes:
            wrong.append(f"{to_checksum_address(account)} was debited {took}, its bill is {owes}")
    if wrong:
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        return report.add("debits", False, wrong[0] + more)
    return report.add(
        "debits",
        True,
        f"{len(bills)} consumer debit(s) equal their recomputed bills ({sum(bills.values())})",
    )


def _payouts_failed(
    report: SettlementAuditReport, rnd: OnChainRound, result: RoundResult, published_ok: bool
) -> None:
    if published_ok and report.mismatches:
        first = report.mismatches[0]["detail"]
        more = len(report.mismatches) - 1
        detail = first + (f" (and {more} more)" if more else "")
    else:
        detail = (
            f"recomputed root {_hex(result.root)} and total {result.pool}; the round has "
            f"root {_hex(rnd.payout_root)} and total {rnd.total}"
        )
    report.add("payouts", False, detail)
