"""The dashboard's pages over the real app (TestClient), embedded chain, SQLite and PostgreSQL.

No browser here (tests/web/test_browser.py has it): what each page shows to whom, that a
page answers what its ``/v1`` route answers the same caller, the session cookie, the
read-only JSON-RPC endpoint, and the one-line messages when a part is missing.
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any

import pytest

from service.api.context import ServiceContext
from service.web.pages import _tokens
from tests.api.conftest import SignIn, TestClient, get_token
from tests.api.test_evidence import anchor, post
from tests.evidence.test_log import agreement, receipt
from tests.space import Space


def dd(html: str, element_id: str) -> str:
    """The text of the element with ``element_id`` (the pages' figures carry ids)."""
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', html)
    assert found, f"no #{element_id}"
    return found.group(1).strip()


def steps(html: str) -> set[str]:
    """The names of a round page's state-machine steps marked done."""
    return set(re.findall(r'<li class="done[^"]*"[^>]*>(\w+)</li>', html))


def signed_in_client(client: TestClient, token: str) -> TestClient:
    r = client.post("/session", json={"token": token})
    assert r.status_code == 200, r.text
    return client


@pytest.fixture
def entries(client: TestClient, ctx: ServiceContext, space: Space, sign_in: SignIn) -> list[str]:
    """An agreement and three receipts in the log, the first two anchored."""
    h = sign_in(space.consumers[0])
    post(client, [agreement(space), receipt(space, 1), receipt(space, 2)], h)
    anchor(ctx, space)
    post(client, [receipt(space, 3)], h)
    return [
        "0x" + e.id().hex() for e in (agreement(space), *(receipt(space, n) for n in (1, 2, 3)))
    ]


def test_every_page_answers_html(client: TestClient, entries: list[str]) -> None:
    for path in ("/", "/evidence", "/checkpoints", "/rounds", "/account", "/verify"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        assert '<main id="main"' in r.text and 'aria-current="page"' in r.text
    api = client.get(f"/v1/evidence/{entries[1]}")
    assert client.get(f"/evidence/{entries[1]}").status_code == api.status_code
    assert client.get("/static/tally.css").status_code == 200
    assert client.get("/static/tally-verify.js").status_code == 200
    # the dashboard is not part of the API's OpenAPI
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/", "/evidence", "/session", "/rpc"} & set(paths)


def test_overview_figures_are_the_apis(
    client: TestClient, entries: list[str], space: Space
) -> None:
    html = client.get("/fragments/overview").text
    cps = client.get("/v1/log/checkpoints", params={"limit": 1}).json()
    ready = client.get("/readyz").json()["checks"]
    assert dd(html, "log-size") == str(cps["log"]["tree_size"]) == "4"
    assert dd(html, "anchored-size") == str(ready["anchoring"]["anchored_size"]) == "3"
    assert dd(html, "unanchored") == str(ready["anchoring"]["lag_entries"]) == "1"
    assert dd(html, "cp-seq") == str(cps["latest"]["seq"])
    assert dd(html, "cp-root") == cps["latest"]["root"]
    assert dd(html, "cp-tx") == cps["latest"]["tx_hash"]
    assert dd(html, "chain-head") == str(ready["chain"]["head"])
    balance = space.chain.call(
        space.contracts.token.functions.balanceOf(space.contracts.vault.address)
    )
    assert re.search(r'id="vault-balance" data-raw="(\d+)"', html).group(1) == str(balance)  # type: ignore[union-attr]


def test_overview_says_when_the_indexer_has_not_indexed(
    client: TestClient, entries: list[str]
) -> None:
    html = client.get("/").text
    assert client.get("/readyz").json()["checks"]["indexer"]["lag_blocks"] is None
    assert "indexer: this deployment is not indexed (yet)" in html
    assert dd(html, "indexer-lag") == "-"


def test_metrics_figures_only_for_the_operator(
    client: TestClient, entries: list[str], space: Space
) -> None:
    anonymous = client.get("/fragments/overview").text
    assert "needs the operator role" in anonymous and 'id="items-accepted"' not in anonymous
    signed_in_client(client, get_token(client, space.consumers[0]))
    consumer = client.get("/fragments/overview").text
    assert "needs the operator role" in consumer
    signed_in_client(client, get_token(client, space.operator))
    operator = client.get("/fragments/overview").text
    assert int(dd(operator, "items-accepted")) >= 4


def test_overview_counts_rejections_by_code(
    client: TestClient, entries: list[str], space: Space, sign_in: SignIn
) -> None:
    """Two forged receipts and one with an unknown agreement: the operator's overview
    counts each code as ``/metrics`` does (the counters are process-wide: deltas)."""
    signed_in_client(client, get_token(client, space.operator))

    def shown() -> dict[str, int]:
        html = client.get("/fragments/overview").text
        return {k: int(v) for k, v in re.findall(r'id="rejected-(\w+)">(\d+)<', html)}

    def metric() -> dict[str, int]:
        text = client.get("/metrics", headers=sign_in(space.operator)).text
        return {
            k: int(float(v))
            for k, v in re.findall(r'tally_evidence_rejections_total\{code="(\w+)"\} (\S+)', text)
        }

    before = shown()
    assert before == metric()
    forged = receipt(space, 40).to_json()
    forged["entry"]["units"] = int(forged["entry"]["units"]) + 1  # signatures now fail
    stray = receipt(space, 41, agreementId=b"\x99" * 32).to_json()
    r = client.post(
        "/v1/evidence",
        json={"entries": [forged, forged, stray]},
        headers=sign_in(space.consumers[0]),
    )
    codes = [x["code"] for x in r.json()["results"]]
    assert r.json()["rejected"] == 3 and len(set(codes)) == 2, codes
    after = shown()
    assert after == metric()
    for code in set(codes):
        assert after[code] - before.get(code, 0) == codes.count(code)


def test_account_lists_my_receipts(client: TestClient, entries: list[str], space: Space) -> None:
    signed_in_client(client, get_token(client, space.consumers[0]))
    html = client.get("/account").text
    table = html[html.index('id="my-receipts"') : html.index('id="h-st"')]
    rows = re.findall(r'<td><a href="/evidence/(0x[0-9a-f]{64})">', table)
    assert rows == entries[1:]  # the receipts, not the agreement
    assert table.count(">verify</a>") == 2  # receipt 3 is pending
    signed_in_client(client, get_token(client, space.providers[2]))  # party to nothing
    other = client.get("/account").text
    assert 'id="no-receipts"' in other and not any(e in other for e in entries)


def test_explorer_pages_the_log_newest_first(
    client: TestClient, entries: list[str], space: Space
) -> None:
    html = client.get("/evidence").text
    leaves = [int(x) for x in re.findall(r"<tr>\s*<td>(\d+)</td>", html)]
    assert leaves == [3, 2, 1, 0]
    public = client.get("/v1/log/entries").json()["entries"]
    for leaf in public:  # what the public log serves of each leaf, and nothing more
        assert (leaf.get("entry_id") or leaf["leaf_hash"])[:18] in html
    signed_in_client(client, get_token(client, space.auditor))
    staff = client.get("/evidence").text
    assert all(f'href="/evidence/{e}"' in staff for e in entries)  # full entries
    assert re.findall(r"<tr>\s*<td>(\d+)</td>", staff) == ["3", "2", "1", "0"]
    client.post("/session/end")
    anonymous = client.get("/evidence", params={"q": entries[2]}, follow_redirects=False)
    api = client.get(f"/v1/evidence/{entries[2]}")
    assert anonymous.status_code == (303 if api.status_code == 200 else 200)
    signed_in_client(client, get_token(client, space.consumers[0]))  # a party to it
    r = client.get("/evidence", params={"q": entries[2]}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, f"/evidence/{entries[2]}")
    bad = client.get("/evidence", params={"q": "0x12"}).text
    assert "an entry id is 0x and 64 hex digits" in bad
    missing = client.get("/evidence", params={"q": "0x" + "ab" * 32}).text
    assert "not found, or not yours to read" in missing


def test_explorer_search_follows_the_evidence_route(
    client: TestClient, entries: list[str], space: Space
) -> None:
    """The explorer's search is ``GET /v1/evidence``'s, as the visitor may: none signed
    out, a participant its own entries only, staff anyone's."""
    party = space.consumers[0].address
    aid = "0x" + agreement(space).entry.agreementId.hex()
    anonymous = client.get("/evidence", params={"party": party}).text
    assert "searching entries needs a sign-in" in anonymous and 'id="found"' not in anonymous
    signed_in_client(client, get_token(client, space.providers[2]))  # not a party
    other = client.get("/evidence", params={"party": party}).text
    assert "your role may not read this (role_required)" in other and 'id="found"' not in other
    none = client.get("/evidence", params={"agreement": aid}).text  # searches its own
    assert 'id="found-none"' in none
    signed_in_client(client, get_token(client, space.consumers[0]))
    mine = client.get("/evidence", params={"agreement": aid, "type": "UsageReceipt"}).text
    api = client.get(
        "/v1/evidence",
        params={"party": party, "agreement": aid, "type": "UsageReceipt"},
        headers={"Authorization": "Bearer " + get_token(client, space.consumers[0])},
    ).json()
    shown = re.findall(r'<td><a href="/evidence/(0x[0-9a-f]{64})">', mine)
    assert shown == [e["entry_id"] for e in api["entries"]] == entries[1:]
    assert mine.count(">verify</a>") == 2 and "pending" in mine  # receipt 3 is not anchored
    signed_in_client(client, get_token(client, space.auditor))
    staff = client.get("/evidence", params={"party": party, "from": "1970-01-02"}).text
    assert re.findall(r'<td><a href="/evidence/(0x[0-9a-f]{64})">', staff) == entries
    bad = client.get("/evidence", params={"from": "yesterday"}).text
    assert "invalid_input" in bad and "yesterday" in bad


@pytest.mark.parametrize("who", ["anonymous", "outsider", "party", "auditor", "operator"])
def test_entry_page_answers_what_the_evidence_route_answers(
    client: TestClient, entries: list[str], space: Space, who: str
) -> None:
    """The page inherits the route's access control: same status, same content."""
    account = {
        "anonymous": None,
        "outsider": space.providers[2],
        "party": space.consumers[0],
        "auditor": space.auditor,
        "operator": space.operator,
    }[who]
    headers: dict[str, str] = {}
    if account is not None:
        token = get_token(client, account)
        signed_in_client(client, token)
        headers = {"Authorization": f"Bearer {token}"}
    eid = entries[1]
    api = client.get(f"/v1/evidence/{eid}", headers=headers)
    page = client.get(f"/evidence/{eid}")
    assert page.status_code == api.status_code
    if api.status_code == 200:
        assert dd(page.text, "leaf-index") == str(api.json()["leaf_index"])
        for signer in api.json()["signatures"]:
            assert signer in page.text
        assert f'href="/v1/receipts/{eid}"' in page.text  # anchored: the receipt link
    else:
        assert 'id="signers"' not in page.text and 'id="message"' not in page.text


def test_entry_page_says_pending_until_anchored(
    client: TestClient, entries: list[str], space: Space
) -> None:
    signed_in_client(client, get_token(client, space.consumers[0]))
    html = client.get(f"/evidence/{entries[3]}").text
    assert "not anchored yet" in html and "/v1/receipts/" not in html


def test_round_payouts_need_a_sign_in(client: TestClient) -> None:
    r = client.get("/rounds/7")
    assert r.status_code == 200 and "round 7: not found" in r.text


def test_account_without_a_session_offers_sign_in(client: TestClient) -> None:
    html = client.get("/account").text
    assert 'id="get-challenge"' in html and 'id="my-address"' not in html


def test_session_keeps_a_valid_token_in_an_httponly_cookie(
    client: TestClient, space: Space
) -> None:
    token = get_token(client, space.consumers[0])
    r = client.post("/session", json={"token": token})
    assert r.status_code == 200 and r.json()["address"] == space.consumers[0].address
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("tally_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    html = client.get("/account").text
    assert dd(html, "my-address") == space.consumers[0].address
    assert client.post("/session/end").status_code == 200
    assert 'id="my-address"' not in client.get("/account").text


def test_session_refuses_a_forged_token_and_other_origins(client: TestClient, space: Space) -> None:
    r = client.post("/session", json={"token": "not-a-token"})
    assert r.status_code == 401 and "set-cookie" not in r.headers
    assert client.post("/session", json={}).status_code == 400
    token = get_token(client, space.consumers[0])
    r = client.post("/session", json={"token": token}, headers={"Origin": "https://evil.test"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "cross_origin")
    assert "set-cookie" not in r.headers


def test_an_expired_session_is_forgotten(client: TestClient, space: Space) -> None:
    client.cookies.set("tally_session", "expired.or.forged")
    r = client.get("/account")
    assert r.status_code == 200 and "not signed in" in r.text
    assert 'tally_session=""' in r.headers.get("set-cookie", "")


def _rpc(client: TestClient, method: str, params: list[Any]) -> Any:
    return client.post("/rpc", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})


def test_rpc_reads_the_embedded_chain_and_sends_nothing(
    client: TestClient, entries: list[str], space: Space
) -> None:
    assert _rpc(client, "eth_chainId", []).json()["result"] == hex(space.chain.chain_id)
    ledger = space.contracts.ledger
    size = _rpc(
        client,
        "eth_call",
        [
            {"to": ledger.address, "data": ledger.encode_abi("count", [])},
            "latest",
        ],
    ).json()
    assert int(size["result"], 16) == 1
    for method in ("eth_sendTransaction", "eth_sendRawTransaction", "evm_mine", "eth_accounts"):
        refused = _rpc(client, method, [{}]).json()
        assert refused["error"]["code"] == -32601, method
    batch = client.post(
        "/rpc",
        json=[
            {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "eth_getTransactionReceipt",
                "params": ["0x" + "00" * 32],
            },
        ],
    ).json()
    assert [b["id"] for b in batch] == [1, 2] and batch[1]["result"] is None


def test_verify_page_names_this_deployment(
    client: TestClient, ctx: ServiceContext, entries: list[str], space: Space
) -> None:
    html = client.get("/verify").text
    assert 'value="http://testserver/rpc"' in html
    assert dd(html, "ledger") == ctx.contracts.ledger.address
    signed_in_client(client, get_token(client, space.consumers[0]))  # a party to it
    prefilled = client.get("/verify", params={"entry": entries[1]}).text
    assert entries[1] in prefilled and "inclusion_proof" in prefilled


@pytest.mark.anvil
def test_pages_say_when_the_chain_node_is_unreachable(db_url: str, tmp_path: Any) -> None:
    """A node that stops answering: every page still answers, with one line saying so."""
    from service.chain.client import Chain
    from service.chain.config import rpc_network
    from service.db import create_schema, make_engine
    from tests.api.conftest import make_client
    from tests.nodes import running_anvil
    from tests.space import build_space

    nodes = running_anvil()
    node = next(nodes)
    engine = make_engine(db_url)
    create_schema(engine)
    try:
        space = build_space(Chain.connect(rpc_network(node.url, chain_id=31337)))
        client, ctx = make_client(space, engine, data_dir=tmp_path)
        with client:
            h = {"Authorization": f"Bearer {get_token(client, space.consumers[0])}"}
            post(client, [agreement(space), receipt(space, 1)], h)
            anchor(ctx, space)
            eid = "0x" + receipt(space, 1).id().hex()
            node.stop()
            overview = client.get("/")
            assert overview.status_code == 200
            assert "chain node unreachable" in overview.text
            assert dd(overview.text, "log-size") == "2"  # the log is the database's
            assert dd(overview.text, "chain-ok") == "unreachable"
            assert client.get("/rounds").status_code == 200  # none mirrored: no chain call
            one = client.get("/rounds/1")  # asks the vault
            assert one.status_code == 200
            assert "round 1: the chain node or a backing service is unreachable" in one.text
            checkpoints = client.get("/checkpoints")
            assert checkpoints.status_code == 200 and "block times: chain unreachable" in (
                checkpoints.text
            )
            # who the caller is comes from the registry, on chain: no entry, and no sign-out
            client.cookies.set("tally_session", h["Authorization"].removeprefix("Bearer "))
            entry = client.get(f"/evidence/{eid}")
            assert entry.status_code == 502
            assert "the chain node or a backing service is unreachable" in entry.text
            assert "set-cookie" not in entry.headers
    finally:
        with contextlib.suppress(StopIteration):
            next(nodes)
        engine.dispose()


@pytest.mark.anvil
def test_demo_on_a_node_then_tally_serve_shows_its_data(tmp_path: Any) -> None:
    """``tally demo --rpc URL``, then ``tally serve`` on that deployment and database:
    the dashboard shows the demo's log, checkpoints and rounds."""
    import json
    import socket
    import subprocess

    import httpx

    from service.api.process import ServeProcess, write_network_file
    from tests.api.conftest import SECRET
    from tests.nodes import running_anvil
    from tests.web.conftest import DEMO_ARGS, TALLY

    nodes = running_anvil()
    node = next(nodes)
    try:
        out = tmp_path / "demo"
        demo = subprocess.run(
            [*TALLY, "demo", "--rpc", node.url, "--out", str(out), *DEMO_ARGS],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
        summary = json.loads((out / "summary.json").read_text())
        network = write_network_file(
            tmp_path / "node.toml", name="demo-node", rpc_url=node.url, chain_id=31337
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = ServeProcess(
            env={
                "TALLY_NETWORK": str(network),
                "TALLY_DEPLOYMENT_FILE": str(out / "deployment.json"),
                "TALLY_DATABASE_URL": f"sqlite:///{out / 'tally.db'}",
                "TALLY_DATA_DIR": str(tmp_path / "data"),
                "TALLY_JWT_SECRET": SECRET,
                "TALLY_LOG_LEVEL": "WARNING",
            },
            port=port,
            index=True,
            log_path=tmp_path / "serve.log",
        ).start()
        try:
            base = server.url
            last = summary["evidence"]["checkpoints"][-1]
            html = httpx.get(base + "/", timeout=30).text
            assert dd(html, "log-size") == str(last["tree_size"])
            assert dd(html, "cp-seq") == str(last["seq"])
            assert dd(html, "cp-root") == last["root"]
            rounds = httpx.get(base + "/rounds", timeout=30).text
            right = summary["settlement"]["round_id"]
            assert f'href="/rounds/{right}"' in rounds and "Finalized" in rounds
            # claim progress from the indexer's mirror (serve --index), once it caught up
            paid = [c for c in summary["claims"] if c["tx_hash"] is not None]
            deadline = time.monotonic() + 60
            while True:
                mirror = httpx.get(f"{base}/v1/rounds/{right}", timeout=30).json()["mirror"]
                if mirror is not None and mirror["claim_count"] == len(paid):
                    break
                assert time.monotonic() < deadline, mirror
                time.sleep(0.5)
            assert mirror["claimed_total"] == str(sum(int(c["amount"]) for c in paid))
            page = httpx.get(f"{base}/rounds/{right}", timeout=30).text
            assert dd(page, "claim-count") == str(len(paid)) and paid
            assert steps(page) == {"proposed", "finalized"}  # not swept yet
            # the cheat's round: challenged, then cancelled by the arbiter (the vault keeps
            # only "Cancelled"; the challenge is the mirror's)
            wrong = summary["rejected_round"]
            assert wrong["dispute"]["challenged"], wrong
            cancelled = httpx.get(f"{base}/rounds/{wrong['round_id']}", timeout=30).text
            assert steps(cancelled) == {"proposed", "challenged", "cancelled"}
            assert 'aria-current="step">cancelled<' in cancelled
            assert dd(page, "claim-unclaimed") == _tokens(mirror["unclaimed"])
            assert dd(page, "claim-claimed") == _tokens(mirror["claimed_total"])
            verify = httpx.get(base + "/verify", timeout=30).text
            assert f'value="{node.url}"' in verify  # the node's own JSON-RPC, not /rpc
            assert httpx.post(base + "/rpc", json={}).status_code == 404
        finally:
            server.stop()
    finally:
        with contextlib.suppress(StopIteration):
            next(nodes)
