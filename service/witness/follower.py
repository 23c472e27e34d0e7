"""The witness: follow other spaces' checkpoints, cosign only what extends what it cosigned.

One round per followed space (:func:`witness_round`):

1. post any cosignature stored but not yet acknowledged (a crash after storing);
2. ``GET /v1/log/checkpoint``: the space's signed note; it must verify under the pinned
   vkey and its origin must be the key's name (:func:`~service.witness.note.open_checkpoint`);
3. against the latest checkpoint this witness cosigned for that origin (its database):
   same size needs the same root; a larger size needs ``GET /v1/log/proof/consistency``
   from the cosigned size, verified here (:mod:`service.evidence.merkle`); a smaller size
   is refused. A conflict the log's own signatures and proof demonstrate is a split view:
   the proof document is kept (database row and a JSON file) and nothing is cosigned;
4. ``(size, root)`` must be a checkpoint of the space's EvidenceLedger on its pinned chain;
5. cosign (tlog-cosignature/v1 with a timestamp), store the cosignature and the new state
   in one transaction, then ``POST /v1/log/cosignatures``.

Crash safety (verify, store, post): the cosignature is made in memory and stored with
the new state in one commit before anything leaves the process. Killed before the
commit, nothing was released and the next round verifies and cosigns afresh; killed
after it, the next round finds the row unposted and posts those same bytes. The
primary key (origin, size) keeps one cosignature per size; a size is never skipped,
because the state only moves to a checkpoint once its cosignature is stored.

``TALLY_WITNESS_FAULT=kill-after-verify`` or ``kill-after-store`` makes the process
SIGKILL itself at that point (the crash tests' hook; nothing else reads it).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from service.chain.client import Chain
from service.errors import ChainError, RpcUnavailable, TallyError
from service.evidence.anchor import read_checkpoint
from service.witness.config import PinnedSpace
from service.witness.evidence import FORK, SAME_SIZE, PrefixProof, build_proof, extends
from service.witness.note import (
    Checkpoint,
    CosignatureV1Signer,
    NoteError,
    cosign,
    open_checkpoint,
    parse_note,
)
from service.witness.store import Cosigned, WitnessStore

log = logging.getLogger(__name__)

Status = Literal["cosigned", "up_to_date", "split_view", "refused", "unavailable"]

EXIT_OK = 0
EXIT_SPLIT_VIEW = 3
EXIT_REFUSED = 4
EXIT_UNAVAILABLE = 5
"""``tally witness --once`` exit codes: 0 every space cosigned or already up to date;
3 a split view was caught (the proof is kept); 4 a checkpoint was refused for another
reason (bad note signature, a proof that links nothing, a rollback, not on the ledger);
5 a space or its chain could not be reached (try again later). The worst one wins."""

_EXIT = {
    "cosigned": EXIT_OK,
    "up_to_date": EXIT_OK,
    "unavailable": EXIT_UNAVAILABLE,
    "refused": EXIT_REFUSED,
    "split_view": EXIT_SPLIT_VIEW,
}
_SEVERITY = [EXIT_OK, EXIT_UNAVAILABLE, EXIT_REFUSED, EXIT_SPLIT_VIEW]

FAULT_ENV = "TALLY_WITNESS_FAULT"


class Refused(TallyError):
    """The space's checkpoint does not check out: the witness does not cosign it."""

    code = "witness_refused"


class Unavailable(TallyError):
    """A space's API or chain could not answer now; the round is tried again later."""

    code = "witness_unavailable"


@dataclass(frozen=True)
class RoundResult:
    origin: str
    url: str
    status: Status
    size: int | None
    detail: str
    proof_file: Path | None = None

    @property
    def exit_code(self) -> int:
        return _EXIT[self.status]


def exit_code(results: list[RoundResult]) -> int:
    """The worst outcome of a round over every space (see ``EXIT_*``)."""
    codes = [r.exit_code for r in results] or [EXIT_OK]
    return max(codes, key=_SEVERITY.index)


def _fault(point: str) -> None:
    """The crash tests' hook: SIGKILL this process at ``point`` when asked to."""
    if os.environ.get(FAULT_ENV) == f"kill-{point}":
        os.kill(os.getpid(), signal.SIGKILL)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _hash(text: object, what: str) -> bytes:
    if not isinstance(text, str) or not re.fullmatch(r"0x[0-9a-fA-F]{64}", text):
        raise Refused(f"{what} is not a 32-byte hex hash")
    return bytes.fromhex(text[2:])


