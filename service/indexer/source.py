"""Where the indexer reads the chain: a JSON-RPC node, or the embedded chain's receipts.

:class:`RpcSource` speaks JSON-RPC over HTTP itself (logs stay hex strings, which the
decoder reads directly; no result formatting). Transport failures (connection refused,
HTTP 429/5xx, a cut-off answer) are retried with exponential backoff. A timeout or a
JSON-RPC error answer to ``eth_getLogs`` is raised to the scanner, which halves the
block range; for every other request (head, headers, chain id) a timeout is retried like
a transport failure and an error answer is an :class:`~service.errors.IndexerRpcError`.

:class:`ReceiptSource` serves the embedded (eth-tester) chain, whose ``eth_getLogs``
slows down quadratically with chain length and silently ignores topics given as
bytes: it walks the blocks of a range and reads the logs from their receipts, which is
linear and exact for a chain of the embedded chain's size.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import requests

from service import jsonsafe
from service.errors import IndexerRpcError, JsonTooDeep, RpcUnavailable

if TYPE_CHECKING:
    from web3 import Web3

log = logging.getLogger(__name__)

T = TypeVar("T")

BATCH_MAX = 50  # block headers per batch request (nodes often cap batches at 100)


class RpcError(Exception):
    """The node answered a JSON-RPC error (or refused the request as too large)."""

    def __init__(self, method: str, code: int | None, message: str) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message


class RpcTimeout(Exception):
    """The node did not answer within the request timeout."""


@dataclass(frozen=True)
class BlockRef:
    number: int
    hash: str
    parent_hash: str


class LogSource(Protocol):
    """What the scanner needs from a chain."""

    # whether two threads may call it at once (the indexer then fetches ahead)
    thread_safe: bool

    @property
    def name(self) -> str: ...

    def chain_id(self) -> int: ...

    def head(self) -> int: ...

    def blocks(self, numbers: Sequence[int]) -> dict[int, BlockRef]:
        """Headers of ``numbers`` that exist (a missing number is left out)."""
        ...

    def get_logs(self, addresses: Sequence[str], start: int, end: int) -> list[dict[str, Any]]:
        """Every log of ``addresses`` in blocks ``start..end``, as JSON-RPC hex dicts."""
        ...


def _block_ref(raw: dict[str, Any]) -> BlockRef:
    return BlockRef(
        number=int(raw["number"], 16),
        hash=str(raw["hash"]).lower(),
        parent_hash=str(raw["parentHash"]).lower(),
    )


@dataclass
class Backoff:
    """Retry transient transport failures: ``base * 2**k`` seconds, capped, ``tries`` times."""

    tries: int = 6
    base_s: float = 0.25
    cap_s: float = 8.0
    sleep: Callable[[float], None] = time.sleep

    def run(self, fn: Callable[[], T], *, what: str) -> T:
        for attempt in range(self.tries):
            try:
                return fn()
            except _Transient as err:
                if attempt == self.tries - 1:
                    raise RpcUnavailable(
                        f"{what}: node unreachable after {self.tries} tries ({err.cause})"
                    ) from None
                delay = min(self.cap_s, self.base_s * 2**attempt)
                log.warning("%s: %s; retrying in %.2fs", what, err.cause, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")


class _Transient(Exception):
    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class RpcSource:
    """A JSON-RPC node over HTTP(S), spoken to directly (``requests``; no result formatting,
    and no web3 import, which alone costs a CLI second or two at start)."""

    thread_safe = True  # one HTTP session per thread

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 30.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.backoff = backoff or Backoff()
        self._local = threading.local()  # one HTTP session per thread (prefetching)
        self._ids = itertools.count(1)

    @property
    def name(self) -> str:
        return self.url

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _post(self, method: str, body: Any) -> Any:
        """One HTTP exchange: transport trouble -> _Transient or RpcTimeout; a refusal
        (HTTP 4xx other than 429) -> RpcError."""
        try:
            response = self._session().post(
                self.url,
                data=json.dumps(body),
                headers={"Content-Type": "application/json"},
                timeout=self.timeout_s,
            )
        except requests.Timeout as err:
            raise RpcTimeout(f"{method}: no answer within {self.timeout_s}s") from err
        except (requests.ConnectionError, ConnectionError, OSError) as err:
            raise _Transient(type(err).__name__) from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}")
        if status != 200:
            raise RpcError(method, status, f"HTTP {status}")
        try:
            return jsonsafe.loads(response.content, what="the node's answer")
        except (ValueError, JsonTooDeep):  # a hostile node's deep nesting is malformed too
            raise _Transient("malformed JSON answer") from None

    def request(self, method: str, params: list[Any], *, refusable: bool = False) -> Any:
        """One JSON-RPC call: its ``result``; transport failures retried with backoff.

        ``refusable`` (``eth_getLogs``): a timeout or an error answer is raised as
        :class:`RpcTimeout` / :class:`RpcError` for the scanner to split the range.
        Otherwise a timeout is retried and an error answer is an IndexerRpcError."""

        def call() -> Any:
            body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
            answer = self._exchange(method, body, refusable=refusable)
            if not isinstance(answer, dict):
                refused = RpcError(method, None, "answer is not a JSON-RPC object")
            elif answer.get("error"):
                error = answer["error"]
                if isinstance(error, dict):
                    refused = RpcError(method, error.get("code"), str(error.get("message")))
                else:
                    refused = RpcError(method, None, str(error))
            elif "result" not in answer:
                refused = RpcError(method, None, "answer has no result")
            else:
                return answer["result"]
            if refusable:
                raise refused
            raise IndexerRpcError(f"{self.url}: {refused}")

        return self.backoff.run(call, what=f"{method} at {self.url}")

    def _exchange(self, method: str, body: Any, *, refusable: bool) -> Any:
        try:
            return self._post(method, body)
        except RpcTimeout as err:
            if refusable:
                raise
            raise _Transient(str(err)) from None
        except RpcError as err:
            if refusable:
                raise
            raise IndexerRpcError(f"{self.url}: {err}") from None

    def chain_id(self) -> int:
        return int(self.request("eth_chainId", []), 16)

    def head(self) -> int:
        return int(self.request("eth_blockNumber", []), 16)

    def blocks(self, numbers: Sequence[int]) -> dict[int, BlockRef]:
        out: dict[int, BlockRef] = {}
        if len(numbers) == 1:
            raw = self.request("eth_getBlockByNumber", [hex(numbers[0]), False])
            if raw:
                ref = _block_ref(raw)
                out[ref.number] = ref
            return out
        for i in range(0, len(numbers), BATCH_MAX):
            out.update(self._batch_blocks(numbers[i : i + BATCH_MAX]))
        return out

    def _batch_blocks(self, numbers: Sequence[int]) -> dict[int, BlockRef]:
        body = [
            {"jsonrpc": "2.0", "id": k, "method": "eth_getBlockByNumber", "params": [hex(n), False]}
            for k, n in enumerate(numbers)
        ]
        answer = self.backoff.run(
            lambda: self._exchange("batch", body, refusable=False),
            what=f"eth_getBlockByNumber batch at {self.url}",
        )
        out: dict[int, BlockRef] = {}
        if not isinstance(answer, list) or any(
            not isinstance(r, dict) or r.get("error") for r in answer
        ):  # the node does not batch (or refused): one by one
            for n in numbers:
                out.update(self.blocks([n]))
            return out
        for r in answer:
            if r.get("result"):
                ref = _block_ref(r["result"])
                out[ref.number] = ref
        return out

    def get_logs(self, addresses: Sequence[str], start: int, end: int) -> list[dict[str, Any]]:
        flt = {"fromBlock": hex(start), "toBlock": hex(end), "address": list(addresses)}
        result = self.request("eth_getLogs", [flt], refusable=True)
        if not isinstance(result, list):
            raise RpcError("eth_getLogs", None, "result is not a list")
        return result


def _hex(value: Any) -> str:
    if isinstance(value, str):
        return value.lower() if value.startswith("0x") else "0x" + value.lower()
    return "0x" + bytes(value).hex()


class ReceiptSource:
    """The embedded chain (or any web3 provider), read block by block from receipts."""

    thread_safe = False  # eth-tester is not

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3

    @property
    def name(self) -> str:
        return "embedded"

    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def _block(self, number: int) -> Any:
        from web3.exceptions import BlockNotFound

        try:
            return self.w3.eth.get_block(number)
        except BlockNotFound:
            return None

    def blocks(self, numbers: Sequence[int]) -> dict[int, BlockRef]:
        out: dict[int, BlockRef] = {}
        for n in numbers:
            b = self._block(n)
            if b is not None:
                out[n] = BlockRef(n, _hex(b["hash"]), _hex(b["parentHash"]))
        return out

    def get_logs(self, addresses: Sequence[str], start: int, end: int) -> list[dict[str, Any]]:
        wanted = {a.lower() for a in addresses}
        out: list[dict[str, Any]] = []
        for n in range(start, end + 1):
            block = self._block(n)
            if block is None:
                raise RpcError("eth_getLogs", None, f"block {n} does not exist")
            block_hash = _hex(block["hash"])
            for tx_hash in block["transactions"]:
                receipt = self.w3.eth.get_transaction_receipt(tx_hash)
                for entry in receipt["logs"]:
                    if str(entry["address"]).lower() not in wanted:
                        continue
                    out.append(
                        {
                            "address": str(entry["address"]).lower(),
                            "topics": [_hex(t) for t in entry["topics"]],
                            "data": _hex(entry["data"]),
                            "blockNumber": hex(n),
                            "blockHash": block_hash,
                            "transactionHash": _hex(entry["transactionHash"]),
                            "transactionIndex": hex(int(entry["transactionIndex"])),
                            "logIndex": hex(int(entry["logIndex"])),
                            "removed": False,
                        }
                    )
        return out
