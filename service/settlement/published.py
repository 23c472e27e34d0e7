"""A round's published statement, fetched from its on-chain ``statementURI`` and verified.

Any round on the vault names where its statement is published (``Round.statementURI``:
``tally settle run --propose`` writes ``statement.json`` and names its ``file://`` URI, or
the ``--statement-uri`` it is given). :func:`load_published` fetches that document,
rebuilds the payout tree from it and serves it only if the tree's root is the round's
on-chain payout root (and its total and period are the round's): a document that does
not verify is :class:`~service.errors.RoundMismatch`, whatever it says. So statements
and claims can be served for rounds computed anywhere (the CLI, another operator tool),
not only for rounds the API computed itself.

Two document formats are accepted: the statement (``tally-statement-v1``, per participant
lines, bills, proofs) and the claim file (``tally-payouts-v1``, payouts with proofs only).

Fetching (:func:`fetch_document`): ``file://`` (a regular file) and ``http://`` /
``https://`` (any host; the operator names the URI, the root check decides what is
served), at most :data:`MAX_DOCUMENT_BYTES`, with a :data:`FETCH_TIMEOUT_S` timeout; an
HTTP redirect is not followed (so no redirect can turn into a ``file://`` read or a
second host), any other scheme is refused. Errors are
:class:`~service.errors.StatementUnavailable` and never echo the document's content.
Verified documents are cached in memory, keyed by (chain, vault, round, payout root):
the root pins the content, so a cached document stays correct.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from web3.contract import Contract

from service.chain.client import Chain
from service.errors import InvalidInput, RoundMismatch, StatementUnavailable, TallyError
from service.jsonsafe import loads as safe_loads
from service.settlement.engine import STATEMENT_FORMAT
from service.settlement.payout_tree import PayoutTree, build_payout_tree
from service.settlement.rounds import OnChainRound, read_round

__all__ = [
    "FETCH_TIMEOUT_S",
    "MAX_DOCUMENT_BYTES",
    "PublishedRound",
    "clear_cache",
    "fetch_document",
    "load_published",
    "verify_published",
]

MAX_DOCUMENT_BYTES = 32 * 1024 * 1024
FETCH_TIMEOUT_S = 10.0
PAYOUTS_FORMAT = "tally-payouts-v1"
_CACHE_SIZE = 32


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _read_file(uri: str, max_bytes: int) -> bytes:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise StatementUnavailable(f"file URI {uri} names another host")
    path = Path(unquote(parts.path))
    try:
        if not path.is_file():
            raise StatementUnavailable(f"no statement file at {uri}")
        if path.stat().st_size > max_bytes:
            raise StatementUnavailable(f"the statement at {uri} is larger than {max_bytes} bytes")
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as err:
        raise StatementUnavailable(f"cannot read {uri}: {err.strerror}") from None
    if len(data) > max_bytes:
        raise StatementUnavailable(f"the statement at {uri} is larger than {max_bytes} bytes")
    return data


def _read_http(uri: str, max_bytes: int, timeout_s: float) -> bytes:
    try:
        with (
            httpx.Client(follow_redirects=False, timeout=timeout_s) as client,
            client.stream("GET", uri) as response,
        ):
            if response.is_redirect:
                raise StatementUnavailable(
                    f"{uri} answers with a redirect ({response.status_code}); redirects are "
                    "not followed: publish the statement at the URI the round names"
                )
            if response.status_code != 200:
                raise StatementUnavailable(f"{uri} answers HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise StatementUnavailable(
                    f"the statement at {uri} is larger than {max_bytes} bytes"
                )
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise StatementUnavailable(
                        f"the statement at {uri} is larger than {max_bytes} bytes"
                    )
                chunks.append(chunk)
    except httpx.TimeoutException:
        raise StatementUnavailable(f"{uri} did not answer within {timeout_s} s") from None
    except httpx.HTTPError as err:
        raise StatementUnavailable(f"cannot fetch {uri}: {type(err).__name__}") from None
    return b"".join(chunks)


def fetch_document(
    uri: str, *, max_bytes: int = MAX_DOCUMENT_BYTES, timeout_s: float = FETCH_TIMEOUT_S
) -> bytes:
    """The bytes published at ``uri`` (``file://``, ``http://``, ``https://``)."""
    scheme = urlsplit(uri).scheme.lower()
    if not uri:
        raise StatementUnavailable("the round names no statement URI")
    if scheme == "file":
        return _read_file(uri, max_bytes)
    if scheme in ("http", "https"):
        return _read_http(uri, max_bytes, timeout_s)
    raise StatementUnavailable(
        f"the round's statement URI has scheme {scheme or '(none)'!r}; only file, http and "
        "https are fetched"
    )


@dataclass(frozen=True)
class PublishedRound:
    """A published document that verified against its round on chain."""

    round: OnChainRound
    uri: str
    format: str
    document: Mapping[str, Any]
    tree: PayoutTree

    def statement(self) -> dict[str, Any]:
        """The statement as :meth:`RoundResult.statement` gives it (for a claim file: the
        head and one participant per payout, no lines or bills)."""
        if self.format == STATEMENT_FORMAT:
            return dict(self.document)
        head = {k: v for k, v in self.document.items() if k not in ("claims", "tree")}
        head["participants"] = [
            {
                "account": e.account,
                "payout": str(e.amount),
                "index": e.index,
                "proof": [_hex(p) for p in e.proof],
                "lines": None,
            }
            for e in self.tree.entries
        ]
        head["bills"] = []
        return head


def _payouts_of(doc: Mapping[str, Any]) -> tuple[str, dict[str, int]]:
    fmt = doc.get("format")
    try:
        if fmt == STATEMENT_FORMAT:
            pays = {str(p["account"]): int(p["payout"]) for p in doc["participants"]}
        elif fmt == PAYOUTS_FORMAT:
            pays = {str(c["account"]): int(c["amount"]) for c in doc["claims"]}
        else:
            raise InvalidInput(f"the document's format is {fmt!r}, not a statement or claim file")
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidInput(f"the document is not a {fmt}: {err!r}") from None
    return str(fmt), {a: v for a, v in pays.items() if v}


def verify_published(doc: Any, rnd: OnChainRound, *, uri: str = "") -> PublishedRound:
    """``doc`` as a :class:`PublishedRound` of ``rnd``: its payouts rebuild the on-chain root,
    and its round id, total and period are the round's (:class:`RoundMismatch` if not)."""
    where = f"the statement at {uri}" if uri else "the statement"
    if not isinstance(doc, Mapping):
        raise RoundMismatch(f"{where} is not a JSON object")
    try:
        fmt, payouts = _payouts_of(doc)
        tree = build_payout_tree(round_id=rnd.round_id, payouts=payouts)
    except TallyError as err:
        raise RoundMismatch(f"{where} is not usable: {err.message}") from None
    if doc.get("round_id") != rnd.round_id:
        raise RoundMismatch(f"{where} is for round {doc.get('round_id')!r}, not {rnd.round_id}")
    if tree.root != rnd.payout_root:
        raise RoundMismatch(
            f"{where}: its payouts give root {_hex(tree.root)}, the round's on-chain root is "
            f"{_hex(rnd.payout_root)}: it is not what was proposed, not served"
        )
    if tree.total != rnd.total or str(doc.get("total")) != str(rnd.total):
        raise RoundMismatch(f"{where} gives total {doc.get('total')}, the round's is {rnd.total}")
    period = doc.get("period")
    if not isinstance(period, Mapping) or (period.get("start"), period.get("end")) != (
        rnd.period_start,
        rnd.period_end,
    ):
        raise RoundMismatch(
            f"{where} gives period {period!r}, the round's is [{rnd.period_start}, "
            f"{rnd.period_end})"
        )
    return PublishedRound(round=rnd, uri=uri, format=fmt, document=doc, tree=tree)


_cache: OrderedDict[tuple[int, str, int, bytes], PublishedRound] = OrderedDict()
_lock = threading.Lock()


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def load_published(
    *,
    chain: Chain,
    vault: Contract,
    round_id: int,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    timeout_s: float = FETCH_TIMEOUT_S,
) -> PublishedRound:
    """Round ``round_id``'s published statement, fetched from its ``statementURI`` and
    verified (:func:`verify_published`); cached by payout root."""
    rnd = read_round(chain=chain, vault=vault, round_id=round_id)
    key = (chain.chain_id, str(vault.address).lower(), round_id, rnd.payout_root)
    with _lock:
        hit = _cache.get(key)
    if hit is not None:
        return replace(hit, round=rnd)  # the root pins the document; the status is fresh
    data = fetch_document(rnd.statement_uri, max_bytes=max_bytes, timeout_s=timeout_s)
    try:
        doc = safe_loads(data, what=f"the statement at {rnd.statement_uri}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RoundMismatch(f"the statement at {rnd.statement_uri} is not JSON") from None
    except InvalidInput as err:
        raise RoundMismatch(err.message) from None
    published = verify_published(doc, rnd, uri=rnd.statement_uri)
    with _lock:
        _cache[key] = published
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return published
