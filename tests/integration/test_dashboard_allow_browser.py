"""Allow a false positive from the page, end to end: a real `serve --workers 2` with its page, a
real headless Chromium driven over DevTools. Read-only without a login; log in; click "allow
this name"; the name resolves within a second in every worker; undo; blocked again. A forged
form from another origin is refused and changes nothing."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import dns.asyncquery
import dns.message
import dns.rcode
import pytest
from aiohttp import web

from dashboard.auth import hash_password
from tests.conftest import FakeUpstream, free_port
from tests.integration.cdp import CHROMIUM, Page, chromium_page
from tests.integration.test_workers import _serve

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it",
)

BLOCKED = "ads.example.test"
PASSWORD = "un mot de passe assez long"
SOURCES = [f"127.0.0.{i}" for i in range(1, 7)]


async def _rcodes(port: int, name: str) -> set[int]:
    out = set()
    for src in SOURCES:
        q = dns.message.make_query(name, "A")
        r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, source=src, timeout=2)
        out.add(r.rcode())
    return out


async def _until(port: int, rcode: int, since: float, limit: float = 3.0) -> float:
    while time.monotonic() - since < limit:
        if await _rcodes(port, BLOCKED) == {rcode}:
            return time.monotonic() - since
        await asyncio.sleep(0.02)
    raise AssertionError(f"{BLOCKED} not {dns.rcode.to_text(rcode)} after {limit} s")


async def _logged(db: Path, name: str) -> None:
    for _ in range(100):
        if db.exists():
            conn = sqlite3.connect(db)
            try:
                n = conn.execute("SELECT count(*) FROM blocks WHERE qname = ?", (name,)).fetchone()
            except sqlite3.Error:
                n = (0,)
            conn.close()
            if n[0]:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} never reached the block log")


@pytest.fixture
async def box(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[tuple[int, str, Path]]:
    """A box with its page: (DNS port, page URL, state dir)."""
    upstream.add(f"{BLOCKED}. 300 IN A 192.0.2.5")
    blocklist = tmp_path / "block.txt"
    blocklist.write_text(f"{BLOCKED}\n")
    state = tmp_path / "state"
    dport = free_port()
    digest = await asyncio.to_thread(hash_password, PASSWORD)
    proc, port = await _serve(
        tmp_path / "c.yaml",
        lambda port: (
            f"state_dir: {state}\nserver:\n  listen: ['127.0.0.1:{port}']\n"
            f"upstream:\n  servers: ['127.0.0.1:{upstream.port}']\n"
            f"blocking:\n  lists:\n    - {{path: {blocklist}, category: malware}}\n"
            "blocklog:\n  flush_interval: 0.2\n"
            f"dashboard:\n  listen: 127.0.0.1:{dport}\n  language: en\n"
            f"  operators:\n    - name: marie\n      password_hash: {json.dumps(digest)}\n"
        ),
        2,
    )
    try:
        url = f"http://127.0.0.1:{dport}"
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"{url}/api/health") as r:
                        if r.status in (200, 503):
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
        yield port, url, state
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 20)


async def _click_form(page: Page, kind: str, name: str, scope: str = "") -> None:
    """Submit the first ``form.<kind>`` for ``name`` (and ``scope``) as a user would click."""
    test = f"f.elements.namedItem('name').value === {json.dumps(name)}"
    if scope:
        test += f" && f.elements.namedItem('scope').value === {json.dumps(scope)}"
    await page.evaluate(
        f"window.__old = true; [...document.querySelectorAll('form.{kind}')]"
        f".find(f => {test}).querySelector('button').click(); true"
    )
    await page.wait_for("!window.__old && document.readyState === 'complete'")


async def test_allow_and_undo_from_the_page_in_chromium(
    box: tuple[int, str, Path], tmp_path: Path
) -> None:
    port, url, state = box
    await asyncio.sleep(0.3)  # every worker bound
    assert await _rcodes(port, BLOCKED) == {dns.rcode.NXDOMAIN}
    await _logged(state / "blocks.sqlite", BLOCKED)

    async with chromium_page(tmp_path / "profile") as page:
        # Read-only without a login: the block is shown, no button, a way to log in.
        await page.goto(f"{url}/?lang=en")
        await page.wait_for(f"document.body.innerText.includes({json.dumps(BLOCKED)})")
        assert await page.evaluate("document.querySelectorAll('form.allow').length") == 0
        assert await page.evaluate("document.querySelector('#login-hint') !== null")

        # A wrong password is refused, the right one logs in.
        await page.goto(f"{url}/login?lang=en")
        await page.evaluate(
            "document.querySelector('#user').value = 'marie';"
            "document.querySelector('#password').value = 'wrong password';"
            "window.__old = true; document.querySelector('#login-submit').click(); true"
        )
        await page.wait_for("!window.__old && document.querySelector('#login-error')")
        await page.evaluate(
            "document.querySelector('#user').value = 'marie';"
            f"document.querySelector('#password').value = {json.dumps(PASSWORD)};"
            "window.__old = true; document.querySelector('#login-submit').click(); true"
        )
        await page.wait_for("!window.__old && document.querySelector('#logged-in')")
        assert "marie" in await page.evaluate("document.querySelector('#logged-in').innerText")
        await page.wait_for("document.querySelectorAll('#blocks form.allow').length > 0")
        labels = await page.evaluate(
            "[...document.querySelectorAll('#blocks form.allow button')].map(b => b.innerText)"
        )
        assert "Allow this name" in labels and "Allow ads.example.test" not in labels

        # Allow: in force in every worker within a second of the click.
        clicked = time.monotonic()
        await _click_form(page, "allow", BLOCKED, "name")
        took = await _until(port, dns.rcode.NOERROR, clicked)
        assert took < 1.0, took
        notice = await page.evaluate("document.querySelector('#notice').innerText")
        assert f"{BLOCKED} is allowed" in notice
        allowed = await page.evaluate(
            "[...document.querySelectorAll('#allowed li')].map(li => li.innerText)"
        )
        assert any(BLOCKED in a and "by marie" in a for a in allowed), allowed
        actions = await page.evaluate("document.querySelector('#operator-actions').innerText")
        assert f"marie allowed {BLOCKED}" in actions

        # Undo: blocked again within a second, cached answers included.
        clicked = time.monotonic()
        await _click_form(page, "undo", BLOCKED)
        took = await _until(port, dns.rcode.NXDOMAIN, clicked)
        assert took < 1.0, took
        assert "no longer allowed" in await page.evaluate(
            "document.querySelector('#notice').innerText"
        )
        # Log out: read-only again.
        await page.evaluate("window.__old = true; document.querySelector('#logout').click(); 1")
        await page.wait_for("!window.__old && document.querySelector('#login-hint')")

    conn = sqlite3.connect(state / "blocks.sqlite")
    rows = conn.execute("SELECT who, action, name FROM operator_actions ORDER BY id").fetchall()
    conn.close()
    assert rows == [("marie", "allow", BLOCKED), ("marie", "remove", BLOCKED)]


async def test_a_forged_form_from_another_origin_is_refused(
    box: tuple[int, str, Path], tmp_path: Path
) -> None:
    """Another site on the same machine (same site for cookies: ports do not count) posts a
    form to the page while the operator is logged in: refused, nothing allowed."""
    port, url, state = box
    evil = web.Application()

    async def forged(request: web.Request) -> web.Response:
        return web.Response(
            content_type="text/html",
            text=(
                f'<form id="f" method="post" action="{url}/allow">'
                f'<input name="name" value="{BLOCKED}"><input name="scope" value="name">'
                '<input name="csrf" value="guess"></form>'
                "<script>document.getElementById('f').submit()</script>"
            ),
        )

    evil.router.add_get("/", forged)
    runner = web.AppRunner(evil)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    evil_port = runner.addresses[0][1]
    try:
        async with chromium_page(tmp_path / "profile") as page:
            await page.goto(f"{url}/login?lang=en")
            await page.evaluate(
                "document.querySelector('#user').value = 'marie';"
                f"document.querySelector('#password').value = {json.dumps(PASSWORD)};"
                "window.__old = true; document.querySelector('#login-submit').click(); true"
            )
            await page.wait_for("!window.__old && document.querySelector('#logged-in')")
            await page.send("Page.navigate", url=f"http://127.0.0.1:{evil_port}/")
            await page.wait_for(f"location.href.startsWith({json.dumps(url + '/allow')})")
            await page.wait_for("document.body && document.body.innerText.includes('403')")
    finally:
        await runner.cleanup()
    assert not (state / "allowlist.operator.txt").exists()
    assert await _rcodes(port, BLOCKED) == {dns.rcode.NXDOMAIN}


async def test_changes_need_a_session_its_token_and_the_page_s_origin(
    box: tuple[int, str, Path],
) -> None:
    """The same rules without a browser: what curl or a script would try."""
    _, url, state = box
    form = {"name": BLOCKED, "scope": "name", "csrf": "x"}
    same = {"Origin": url}
    # unsafe=True: keep cookies of an address (127.0.0.1), as browsers do.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(f"{url}/allow", data=form, headers=same) as r:
            assert r.status == 403 and "log in first" in await r.text()  # no session
        async with http.post(
            f"{url}/login", data={"user": "marie", "password": PASSWORD}, allow_redirects=False
        ) as r:
            assert r.status == 403  # no Origin: refused before the password is even checked
        async with http.post(
            f"{url}/login",
            data={"user": "marie", "password": PASSWORD},
            headers=same,
            allow_redirects=False,
        ) as r:
            assert r.status == 303
            cookie = r.cookies["parafoudre_session"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
        async with http.post(f"{url}/allow", data=form, headers=same) as r:
            assert r.status == 403  # a session, but not its CSRF token
        async with http.get(f"{url}/?lang=en") as r:
            page = await r.text()
        csrf = page.split('data-csrf="', 1)[1].split('"', 1)[0]
        form["csrf"] = csrf
        async with http.post(
            f"{url}/allow", data=form, headers={"Origin": "http://evil.example"}
        ) as r:
            assert r.status == 403  # the token, from elsewhere
        assert not (state / "allowlist.operator.txt").exists()
        async with http.post(f"{url}/allow", data=form, headers=same, allow_redirects=False) as r:
            assert r.status == 303 and "notice=allowed" in r.headers["Location"]
    assert BLOCKED in (state / "allowlist.operator.txt").read_text()
    # Read-only, without a session: the JSON.
    async with aiohttp.ClientSession() as http, http.get(f"{url}/api/operator?lang=en") as r:
        body = await r.json()
    assert body["enabled"] is True
    assert [(a["name"], a["who"]) for a in body["allowed"]] == [(BLOCKED, "marie")]
    assert [(a["action"], a["name"], a["who"]) for a in body["actions"]] == [
        ("allow", BLOCKED, "marie")
    ]
    assert body["actions"][0]["text"].endswith(f"marie allowed {BLOCKED}")
