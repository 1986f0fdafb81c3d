"""A runaway client is limited without starving the others; ANY gets a minimal answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode

from tests.conftest import FakeUpstream, make_config, running


async def _ask(port: int, source: str) -> bool:
    q = dns.message.make_query("example.test", "A")
    try:
        r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, source=source, timeout=0.3)
    except dns.exception.Timeout:
        return False
    return r.rcode() == dns.rcode.NOERROR


async def test_runaway_client_is_limited_and_others_still_served(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    cfg = make_config(tmp_path, upstream.port, "rate_limit:\n  rate: 2\n  burst: 5\n")
    async with running(cfg) as app:
        port = app.bound[0][1]
        flood = await asyncio.gather(*(_ask(port, "127.0.0.9") for _ in range(30)))
        assert 5 <= sum(flood) <= 8  # the burst, plus what refilled meanwhile
        assert await _ask(port, "127.0.0.10")  # a neighbour is unaffected
        assert app.rate_limit is not None and app.rate_limit.limited >= 20
        await asyncio.sleep(1.1)
        assert await _ask(port, "127.0.0.9")  # and the bucket refills


async def test_any_is_answered_minimally(tmp_path: Path, upstream: FakeUpstream) -> None:
    async with running(make_config(tmp_path, upstream.port)) as app:
        host, port = app.bound[0]
        q = dns.message.make_query("example.test", "ANY")
        r = await dns.asyncquery.udp(q, host, port=port, timeout=2)
        assert r.rcode() == dns.rcode.NOERROR
        assert r.answer[0][0].to_text() == '"RFC8482" ""'
    assert upstream.queries == []
