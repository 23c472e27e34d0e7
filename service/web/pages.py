"""The dashboard's pages: server-rendered Jinja2 templates, refreshed with htmx.

Every number on a page comes from the app's own routes (``/v1/...``, ``/readyz``,
``/metrics``), called in-process with the visitor's credential (:mod:`service.web.client`),
so a page shows exactly what those routes let that visitor read. The only other source
is the chain itself, for public facts no route serves (a checkpoint block's timestamp,
the vault's token balance). Pages only read: the one POST here stores a credential the
visitor already obtained from ``POST /v1/auth/token`` in an HttpOnly cookie.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from service.api.context import ServiceContext
from service.evidence.entries import ENTRY_CLASSES
from service.web.client import COOKIE, Answer, Api

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

PAGE = 25
"""Rows per page of the explorer's tables."""
HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
ENTRY_TYPES = tuple(ENTRY_CLASSES)
ROUND_STATES = ("Proposed", "Disputed", "Cancelled", "Finalized", "Closed")


def _ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


def _tokens(amount: Any, decimals: int = 18) -> str:
    """An integer amount of the token's smallest unit in whole tokens (display only)."""
    try:
        value = int(amount)
    except (TypeError, ValueError):
        return "-"
    whole, frac = divmod(abs(value), 10**decimals)
    sign = "-" if value < 0 else ""
    return f"{sign}{whole:,}.{frac * 10**6 // 10**decimals:06d}"


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(0, int(seconds))  # a dev chain's clock may run ahead of this one
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h"
    return f"{s // 86400} d"


def _percent(part: Any, whole: Any) -> int:
    """``100 * part // whole`` of two integer amounts (0 when ``whole`` is 0)."""
    return 100 * int(part) // int(whole) if int(whole) else 0


def _when(ts: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(ts)))
    except (TypeError, ValueError, OverflowError):
        return "-"


ASSETS = {
    # built and committed by `make assets` (package.json): no CDN, no Node.js at run time
    "htmx": "htmx.min.js",
    "uplot_js": "uPlot.min.js",
    "uplot_css": "uPlot.min.css",
    "verifier": "tally-verify.js",  # an ES module: verifyReceipt, verifyConsistency, ...
}
templates.env.globals["assets"] = ASSETS
templates.env.filters["tokens"] = _tokens
templates.env.filters["when"] = _when
templates.env.filters["ago"] = _ago


def rpc_url_of(ctx: ServiceContext, request: Request) -> str:
    """The JSON-RPC URL the deployment names: the network's node, or this process's
    read-only ``/rpc`` over an embedded chain (:mod:`service.web.rpc`)."""
    if ctx.chain.is_embedded:
        return str(request.base_url).rstrip("/") + "/rpc"
    return ctx.chain.network.rpc_url or ""


async def _chain_read(ctx: ServiceContext, fn: Any) -> tuple[Any, str | None]:
    """``fn()`` against the chain in a thread; (value, None) or (None, why it failed)."""

    def run() -> Any:
        with ctx.chain_guard():
            return fn()

    try:
        return await to_thread.run_sync(run), None
    except Exception as err:  # an unreachable node is shown on the page, not raised
        return None, f"chain unreachable ({type(err).__name__})"


async def _render(
    request: Request, api: Api, template: str, page: str, **values: Any
) -> HTMLResponse:
    me = await _whoami(api)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "page": page,
            "me": me,
            "now_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **values,
        },
    )
    if api.expired:
        response.delete_cookie(COOKIE, path="/")
    return response


async def _whoami(api: Api) -> dict[str, Any] | None:
    return await api.whoami()


def _problem(answer: Answer, what: str) -> str:
    """One line for a page when a route refused or failed."""
    if answer.status in (502, 503, 504):
        return f"{what}: the chain node or a backing service is unreachable ({answer.error_code})"
    if answer.status == 401:
        return f"{what}: sign in first (My account)"
    if answer.status == 403:
        return f"{what}: your role may not read this ({answer.error_code})"
    if answer.status == 404:
        return f"{what}: not found, or not yours to read"
    return f"{what}: {answer.error_code}: {answer.error_message}"


# --- overview ----------------------------------------------------------------------------


def _metric_samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one Prometheus metric in exposition text."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            labels = key[len(name) :].strip("{}")
            out[labels] = float(value)
    return out


