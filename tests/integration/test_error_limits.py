"""Issue 14: refusals and malformed-query answers are limited per source network, over real
sockets. A source outside acl.allow got REFUSED at any rate (30,000 of 30,000 at 10,000 q/s):
with forged sources, the box was a reflector. Now RRL-style over UDP: a burst, then one
in ``errors_slip`` answered and the rest dropped; other networks and TCP are not affected.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode

from tests.conftest import FakeUpstream, make_config, running

FLOOD = 400
LIMITS = (
    "acl:\n  allow: [127.0.2.0/24]\n"
    "rate_limit:\n  errors_rate: 5\n  errors_burst: 10\n  errors_slip: 4\n"
)


def _flood(port: int, source: str, messages: list[bytes]) -> int:
    """Send every message from ``source`` at once; how many answers came back within 1 s."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((source, 0))
        for m in messages:
            s.sendto(m, ("127.0.0.1", port))
            time.sleep(0.0002)  # ~5,000 q/s: the server's socket buffer keeps them all
        s.settimeout(1.0)
        answers = 0
        try:
            while answers < len(messages):
                s.recv(4096)
                answers += 1
        except TimeoutError:
            pass
    return answers


def _query(i: int) -> bytes:
    q = dns.message.make_query(f"n{i}.example.test", "A")
    q.id = i & 0xFFFF
    return q.to_wire()


def _no_question(i: int) -> bytes:
    return struct.pack("!HHHHHH", i & 0xFFFF, 0x0100, 0, 0, 0, 0)  # QDCOUNT 0: FORMERR


async def test_refusals_are_limited_per_source_network(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    async with running(make_config(tmp_path, upstream.port, LIMITS)) as app:
        port = app.bound[0][1]
        msgs = [_query(i) for i in range(FLOOD)]
        answered = await asyncio.to_thread(_flood, port, "127.0.0.1", msgs)
        # The burst, then one in 4 of the rest, and what refilled at 5/s meanwhile.
        assert 10 + (FLOOD - 10) // 4 - 5 <= answered <= 10 + (FLOOD - 10) // 4 + 15, answered
        assert app.service.counts["refused"] == answered
        # Another source network is told at once; an allowed client is served.
        q = dns.message.make_query("example.test", "A")
        r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, source="127.0.1.1", timeout=2)
        assert r.rcode() == dns.rcode.REFUSED
        r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, source="127.0.2.1", timeout=2)
        assert r.rcode() == dns.rcode.NOERROR
        # Over TCP the source is proven by the handshake: every refusal is sent (as BIND).
        for _ in range(30):
            r = await dns.asyncquery.tcp(q, "127.0.0.1", port=port, source="127.0.0.1", timeout=2)
            assert r.rcode() == dns.rcode.REFUSED


async def test_malformed_query_answers_are_limited_per_source_network(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    async with running(make_config(tmp_path, upstream.port, LIMITS)) as app:
        port = app.bound[0][1]
        msgs = [_no_question(i) for i in range(FLOOD)]
        answered = await asyncio.to_thread(_flood, port, "127.0.2.1", msgs)
        assert 10 + (FLOOD - 10) // 4 - 5 <= answered <= 10 + (FLOOD - 10) // 4 + 15, answered
        assert app.service.malformed == FLOOD
        # The same client's good queries are not error answers: still served.
        q = dns.message.make_query("example.test", "A")
        r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, source="127.0.2.1", timeout=2)
        assert r.rcode() == dns.rcode.NOERROR


async def test_errors_rate_zero_answers_every_refusal(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    extra = "acl:\n  allow: [127.0.2.0/24]\nrate_limit:\n  errors_rate: 0\n"
    async with running(make_config(tmp_path, upstream.port, extra)) as app:
        port = app.bound[0][1]
        msgs = [_query(i) for i in range(100)]
        assert await asyncio.to_thread(_flood, port, "127.0.0.1", msgs) == 100
