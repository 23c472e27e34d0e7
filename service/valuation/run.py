"""``tally evaluate`` and ``tally audit valuation``: the seed rule, the run, the re-run.

The valuation document (what the evaluator publishes next to the entry, and the auditor reads)::

    {"method": "msr-banzhaf", "params": {...}, "utility": "package.module:attribute"}

``paramsHash = SHA-256(RFC 8785 canonical JSON of that document)``; ``params`` holds every
parameter that can change a value: ``rel_tolerance`` (a fraction string such as ``"1/20"``),
``min_samples``, ``max_samples``, ``truncation_bps``, ``max_utility_calls`` (null: none).

Seed rule (why the evaluator cannot grind seeds). The inputs are the agreement (its providers)
and the utility; the seed comes from the first checkpoint anchored on chain after the agreement
entry was logged - the anchored checkpoint with the smallest tree size greater than the
Agreement's leaf index. There is exactly one, it is public, and it exists before the evaluator
runs; nothing the evaluator chooses afterwards can change it except the utility and the
parameters, and those are bound into the seed too, so a new seed means publishing another
utility or parameters (visible in the log). The seed is::

    SHA-256( b"TALLY-VALUATION-SEED-V1" || checkpoint root (32) || uint64_be(checkpoint size)
             || agreementId (32) || uint64_be(periodStart) || uint64_be(periodEnd)
             || uint8(method id) || paramsHash (32) || utilityHash (32) )

Determinism rule (choice and reason): the utility returns integer bps; every estimator works in
exact rationals and the stream is SHA-256 (:mod:`service.valuation.estimators`), so re-running
gives the same integers bit for bit wherever the utility is deterministic. We re-run instead of
signing a table of utility results because a 50-provider permutation run scores tens of
thousands of coalitions (a table would dwarf every other entry in the log) and because a signed
table still asks the auditor to trust the evaluator's training runs; re-running checks them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

import rfc8785
from sqlmodel import Session, col, select

from service.audit.receipt import AuditReport
from service.errors import InvalidSignature
from service.evidence.binding import log_binding
from service.evidence.eip712 import Domain, address_bytes, parse_address
from service.evidence.entries import SignedEntry, ValuationResult, sign_entry
from service.evidence.models import AgreementRow, AnchorRow
from service.valuation.estimators import (
    METHOD_IDS,
    Estimate,
    Game,
    ValuationError,
    exact_shapley,
    knn_shapley_of,
    leave_one_out,
    msr_banzhaf,
    permutation_shapley,
)
from service.valuation.utility import ResultCache, load_utility, mask_utility, utility_hash

__all__ = [
    "DEFAULT_PARAMS",
    "Checkpoint",
    "ValuationRun",
    "audit_valuation",
    "derive_seed",
    "estimate",
    "evaluate",
    "params_document",
    "params_hash",
    "seed_checkpoint",
]

DEFAULT_PARAMS: Final[Mapping[str, Any]] = {
    "rel_tolerance": "1/20",
    "min_samples": 16,
    "max_samples": 100_000,
    "truncation_bps": 0,
    "max_utility_calls": None,
}
_SEED_DOMAIN: Final = b"TALLY-VALUATION-SEED-V1"


@dataclass(frozen=True)
class Checkpoint:
    """An anchored checkpoint: tree size and root."""

    size: int
    root: bytes


def params_document(method: str, utility: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The normalized valuation document (unknown parameters refused, defaults filled in)."""
    if method not in METHOD_IDS:
        raise ValuationError(
            f"unknown valuation method {method!r} (known: {', '.join(METHOD_IDS)})"
        )
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValuationError(f"unknown valuation parameter {unknown[0]!r}")
    merged = {**DEFAULT_PARAMS, **params}
    tolerance = Fraction(str(merged["rel_tolerance"]))
    if tolerance <= 0:
        raise ValuationError("rel_tolerance must be positive")
    for key in ("min_samples", "max_samples", "truncation_bps"):
        value = merged[key]
        if type(value) is not int or value < 0:
            raise ValuationError(f"{key} must be a non-negative integer, got {value!r}")
    budget = merged["max_utility_calls"]
    if budget is not None and (type(budget) is not int or budget < 1):
        raise ValuationError(f"max_utility_calls must be a positive integer, got {budget!r}")
    merged["rel_tolerance"] = str(tolerance)
    return {"method": method, "params": merged, "utility": utility}


def params_hash(document: Mapping[str, Any]) -> bytes:
    """SHA-256 of the RFC 8785 canonical JSON of a valuation document."""
    return hashlib.sha256(rfc8785.dumps(dict(document))).digest()


def derive_seed(
    *,
    checkpoint: Checkpoint,
    agreement_id: bytes,
    period_start: int,
    period_end: int,
    method_id: int,
    params_digest: bytes,
    utility_digest: bytes,
) -> bytes:
    """The seed rule of the module docstring (32 bytes)."""
    return hashlib.sha256(
        _SEED_DOMAIN
        + checkpoint.root
        + checkpoint.size.to_bytes(8, "big")
        + agreement_id
        + period_start.to_bytes(8, "big")
        + period_end.to_bytes(8, "big")
        + bytes((method_id,))
        + params_digest
        + utility_digest
    ).digest()


