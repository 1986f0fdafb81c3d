"""TCP (RFC 7766) on the real server: pipelining, idle timeout, connection cap, stalled clients."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from tests.conftest import FakeUpstream, make_config, running


async def _open(
    port: int, host: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port)


async def _read_msg(reader: asyncio.StreamReader) -> dns.message.Message:
    size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 3))[0]
    return dns.message.from_wire(await asyncio.wait_for(reader.readexactly(size), 3))


def _framed(name: str, rdtype: str, qid: int) -> bytes:
    q = dns.message.make_query(name, rdtype)
    q.id = qid
    w = q.to_wire()
    return struct.pack("!H", len(w)) + w


async def test_pipelined_queries_on_one_connection(tmp_path: Path, upstream: FakeUpstream) -> None:
    cfg = make_config(tmp_path, upstream.port, "server:\n  tcp_max_pipelined: 4\n")
    async with running(cfg) as app:
        reader, writer = await _open(app.bound[0][1])
        # 40 queries in one write, more than the pipelining cap: all answered, none lost
        writer.write(
            b"".join(_framed("example.test", "A" if i % 2 else "AAAA", i) for i in range(40))
        )
        ids = set()
        for _ in range(40):
            m = await _read_msg(reader)
            assert m.rcode() == dns.rcode.NOERROR
            ids.add(m.id)
        assert ids == set(range(40))
        writer.close()


async def test_idle_and_stalled_connections_are_closed(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    cfg = make_config(tmp_path, upstream.port, "server:\n  tcp_idle_timeout: 0.3\n")
    async with running(cfg) as app:
        port = app.bound[0][1]
        idle_r, idle_w = await _open(port)
        stalled_r, stalled_w = await _open(port)
        stalled_w.write(b"\x00")  # half a length prefix, then nothing
        # a client that trickles one byte at a time is not "active"
        for _ in range(4):
            await asyncio.sleep(0.1)
            stalled_w.write(b"")
        assert await asyncio.wait_for(idle_r.read(), 2) == b""  # EOF: closed by the server
        assert await asyncio.wait_for(stalled_r.read(), 2) == b""
        # others are still served
        r = await dns.asyncquery.tcp(
            dns.message.make_query("example.test", "A"), "127.0.0.1", port=port, timeout=2
        )
        assert r.rcode() == dns.rcode.NOERROR
        idle_w.close()
        stalled_w.close()


async def test_connection_cap_closes_the_quietest(tmp_path: Path, upstream: FakeUpstream) -> None:
    cfg = make_config(tmp_path, upstream.port, "server:\n  tcp_max_connections: 3\n")
    async with running(cfg) as app:
        port = app.bound[0][1]
        conns = [await _open(port) for _ in range(3)]
        await asyncio.sleep(0.05)
        for r, w in conns[1:]:
            w.write(_framed("example.test", "A", 7))
            await _read_msg(r)
        extra_r, extra_w = await _open(port)
        assert await asyncio.wait_for(conns[0][0].read(), 2) == b""  # the quiet one went
        extra_w.write(_framed("example.test", "A", 9))
        assert (await _read_msg(extra_r)).id == 9
        assert len(app.tcp_limits.connections) <= 3
        for _, w in [*conns, (extra_r, extra_w)]:
            w.close()


async def test_client_half_close_still_gets_its_answers(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.delay = 0.1
    async with running(make_config(tmp_path, upstream.port)) as app:
        reader, writer = await _open(app.bound[0][1])
        writer.write(_framed("example.test", "A", 1) + _framed("example.test", "AAAA", 2))
        writer.write_eof()
        got = {(await _read_msg(reader)).id, (await _read_msg(reader)).id}
        assert got == {1, 2}
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
async def test_listens_on_ipv4_and_ipv6(tmp_path: Path, upstream: FakeUpstream) -> None:
    cfg = make_config(tmp_path, upstream.port, "server:\n  listen: ['127.0.0.1:0', '[::1]:0']\n")
    async with running(cfg) as app:
        (h4, p4), (h6, p6) = app.bound
        assert h6 == "::1"
        for host, port in ((h4, p4), (h6, p6)):
            q = dns.message.make_query("example.test", "A")
            assert (await dns.asyncquery.udp(q, host, port=port, timeout=2)).answer
            assert (await dns.asyncquery.tcp(q, host, port=port, timeout=2)).answer
