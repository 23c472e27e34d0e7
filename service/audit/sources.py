"""Where an auditor reads the operator's log from: one interface, several sources.

``tally audit log`` and ``tally audit settlement`` read the same few things from the
operator's side, and trust none of them (roots are compared with the chain's, proofs
are verified, entries rebuild the anchored roots):

- the log's head ``(size, root)``, the root at a size, RFC 9162 consistency proofs
  (:class:`ConsistencySource`, what ``audit log`` checks checkpoints with);
- the entries' canonical bytes in leaf order, streamed (:class:`EntrySource`, what both
  audits rebuild roots and recompute rounds from), with each entry's salt where the
  source has it (:func:`leaves_of`): since T15 a leaf is a commitment to its entry
  (:func:`service.evidence.commitment.leaf_data_for`; no salt: a legacy leaf, the
  canonical bytes themselves), so a log that mixes both rebuilds its roots.

A :class:`LogSource` is both. The sources:

- :class:`ApiSource`: any Tally API over HTTP: the tree from its public ``/v1/log/*``
  routes, the full entries and salts from ``GET /v1/evidence``, which serves only the
  auditor and operator roles (``token``: a bearer token from Sign-In with Ethereum,
  :func:`service.audit.login.sign_in`). What an auditor needs nothing else for (with
  ``--rpc``/``--network`` for the chain). Every
  request has a timeout and is retried a bounded number of times (with exponential
  backoff, ``Retry-After`` honoured up to a cap) on transport errors, 5xx and 429;
  bodies are capped and parsed with :mod:`service.jsonsafe`; every field is
  type-checked. An answer that is not what the route promises raises
  :class:`~service.errors.LogUnavailable` naming the request, which the audits report
  as a failed check. Entries are downloaded page by page following ``next`` (a page
  must start where asked, hold consecutive leaves, and ``next`` must move forward to
  where it ends), with a progress bar, and optionally into a cache directory: a re-run
  with the same ``cache`` continues where a failed one stopped.
- :class:`ExportFileSource`: a ``tally log export`` file (its leaf hashes give the
  tree, so it serves roots and proofs too, without holding the entries in memory); an
  entry line may carry its ``salt`` (files written before T15 have none: legacy leaves).
- The operator's own database, as a convenience for the operator's checks:
  :class:`service.evidence.sources.SqlLogSource` (operator-side; this package never
  opens the operator's database).

Entry cache (``ApiSource(cache=DIR)``): one file per downloaded page under
``DIR/<sha256 of the API URL, 16 hex>/<start>.json`` holding the page's leaves (index,
canonical bytes, salt) and their leaf hashes, written atomically (temporary file +
rename). A cached page is used only when it starts at the leaf wanted, its leaves are
consecutive and every entry's leaf hash is the one recorded (a torn or edited file is
downloaded again). The cache holds what the API served when it was downloaded: the
audit still rebuilds the anchored roots from it, but to see what the API serves *now*,
use a fresh directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

import httpx

from service import jsonsafe
from service.errors import LogBoundElsewhere, LogExportInvalid, LogUnavailable, TallyError
from service.evidence import merkle
from service.evidence.commitment import leaf_data_for
from service.evidence.merkle import leaf_hash, root_from_leaf_hashes

__all__ = [
    "EXPORT_FORMAT",
    "ApiSource",
    "ConsistencySource",
    "EntrySource",
    "ExportFileSource",
    "Leaf",
    "LogSource",
    "entry_leaf_hash",
    "leaves_of",
]

EXPORT_FORMAT = "tally-log-export-v1"

MAX_BODY_BYTES = 64 * 1024 * 1024  # one answer; a page of 100,000 small entries fits
MAX_PROOF_HASHES = 2 * 64  # no RFC 9162 proof of a tree below 2**64 leaves is longer
MAX_RETRY_AFTER_S = 30.0  # the longest wait a server's Retry-After can ask for
MAX_BACKOFF_S = 10.0
_HASH_HEX = 66  # "0x" + 64 hex digits


# --- the interface ------------------------------------------------------------------------


class ConsistencySource(Protocol):
    """The operator's tree as an auditor sees it. Every method may raise a
    :class:`~service.errors.TallyError` (the log cannot serve it); nothing is trusted."""

    def describe(self) -> str:
        """Where the log is read from (safe to print: no password)."""
        ...

    def head(self) -> tuple[int, bytes]:
        """The log's current size and root."""
        ...

    def root(self, size: int) -> bytes:
        """The root of the first ``size`` leaves."""
        ...

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """An RFC 9162 consistency proof from size ``old`` to size ``new``."""
        ...