async def overview_data(request: Request, api: Api) -> dict[str, Any]:
    """What the overview shows, and the one-line problems of the parts that failed."""
    ctx = _ctx(request)
    problems: list[str] = []
    data: dict[str, Any] = {"problems": problems}
    cps = await api.get("/v1/log/checkpoints", limit=1)
    if cps.ok:
        data["log"] = cps.body["log"]
        data["checkpoints_total"] = cps.body["total"]
        latest = cps.body["latest"]
        data["latest"] = latest
        if latest is not None:
            block, why = await _chain_read(
                ctx, lambda: ctx.chain.w3.eth.get_block(latest["block_number"])
            )
            data["latest_age_s"] = None if block is None else time.time() - int(block["timestamp"])
            if why:
                problems.append(f"checkpoint age: {why}")
    else:
        problems.append(_problem(cps, "log"))
    ready = await api.get("/readyz")
    checks = ready.body.get("checks", {}) if isinstance(ready.body, dict) else {}
    data["ready"] = ready.body.get("ready") if isinstance(ready.body, dict) else False
    data["anchoring"] = checks.get("anchoring")
    chain = checks.get("chain") or {}
    data["chain_ok"] = bool(chain.get("ok"))
    data["head"] = chain.get("head")
    lag = (checks.get("indexer") or {}).get("lag_blocks")
    data["indexer_lag"] = lag
    data["indexer_cursor"] = (
        None if lag is None or data["head"] is None else int(data["head"]) - int(lag)
    )
    if not data["chain_ok"]:
        problems.append("chain node unreachable: head, indexer lag and rounds are unknown")
    elif lag is None:
        problems.append("indexer: this deployment is not indexed (yet); its mirror is empty")
    rounds = await api.get("/v1/rounds", limit=100)
    if rounds.ok:
        data["rounds_total"] = rounds.body["total"]
        data["rounds_by_state"] = dict(Counter(r["status"] for r in rounds.body["rounds"]))
    else:
        problems.append(_problem(rounds, "rounds"))
    vault = ctx.contracts.vault.address
    balance, why = await _chain_read(
        ctx, lambda: ctx.contracts.token.functions.balanceOf(vault).call()
    )
    data["vault_balance"] = balance
    data["vault"] = vault
    if why:
        problems.append(f"vault balance: {why}")
    me = await _whoami(api)
    data["metrics_visible"] = False
    if me is not None and "operator" in me.get("roles", []):
        metrics = await api.call("GET", "/metrics")
        if metrics.ok:
            data["metrics_visible"] = True
            items = _metric_samples(metrics.text, "tally_evidence_items_total")
            data["ingest"] = {k.split('"')[1]: int(v) for k, v in items.items() if '"' in k}
            rejected = _metric_samples(metrics.text, "tally_evidence_rejections_total")
            by_code = {k.split('"')[1]: int(v) for k, v in rejected.items() if '"' in k and v}
            data["rejections"] = dict(sorted(by_code.items(), key=lambda kv: (-kv[1], kv[0])))
            errors: dict[str, int] = {}
            for labels, value in _metric_samples(metrics.text, "tally_http_requests_total").items():
                found = dict(re.findall(r'(\w+)="([^"]*)"', labels))
                if found.get("status", "").startswith("4") and value:
                    key = f"{found.get('method')} {found.get('route')} → {found.get('status')}"
                    errors[key] = errors.get(key, 0) + int(value)
            data["refusals"] = dict(sorted(errors.items(), key=lambda kv: -kv[1])[:10])
    return data


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request) -> HTMLResponse:
    api = Api(request)
    return await _render(
        request, api, "overview.html", "overview", data=await overview_data(request, api)
    )


@router.get("/fragments/overview", response_class=HTMLResponse)
async def overview_fragment(request: Request) -> HTMLResponse:
    """The overview's figures alone: what htmx swaps in every few seconds."""
    api = Api(request)
    return await _render(
        request, api, "overview_figures.html", "overview", data=await overview_data(request, api)
    )


# --- evidence explorer -------------------------------------------------------------------


def _is_staff(me: dict[str, Any] | None) -> bool:
    return me is not None and bool({"operator", "auditor"} & set(me.get("roles", [])))


SEARCH_FIELDS = ("agreement", "party", "type", "from", "to")


