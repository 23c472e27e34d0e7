"""A connection to one chain: deploy, transact with local signing, call, decode reverts.

The same code drives the embedded chain (eth-tester + py-evm, in process), anvil and
any EVM node behind JSON-RPC. Transactions are signed locally, gas is estimated (a revert
during estimation is decoded and raised before anything is sent), transient RPC
failures are retried with backoff, and a mined transaction that failed is replayed as a
call to recover its revert reason.

Nonces: every :class:`Chain` of a process takes a sender's nonces from one
:class:`NonceBook` entry per (node, chain id, sender), under that entry's lock, so the
API's anchoring loop and a request handler, or two threads, never collide. Another
process signing with the same key can still take a nonce first; the node then answers
``nonce too low`` or ``replacement transaction underpriced``, and the transaction is
re-signed at once with the node's pending nonce (at most ``NONCE_RESYNCS`` times; no
sleep). ``STATS`` counts those resyncs and every backoff sleep.
"""

from __future__ import annotations

import ast
import json
import logging
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    ContractLogicError,
    MethodUnavailable,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
    Web3ValidationError,
)
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import BlockIdentifier, TxParams, TxReceipt, Wei

from service.chain.artifacts import Profile, decode_revert, load_artifact
from service.chain.config import NetworkConfig, load_network
from service.chain.keys import DEV_HD_PATH, DEV_MNEMONIC, dev_accounts
from service.chain.rpc import probe_chain_id
from service.errors import ChainError, RpcUnavailable, TransactionReverted

log = logging.getLogger(__name__)

T = TypeVar("T")

EMBEDDED_ACCOUNTS = 20
GAS_HEADROOM_NUM, GAS_HEADROOM_DEN = 6, 5  # estimate x 1.2
RETRIES = 5
RETRY_BASE_S = 0.25
NONCE_RESYNCS = 8  # re-sign with the node's pending nonce at most this many times per send
# Answers meaning "another client used this nonce first" (geth, anvil, besu, nethermind).
_NONCE_TAKEN = (
    "nonce too low",
    "nonce_too_low",
    "replacement transaction underpriced",
    "replacement_underpriced",
    "transaction underpriced: replacement",
    "oldnonce",
)

STATS: Counter[str] = Counter()  # "nonce_resyncs", "backoff_sleeps" (this process)

_REVERTS = (ContractLogicError, TransactionFailed)
_TRANSIENT: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    ConnectionError,
    TimeoutError,
)
# also retried: an HTTP error answer (only 429 and 5xx; see _retry) and a cut-off answer
_RETRIED: tuple[type[BaseException], ...] = (*_TRANSIENT, requests.HTTPError, json.JSONDecodeError)


def _revert_data(err: BaseException) -> bytes:
    """Raw revert data from a web3 error (``.data``) or eth-tester's (the raw bytes sit
    in the first argument of an exception somewhere in the cause/context chain)."""
    seen: BaseException | None = err
    while seen is not None:
        data = getattr(seen, "data", None)
        if isinstance(data, dict):  # some nodes nest it
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x"):
            try:
                return bytes.fromhex(data[2:])
            except ValueError:
                return b""
        first = seen.args[0] if seen.args else None
        if isinstance(first, Exception) and first.args:
            first = first.args[0]
        if isinstance(first, bytes | bytearray):
            return bytes(first)
        if isinstance(first, str):  # eth-tester's call path stringifies the bytes
            literal = first.removeprefix("execution reverted: ")
            if literal.startswith(("b'", 'b"')):
                try:
                    parsed = ast.literal_eval(literal)
                except (ValueError, SyntaxError):
                    parsed = None
                if isinstance(parsed, bytes):
                    return parsed
        seen = seen.__cause__ or seen.__context__
    return b""


def _reverted(err: BaseException, *, what: str, tx_hash: str | None = None) -> TransactionReverted:
    name, args = decode_revert(_revert_data(err))
    if name is None:
        message = f"{what} reverted: {err}"
    elif name == "Error" and args:
        message = f"{what} reverted: {args[0]}"
    else:
        message = f"{what} reverted with {name}{tuple(args)!r}"
    return TransactionReverted(message, error_name=name, error_args=args, tx_hash=tx_hash)


@dataclass
class _NonceSlot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    next: int | None = None  # None: ask the node's pending count before the next send