class EntrySource(Protocol):
    """The operator's log entries as an auditor reads them (nothing is trusted)."""

    def describe(self) -> str:
        """Where the entries come from (safe to print)."""
        ...

    def entries(self, *, size: int) -> Iterator[tuple[int, bytes]]:
        """``(leaf_index, canonical bytes)`` of the leaves below ``size``, in leaf order as
        the source has them (gaps, repeats and disorder are the audit's to find), streamed:
        never all of them in memory. May raise a :class:`~service.errors.TallyError`."""
        ...


class LogSource(ConsistencySource, EntrySource, Protocol):
    """Everything the audits read from the operator: the tree and its entries."""


Leaf = tuple[int, bytes, bytes | None]  # (leaf index, canonical bytes, salt or None)


def leaves_of(source: EntrySource, *, size: int) -> Iterator[Leaf]:
    """``(leaf_index, canonical bytes, salt)`` below ``size`` in the source's order: its
    ``leaves`` when it has them (the API, an export file), else its entries as legacy
    leaves (salt None)."""
    leaves = getattr(source, "leaves", None)
    if callable(leaves):
        yield from leaves(size=size)
        return
    for index, data in source.entries(size=size):
        yield index, data, None


UNREADABLE_LEAF = b"\xff" * 32  # stands for a leaf whose commitment cannot be rebuilt


def entry_leaf_hash(data: bytes, salt: bytes | None) -> bytes:
    """The RFC 9162 leaf hash of an entry: of its canonical bytes (legacy, no salt) or of
    its commitment under ``salt``. Bytes that do not decode with a salt, or a salt that
    is not 32 bytes, give :data:`UNREADABLE_LEAF` (no real leaf hash: the root fails)."""
    try:
        return leaf_hash(leaf_data_for(data, salt))
    except (TallyError, ValueError):
        return UNREADABLE_LEAF


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


# --- the export file ----------------------------------------------------------------------