@router.get("/evidence", response_class=HTMLResponse)
async def explorer(
    request: Request,
    q: str = "",
    agreement: str = "",
    party: str = "",
    entry_type: str = Query("", alias="type"),
    from_: str = Query("", alias="from"),
    to: str = "",
    start: int = 0,
    page: int = 0,
) -> Response:
    """Look up an entry id (``q``), search entries by agreement, party, type and period
    (``GET /v1/evidence``'s filters, as the visitor may), or browse the log."""
    api = Api(request)
    me = await _whoami(api)
    staff = _is_staff(me)
    q, page, start = q.strip(), max(0, page), max(0, start)
    search = {
        k: v.strip()
        for k, v in zip(SEARCH_FIELDS, (agreement, party, entry_type, from_, to), strict=True)
        if v.strip()
    }
    values: dict[str, Any] = {
        "q": q,
        "search": search,
        "pageno": page,
        "problem": None,
        "staff": staff,
        "found": None,
    }
    if q:
        if not HASH.match(q):
            values["problem"] = "an entry id is 0x and 64 hex digits"
        else:
            found = await api.get(f"/v1/evidence/{q.lower()}")
            if found.ok:
                return RedirectResponse(f"/evidence/{q.lower()}", status_code=303)
            values["problem"] = _problem(found, f"entry {q[:12]}…")
    elif search:
        if me is None:
            values["problem"] = (
                "searching entries needs a sign-in: a participant searches its own, "
                "the auditor and operator every entry (My account)"
            )
        else:
            if not staff and "party" not in search:
                search["party"] = me["address"]  # a participant searches its own entries
            got = await api.get("/v1/evidence", start=start, limit=PAGE, **search)
            if got.ok:
                values["found"] = got.body
            else:
                values["problem"] = _problem(got, "search")
    head = await api.get("/v1/log/checkpoints", limit=1)
    size = int(head.body["log"]["tree_size"]) if head.ok else 0
    end = max(0, size - page * PAGE)
    first = max(0, end - PAGE)
    rows: list[dict[str, Any]] = []
    # staff read the full entries (ids, types); everyone else the public log's leaves
    if end > first and values["found"] is None:
        if staff:
            got = await api.get("/v1/evidence", start=first, end=end, limit=PAGE)
        else:
            got = await api.get("/v1/log/entries", start=first, end=end)
        if got.ok:
            rows = list(reversed(got.body["entries"]))
        else:
            values["problem"] = _problem(got, "log entries")
    values.update(
        size=size,
        rows=rows,
        start=first,
        end=end,
        pages=(size + PAGE - 1) // PAGE,
        types=ENTRY_TYPES,
    )
    return await _render(request, api, "evidence.html", "evidence", **values)


@router.get("/evidence/{entry_id}", response_class=HTMLResponse)
async def entry_page(request: Request, entry_id: str) -> HTMLResponse:
    api = Api(request)
    if not HASH.match(entry_id):
        return await _render(
            request, api, "entry.html", "evidence", entry=None, problem="not an entry id"
        )
    got = await api.get(f"/v1/evidence/{entry_id.lower()}")
    if not got.ok:
        response = await _render(
            request,
            api,
            "entry.html",
            "evidence",
            entry=None,
            entry_id=entry_id,
            problem=_problem(got, "this entry"),
        )
        response.status_code = got.status if got.status in (401, 403, 404) else 502
        return response
    receipt = await api.get(f"/v1/receipts/{entry_id.lower()}")
    status = "anchored" if receipt.ok else (receipt.body or {}).get("error", {}).get("status", "")
    return await _render(
        request,
        api,
        "entry.html",
        "evidence",
        entry=got.body,
        entry_id=entry_id.lower(),
        receipt_status=status or ("anchored" if receipt.ok else receipt.error_code),
        problem=None,
    )


# --- checkpoints -------------------------------------------------------------------------