class NonceBook:
    """The next nonce of each sender on each node, shared by the :class:`Chain` clients of
    one process (see the module docstring). Nodes behind a URL are keyed by URL and chain
    id; in-process chains (eth-tester) by their provider object, for as long as it lives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_url: dict[tuple[str, int], dict[str, _NonceSlot]] = {}
        self._by_object: weakref.WeakKeyDictionary[object, dict[str, _NonceSlot]] = (
            weakref.WeakKeyDictionary()
        )

    def _senders(self, node: str | object, chain_id: int) -> dict[str, _NonceSlot]:
        if isinstance(node, str):
            return self._by_url.setdefault((node, chain_id), {})
        found = self._by_object.get(node)
        if found is None:
            found = self._by_object[node] = {}
        return found

    def slot(self, node: str | object, chain_id: int, sender: str) -> _NonceSlot:
        with self._lock:
            senders = self._senders(node, chain_id)
            found = senders.get(sender)
            if found is None:
                found = senders[sender] = _NonceSlot()
            return found

    def forget(self, node: str | object, chain_id: int) -> None:
        """Ask the node again for every sender's nonce (after a snapshot revert)."""
        with self._lock:
            for slot in self._senders(node, chain_id).values():
                slot.next = None


PROCESS_NONCES = NonceBook()


def _node_key(w3: Web3) -> str | object:
    provider = w3.provider
    uri = getattr(provider, "endpoint_uri", None)
    if isinstance(uri, str) and uri:
        return uri
    return provider


def _nonce_taken(message: str) -> bool:
    text = message.lower()
    return any(needle in text for needle in _NONCE_TAKEN)


def _fn_label(fn: ContractFunction) -> str:
    return f"{fn.address[:10]}….{fn.fn_name}" if fn.address else str(fn.fn_name)