def seed_checkpoint(session: Session, agreement_id: bytes) -> tuple[AgreementRow, Checkpoint]:
    """The agreement and the first anchored checkpoint that covers it (the seed rule)."""
    key = "0x" + agreement_id.hex()
    agreement = session.get(AgreementRow, key)
    if agreement is None:
        raise ValuationError(f"agreement {key} is not in the log")
    row = session.exec(
        select(AnchorRow)
        .where(col(AnchorRow.tree_size) > agreement.leaf_index)
        .order_by(col(AnchorRow.tree_size))
    ).first()
    if row is None:
        raise ValuationError(
            f"no anchored checkpoint covers agreement {key} yet (leaf {agreement.leaf_index}): "
            "anchor the log first, the seed comes from that checkpoint"
        )
    return agreement, Checkpoint(row.tree_size, bytes.fromhex(row.root[2:]))


def estimate(
    *,
    document: Mapping[str, Any],
    n: int,
    seed: bytes,
    utility: Callable[[tuple[int, ...]], int],
    cache: ResultCache | None = None,
    on_call: Callable[[int], None] | None = None,
) -> Estimate:
    """Run the document's method over ``n`` providers with ``seed`` (pure but for the cache)."""
    method, params = document["method"], document["params"]
    game = Game(
        n=n,
        utility=mask_utility(utility, n),
        max_calls=params["max_utility_calls"],
        cache=dict(cache.loaded) if cache is not None else {},
        on_new=cache.add if cache is not None else None,
        on_call=on_call,
    )
    tolerance = Fraction(params["rel_tolerance"])
    try:
        if method == "exact-shapley":
            return exact_shapley(game)
        if method == "leave-one-out":
            return leave_one_out(game)
        if method == "permutation-shapley":
            return permutation_shapley(
                game,
                seed=seed,
                rel_tolerance=tolerance,
                min_samples=max(2, params["min_samples"]),
                max_samples=params["max_samples"],
                truncation_bps=params["truncation_bps"],
            )
        if method == "msr-banzhaf":
            return msr_banzhaf(
                game,
                seed=seed,
                rel_tolerance=tolerance,
                min_samples=max(2, params["min_samples"]),
                max_samples=params["max_samples"],
            )
        task_of = getattr(utility, "knn_task", None)
        if not callable(task_of):
            raise ValuationError("knn-shapley needs a utility with knn_task(n) (a KNN utility)")
        task = task_of(n)
        return knn_shapley_of(task, n)
    finally:
        if cache is not None:
            cache.close()


@dataclass(frozen=True)
class ValuationRun:
    """What ``tally evaluate`` produced: the signed entry, its document, the estimate."""

    signed: SignedEntry
    document: dict[str, Any]
    estimate: Estimate

    def to_json(self) -> dict[str, Any]:
        entry = self.signed.entry
        assert isinstance(entry, ValuationResult)
        return {
            "valuation": self.document,
            "signed_entry": self.signed.to_json(),
            "entry_id": "0x" + self.signed.id().hex(),
            "status": self.estimate.status,
            "samples": self.estimate.samples,
            "values_bps": dict(zip(entry.providers, entry.values, strict=True)),
        }


def _entry_inputs(
    session: Session, agreement_id: bytes, document: Mapping[str, Any], utility: object
) -> tuple[AgreementRow, Checkpoint, bytes, bytes]:
    agreement, checkpoint = seed_checkpoint(session, agreement_id)
    return agreement, checkpoint, params_hash(document), utility_hash(document["utility"], utility)


def evaluate(
    *,
    session: Session,
    agreement_id: bytes,
    period: tuple[int, int],
    document: Mapping[str, Any],
    evaluator_key: bytes,
    cache: ResultCache | None = None,
    on_call: Callable[[int], None] | None = None,
    utility: Callable[[tuple[int, ...]], int] | None = None,
) -> ValuationRun:
    """Compute the valuation of the agreement's providers and sign it as a ValuationResult."""
    binding = log_binding(session)
    if binding is None:
        raise ValuationError("the log database is bound to no deployment (nothing anchored)")
    domain = Domain(chain_id=binding[0], verifying_contract=parse_address(binding[1]))
    fn = utility if utility is not None else load_utility(document["utility"])
    agreement, checkpoint, p_hash, u_hash = _entry_inputs(session, agreement_id, document, fn)
    method_id = METHOD_IDS[document["method"]]
    seed = derive_seed(
        checkpoint=checkpoint,
        agreement_id=agreement_id,
        period_start=period[0],
        period_end=period[1],
        method_id=method_id,
        params_digest=p_hash,
        utility_digest=u_hash,
    )
    providers = sorted(agreement.provider_list, key=address_bytes)
    result = estimate(
        document=document, n=len(providers), seed=seed, utility=fn, cache=cache, on_call=on_call
    )
    entry = ValuationResult(
        agreementId=agreement_id,
        periodStart=period[0],
        periodEnd=period[1],
        method=method_id,
        paramsHash=p_hash,
        checkpointSize=checkpoint.size,
        seed=seed,
        utilityHash=u_hash,
        providers=tuple(providers),
        values=tuple(result.values_bps()),
        stderrs=tuple(result.stderr_bps()),
        utilityCalls=result.calls,
    )
    signed = sign_entry(entry, domain, [evaluator_key])
    return ValuationRun(signed, dict(document), result)