class ExportFileSource:
    """Entries (and the tree they make) from a ``tally log export`` file.

    Format ``tally-log-export-v1`` (JSON Lines): a header line ``{"format", "seq",
    "tree_size", "root", "chain_id", "ledger"}`` and then one line per leaf in order,
    ``{"leaf_index": i, "entry_id": "0x…", "data": "<hex of the canonical bytes>",
    "salt": "<hex of the 32-byte salt>"}``; ``salt`` is null or absent for a legacy leaf
    (every line of a file written before T15).
    The header is informational: the audits trust the chain, not the header. The tree
    (``head``, ``root``, proofs) is the one the file's entries make, in file order.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise LogExportInvalid(f"no log export file {self.path}")
        self._hashes: list[bytes] | None = None

    def describe(self) -> str:
        return f"export file {self.path.name}"

    def header(self) -> dict[str, Any]:
        with self.path.open(encoding="utf-8") as fh:
            return self._header(fh)

    def _header(self, fh: IO[str]) -> dict[str, Any]:
        first = fh.readline()
        try:
            head = jsonsafe.loads(first, what=f"{self.path.name} line 1")
        except json.JSONDecodeError:
            raise LogExportInvalid(f"{self.path.name}: the first line is not JSON") from None
        if not isinstance(head, dict) or head.get("format") != EXPORT_FORMAT:
            raise LogExportInvalid(f"{self.path.name} is not a {EXPORT_FORMAT} file")
        return head

    def leaves(self, *, size: int) -> Iterator[Leaf]:
        with self.path.open(encoding="utf-8") as fh:
            self._header(fh)
            for number, line in enumerate(fh, start=2):
                if not line.strip():
                    continue
                try:
                    item = jsonsafe.loads(line, what=f"{self.path.name} line {number}")
                    index = item["leaf_index"]
                    data = bytes.fromhex(str(item["data"]).removeprefix("0x"))
                    raw_salt = item.get("salt")
                    salt = (
                        None
                        if raw_salt is None
                        else bytes.fromhex(str(raw_salt).removeprefix("0x"))
                    )
                except (
                    json.JSONDecodeError,
                    KeyError,
                    TypeError,
                    ValueError,
                    AttributeError,
                ) as err:
                    raise LogExportInvalid(
                        f"{self.path.name} line {number}: not an entry line ({err!r})"
                    ) from None
                if type(index) is not int:
                    raise LogExportInvalid(f"{self.path.name} line {number}: bad leaf_index")
                if index < size:
                    yield index, data, salt

    def entries(self, *, size: int) -> Iterator[tuple[int, bytes]]:
        for index, data, _ in self.leaves(size=size):
            yield index, data

    def _leaf_hashes(self) -> list[bytes]:
        """The file's leaf hashes in file order (32 bytes a leaf; read once)."""
        if self._hashes is None:
            self._hashes = [
                entry_leaf_hash(data, salt) for _, data, salt in self.leaves(size=2**63)
            ]
        return self._hashes

    def head(self) -> tuple[int, bytes]:
        hashes = self._leaf_hashes()
        return len(hashes), root_from_leaf_hashes(hashes)

    def root(self, size: int) -> bytes:
        hashes = self._leaf_hashes()
        if not 0 <= size <= len(hashes):
            raise LogUnavailable(f"{self.describe()} has {len(hashes)} entries, not {size}")
        return root_from_leaf_hashes(hashes[:size])

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        hashes = self._leaf_hashes()
        if not 0 <= old <= new <= len(hashes):
            raise LogUnavailable(
                f"{self.describe()} has {len(hashes)} entries: no proof from {old} to {new}"
            )
        return merkle.consistency_proof(hashes[:new], old) if old else []


# --- the API ------------------------------------------------------------------------------


class _BadAnswer(Exception):
    """An answer that is not what the route promises (becomes LogUnavailable)."""


def _field(doc: Any, key: str) -> Any:
    if not isinstance(doc, dict):
        raise _BadAnswer(f"the answer is a JSON {type(doc).__name__}, not an object")
    if key not in doc:
        raise _BadAnswer(f"the answer has no {key!r}")
    return doc[key]


def _int(doc: Any, key: str) -> int:
    value = _field(doc, key)
    if type(value) is not int or value < 0:
        raise _BadAnswer(f"{key!r} is {value!r}, not a non-negative integer")
    return value