@router.get("/checkpoints", response_class=HTMLResponse)
async def checkpoints(request: Request) -> HTMLResponse:
    api = Api(request)
    ctx = _ctx(request)
    limit = ctx.settings.page_max
    got = await api.get("/v1/log/checkpoints", limit=limit)
    rows: list[dict[str, Any]] = []
    problem = None
    log = None
    if got.ok:
        log = got.body["log"]
        rows = list(got.body["checkpoints"])
        offset = len(rows)
        while offset < int(got.body["total"]):
            more = await api.get("/v1/log/checkpoints", offset=offset, limit=limit)
            if not more.ok or not more.body["checkpoints"]:
                break
            rows += more.body["checkpoints"]
            offset += len(more.body["checkpoints"])
        numbers = sorted({int(r["block_number"]) for r in rows})

        def stamps() -> dict[int, int]:
            return {n: int(ctx.chain.w3.eth.get_block(n)["timestamp"]) for n in numbers}

        times, why = await _chain_read(ctx, stamps)
        for r in rows:
            r["timestamp"] = None if times is None else times.get(int(r["block_number"]))
        if why:
            problem = f"block times: {why} (the chart plots sizes by checkpoint instead)"
    else:
        problem = _problem(got, "checkpoints")
    series = [
        {"seq": r["seq"], "size": r["tree_size"], "root": r["root"], "t": r.get("timestamp")}
        for r in rows
    ]
    return await _render(
        request,
        api,
        "checkpoints.html",
        "checkpoints",
        rows=rows,
        log=log,
        series=series,
        problem=problem,
    )


# --- rounds ------------------------------------------------------------------------------


@router.get("/rounds", response_class=HTMLResponse)
async def rounds_page(request: Request) -> HTMLResponse:
    api = Api(request)
    got = await api.get("/v1/rounds", limit=100)
    return await _render(
        request,
        api,
        "rounds.html",
        "rounds",
        rounds=got.body["rounds"] if got.ok else [],
        total=got.body["total"] if got.ok else 0,
        problem=None if got.ok else _problem(got, "rounds"),
    )


def _steps(status: str, visited: set[str]) -> list[dict[str, Any]]:
    """The state machine's steps with this round's position: proposed, then challenged
    (disputed) and cancelled, or finalized, then swept (closed). ``visited``: the statuses
    the indexer's mirror saw the round pass through (the vault keeps only the current one,
    so a challenge shows once the mirror has it)."""
    order = {
        "draft": [],
        "Proposed": ["Proposed"],
        "Disputed": ["Proposed", "Disputed"],
        "Cancelled": ["Proposed", "Cancelled"],
        "Finalized": ["Proposed", "Finalized"],
        "Closed": ["Proposed", "Finalized", "Closed"],
    }.get(status, [])
    done = set(order) | (visited if order else set())
    labels = {
        "Proposed": "proposed",
        "Disputed": "challenged",
        "Cancelled": "cancelled",
        "Finalized": "finalized",
        "Closed": "swept",
    }
    return [
        {"name": labels[s], "state": s, "done": s in done, "current": s == status}
        for s in ("Proposed", "Disputed", "Cancelled", "Finalized", "Closed")
    ]


@router.get("/rounds/{round_id}", response_class=HTMLResponse)
async def round_page(request: Request, round_id: int) -> HTMLResponse:
    api = Api(request)
    got = await api.get(f"/v1/rounds/{round_id}")
    if not got.ok:
        return await _render(
            request,
            api,
            "round.html",
            "rounds",
            rnd=None,
            round_id=round_id,
            problem=_problem(got, f"round {round_id}"),
        )
    rnd = got.body
    on_chain = rnd.get("on_chain") or {}
    me = await _whoami(api)
    staff = _is_staff(me)
    payees: list[dict[str, Any]] = []
    note = None
    if me is None:
        note = "Sign in to see payouts: a participant sees their own, operators and auditors all."
    else:
        candidates = [me["address"]]
        if staff:
            listed = await api.get("/v1/participants", limit=1000)
            if listed.ok:
                candidates += [p["address"] for p in listed.body["participants"]]
            else:
                note = _problem(listed, "participants (indexer mirror)")
            operator = _ctx(request).operator  # the fee's payee
            if operator is not None:
                candidates.append(operator.address)
        seen: set[str] = set()
        for address in candidates:
            if not address or address.lower() in seen:
                continue
            seen.add(address.lower())
            claim = await api.get(f"/v1/rounds/{round_id}/claims/{address}")
            if claim.ok:
                payees.append(claim.body)
        payees.sort(key=lambda c: int(c["index"]))
    mirror = rnd.get("mirror")
    total = int(on_chain.get("total") or 0)
    paid = int(on_chain.get("paid") or 0)
    claimed = sum(int(p["amount"]) for p in payees if p["claimed"])
    return await _render(
        request,
        api,
        "round.html",
        "rounds",
        rnd=rnd,
        on_chain=on_chain,
        steps=_steps(rnd["status"], {h["status"] for h in (mirror or {}).get("history", [])}),
        payees=payees,
        shares=[
            {"account": p["account"], "amount": str(p["amount"]), "claimed": p["claimed"]}
            for p in payees
        ],
        staff=staff,
        total=total,
        paid=paid,
        paid_pct=_percent(paid, total),
        mirror=mirror,
        claimed_pct=_percent(mirror["claimed_total"], mirror["total"]) if mirror else 0,
        claimed_listed=claimed,
        note=note,
        problem=None,
    )