@dataclass
class Witness:
    """Everything a round needs: the signer, the store, an HTTP client, chains by space."""

    signer: CosignatureV1Signer
    store: WitnessStore
    evidence_dir: Path
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=15.0))
    clock: Callable[[], float] = time.time
    _chains: dict[str, Chain] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store.bind_key(self.signer.vkey())

    # --- I/O with the space ------------------------------------------------------------

    def _get(self, space: PinnedSpace, path: str, **params: int) -> httpx.Response:
        try:
            r = self.http.get(space.url + path, params=params or None)
        except httpx.HTTPError as err:
            raise Unavailable(f"{space.url}: {type(err).__name__}") from None
        if r.status_code >= 500 or r.status_code == 429:
            raise Unavailable(f"{space.url}{path}: HTTP {r.status_code}")
        return r

    def fetch_note(self, space: PinnedSpace) -> str | None:
        """The space's checkpoint note, or ``None`` when it has no anchored checkpoint."""
        r = self._get(space, "/v1/log/checkpoint")
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise Refused(f"{space.url}/v1/log/checkpoint: HTTP {r.status_code}")
        return r.text

    def fetch_proof(self, space: PinnedSpace, old: int, new: int) -> PrefixProof:
        """The space's consistency proof ``old -> new`` and the prefix root it claims."""
        r = self._get(space, "/v1/log/proof/consistency", **{"from": old, "to": new})
        if r.status_code != 200:
            raise Refused(f"no consistency proof {old} -> {new}: HTTP {r.status_code}")
        body = r.json()
        proof = body.get("proof") if isinstance(body, dict) else None
        if not isinstance(proof, list) or len(proof) > 64:
            raise Refused(f"consistency proof {old} -> {new} is malformed")
        return PrefixProof(
            size_from=old,
            size_to=new,
            prefix_root=_hash(body.get("root_from"), "root_from"),
            proof=tuple(_hash(h, "a proof hash") for h in proof),
        )

    def post(self, space: PinnedSpace, c: Cosigned) -> str | None:
        """Post a stored cosignature: ``None`` once the space acknowledged it, else why not.

        :class:`Refused` when the space answers 4xx (it does not take this witness's
        cosignature: not in its TALLY_WITNESSES, or another body); the row stays unposted
        either way and is posted again next round."""
        payload = {"size": c.size, "cosignature": c.cosignature, "vkey": self.signer.vkey()}
        try:
            r = self.http.post(space.url + "/v1/log/cosignatures", json=payload)
        except httpx.HTTPError as err:
            log.warning("%s: posting cosignature %d failed: %s", space.url, c.size, err)
            return f"post failed ({type(err).__name__})"
        if r.status_code not in (200, 201):
            reason = f"HTTP {r.status_code} {_error_code(r)}".strip()
            log.warning("%s: cosignature %d not taken: %s", space.url, c.size, reason)
            if 400 <= r.status_code < 500 and r.status_code != 429:
                raise Refused(f"the space refused the cosignature of size {c.size}: {reason}")
            return reason
        self.store.mark_posted(c.origin, c.size)
        return None

    def _chain(self, space: PinnedSpace) -> Chain:
        chain = self._chains.get(space.origin)
        if chain is None:
            try:
                chain = Chain.connect(space.network, accounts=[], timeout_s=15.0)
            except RpcUnavailable:
                raise
            except ChainError as err:  # another chain id than the pinned one
                raise Refused(err.message) from None
            code = chain.read(lambda: chain.w3.eth.get_code(space.ledger), what="ledger code")
            if not code:
                raise Refused(f"no contract at the pinned ledger {space.ledger}")
            self._chains[space.origin] = chain
        return chain

    def on_ledger(self, space: PinnedSpace, cp: Checkpoint) -> int:
        """The seq of ``(size, root)`` on the space's EvidenceLedger; :class:`Refused` if
        it is not there. Anchored sizes only grow, so a binary search over seq finds it."""
        chain = self._chain(space)
        ledger = chain.contract("EvidenceLedger", space.ledger)
        lo, hi = 0, int(chain.call(ledger.functions.count())) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            onchain = read_checkpoint(chain, ledger, mid)
            if onchain.tree_size == cp.size:
                if onchain.root != cp.root:
                    raise Refused(
                        f"size {cp.size} is anchored on chain with root {_b64(onchain.root)}, "
                        f"not {_b64(cp.root)}"
                    )
                return mid
            if onchain.tree_size < cp.size:
                lo = mid + 1
            else:
                hi = mid - 1
        raise Refused(f"size {cp.size} is not a checkpoint of ledger {space.ledger}")

    # --- one round -----------------------------------------------------------------------

    def round(self, space: PinnedSpace) -> RoundResult:
        """One space's round; never raises for what the space or its chain does."""
        try:
            return self._round(space)
        except (Unavailable, ChainError) as err:
            return RoundResult(space.origin, space.url, "unavailable", None, err.message)
        except (Refused, NoteError) as err:
            return RoundResult(space.origin, space.url, "refused", None, err.message)

    def _round(self, space: PinnedSpace) -> RoundResult:
        for pending in self.store.unposted(space.origin):
            self.post(space, pending)
        text = self.fetch_note(space)
        if text is None:
            return RoundResult(space.origin, space.url, "up_to_date", None, "no checkpoint yet")
        cp, _ = open_checkpoint(text.encode("utf-8"), space.verifier)
        last = self.store.latest(space.origin)
        if last is not None:
            done = self._against(space, last, cp, text)
            if done is not None:
                return done
        seq = self.on_ledger(space, cp)
        return self._cosign(space, cp, text, seq)

    def _against(
        self, space: PinnedSpace, last: Cosigned, cp: Checkpoint, text: str
    ) -> RoundResult | None:
        """Compare with the last cosigned checkpoint; a result ends the round."""
        old = Checkpoint.parse(_body(last.note))
        if cp.size == old.size:
            if cp.root == old.root:
                if not last.posted:  # the post above failed: say so, it is retried
                    raise Unavailable(f"cosignature for size {cp.size} not acknowledged yet")
                return RoundResult(space.origin, space.url, "up_to_date", cp.size, "no change")
            return self._split_view(space, SAME_SIZE, last, text, None)
        older, newer = (old, cp) if old.size < cp.size else (cp, old)
        proof = self.fetch_proof(space, older.size, newer.size)
        verdict = extends(older, newer, proof)
        if verdict is False:
            return self._split_view(space, FORK, last, text, proof)
        if verdict is None:
            raise Refused(f"the consistency proof {older.size} -> {newer.size} links neither root")
        if cp.size < old.size:
            raise Refused(f"size {cp.size} is older than cosigned size {old.size} (a rollback)")
        return None

    def _split_view(
        self,
        space: PinnedSpace,
        kind: str,
        last: Cosigned,
        text: str,
        proof: PrefixProof | None,
    ) -> RoundResult:
        now = int(self.clock())
        doc = build_proof(
            kind=kind,
            log_vkey=space.verifier.vkey(),
            cosigned_note=last.note,
            conflicting_note=text,
            consistency=proof,
            detected_at=now,
            witness_vkey=self.signer.vkey(),
            url=space.url,
        )
        new = self.store.record_split_view(
            origin=space.origin, conflicting_note=_body(text).decode(), kind=kind, proof=doc, at=now
        )
        path = self._write_proof(space, doc, now) if new else None
        cp = Checkpoint.parse(_body(text))
        detail = (
            f"{kind}: size {cp.size} root {_b64(cp.root)} conflicts with cosigned size {last.size}"
        )
        if new:
            log.error("SPLIT VIEW %s: %s (proof: %s)", space.origin, detail, path)
        return RoundResult(space.origin, space.url, "split_view", cp.size, detail, path)

    def _write_proof(self, space: PinnedSpace, doc: dict[str, Any], now: int) -> Path:
        import json

        self.evidence_dir.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", space.origin)
        path = self.evidence_dir / f"split-view-{slug}-{now}.json"
        n = 1
        while path.exists():
            path = self.evidence_dir / f"split-view-{slug}-{now}-{n}.json"
            n += 1
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    def _cosign(self, space: PinnedSpace, cp: Checkpoint, text: str, seq: int) -> RoundResult:
        timestamp = int(self.clock())
        body = _body(text)
        line = cosign(body, self.signer, timestamp)
        _fault("after-verify")
        c = Cosigned(
            origin=space.origin,
            size=cp.size,
            root=_b64(cp.root),
            note=text,
            timestamp=timestamp,
            cosignature=line,
            posted=False,
        )
        self.store.record_cosignature(c)
        _fault("after-store")
        failed = self.post(space, c)
        where = f"on the ledger as checkpoint {seq}"
        if failed is not None:
            detail = f"cosigned ({where}), post pending: {failed}"
            return RoundResult(space.origin, space.url, "unavailable", cp.size, detail)
        log.info("cosigned %s size %d", space.origin, cp.size)
        return RoundResult(space.origin, space.url, "cosigned", cp.size, f"{where}, posted")


def _error_code(r: httpx.Response) -> str:
    """The stable error code of a Tally API error answer, if it is one."""
    try:
        body = r.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else ""


def _body(note: str) -> bytes:
    """The text of a signed note (up to its last blank line), not verified here."""
    return parse_note(note.encode("utf-8"))[0]


def load_signer(key_file: Path | None) -> CosignatureV1Signer:
    """The witness key: ``key_file`` or ``TALLY_WITNESS_KEY`` (a cosignature/v1 skey)."""
    from service.errors import ConfigError

    if key_file is not None:
        try:
            text = key_file.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"cannot read the witness key file {key_file}: {err.strerror}") from (
                None
            )
    else:
        env = os.environ.get("TALLY_WITNESS_KEY")
        if not env:
            raise ConfigError("no witness key: give --key-file FILE or set TALLY_WITNESS_KEY")
        text = env
    try:
        return CosignatureV1Signer.from_skey(text)
    except NoteError as err:
        raise ConfigError(f"witness key: {err.message}") from None