def _hash(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != _HASH_HEX or not value.startswith("0x"):
        raise _BadAnswer(f"{what} is {str(value)[:80]!r}, not 0x and 64 hex digits")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise _BadAnswer(f"{what} is {value[:80]!r}, not 0x and 64 hex digits") from None


def _bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise _BadAnswer(f"{what} is not a 0x-prefixed hex string")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise _BadAnswer(f"{what} is not hex") from None


def _request(path: str, query: dict[str, int]) -> str:
    """How a request is named in messages: ``GET /v1/log/entries?start=0&end=12``."""
    return f"GET {path}" + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


class ApiSource:
    """A Tally API's log, read over HTTP (see the module docstring): the tree from the
    public ``/v1/log/*`` routes, the entries from ``GET /v1/evidence`` with ``token``
    (without one the entries cannot be read: 401, a :class:`LogUnavailable`).

    ``timeout_s`` bounds each request (connect, read, write, pool); a request is tried at
    most ``1 + retries`` times, waiting ``backoff_s * 2**attempt`` (at most
    ``MAX_BACKOFF_S``, or the server's ``Retry-After`` up to ``MAX_RETRY_AFTER_S``)
    between tries. ``progress`` shows a progress bar on stderr while entries download.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_body_bytes: int = MAX_BODY_BYTES,
        cache: Path | None = None,
        progress: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        token: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise LogUnavailable(f"the API URL must start with http:// or https://, got {url!r}")
        headers = {"Accept": "application/json", "User-Agent": "tally-audit"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=self.url,
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            headers=headers,
        )
        self._retries = max(0, retries)
        self._backoff_s = backoff_s
        self._max_body = max_body_bytes
        self._progress = progress
        self._sleep = sleep
        self._roots: dict[int, bytes] = {}
        self.cache_dir = (
            None
            if cache is None
            else Path(cache) / hashlib.sha256(self.url.encode()).hexdigest()[:16]
        )
        self.requests = 0  # HTTP requests sent (tests count what a resumed run downloads)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ApiSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def describe(self) -> str:
        return f"API {self.url}"

    # --- HTTP ----------------------------------------------------------------------------

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = min(self._backoff_s * 2**attempt, MAX_BACKOFF_S)
        if retry_after is not None:
            with suppress(ValueError):  # an HTTP date or garbage: keep the backoff
                delay = min(max(float(retry_after), 0.0), MAX_RETRY_AFTER_S)
        if delay > 0:
            self._sleep(delay)

    def _send(self, path: str, params: dict[str, int]) -> tuple[int, bytes, str | None]:
        """One GET: status, body (at most the cap), Retry-After."""
        self.requests += 1
        with self._client.stream("GET", path, params=params) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > self._max_body:
                    raise _BadAnswer(f"the answer is larger than {self._max_body} bytes")
            return response.status_code, bytes(body), response.headers.get("retry-after")

    def _get(self, path: str, **params: int) -> Any:
        """GET ``path`` and parse its JSON, retrying what a retry can fix; else
        :class:`LogUnavailable` naming the request and what was wrong."""
        query = {k.rstrip("_"): v for k, v in params.items()}
        what = _request(path, query)
        problem = ""
        retry_after: str | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                self._wait(attempt - 1, retry_after)
            retry_after = None
            try:
                status, body, retry_after = self._send(path, query)
            except httpx.TimeoutException:
                problem = "timed out"
                continue
            except httpx.TransportError as err:
                problem = f"transport error ({type(err).__name__})"
                continue
            except _BadAnswer as err:
                raise LogUnavailable(f"{self.describe()}: {what}: {err}") from None
            except httpx.HTTPError as err:
                raise LogUnavailable(f"{self.describe()}: {what}: {type(err).__name__}") from None
            if status == 429 or status >= 500:
                problem = f"HTTP {status}"
                continue
            return self._parse(what, status, body)
        tries = self._retries + 1
        raise LogUnavailable(f"{self.describe()}: {what}: {problem} ({tries} tries)")

    def _parse(self, what: str, status: int, body: bytes) -> Any:
        try:
            doc = jsonsafe.loads(body, what=f"the answer to {what}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            doc = None
            if status == 200:
                raise LogUnavailable(f"{self.describe()}: {what}: the answer is not JSON") from None
        except TallyError as err:  # too deep
            raise LogUnavailable(f"{self.describe()}: {what}: {err.message}") from None
        if status != 200:  # the API's errors are {"error": {"code", "message"}}
            error = doc.get("error") if isinstance(doc, dict) else None
            if isinstance(error, dict):
                code, text = error.get("code"), error.get("message")
            else:
                code = error
                text = doc.get("message") if isinstance(doc, dict) else None
            said = f" {str(code)[:64]}: {str(text)[:200]}" if code or text else ""
            raise LogUnavailable(f"{self.describe()}: {what}: HTTP {status}{said}")
        return doc

    def _answer(self, path: str, read: Callable[[Any], Any], **params: int) -> Any:
        doc = self._get(path, **params)
        try:
            return read(doc)
        except _BadAnswer as err:
            what = _request(path, {k.rstrip("_"): v for k, v in params.items()})
            raise LogUnavailable(f"{self.describe()}: {what}: {err}") from None

    def terms_document(self, terms_hash: str) -> str | None:
        """A usage-terms document by SHA-256 (``GET /v1/catalog/terms/{hash}``, T11); None
        when the API does not serve it. Untrusted: the terms audit checks its hash."""
        try:
            doc = self._get(f"/v1/catalog/terms/{terms_hash}")
        except LogUnavailable:
            return None
        text = doc.get("terms") if isinstance(doc, dict) else None
        return text if isinstance(text, str) else None

    # --- the tree ------------------------------------------------------------------------

    def head(self) -> tuple[int, bytes]:
        def read(doc: Any) -> tuple[int, bytes]:
            log = _field(doc, "log")
            return _int(log, "tree_size"), _hash(_field(log, "root"), "log.root")

        return self._answer("/v1/log/checkpoints", read, limit=1)  # type: ignore[no-any-return]

    def check_deployment(self, *, chain_id: int, ledger: str) -> None:
        """Refuse (:class:`LogBoundElsewhere`) an API whose latest checkpoint was anchored
        on another chain or ledger than the one being audited."""

        def read(doc: Any) -> tuple[int, str] | None:
            latest = _field(doc, "latest")
            if latest is None:
                return None
            contract = _field(latest, "contract")
            if not isinstance(contract, str):
                raise _BadAnswer("latest.contract is not a string")
            return _int(latest, "chain_id"), contract

        bound = self._answer("/v1/log/checkpoints", read, limit=1)
        if bound is not None and (bound[0] != chain_id or bound[1].lower() != ledger.lower()):
            raise LogBoundElsewhere(
                f"{self.describe()} anchors on chain {bound[0]} ledger {bound[1]}, not on chain "
                f"{chain_id} ledger {ledger}",
                bound_chain_id=bound[0],
                bound_ledger=bound[1],
            )

    def root(self, size: int) -> bytes:
        if size not in self._roots:

            def read(doc: Any) -> bytes:
                if _int(doc, "from") != size or _int(doc, "to") != size:
                    raise _BadAnswer("the proof is not for the sizes asked")
                return _hash(_field(doc, "root_to"), "root_to")

            self._roots[size] = self._answer("/v1/log/proof/consistency", read, from_=size, to=size)
        return self._roots[size]

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        def read(doc: Any) -> list[bytes]:
            if _int(doc, "from") != old or _int(doc, "to") != new:
                raise _BadAnswer("the proof is not for the sizes asked")
            proof = _field(doc, "proof")
            if not isinstance(proof, list) or len(proof) > MAX_PROOF_HASHES:
                raise _BadAnswer(f"'proof' is not a list of at most {MAX_PROOF_HASHES} hashes")
            return [_hash(h, f"proof[{i}]") for i, h in enumerate(proof)]

        return self._answer("/v1/log/proof/consistency", read, from_=old, to=new)  # type: ignore[no-any-return]

    def inclusion_proof(self, leaf: int, size: int) -> list[bytes]:
        """An RFC 9162 inclusion proof of ``leaf`` in the tree of ``size`` leaves."""

        def read(doc: Any) -> list[bytes]:
            if _int(doc, "leaf_index") != leaf or _int(doc, "tree_size") != size:
                raise _BadAnswer("the proof is not for the leaf and size asked")
            proof = _field(doc, "proof")
            if not isinstance(proof, list) or len(proof) > MAX_PROOF_HASHES // 2:
                raise _BadAnswer("'proof' is not a list of at most 64 hashes")
            return [_hash(h, f"proof[{i}]") for i, h in enumerate(proof)]

        return self._answer("/v1/log/proof/inclusion", read, leaf=leaf, size=size)  # type: ignore[no-any-return]

    # --- the entries ---------------------------------------------------------------------

    def _page(self, start: int, size: int) -> tuple[list[Leaf], int | None]:
        """Leaves from ``start`` (below ``size``) as one page of ``GET /v1/evidence``
        serves them, and where the next page starts (None: the API has no more)."""

        def read(doc: Any) -> tuple[list[Leaf], int | None]:
            if _int(doc, "start") != start:
                raise _BadAnswer(f"the page starts at {doc['start']}, not at leaf {start}")
            items = _field(doc, "entries")
            if not isinstance(items, list):
                raise _BadAnswer("'entries' is not a list")
            if len(items) > size - start:
                raise _BadAnswer(
                    f"the page holds {len(items)} entries, more than the {size - start} asked"
                )
            page: list[Leaf] = []
            for i, item in enumerate(items):
                index = _int(item, "leaf_index")
                if index != start + i:
                    raise _BadAnswer(f"entry {i} of the page is leaf {index}, not {start + i}")
                raw_salt = _field(item, "salt")
                salt = None if raw_salt is None else _bytes(raw_salt, f"leaf {index} salt")
                page.append((index, _bytes(_field(item, "data"), f"leaf {index} data"), salt))
            end, tree_size = _int(doc, "end"), _int(doc, "tree_size")
            if end != start + len(page):
                raise _BadAnswer(f"the page says it ends at {end} but holds {len(page)} entries")
            following = _field(doc, "next")
            if following is None:
                if end < min(size, tree_size):
                    raise _BadAnswer(
                        f"the page ends at leaf {end} with no next page, though the log "
                        f"has {tree_size} entries"
                    )
                return page, None
            if type(following) is not int:
                raise _BadAnswer(f"'next' is {following!r}, not an integer or null")
            if following <= start:
                raise _BadAnswer(f"'next' ({following}) goes back or loops to leaf {start}")
            if following != end:
                raise _BadAnswer(f"'next' ({following}) skips the leaves after {end}")
            return page, following

        return self._answer("/v1/evidence", read, start=start, end=size)  # type: ignore[no-any-return]

    def _cached(self, start: int) -> list[Leaf] | None:
        """The cached page starting at ``start`` if it passes its leaf-hash check."""
        if self.cache_dir is None:
            return None
        path = self.cache_dir / f"{start}.json"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            page: list[Leaf] = [
                (int(i), bytes.fromhex(d), None if t is None else bytes.fromhex(t))
                for i, d, t in doc["entries"]
            ]
            hashes = [bytes.fromhex(h) for h in doc["leaf_hashes"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        expected = list(range(start, start + len(page)))
        if not page or [leaf[0] for leaf in page] != expected or len(hashes) != len(page):
            return None
        if any(
            entry_leaf_hash(data, salt) != h
            for (_, data, salt), h in zip(page, hashes, strict=True)
        ):
            return None
        return page

    def _store(self, start: int, page: list[Leaf]) -> None:
        if self.cache_dir is None or not page:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        doc = {
            "api": self.url,
            "start": start,
            "entries": [[i, data.hex(), None if t is None else t.hex()] for i, data, t in page],
            "leaf_hashes": [entry_leaf_hash(data, t).hex() for _, data, t in page],
        }
        tmp = self.cache_dir / f".{start}.json.tmp"
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, self.cache_dir / f"{start}.json")

    @contextmanager
    def _bar(self, total: int) -> Iterator[Callable[[int], None]]:
        if not self._progress:
            yield lambda n: None
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task(f"entries from {self.url}", total=total)
            yield lambda n: bar.advance(task, n)

    def entries(self, *, size: int) -> Iterator[tuple[int, bytes]]:
        for index, data, _ in self.leaves(size=size):
            yield index, data

    def leaves(self, *, size: int) -> Iterator[Leaf]:
        start = 0
        with self._bar(size) as advance:
            while start < size:
                page = self._cached(start)
                following: int | None
                if page is not None:
                    following = start + len(page)
                else:
                    page, following = self._page(start, size)
                    self._store(start, page)
                for index, data, salt in page:
                    if index < size:
                        yield index, data, salt
                advance(min(len(page), size - start))
                if following is None:
                    return
                start = following


@contextmanager
def closing_source(source: Any) -> Iterator[Any]:
    """``with`` for any source: closes it after when it has a ``close``."""
    try:
        yield source
    finally:
        close = getattr(source, "close", None)
        if callable(close):
            close()
