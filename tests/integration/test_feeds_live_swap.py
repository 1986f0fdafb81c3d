"""Issue 3, end to end: feeds update against a local HTTP server, the running server swaps the
compiled list in within seconds, and a broken feed leaves the previous protection in place."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
from aiohttp import web

from feeds.update import run_update
from resolver.app import App
from tests.conftest import FakeUpstream, make_config, running


async def _rcode(app: App, name: str) -> int:
    host, port = app.bound[0]
    q = dns.message.make_query(name, "A")
    return (await dns.asyncquery.udp(q, host, port=port, timeout=2)).rcode()


async def _until_blocked(app: App, name: str, seconds: float = 6.0) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start < seconds:
        if await _rcode(app, name) == dns.rcode.NXDOMAIN:
            return loop.time() - start
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} not blocked after {seconds} s")


async def test_update_then_live_swap_then_broken_feed_keeps_protection(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.add("malware-host.test. 300 IN A 192.0.2.66")
    upstream.add("phish.test. 300 IN A 192.0.2.67")
    served = {"hosts": "# a hosts feed\n0.0.0.0 malware-host.test\n", "status": 200}

    async def feed(request: web.Request) -> web.Response:
        return web.Response(text=served["hosts"], status=int(served["status"]))

    web_app = web.Application()
    web_app.router.add_get("/hosts.txt", feed)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    extra = f"""
feeds:
  catalogue: []
  retries: 0
  sources:
    - name: test-hosts
      url: http://127.0.0.1:{port}/hosts.txt
      format: hosts
      category: malware
"""
    cfg = make_config(tmp_path, upstream.port, extra)
    try:
        async with running(cfg) as app:
            assert await _rcode(app, "malware-host.test") == dns.rcode.NOERROR  # cached now
            out = io.StringIO()
            code = await run_update(
                cfg.feeds_config(), artifact_path=cfg.compiled_path(), out=out, interactive=False
            )
            assert code == 0, out.getvalue()
            assert "test-hosts" in out.getvalue()
            waited = await _until_blocked(app, "malware-host.test")
            assert waited < 5  # noticed by itself (mtime watch), cache cleared
            # the feed breaks: the update says so, and the protection stays
            served["status"] = 500
            out = io.StringIO()
            code = await run_update(
                cfg.feeds_config(), artifact_path=cfg.compiled_path(), out=out, interactive=False
            )
            assert code != 0
            await asyncio.sleep(2.5)
            assert await _rcode(app, "malware-host.test") == dns.rcode.NXDOMAIN
            # the feed comes back with one more name
            served["status"] = 200
            served["hosts"] += "0.0.0.0 phish.test\n"
            code = await run_update(
                cfg.feeds_config(),
                artifact_path=cfg.compiled_path(),
                out=io.StringIO(),
                interactive=False,
            )
            assert code == 0
            await _until_blocked(app, "phish.test")
            assert app.lists.reloads >= 2
    finally:
        await runner.cleanup()


async def test_corrupt_artifact_is_refused_and_old_list_stays(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    from resolver import blocklist_file
    from resolver.core.blocklist import SUBTREE

    cfg = make_config(tmp_path, upstream.port)
    path = cfg.compiled_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    async with running(cfg) as app:
        blocklist_file.write_atomic(path, [("bad.test", SUBTREE, 0)], [("feed:t", "malware")])
        await _until_blocked(app, "x.bad.test")
        path.write_bytes(b"not an artifact at all")
        await asyncio.sleep(2.5)
        assert await _rcode(app, "x.bad.test") == dns.rcode.NXDOMAIN  # the old list stays
        assert app.lists.failures >= 1
