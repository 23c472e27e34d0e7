"""The dashboard in a real headless Chromium against a served demo deployment.

One ``tally demo --serve`` per module (embedded chain, small scenario) and one browser.
With ``TALLY_SCREENSHOTS=DIR`` (``make screenshots``) ``test_screenshots`` writes one
full-page PNG per page into DIR; without it, it is skipped.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from service.chain.keys import dev_account
from tests.web.conftest import DemoServer, chrome, console_errors

pytestmark = pytest.mark.slow

PAGES = {
    "overview": "/",
    "evidence": "/evidence",
    "checkpoints": "/checkpoints",
    "rounds": "/rounds/2",
    "account": "/account",
    "verify": "/verify",
}


def key_of(address: str) -> LocalAccount:
    """The demo's accounts are the dev mnemonic's."""
    for i in range(30):
        acct = dev_account(i)
        if acct.address.lower() == address.lower():
            return acct
    raise LookupError(address)


def token_of(server: DemoServer, acct: LocalAccount) -> str:
    r = httpx.post(server.url + "/v1/auth/challenge", json={"address": acct.address})
    message = r.json()["message"]
    sig = Account.sign_message(encode_defunct(text=message), private_key=acct.key).signature
    r = httpx.post(
        server.url + "/v1/auth/token",
        json={"message": message, "signature": "0x" + bytes(sig).hex()},
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def wait_for(fn: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the page")
        time.sleep(0.1)


def text(browser: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.CSS_SELECTOR, css).text)


def sign_in_in_page(browser: Any, server: DemoServer, acct: LocalAccount) -> None:
    """My account: get the challenge in the page, sign it here, paste the signature."""
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/account")
    browser.find_element(By.ID, "address").send_keys(acct.address)
    browser.find_element(By.ID, "get-challenge").click()
    message = wait_for(lambda: browser.find_element(By.ID, "challenge").get_attribute("value"))
    sig = Account.sign_message(encode_defunct(text=message), private_key=acct.key).signature
    browser.find_element(By.ID, "signature").send_keys("0x" + bytes(sig).hex())
    browser.find_element(By.ID, "sign-in").click()
    wait_for(lambda: browser.find_elements(By.ID, "my-address"))
    assert text(browser, "#my-address") == acct.address


def sign_out(browser: Any, server: DemoServer) -> None:
    browser.get(server.url + "/account")
    browser.delete_all_cookies()


def test_every_page_loads_without_console_errors(browser: Any, demo_server: DemoServer) -> None:
    from selenium.webdriver.common.by import By

    entry = sorted((demo_server.out / "receipts").glob("0x*.json"))[0].stem
    operator = key_of(demo_server.participant("data-space operator"))
    for signed_in in (False, True):
        pages = dict(PAGES)
        if signed_in:  # the operator may read every entry
            sign_in_in_page(browser, demo_server, operator)
            pages["entry"] = f"/evidence/{entry}"
            pages["search"] = "/evidence?type=UsageReceipt&from=2026-01-01"
        for path in pages.values():
            browser.get(demo_server.url + path)
            wait_for(lambda: browser.execute_script("return document.readyState") == "complete")
            time.sleep(0.3)  # deferred scripts and charts
            errors = console_errors(browser)
            assert errors == [], f"{path} (signed in: {signed_in}): {errors}"
            assert browser.title.endswith("Tally dashboard")
            if path == pages.get("search"):  # the operator's search found receipts
                assert browser.find_elements(By.CSS_SELECTOR, "#found tbody tr")
    # a page that is not there is one clear line, not a stack trace
    browser.get(demo_server.url + "/evidence/0x" + "00" * 32)
    assert "not found" in text(browser, "#problem")
    assert [e.split(" - ")[-1] for e in console_errors(browser)] == [
        "Failed to load resource: the server responded with a status of 404 (Not Found)"
    ]
    sign_out(browser, demo_server)


def test_pages_fit_a_phone_width_screen(demo_server: DemoServer) -> None:
    phone = chrome(width=390, height=844)
    try:
        for path in PAGES.values():
            phone.get(demo_server.url + path)
            wait_for(lambda: phone.execute_script("return document.readyState") == "complete")
            overflow = phone.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 390px"
    finally:
        phone.quit()


def test_overview_numbers_equal_the_api(browser: Any, demo_server: DemoServer) -> None:
    base = demo_server.url
    cps = httpx.get(base + "/v1/log/checkpoints", params={"limit": 1}).json()
    ready = httpx.get(base + "/readyz").json()["checks"]
    rounds = httpx.get(base + "/v1/rounds").json()
    browser.get(base + "/")
    latest = cps["latest"]
    expected = {
        "#log-size": str(cps["log"]["tree_size"]),
        "#log-root": cps["log"]["root"],
        "#anchored-size": str(ready["anchoring"]["anchored_size"]),
        "#unanchored": str(ready["anchoring"]["lag_entries"]),
        "#cp-seq": str(latest["seq"]),
        "#cp-size": str(latest["tree_size"]),
        "#cp-root": latest["root"],
        "#cp-tx": latest["tx_hash"],
        "#cp-total": str(cps["total"]),
        "#chain-head": str(ready["chain"]["head"]),
        "#indexer-lag": str(ready["indexer"]["lag_blocks"]),
        "#rounds-total": str(rounds["total"]),
    }
    for state in {r["status"] for r in rounds["rounds"]}:
        expected[f"#rounds-{state.lower()}"] = str(
            sum(1 for r in rounds["rounds"] if r["status"] == state)
        )
    shown = {css: text(browser, css) for css in expected}
    assert shown == expected
    assert (
        int(cps["log"]["tree_size"])
        == demo_server.summary["evidence"]["checkpoints"][-1]["tree_size"]
    )
    # htmx swaps the figures in again: same numbers after a refresh
    browser.execute_script(
        "window.__swapped = false; document.body.addEventListener('htmx:afterSwap', "
        "() => { window.__swapped = true; }); htmx.ajax('GET', '/fragments/overview', "
        "'#overview');"
    )
    wait_for(lambda: browser.execute_script("return window.__swapped"), timeout_s=15)
    assert {css: text(browser, css) for css in expected} == expected
    assert console_errors(browser) == []


def _receipt(server: DemoServer) -> dict[str, Any]:
    path = sorted((server.out / "receipts").glob("0x*.json"))[0]
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def _flip(hex_value: str, at: int = 10) -> str:
    raw = bytearray(bytes.fromhex(hex_value[2:]))
    raw[at] ^= 0x01
    return "0x" + raw.hex()


def _tamper_signature(d: dict[str, Any]) -> None:
    signer = sorted(d["signatures"])[0]
    d["signatures"][signer] = _flip(d["signatures"][signer], 5)


def _tamper_units(d: dict[str, Any]) -> None:
    d["entry"]["units"] += 1


def _tamper_leaf_index(d: dict[str, Any]) -> None:
    d["leaf_index"] += 1


def _tamper_proof_hash(d: dict[str, Any]) -> None:
    d["inclusion_proof"][1] = _flip(d["inclusion_proof"][1])


def _tamper_root(d: dict[str, Any]) -> None:
    d["root"] = _flip(d["root"])


def _tamper_contract(d: dict[str, Any]) -> None:
    d["anchor"]["contract"] = "0x" + "11" * 20


def _tamper_checkpoint_seq(d: dict[str, Any]) -> None:
    d["anchor"]["checkpoint_seq"] += 1


TAMPERINGS: dict[str, Callable[[dict[str, Any]], None]] = {
    "signature": _tamper_signature,
    "units": _tamper_units,
    "leaf_index": _tamper_leaf_index,
    "proof_hash": _tamper_proof_hash,
    "root": _tamper_root,
    "contract_address": _tamper_contract,
    "checkpoint_seq": _tamper_checkpoint_seq,
}


def verify_in_page(
    browser: Any, server: DemoServer, doc_text: str = "", *, file: Path | None = None
) -> dict[str, str]:
    """Paste ``doc_text`` (or choose ``file``) on the verify page and run it; returns
    {check name: pass | fail | skipped}."""
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/verify")
    assert browser.find_element(By.ID, "rpc").get_attribute("value") == server.url + "/rpc"
    if file is not None:
        browser.find_element(By.ID, "file").send_keys(str(file))
        wait_for(lambda: browser.find_element(By.ID, "receipt").get_attribute("value"))
    else:
        browser.execute_script("document.getElementById('receipt').value = arguments[0]", doc_text)
    browser.find_element(By.ID, "verify-button").click()
    wait_for(lambda: text(browser, "#verdict").startswith(("PASS", "FAIL", "Could not")))
    return {
        li.get_attribute("data-check"): li.get_attribute("data-state")
        for li in browser.find_elements(By.CSS_SELECTOR, "#checks li")
    }


def audit_by_api(server: DemoServer, token: str, doc: dict[str, Any]) -> dict[str, bool | None]:
    """The Python auditor's verdict per check (POST /v1/audit/receipt, the server's chain)."""
    r = httpx.post(
        server.url + "/v1/audit/receipt",
        json=doc,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return {c["check"]: c["ok"] for c in r.json()["checks"]}


@pytest.fixture(scope="module")
def auditor_token(demo_server: DemoServer) -> str:
    return token_of(demo_server, key_of(demo_server.participant("auditor")))


def test_verify_page_passes_a_real_receipt(
    browser: Any, demo_server: DemoServer, auditor_token: str
) -> None:
    doc = _receipt(demo_server)
    path = sorted((demo_server.out / "receipts").glob("0x*.json"))[0]
    checks = verify_in_page(browser, demo_server, file=path)  # the file, as a user picks it
    assert text(browser, "#verdict").startswith("PASS")
    assert "fail" not in checks.values()
    python = audit_by_api(demo_server, auditor_token, doc)
    # every check the Python auditor ran passes in the page too, but for the two the
    # browser does not do (the registry's role history, witness cosignatures)
    passed = {name for name, state in checks.items() if state == "pass"}
    assert passed == {name for name, ok in python.items() if ok} - {"roles"}
    assert {"signatures", "entry_id", "leaf", "inclusion", "checkpoint"} <= passed
    assert {"contract_inclusion", "anchor_tx", "deployment", "chain_id"} <= passed
    assert console_errors(browser) == []


def test_verify_page_shows_what_a_reduced_receipt_proves(
    browser: Any, demo_server: DemoServer, auditor_token: str
) -> None:
    path = demo_server.out / "receipts" / "reduced.json"
    checks = verify_in_page(browser, demo_server, file=path)
    python = audit_by_api(demo_server, auditor_token, json.loads(path.read_text()))
    assert text(browser, "#verdict").startswith("PASS"), checks
    assert {n for n, s in checks.items() if s == "pass"} == {
        n for n, ok in python.items() if ok
    } - {"roles"}
    assert {"disclosures", "signer_fields", "inclusion", "checkpoint"} <= set(checks)
    shown = text(browser, "#fields")
    assert shown.startswith("Proven: ") and "units = " in shown and "Hidden: " in shown
    assert console_errors(browser) == []


@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_verify_page_names_the_failing_check(
    browser: Any, demo_server: DemoServer, auditor_token: str, tampering: str
) -> None:
    doc = copy.deepcopy(_receipt(demo_server))
    TAMPERINGS[tampering](doc)
    checks = verify_in_page(browser, demo_server, json.dumps(doc))
    python = audit_by_api(demo_server, auditor_token, doc)
    failed_py = [name for name, ok in python.items() if ok is False]
    failed_js = [name for name, state in checks.items() if state == "fail"]
    assert failed_py, f"{tampering}: the Python auditor passed it"
    assert failed_js[0] == failed_py[0], (tampering, checks, python)
    assert text(browser, "#verdict").startswith("FAIL")
    assert failed_js[0] in text(browser, "#verdict")
    assert console_errors(browser) == []


def test_participant_sees_only_their_own_statements(
    browser: Any, demo_server: DemoServer, auditor_token: str
) -> None:
    from selenium.webdriver.common.by import By

    provider = demo_server.participant("battery maker")
    others = [
        demo_server.participant(n) for n in ("automaker A", "automaker B", "charging network")
    ]
    staff = {"Authorization": f"Bearer {auditor_token}"}
    rounds = httpx.get(f"{demo_server.url}/v1/rounds").json()["rounds"]
    having = [
        str(r["round_id"])
        for r in rounds
        if httpx.get(
            f"{demo_server.url}/v1/rounds/{r['round_id']}/statement/{provider}", headers=staff
        ).status_code
        != 404  # a round that pays them, or one whose statement is not published
    ]
    right = demo_server.summary["settlement"]["round_id"]
    statement = httpx.get(
        f"{demo_server.url}/v1/rounds/{right}/statement/{provider}", headers=staff
    ).json()
    sign_in_in_page(browser, demo_server, key_of(provider))
    try:
        cards = browser.find_elements(By.CSS_SELECTOR, "article.statement")
        assert [c.get_attribute("data-round") for c in cards] == having
        assert str(right) in having
        payout = int(statement["participant"]["payout"])
        shown = text(browser, f'article.statement[data-round="{right}"] .payout')
        assert shown == f"{payout // 10**18:,}.{payout % 10**18 * 10**6 // 10**18:06d}"
        page = browser.page_source
        assert all(o not in page and o.lower() not in page for o in others)
        # the round's payouts: only mine, though the round pays five accounts
        browser.get(f"{demo_server.url}/rounds/{right}")
        rows = browser.find_elements(By.CSS_SELECTOR, "#payees tbody tr")
        assert [r.find_element(By.TAG_NAME, "code").text for r in rows] == [provider]
        assert all(o not in browser.page_source for o in others)
        assert console_errors(browser) == []
    finally:
        sign_out(browser, demo_server)
    # the auditor sees every payee of the same round
    sign_in_in_page(browser, demo_server, key_of(demo_server.participant("auditor")))
    try:
        browser.get(f"{demo_server.url}/rounds/{right}")
        rows = browser.find_elements(By.CSS_SELECTOR, "#payees tbody tr")
        assert len(rows) == len(demo_server.summary["settlement"]["payouts"])
    finally:
        sign_out(browser, demo_server)


def full_page_png(browser: Any, path: Path) -> None:
    """The whole page, not only the viewport (Chrome DevTools' capture)."""
    import base64

    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def test_screenshots(browser: Any, demo_server: DemoServer) -> None:
    """``make screenshots``: each page as its usual reader sees it."""
    from selenium.webdriver.common.by import By

    target = os.environ.get("TALLY_SCREENSHOTS")
    if not target:
        pytest.skip("set TALLY_SCREENSHOTS=DIR (make screenshots)")
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    right = demo_server.summary["settlement"]["round_id"]
    receipt = sorted((demo_server.out / "receipts").glob("0x*.json"))[0]

    def shot(name: str, path: str | None = None) -> None:
        if path is not None:
            browser.get(demo_server.url + path)
        time.sleep(0.5)
        full_page_png(browser, out / f"{name}.png")
        assert console_errors(browser) == [], name

    sign_in_in_page(browser, demo_server, key_of(demo_server.participant("data-space operator")))
    shot("overview", "/")
    shot("evidence", "/evidence")
    shot("entry", f"/evidence/{receipt.stem}")
    browser.get(demo_server.url + "/checkpoints")
    browser.find_element(By.CSS_SELECTOR, "#consistency button").click()
    wait_for(lambda: text(browser, "#cons-result").startswith("Consistent"))
    shot("checkpoints")
    shot("rounds", f"/rounds/{right}")
    sign_out(browser, demo_server)
    sign_in_in_page(browser, demo_server, key_of(demo_server.participant("battery maker")))
    shot("account")
    sign_out(browser, demo_server)
    verify_in_page(browser, demo_server, receipt.read_text())
    shot("verify")
    phone = chrome(width=390, height=844)
    try:
        phone.get(demo_server.url + "/")
        time.sleep(0.5)
        full_page_png(phone, out / "overview-phone.png")
    finally:
        phone.quit()


def test_keyboard_alone_navigates_and_verifies(browser: Any, demo_server: DemoServer) -> None:
    """A skip link first, then the navigation in order; the verify form works by keys."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    def tab() -> Any:
        ActionChains(browser).send_keys(Keys.TAB).perform()
        return browser.switch_to.active_element

    browser.get(demo_server.url + "/")
    focused = [tab().text for _ in range(8)]
    assert focused[0] == "Skip to content"
    assert focused[2:8] == [
        "Overview",
        "Evidence",
        "Checkpoints",
        "Rounds",
        "My account",
        "Verify a receipt",
    ]
    browser.get(demo_server.url + "/verify")
    browser.execute_script(
        "document.getElementById('receipt').value = arguments[0]",
        sorted((demo_server.out / "receipts").glob("0x*.json"))[0].read_text(),
    )
    for _ in range(30):
        if tab().get_attribute("id") == "verify-button":
            break
    else:
        raise AssertionError("the Verify button is not reachable with Tab")
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait_for(lambda: text(browser, "#verdict").startswith(("PASS", "FAIL")))
    assert text(browser, "#verdict").startswith("PASS")