class Chain:
    """One chain connection with the accounts that may sign on it."""

    def __init__(
        self,
        w3: Web3,
        network: NetworkConfig,
        *,
        accounts: list[LocalAccount] | None = None,
        nonces: NonceBook | None = None,
    ) -> None:
        self.w3 = w3
        self.network = network
        self.accounts: list[LocalAccount] = list(accounts or [])
        self.chain_id: int = _retry(lambda: w3.eth.chain_id, what="eth_chainId")
        if self.chain_id != network.chain_id:
            raise ChainError(
                f"network {network.name}: node reports chain id {self.chain_id}, "
                f"config says {network.chain_id}"
            )
        self._nonces = nonces or PROCESS_NONCES
        self._node = _node_key(w3)
        self._lock = threading.Lock()
        self._estimate_pending = True

    # --- construction -------------------------------------------------------------------

    @classmethod
    def embedded(cls, *, accounts: int = EMBEDDED_ACCOUNTS, profile: Profile = "default") -> Chain:
        """A fresh in-process chain whose funded accounts are the dev mnemonic's; with
        ``profile="legacy"`` it deploys the legacy build (to price the older compiler on the
        same EVM, as scripts/gas_table.py does)."""
        from eth_tester import EthereumTester, PyEVMBackend

        backend = PyEVMBackend.from_mnemonic(
            DEV_MNEMONIC, num_accounts=accounts, hd_path=DEV_HD_PATH
        )
        w3 = Web3(EthereumTesterProvider(EthereumTester(backend)))
        network = load_network("embedded").model_copy(update={"profile": profile})
        return cls(w3, network, accounts=dev_accounts(accounts))

    @classmethod
    def connect(
        cls,
        network: NetworkConfig,
        *,
        accounts: list[LocalAccount] | None = None,
        timeout_s: float = 30.0,
        nonces: NonceBook | None = None,
    ) -> Chain:
        """Connect to an RPC network (or build the embedded chain for kind 'embedded').

        An endpoint that does not answer is :class:`RpcUnavailable` at once (one quiet
        retry), naming the URL."""
        if network.kind == "embedded":
            return cls.embedded()
        assert network.rpc_url is not None
        probe_chain_id(network.rpc_url, timeout_s=min(timeout_s, 10.0))
        w3 = Web3(Web3.HTTPProvider(network.rpc_url, request_kwargs={"timeout": timeout_s}))
        if accounts is None and network.is_dev:
            accounts = dev_accounts(10)
        return cls(w3, network, accounts=accounts, nonces=nonces)

    # --- contracts ----------------------------------------------------------------------

    def contract(self, name: str, address: str) -> Contract:
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(address),
            abi=load_artifact(name, self.network.profile).abi,
        )

    def deploy(self, name: str, *args: Any, sender: LocalAccount) -> tuple[Contract, TxReceipt]:
        """Deploy artifact ``name`` (of the network's build profile) with constructor ``args``;
        returns (contract, receipt)."""
        art = load_artifact(name, self.network.profile)
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        constructor = factory.constructor(*args)
        try:
            tx = _retry(
                lambda: constructor.build_transaction(
                    {"from": sender.address, "value": Wei(0), **self._price_placeholder()}
                ),
                what=f"deploy {name}",
            )
        except _REVERTS as err:  # estimation reverted: nothing was sent
            raise _reverted(err, what=f"deploy {name}") from None
        receipt = self._send(dict(tx), sender=sender, what=f"deploy {name}")
        address = receipt["contractAddress"]
        if address is None:
            raise ChainError(f"deploy {name}: receipt has no contract address")
        return self.contract(name, address), receipt

    def transact(
        self,
        fn: ContractFunction,
        *,
        sender: LocalAccount,
        value: int = 0,
        gas: int | None = None,
    ) -> TxReceipt:
        """Sign and send ``fn`` from ``sender``; wait for the receipt; decode any revert.

        Without ``gas``, the gas is estimated under the sender's nonce lock (a revert there
        is raised before anything is sent), so a transaction another thread sent just
        before is part of the state it is estimated on."""
        what = _fn_label(fn)
        self._check_value(value, what=what)
        # a placeholder keeps build_transaction from estimating outside the lock
        params: TxParams = {
            "from": sender.address,
            "value": Wei(value),
            "gas": 1 if gas is None else gas,
            **self._price_placeholder(),
        }
        try:
            tx = dict(_retry(lambda: fn.build_transaction(params), what=what))
        except _REVERTS as err:
            raise _reverted(err, what=what) from None
        if gas is None:
            tx.pop("gas", None)
        return self._send(tx, sender=sender, what=what)

    def read(self, fn: Callable[[], T], *, what: str) -> T:
        """Run a read-only node request (event logs, a block) with the client's retries."""
        return _retry(fn, what=what)

    def call(self, fn: ContractFunction, *, block: BlockIdentifier = "latest") -> Any:
        """Call a view function; reverts become :class:`TransactionReverted`."""
        try:
            return _retry(lambda: fn.call(block_identifier=block), what=_fn_label(fn))
        except _REVERTS as err:
            raise _reverted(err, what=_fn_label(fn)) from None

    # --- sending ------------------------------------------------------------------------

    def _check_value(self, value: int, *, what: str) -> None:
        """Refuse, before anything is signed, a transaction carrying the native coin on a
        network without value transfers (``value_transfers = false``: FISCO BCOS-style)."""
        if value != 0 and not self.network.value_transfers:
            raise ChainError(
                f"{what}: network {self.network.name} has no value transfers "
                f"(value_transfers = false) but the transaction carries {value} wei"
            )

    def _price_placeholder(self) -> TxParams:
        """A ``gasPrice`` for web3's ``build_transaction`` on a network without EIP-1559
        (replaced by :meth:`_fees` before signing): without one, web3 fills EIP-1559 fields
        from the latest block's base fee, which a pre-london block does not have."""
        return {} if self.network.gas.policy == "eip1559" else {"gasPrice": Wei(0)}

    def _fees(self) -> dict[str, int]:
        """The price fields of a transaction: ``gasPrice`` alone (a legacy, type-0
        transaction: the only kind a pre-london EVM takes) for the ``fixed`` and ``legacy``
        policies, EIP-1559 fields for ``eip1559``."""
        gas = self.network.gas
        if gas.policy == "fixed":
            assert gas.fixed_gas_price_wei is not None
            return {"gasPrice": gas.fixed_gas_price_wei}
        if gas.policy == "legacy":
            return {"gasPrice": int(self.w3.eth.gas_price)}
        block = self.w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas", 0) or 0)
        tip = 0 if self.network.is_dev else int(self.w3.eth.max_priority_fee)
        return {"maxFeePerGas": base * gas.max_fee_multiplier + tip, "maxPriorityFeePerGas": tip}

    def _send(self, tx: dict[str, Any], *, sender: LocalAccount, what: str) -> TxReceipt:
        self._check_value(int(tx.get("value", 0) or 0), what=what)
        slot = self._nonces.slot(self._node, self.chain_id, sender.address)
        with self._lock, slot.lock:
            tx.pop("gasPrice", None)
            tx.pop("maxFeePerGas", None)
            tx.pop("maxPriorityFeePerGas", None)
            tx.pop("type", None)  # the price fields below decide it
            tx.pop("nonce", None)
            tx.update(_retry(self._fees, what=what))
            tx["from"] = sender.address
            tx["chainId"] = self.chain_id
            if "gas" not in tx:
                try:
                    estimate = self._estimate_gas(tx, what=what)
                except _REVERTS as err:
                    raise _reverted(err, what=what) from None
                tx["gas"] = estimate * GAS_HEADROOM_NUM // GAS_HEADROOM_DEN
            tx_hash = self._sign_and_send(tx, sender=sender, slot=slot, what=what)
        receipt = self.wait(tx_hash, what=what)
        if receipt["status"] != 1:
            raise self._replay_failure(tx, receipt, what=what)
        return receipt

    def _estimate_gas(self, tx: dict[str, Any], *, what: str) -> int:
        """Gas for ``tx`` on the node's pending state: after the sender's transactions
        that were sent but not mined yet (another thread's), which the new one follows;
        estimated on ``latest`` their storage writes may be missing and the transaction
        run out of gas. The embedded chain mines at once (and takes no block tag); a node
        that refuses the tag is asked without it from then on."""
        if not self.is_embedded and self._estimate_pending:
            try:
                return int(
                    _retry(lambda: self.w3.eth.estimate_gas(tx, "pending"), what=what)  # type: ignore[arg-type]
                )
            except Web3RPCError as err:
                code = (err.rpc_response or {}).get("error", {}).get("code")  # type: ignore[union-attr, call-overload]
                if not isinstance(err, MethodUnavailable) and code != -32602:
                    raise
                self._estimate_pending = False
        return int(_retry(lambda: self.w3.eth.estimate_gas(tx), what=what))  # type: ignore[arg-type]

    def _sign_and_send(
        self, tx: dict[str, Any], *, sender: LocalAccount, slot: _NonceSlot, what: str
    ) -> HexBytes:
        """Sign ``tx`` with the slot's next nonce and send it; when another client took
        that nonce, re-sign at once with the node's pending nonce (bounded)."""
        for attempt in range(NONCE_RESYNCS + 1):
            if slot.next is None:
                slot.next = int(
                    _retry(
                        lambda: self.w3.eth.get_transaction_count(sender.address, "pending"),
                        what=what,
                    )
                )
            tx["nonce"] = slot.next
            signed = sender.sign_transaction(tx)
            raw = bytes(signed.raw_transaction)
            try:
                tx_hash = HexBytes(
                    _retry(lambda raw=raw: self.w3.eth.send_raw_transaction(raw), what=what)  # type: ignore[misc]
                )
            except Web3RPCError as err:
                slot.next = None  # resync from the node next time
                if "already known" in str(err).lower():
                    tx_hash = HexBytes(signed.hash)
                elif _nonce_taken(str(err)) and self._delivered(signed.hash, what=what):
                    # an earlier try of this very transaction arrived (its reply was lost):
                    # it is sent; signing it again with a new nonce would send it twice
                    tx_hash = HexBytes(signed.hash)
                elif _nonce_taken(str(err)) and attempt < NONCE_RESYNCS:
                    STATS["nonce_resyncs"] += 1
                    log.info(
                        "%s: nonce %d was taken by another client; re-signing with the "
                        "node's pending nonce",
                        what,
                        tx["nonce"],
                    )
                    continue
                else:
                    raise ChainError(f"{what}: node refused the transaction: {err}") from None
            except _REVERTS as err:  # eth-tester validates on send
                slot.next = None
                raise _reverted(err, what=what) from None
            slot.next = int(tx["nonce"]) + 1
            return tx_hash
        raise AssertionError("unreachable")

    def _delivered(self, tx_hash: bytes, *, what: str) -> bool:
        """Whether the node has this exact signed transaction (pending or mined)."""
        try:
            _retry(lambda: self.w3.eth.get_transaction(HexBytes(tx_hash)), what=what)
        except TransactionNotFound:
            return False
        return True

    def wait(
        self, tx_hash: bytes, *, what: str = "transaction", timeout_s: float = 120
    ) -> TxReceipt:
        try:
            return _retry(
                lambda: self.w3.eth.wait_for_transaction_receipt(
                    HexBytes(tx_hash), timeout=timeout_s, poll_latency=0.05
                ),
                what=what,
            )
        except TimeExhausted:
            raise ChainError(
                f"{what}: no receipt for 0x{bytes(tx_hash).hex()} after {timeout_s}s"
            ) from None

    def _replay_failure(
        self, tx: dict[str, Any], receipt: TxReceipt, *, what: str
    ) -> TransactionReverted:
        # Replayed at its own block, whose timestamp it saw: on the block before, a revert
        # that depends on the second (a deadline) is misreported or not decoded at all. A
        # failed transaction changed no state; others after it in its block may have.
        call = {k: tx[k] for k in ("from", "to", "data", "value", "gas") if k in tx}
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        try:
            _retry(
                lambda: self.w3.eth.call(call, block_identifier=receipt["blockNumber"]),  # type: ignore[arg-type]
                what=what,
            )
        except _REVERTS as err:
            return _reverted(err, what=what, tx_hash=tx_hash)
        except Web3RPCError as err:  # anvil answers a call that runs out of gas so
            if "out of gas" not in str(err).lower().replace("outofgas", "out of gas"):
                raise ChainError(f"{what} failed; replaying it failed too: {err}") from None
            return TransactionReverted(
                f"{what} ran out of gas (limit {tx.get('gas')})", tx_hash=tx_hash
            )
        return TransactionReverted(f"{what} failed (out of gas?)", tx_hash=tx_hash)

    # --- dev-chain controls -------------------------------------------------------------

    @property
    def is_embedded(self) -> bool:
        return isinstance(self.w3.provider, EthereumTesterProvider)

    def _tester(self) -> Any:
        provider = self.w3.provider
        assert isinstance(provider, EthereumTesterProvider)
        return provider.ethereum_tester

    def snapshot(self) -> Any:
        if self.is_embedded:
            return self._tester().take_snapshot()
        return self.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]

    def revert(self, snapshot_id: Any) -> None:
        if self.is_embedded:
            self._tester().revert_to_snapshot(snapshot_id)
        else:
            self.w3.provider.make_request("evm_revert", [snapshot_id])  # type: ignore[arg-type]
        self._nonces.forget(self._node, self.chain_id)

    def increase_time(self, seconds: int) -> None:
        """Move the chain clock forward and mine a block (dev chains only)."""
        if self.is_embedded:
            tester = self._tester()
            now = int(self.w3.eth.get_block("latest")["timestamp"])
            pending = int(tester.get_block_by_number("pending")["timestamp"])
            # py-evm mines the travelled-to block one second early: aim one past.
            tester.time_travel(max(now + seconds, pending) + 1)
        else:
            self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
            self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def mine(self, blocks: int = 1) -> None:
        if self.is_embedded:
            self._tester().mine_blocks(blocks)
        else:
            for _ in range(blocks):
                self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def _http_status(err: requests.HTTPError) -> int | None:
    response = err.response
    return None if response is None else int(response.status_code)


def _retry(fn: Callable[[], T], *, what: str) -> T:
    """Run ``fn``, retrying transient transport failures with exponential backoff.

    Transient: the connection failed or timed out, the node answered HTTP 429 or 5xx, or
    its answer was not JSON (cut off). Any other HTTP status is a :class:`ChainError`, and
    so is a node that reports another chain id than the one the transaction is signed for.
    """
    for attempt in range(RETRIES):
        try:
            return fn()
        except Web3ValidationError as err:
            if "chain id" not in str(err).lower():
                raise
            raise ChainError(f"{what}: the node reports another chain ({err})") from None
        except _RETRIED as err:
            if isinstance(err, requests.HTTPError):
                status = _http_status(err)
                if status is None or (status != 429 and status < 500):
                    raise ChainError(f"{what}: the node answered HTTP {status}") from None
            if attempt == RETRIES - 1:
                raise RpcUnavailable(
                    f"{what}: node unreachable after {RETRIES} tries ({err})"
                ) from None
            delay = RETRY_BASE_S * (2**attempt)
            STATS["backoff_sleeps"] += 1
            log.warning(
                "%s: transient RPC error (%s); retrying in %.2fs", what, type(err).__name__, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")
