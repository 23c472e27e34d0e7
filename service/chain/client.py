"""A connection to one chain: deploy, transact with local signing, call, decode reverts.

The same code drives the embedded chain (eth-tester + py-evm, in process), anvil and
any EVM node behind JSON-RPC. Transactions are signed locally, nonces are tracked per
sender, gas is estimated (a revert during estimation is decoded and raised before
anything is sent), transient RPC failures are retried with backoff, and a mined
transaction that failed is replayed as a call to recover its revert reason.
"""

from __future__ import annotations

import ast
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import BlockIdentifier, TxParams, TxReceipt, Wei

from service.chain.artifacts import decode_revert, load_artifact
from service.chain.config import NetworkConfig, load_network
from service.chain.keys import DEV_HD_PATH, DEV_MNEMONIC, dev_accounts
from service.errors import ChainError, RpcUnavailable, TransactionReverted

log = logging.getLogger(__name__)

T = TypeVar("T")

EMBEDDED_ACCOUNTS = 20
GAS_HEADROOM_NUM, GAS_HEADROOM_DEN = 6, 5  # estimate x 1.2
RETRIES = 5
RETRY_BASE_S = 0.25

_REVERTS = (ContractLogicError, TransactionFailed)
_TRANSIENT: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    ConnectionError,
    TimeoutError,
)


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
    ) -> None:
        self.w3 = w3
        self.network = network
        self.accounts: list[LocalAccount] = list(accounts or [])
        self.chain_id: int = w3.eth.chain_id
        if self.chain_id != network.chain_id:
            raise ChainError(
                f"network {network.name}: node reports chain id {self.chain_id}, "
                f"config says {network.chain_id}"
            )
        self._nonces: dict[str, int] = {}
        self._lock = threading.Lock()

    # --- construction -------------------------------------------------------------------

    @classmethod
    def embedded(cls, *, accounts: int = EMBEDDED_ACCOUNTS) -> Chain:
        """A fresh in-process chain whose funded accounts are the dev mnemonic's."""
        from eth_tester import EthereumTester, PyEVMBackend

        backend = PyEVMBackend.from_mnemonic(
            DEV_MNEMONIC, num_accounts=accounts, hd_path=DEV_HD_PATH
        )
        w3 = Web3(EthereumTesterProvider(EthereumTester(backend)))
        return cls(w3, load_network("embedded"), accounts=dev_accounts(accounts))

    @classmethod
    def connect(
        cls,
        network: NetworkConfig,
        *,
        accounts: list[LocalAccount] | None = None,
        timeout_s: float = 30.0,
    ) -> Chain:
        """Connect to an RPC network (or build the embedded chain for kind 'embedded')."""
        if network.kind == "embedded":
            return cls.embedded()
        assert network.rpc_url is not None
        w3 = Web3(Web3.HTTPProvider(network.rpc_url, request_kwargs={"timeout": timeout_s}))
        _retry(lambda: w3.eth.chain_id, what=f"connect to {network.rpc_url}")
        if accounts is None and network.is_dev:
            accounts = dev_accounts(10)
        return cls(w3, network, accounts=accounts)

    # --- contracts ----------------------------------------------------------------------

    def contract(self, name: str, address: str) -> Contract:
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=load_artifact(name).abi
        )

    def deploy(self, name: str, *args: Any, sender: LocalAccount) -> tuple[Contract, TxReceipt]:
        """Deploy artifact ``name`` with constructor ``args``; returns (contract, receipt)."""
        art = load_artifact(name)
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        try:
            tx = factory.constructor(*args).build_transaction({"from": sender.address, "value": 0})
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
        """Sign and send ``fn`` from ``sender``; wait for the receipt; decode any revert."""
        what = _fn_label(fn)
        params: TxParams = {"from": sender.address, "value": Wei(value)}
        if gas is not None:
            params["gas"] = gas
        try:
            tx = fn.build_transaction(params)
        except _REVERTS as err:  # estimation reverted: nothing was sent
            raise _reverted(err, what=what) from None
        return self._send(dict(tx), sender=sender, what=what)

    def call(self, fn: ContractFunction, *, block: BlockIdentifier = "latest") -> Any:
        """Call a view function; reverts become :class:`TransactionReverted`."""
        try:
            return _retry(lambda: fn.call(block_identifier=block), what=_fn_label(fn))
        except _REVERTS as err:
            raise _reverted(err, what=_fn_label(fn)) from None

    # --- sending ------------------------------------------------------------------------

    def _fees(self) -> dict[str, int]:
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

    def _next_nonce(self, address: ChecksumAddress) -> int:
        if address not in self._nonces:
            self._nonces[address] = int(self.w3.eth.get_transaction_count(address, "pending"))
        return self._nonces[address]

    def _send(self, tx: dict[str, Any], *, sender: LocalAccount, what: str) -> TxReceipt:
        with self._lock:
            tx.pop("gasPrice", None)
            tx.pop("maxFeePerGas", None)
            tx.pop("maxPriorityFeePerGas", None)
            tx.update(self._fees())
            tx["from"] = sender.address
            tx["chainId"] = self.chain_id
            tx["nonce"] = self._next_nonce(sender.address)
            if "gas" not in tx:
                try:
                    estimate = _retry(lambda: self.w3.eth.estimate_gas(tx), what=what)  # type: ignore[arg-type]
                except _REVERTS as err:
                    raise _reverted(err, what=what) from None
                tx["gas"] = estimate * GAS_HEADROOM_NUM // GAS_HEADROOM_DEN
            signed = sender.sign_transaction(tx)
            try:
                tx_hash = _retry(
                    lambda: self.w3.eth.send_raw_transaction(signed.raw_transaction), what=what
                )
            except Web3RPCError as err:
                self._nonces.pop(sender.address, None)  # resync from the node next time
                if "already known" in str(err).lower():
                    tx_hash = HexBytes(signed.hash)
                else:
                    raise ChainError(f"{what}: node refused the transaction: {err}") from None
            except _REVERTS as err:  # eth-tester validates on send
                self._nonces.pop(sender.address, None)
                raise _reverted(err, what=what) from None
            self._nonces[sender.address] = tx["nonce"] + 1
        receipt = self.wait(tx_hash, what=what)
        if receipt["status"] != 1:
            raise self._replay_failure(tx, receipt, what=what)
        return receipt

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
        call = {k: tx[k] for k in ("from", "to", "data", "value", "gas") if k in tx}
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        try:
            self.w3.eth.call(call, block_identifier=receipt["blockNumber"] - 1)  # type: ignore[arg-type]
        except _REVERTS as err:
            return _reverted(err, what=what, tx_hash=tx_hash)
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
        self._nonces.clear()

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


def _retry(fn: Callable[[], T], *, what: str) -> T:
    """Run ``fn``, retrying transient transport failures with exponential backoff."""
    for attempt in range(RETRIES):
        try:
            return fn()
        except _TRANSIENT as err:
            if attempt == RETRIES - 1:
                raise RpcUnavailable(
                    f"{what}: node unreachable after {RETRIES} tries ({err})"
                ) from None
            delay = RETRY_BASE_S * (2**attempt)
            log.warning(
                "%s: transient RPC error (%s); retrying in %.2fs", what, type(err).__name__, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")
