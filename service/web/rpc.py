"""``POST /rpc``: a read-only Ethereum JSON-RPC endpoint over the embedded chain.

The embedded chain (eth-tester) lives inside the serving process and has no JSON-RPC
port of its own, yet the dashboard's receipt verifier reads the EvidenceLedger over
JSON-RPC from the browser. So a process serving an embedded deployment (``tally demo
--serve``, ``tally serve`` on the embedded network) answers the few read methods a
verifier needs here. It sends nothing and signs nothing: only the methods in
:data:`READ_METHODS`. On any RPC network this route answers 404: point the verifier at
the network's own node (the verify page defaults to it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from hexbytes import HexBytes

from service.api.context import ServiceContext

router = APIRouter(include_in_schema=False)

MAX_CALLS = 50
"""Requests in one JSON-RPC batch."""


def _wire(value: Any) -> Any:
    """A web3 value in JSON-RPC's wire form: ints and bytes as 0x hex, keys as they are."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray | HexBytes):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): _wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(v) for v in value]
    return value


def _block(tag: Any) -> Any:
    if isinstance(tag, str) and tag.startswith("0x"):
        return int(tag, 16)
    return tag if tag in ("latest", "earliest", "pending", "safe", "finalized") else "latest"


def _call(ctx: ServiceContext, params: list[Any]) -> Any:
    tx = dict(params[0])
    call: dict[str, Any] = {"to": tx["to"], "data": tx.get("data") or tx.get("input") or "0x"}
    call["from"] = tx.get("from") or ctx.chain.w3.eth.accounts[0]
    return ctx.chain.w3.eth.call(call, _block(params[1] if len(params) > 1 else "latest"))  # type: ignore[arg-type]


def _logs(ctx: ServiceContext, params: list[Any]) -> Any:
    spec = dict(params[0])
    for key in ("fromBlock", "toBlock"):
        if key in spec:
            spec[key] = _block(spec[key])
    return ctx.chain.w3.eth.get_logs(spec)  # type: ignore[arg-type]


READ_METHODS: dict[str, Callable[[ServiceContext, list[Any]], Any]] = {
    "eth_chainId": lambda ctx, p: ctx.chain.chain_id,
    "net_version": lambda ctx, p: str(ctx.chain.chain_id),
    "eth_blockNumber": lambda ctx, p: ctx.chain.w3.eth.block_number,
    "eth_call": _call,
    "eth_getCode": lambda ctx, p: ctx.chain.w3.eth.get_code(
        p[0], _block(p[1] if len(p) > 1 else "latest")
    ),
    "eth_getBlockByNumber": lambda ctx, p: ctx.chain.w3.eth.get_block(_block(p[0]), bool(p[1])),
    "eth_getBlockByHash": lambda ctx, p: ctx.chain.w3.eth.get_block(p[0], bool(p[1])),
    "eth_getTransactionByHash": lambda ctx, p: ctx.chain.w3.eth.get_transaction(p[0]),
    "eth_getTransactionReceipt": lambda ctx, p: ctx.chain.w3.eth.get_transaction_receipt(p[0]),
    "eth_getLogs": _logs,
}


def _error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def _answer(ctx: ServiceContext, req: Any) -> dict[str, Any]:
    rid = req.get("id") if isinstance(req, dict) else None
    if not isinstance(req, dict) or not isinstance(req.get("method"), str):
        return {
            "jsonrpc": "2.0",
            "id": rid,
            "error": {"code": -32600, "message": "invalid request"},
        }
    method = READ_METHODS.get(req["method"])
    if method is None:
        return {
            "jsonrpc": "2.0",
            "id": rid,
            "error": {"code": -32601, "message": f"{req['method']} is not served here (read-only)"},
        }
    params = req.get("params") or []
    if not isinstance(params, list):
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": "params: a list"}}
    try:
        with ctx.chain_guard():
            result = method(ctx, params)
    except Exception as err:  # a JSON-RPC error answer, as a node gives
        # (not found, a revert, a bad argument): the caller sees the message, nothing is lost
        if type(err).__name__ == "TransactionNotFound":
            return {"jsonrpc": "2.0", "id": rid, "result": None}
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32000, "message": str(err)[:300]}}
    return {"jsonrpc": "2.0", "id": rid, "result": _wire(result)}


@router.post("/rpc")
async def rpc(request: Request) -> JSONResponse:
    """Read-only JSON-RPC (single or batch) over this process's embedded chain."""
    ctx: ServiceContext = request.app.state.ctx
    if not ctx.chain.is_embedded:
        return JSONResponse(
            {"error": {"code": "not_found", "message": "no embedded chain here"}}, status_code=404
        )
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse(
            {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
        )
    from anyio import to_thread

    if isinstance(body, list):
        if len(body) > MAX_CALLS:
            return JSONResponse(
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": -32600, "message": "batch too large"},
                }
            )
        out: Any = await to_thread.run_sync(lambda: [_answer(ctx, r) for r in body])
    else:
        out = await to_thread.run_sync(lambda: _answer(ctx, body))
    return JSONResponse(out)
