"""Upstream health through the callback driver, over real sockets on loopback.

The bookkeeping itself (backoff, order, alarms) is tested without sockets in
tests/unit/net/test_upstream_selection.py.
"""

from __future__ import annotations

import asyncio
import select

import pytest
from dnslib import DNSRecord

from resolver.core.query import Transport, from_wire
from resolver.core.steps import Upstream
from resolver.net.upstream_client import UpstreamClient
from tests.conftest import FakeUpstream


async def test_exchange_by_callback_and_failover(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first try reports to a callback; a silent server hands over to the next in order.

    Run twice: with our epoll set (Linux) and with the loop's own readers (elsewhere)."""
    for with_epoll in (True, False):
        if not with_epoll:
            monkeypatch.delattr(select, "epoll", raising=False)
        silent = FakeUpstream(silent=True)
        good = FakeUpstream()
        good.add("example.test. 300 IN A 192.0.2.1")
        await silent.start()
        await good.start()
        client = UpstreamClient(0.2, 2.0)
        try:
            servers = [Upstream("127.0.0.1", silent.port), Upstream("127.0.0.1", good.port)]
            q = from_wire(
                bytes(DNSRecord.question("example.test", "A").pack()), "127.0.0.1", Transport.UDP
            )
            got: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
            client.exchange_soon(q, servers, got.set_result)
            answer = await asyncio.wait_for(got, 3.0)
            assert answer is not None
            assert DNSRecord.parse(answer).short() == "192.0.2.1"
            assert client.health[servers[0]].fails == 1  # the silent one, set aside
            # Now the good one comes first, and answers the first try itself.
            got2: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
            assert client.exchange_soon(q, servers, got2.set_result) is None  # no task
            assert await asyncio.wait_for(got2, 1.0) is not None
        finally:
            await client.close()
            await silent.stop()
            await good.stop()