# --- my account --------------------------------------------------------------------------


@router.get("/account", response_class=HTMLResponse)
async def account(request: Request) -> HTMLResponse:
    api = Api(request)
    me = await _whoami(api)
    values: dict[str, Any] = {
        "agreements": None,
        "receipts": None,
        "statements": [],
        "problems": [],
    }
    if me is not None:
        address = me["address"]
        got = await api.get("/v1/agreements", party=address, limit=100)
        if got.ok:
            values["agreements"] = got.body
        else:
            values["problems"].append(_problem(got, "agreements"))
        mine = await api.get("/v1/evidence", party=address, type="UsageReceipt", limit=PAGE)
        if mine.ok:
            values["receipts"] = mine.body
        else:
            values["problems"].append(_problem(mine, "my receipts"))
        rounds = await api.get("/v1/rounds", limit=100)
        if not rounds.ok:
            values["problems"].append(_problem(rounds, "rounds"))
        for rnd in rounds.body["rounds"] if rounds.ok else []:
            rid = rnd["round_id"]
            statement = await api.get(f"/v1/rounds/{rid}/statement/{address}")
            if statement.status == 404:
                continue
            claim = await api.get(f"/v1/rounds/{rid}/claims/{address}")
            values["statements"].append(
                {
                    "round": rnd,
                    "statement": statement.body if statement.ok else None,
                    "problem": None if statement.ok else _problem(statement, "statement"),
                    "claim": claim.body if claim.ok else None,
                }
            )
    return await _render(
        request,
        api,
        "account.html",
        "account",
        chain_id=_ctx(request).chain.chain_id,
        **values,
    )


@router.post("/session")
async def open_session(request: Request) -> Response:
    """Keep a credential the visitor got from ``POST /v1/auth/token`` (or an operator API
    key) in the dashboard's HttpOnly cookie, once ``GET /v1/auth/me`` accepts it. Same
    origin only (the Origin header must name this host)."""
    origin = request.headers.get("origin")
    if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
        return JSONResponse(
            {"error": {"code": "cross_origin", "message": "sign in from this dashboard"}},
            status_code=403,
        )
    try:
        body = await request.json()
    except ValueError:
        body = None
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token or len(token) > 4096:
        return JSONResponse(
            {"error": {"code": "invalid_input", "message": "token: a bearer token or API key"}},
            status_code=400,
        )
    me = await Api(request).call("GET", "/v1/auth/me", credential=token)
    if not me.ok:
        return JSONResponse(me.body, status_code=me.status)
    response = JSONResponse(me.body)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/session/end")
async def end_session() -> Response:
    response = JSONResponse({"signed_out": True})
    response.delete_cookie(COOKIE, path="/")
    return response


# --- verify a receipt --------------------------------------------------------------------


@router.get("/verify", response_class=HTMLResponse)
async def verify(request: Request, entry: str = "") -> HTMLResponse:
    api = Api(request)
    ctx = _ctx(request)
    receipt_json = None
    problem = None
    if entry:
        if HASH.match(entry):
            got = await api.get(f"/v1/receipts/{entry.lower()}")
            if got.ok:
                import json

                receipt_json = json.dumps(got.body, indent=2)
            else:
                problem = _problem(got, "that receipt")
        else:
            problem = "not an entry id"
    return await _render(
        request,
        api,
        "verify.html",
        "verify",
        rpc_url=rpc_url_of(ctx, request),
        chain_id=ctx.chain.chain_id,
        ledger=ctx.contracts.ledger.address,
        registry=ctx.contracts.registry.address,
        receipt_json=receipt_json,
        problem=problem,
    )