def audit_valuation(
    *,
    session: Session,
    signed: SignedEntry,
    document: Mapping[str, Any],
    evaluator: str | None = None,
    utility: Callable[[tuple[int, ...]], int] | None = None,
    onchain: Sequence[Checkpoint] | None = None,
) -> AuditReport:
    """Re-run a ValuationResult from its document and the log; every check is named.

    Checks, in order: ``entry-type``, ``signature`` (one evaluator; ``evaluator`` when given),
    ``params-hash``, ``agreement`` (in the log; exactly its providers), ``utility-hash``,
    ``checkpoint`` (the seed rule's checkpoint), ``checkpoint-on-chain`` (when ``onchain``,
    the EvidenceLedger's checkpoints, is given: the seed rule applied to them picks the same
    size and root; else skipped), ``seed``, then the re-run: ``utility-calls``, ``values`` and
    ``stderrs`` equal bit for bit.
    """
    report = AuditReport(subject=f"valuation {'0x' + signed.id().hex()[:16]}…")
    report.summary = "the valuation re-runs to the same values bit for bit"
    entry = signed.entry
    if not report.add(
        "entry-type", isinstance(entry, ValuationResult), f"the entry is a {signed.entry_type_name}"
    ):
        return report
    assert isinstance(entry, ValuationResult)
    signers = list(signed.signatures)
    try:
        signed.recover()
        sig_ok = len(signers) == 1 and (evaluator is None or parse_address(evaluator) == signers[0])
        detail = f"signed by {', '.join(signers)}"
    except InvalidSignature as err:
        sig_ok, detail = False, err.message
    if not report.add("signature", sig_ok, detail):
        return report
    try:
        normalized = params_document(document["method"], document["utility"], document["params"])
    except (KeyError, TypeError, ValuationError) as err:
        report.add("params-hash", False, f"the valuation document is malformed: {err}")
        return report
    p_hash = params_hash(normalized)
    if not report.add(
        "params-hash",
        p_hash == entry.paramsHash and METHOD_IDS[normalized["method"]] == entry.method,
        f"SHA-256 of the document {'0x' + p_hash.hex()}; method {normalized['method']}",
    ):
        return report
    try:
        agreement, checkpoint = seed_checkpoint(session, entry.agreementId)
    except ValuationError as err:
        report.add("agreement", False, err.message)
        return report
    providers = sorted(agreement.provider_list, key=address_bytes)
    if not report.add(
        "agreement",
        list(entry.providers) == providers,
        f"{len(providers)} providers of agreement {agreement.agreement_id[:18]}…",
    ):
        return report
    fn = utility if utility is not None else load_utility(normalized["utility"])
    u_hash = utility_hash(normalized["utility"], fn)
    if not report.add(
        "utility-hash", u_hash == entry.utilityHash, f"{normalized['utility']}: 0x{u_hash.hex()}"
    ):
        return report
    if not report.add(
        "checkpoint",
        checkpoint.size == entry.checkpointSize,
        f"first anchored checkpoint covering the agreement has size {checkpoint.size}",
    ):
        return report
    if onchain is None:
        report.add("checkpoint-on-chain", None, "no chain given (--network/--rpc): not checked")
    else:
        covering = next(
            (c for c in sorted(onchain, key=lambda c: c.size) if c.size > agreement.leaf_index),
            None,
        )
        if not report.add(
            "checkpoint-on-chain",
            covering == checkpoint,
            "the EvidenceLedger's first checkpoint covering the agreement: "
            + (
                "none"
                if covering is None
                else f"size {covering.size}, root 0x{covering.root.hex()}"
            ),
        ):
            return report
    seed = derive_seed(
        checkpoint=checkpoint,
        agreement_id=entry.agreementId,
        period_start=entry.periodStart,
        period_end=entry.periodEnd,
        method_id=entry.method,
        params_digest=p_hash,
        utility_digest=u_hash,
    )
    if not report.add("seed", seed == entry.seed, f"derived seed 0x{seed.hex()}"):
        return report
    result = estimate(document=normalized, n=len(providers), seed=seed, utility=fn)
    report.add("utility-calls", result.calls == entry.utilityCalls, f"{result.calls} calls")
    values = result.values_bps()
    differing = [i for i, (a, b) in enumerate(zip(values, entry.values, strict=True)) if a != b]
    detail = "all equal"
    if differing:
        first = differing[0]
        detail = (
            f"{len(differing)} differ, first provider {providers[first]}: "
            f"re-run {values[first]}, signed {entry.values[first]}"
        )
    report.add("values", not differing, detail)
    report.add("stderrs", result.stderr_bps() == list(entry.stderrs), "standard errors compared")
    return report
