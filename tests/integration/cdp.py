"""Drive headless Chromium over the DevTools protocol (CDP) with aiohttp's WebSocket client:
navigate, run a line of script, wait for a page. Enough to log in and click, nothing more.

Chromium listens on a loopback port it picks itself (``--remote-debugging-port=0``) and writes
it to ``DevToolsActivePort`` in its profile; every step is bounded in time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from tests.chromium import CHROMIUM, FLAGS


class Page:
    """One tab: ``evaluate`` runs an expression in it and returns its JSON value."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        await self.ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            raw = await asyncio.wait_for(self.ws.receive(), 20)
            if raw.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"DevTools connection closed: {raw}")
            data = json.loads(raw.data)
            if data.get("id") == msg_id:
                if "error" in data:
                    raise AssertionError(f"{method}: {data['error']}")
                result: dict[str, Any] = data.get("result", {})
                return result

    async def evaluate(self, expression: str) -> Any:
        r = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await self.wait_for(f"location.href.startsWith({json.dumps(url.split('#')[0])})")
        await self.wait_for("document.readyState === 'complete'")

    async def wait_for(self, condition: str, limit: float = 10.0) -> None:
        """Until ``condition`` is true in the page (navigations may come and go meanwhile)."""
        until = time.monotonic() + limit
        while time.monotonic() < until:
            try:
                if await self.evaluate(f"Boolean({condition})"):
                    return
            except AssertionError:
                pass  # the page was navigating: its context went away mid-evaluation
            await asyncio.sleep(0.05)
        raise AssertionError(f"not true after {limit} s: {condition}")

    async def click_and_wait(self, selector: str, then: str) -> None:
        """Click the element and wait until ``then`` holds in the next page."""
        sel = json.dumps(selector)
        await self.evaluate(f"window.__old = true; document.querySelector({sel}).click(); true")
        await self.wait_for(f"!window.__old && document.readyState === 'complete' && ({then})")


@asynccontextmanager
async def chromium_page(profile: Path) -> AsyncIterator[Page]:
    """A headless Chromium with one blank tab; killed on exit."""
    assert CHROMIUM is not None
    profile.mkdir(parents=True, exist_ok=True)
    port_file = profile / "DevToolsActivePort"
    port_file.unlink(missing_ok=True)  # a profile used before: wait for this run's port
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text().count("\n") >= 1:
                break
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split("\n")[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                targets = await r.json()
            url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with http.ws_connect(url, max_msg_size=0) as ws:
                page = Page(ws)
                await page.send("Page.enable")
                yield page
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
