"""Serve-stale (RFC 8767) through an upstream outage, and prefetch of popular answers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode

from resolver.app import App
from tests.conftest import FakeUpstream, make_config, running


async def _ask(app: App, name: str = "example.test") -> dns.message.Message:
    host, port = app.bound[0]
    return await dns.asyncquery.udp(dns.message.make_query(name, "A"), host, port=port, timeout=5)


async def test_outage_is_bridged_with_stale_answers(tmp_path: Path, upstream: FakeUpstream) -> None:
    cfg = make_config(
        tmp_path, upstream.port, "cache:\n  stale_answer_after: 0.2\n  stale_max_age: 3600\n"
    )
    async with running(cfg) as app:
        t0 = time.time()
        app.service.clock = lambda: t0
        assert (await _ask(app)).answer[0].ttl == 300
        upstream.silent = True  # the internet link goes down
        app.service.clock = lambda: t0 + 400  # and the answer has expired
        started = time.monotonic()
        r = await _ask(app)
        assert time.monotonic() - started < 1.0  # no waiting for the whole upstream timeout
        assert r.rcode() == dns.rcode.NOERROR
        assert r.answer[0][0].to_text() == "192.0.2.1" and r.answer[0].ttl == 30
        assert app.service.counts["stale"] == 1
        # a name never seen before cannot be bridged
        assert (await _ask(app, "never.test")).rcode() == dns.rcode.SERVFAIL
        # too old to serve: SERVFAIL rather than a day-old guess
        app.service.clock = lambda: t0 + 300 + 3601
        assert (await _ask(app)).rcode() == dns.rcode.SERVFAIL
        # the link comes back: fresh answers again, and the cache is refreshed
        upstream.silent = False
        app.service.clock = lambda: t0 + 400
        r = await _ask(app)
        assert r.answer[0].ttl == 300
        await asyncio.sleep(0.3)  # let late upstream answers of the outage land


async def test_popular_answer_is_prefetched_before_it_expires(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    async with running(make_config(tmp_path, upstream.port)) as app:
        t0 = time.time()
        app.service.clock = lambda: t0
        await _ask(app)
        await _ask(app)  # now the client is known: cache hits take the fast path
        assert len(upstream.queries) == 1
        app.service.clock = lambda: t0 + 280  # in the last 10 % of the 300 s TTL
        r = await _ask(app)
        assert r.answer[0].ttl == 20  # answered from cache at once...
        for _ in range(50):  # ...while the refresh runs in the background
            if len(upstream.queries) == 2 and not app.service._refreshing:
                break
            await asyncio.sleep(0.02)
        assert len(upstream.queries) == 2
        app.service.clock = lambda: t0 + 310  # past the old expiry: still a cache hit
        r = await _ask(app)
        assert r.answer[0].ttl == 270
        assert len(upstream.queries) == 2
        assert app.service.prefetches == 1


async def test_a_list_update_during_an_outage_keeps_the_stale_answers(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    lst = tmp_path / "block.txt"
    lst.write_text("evil.test\n")
    extra = f"cache:\n  stale_answer_after: 0.2\nblocking:\n  lists:\n    - path: {lst}\n"
    async with running(make_config(tmp_path, upstream.port, extra)) as app:
        t0 = time.time()
        app.service.clock = lambda: t0
        assert (await _ask(app)).rcode() == dns.rcode.NOERROR
        upstream.silent = True
        app.service.clock = lambda: t0 + 400
        lst.write_text("evil.test\nnewly-listed.test\n")
        assert await app.reload()  # the feeds update lands in the middle of the outage
        r = await _ask(app)
        assert r.rcode() == dns.rcode.NOERROR and r.answer[0].ttl == 30  # still bridged
        # and the new list is in force, for the fast path too
        assert (await _ask(app, "newly-listed.test")).rcode() == dns.rcode.NXDOMAIN
