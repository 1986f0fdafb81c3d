"""Issue 14: the weather page against hostile requests, over a real socket with raw HTTP.

A DNS rebinding page sends its own name as Host: 403. An Authorization header whose bytes are
not UTF-8 gave a 500 and an 18-line traceback per request before authentication: now 401 and
no log line.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from dashboard.app import create_app
from resolver.config.dashboard import DashboardConfig

TOKEN = "0123456789abcdef0123"


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[int]:
    cfg = DashboardConfig(token=TOKEN, hosts=("parafoudre.mairie.test",))
    runner = web.AppRunner(create_app(cfg, db_path=tmp_path / "blocks.sqlite"), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def raw(port: int, request: bytes) -> int:
    """Send ``request`` as is; the response's status code."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    return int(status.split()[1])


def get(
    host: bytes, auth: bytes = b"Bearer " + TOKEN.encode(), path: bytes = b"/static/app.css"
) -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n\r\n" % (path, host, auth)


@pytest.mark.parametrize(
    "host",
    [
        b"127.0.0.1",
        b"127.0.0.1:8053",
        b"192.168.1.10:8053",  # any address: no attacker's origin is an address of the box
        b"[::1]:8053",
        b"localhost:8053",
        b"PARAFOUDRE.mairie.test.",
        socket.gethostname().encode(),
    ],
)
async def test_the_page_answers_to_its_own_names_and_addresses(page: int, host: bytes) -> None:
    assert await raw(page, get(host)) == 200


@pytest.mark.parametrize(
    "host", [b"rebind.attacker.test", b"rebind.attacker.test:8053", b"127.0.0.1.nip.io"]
)
async def test_a_foreign_name_is_refused(page: int, host: bytes) -> None:
    assert await raw(page, get(host)) == 403


@pytest.mark.parametrize(
    "auth", [b"Bearer \xff", b"Bearer \xc3\x28", b"bearer \xed\xa0\x80" + TOKEN.encode(), b"\xff"]
)
async def test_a_bad_authorization_header_is_401_without_a_traceback(
    page: int, auth: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert await raw(page, get(b"127.0.0.1", auth, b"/api/summary")) == 401
    assert len(caplog.records) <= 1
    assert "Traceback" not in caplog.text and "Error handling request" not in caplog.text
