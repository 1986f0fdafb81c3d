"""Logging in to the page with the dashboard token, and the hash `parafoudre hash-password`
prints working in the config; the page itself stays gated by the token for everyone else."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from dashboard.app import create_app
from resolver.blocklog.schema import open_db
from resolver.config.dashboard import DashboardConfig, OperatorLogin
from resolver.operator_allowlist import OperatorAllowlist

TOKEN = "0123456789abcdef0123"


async def _hash(password: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "resolver.cli", "hash-password",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(password.encode() + b"\n"), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    db = tmp_path / "blocks.sqlite"
    open_db(db).close()
    digest = await _hash("un mot de passe assez long")
    cfg = DashboardConfig(token=TOKEN, operators=(OperatorLogin("paul", digest),))
    allow = tmp_path / "allow.txt"
    app = create_app(cfg, db_path=db, allowing=OperatorAllowlist(allow, db))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", allow
    finally:
        await runner.cleanup()


async def test_the_token_and_a_hashed_password_open_a_session(page: tuple[str, Path]) -> None:
    url, allow = page
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(f"{url}/") as r:
            assert r.status == 401  # the token gates the page, as before
        async with http.get(f"{url}/login") as r:
            assert r.status == 200  # the login form is reachable to log in with the token
        login = {"user": "token", "password": TOKEN}
        async with http.post(
            f"{url}/login", data=login, headers={"Origin": url}, allow_redirects=False
        ) as r:
            assert r.status == 303
        async with http.get(f"{url}/?lang=en") as r:
            text = await r.text()
            assert r.status == 200 and "Logged in: token" in text  # the cookie stands for it
        csrf = text.split('data-csrf="', 1)[1].split('"', 1)[0]
        form = {"name": "www.example.com", "scope": "domain", "csrf": csrf}
        async with http.post(
            f"{url}/allow", data=form, headers={"Origin": url}, allow_redirects=False
        ) as r:
            assert r.status == 303
    assert "example.com  # allowed" in allow.read_text() and "by token" in allow.read_text()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        bad = {"user": "paul", "password": "wrong"}
        async with http.post(f"{url}/login", data=bad, headers={"Origin": url}) as r:
            assert r.status == 403
        good = {"user": "paul", "password": "un mot de passe assez long"}
        async with http.post(f"{url}/login", data=good, headers={"Origin": url}) as r:
            assert r.status == 200 and "Connecté : paul" in await r.text()


async def test_hash_password_refuses_a_short_password() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "resolver.cli", "hash-password",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(b"short\n"), 30)
    assert proc.returncode == 1 and out == b"" and b"8 characters" in err


async def test_the_detector_s_rows_offer_their_domain_only(tmp_path: Path) -> None:
    """An exfiltration row shows a cut name (never the payload): allowing "that name" would
    allow nothing; its domain is what the operator can allow. A canary (answered before any
    allowlist) has no button."""
    import time

    from resolver.blocklog.writer import BlockEvent, BlockLogWriter

    db = tmp_path / "blocks.sqlite"
    writer = BlockLogWriter(db)
    writer.start()
    now = time.time()
    for e in (
        BlockEvent(now, "192.168.1.55", "a9f3c0e1b2d4f6a8.x7k2q.tunnel.example.com", 16,
                   "exfiltration", "exfil:entropy", "exfiltration"),
        BlockEvent(now, "192.168.1.23", "ads.tracker.example.net", 1, "blocked", "feed:x",
                   "malware"),
        BlockEvent(now, "192.168.1.30", "use-application-dns.net", 1, "blocked",
                   "canary:firefox", "bypass"),
    ):  # fmt: skip
        assert writer.offer(e)
    assert writer.flush(timeout=10)
    writer.close()
    cfg = DashboardConfig(token=TOKEN)
    app = create_app(cfg, db_path=db, allowing=OperatorAllowlist(tmp_path / "a.txt", db))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            login = {"user": "token", "password": TOKEN}
            async with http.post(f"{url}/login", data=login, headers={"Origin": url}) as r:
                html = await r.text()
    finally:
        await runner.cleanup()
    forms = html.split('<form method="post" action="/allow')[1:]
    targets = [
        (f.split('name="name" value="')[1].split('"')[0], f.split('name="scope" value="')[1][:4])
        for f in forms
    ]
    assert ("ads.tracker.example.net", "name") in targets
    assert ("ads.tracker.example.net", "doma") in targets
    exfil = [t for t in targets if "\u2026" in t[0]]  # the cut name: "a9f3c0e1….example.com"
    assert [scope for _, scope in exfil] == ["doma"], exfil
    assert "a9f3c0e1b2d4f6a8" not in html  # the payload is never on the page
    assert not [t for t in targets if "use-application-dns" in t[0]]  # a canary: nothing to allow
    assert "Autoriser example.com" in html
