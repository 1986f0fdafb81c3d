"""The upstream UDP socket pool over real sockets on loopback (RFC 5452, unbound's outgoing-range).

A scriptable DNS server on 127.0.0.1 (or ::1) sees our source ports and answers as each test
says: in another order, with a wrong ID or question, from another socket, or not at all. Every
test runs twice: answers read with recvmmsg (Linux) and with recv (elsewhere).
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import sys
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest
from dnslib import QTYPE, RR, A, DNSRecord

from resolver.core.query import Transport, from_wire
from resolver.core.steps import Upstream
from resolver.net import mmsg
from resolver.net.upstream_client import UpstreamClient
from resolver.net.upstream_query import build_upstream_query
from resolver.net.upstream_udp import UdpPool

WAIT = 5.0  # seconds: the bound on every wait here

Addr = Any  # the peer address tuple of a datagram (IPv4 or IPv6)
Handler = Callable[[DNSRecord, Addr, asyncio.DatagramTransport], None]


def draw() -> int:
    return int.from_bytes(os.urandom(2), "big")


def query(name: str, qid: int | None = None) -> bytes:
    q = from_wire(bytes(DNSRecord.question(name, "A").pack()), "127.0.0.1", Transport.UDP)
    return build_upstream_query(q, draw() if qid is None else qid)


def answer(req: DNSRecord, ip: str = "192.0.2.1") -> bytes:
    r = req.reply()
    r.add_answer(RR(req.q.qname, QTYPE.A, rdata=A(ip), ttl=60))
    return bytes(r.pack())


def first_a(data: bytes | None) -> str:
    assert data is not None
    return str(DNSRecord.parse(data).rr[0].rdata)


class Server(asyncio.DatagramProtocol):
    """Records each query and its source; ``handler`` decides what goes back (default: an A)."""

    def __init__(self) -> None:
        self.seen: list[tuple[DNSRecord, Addr]] = []
        self.handler: Handler | None = None
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        req = DNSRecord.parse(data)
        self.seen.append((req, addr))
        assert self.transport is not None
        if self.handler is not None:
            self.handler(req, addr, self.transport)
        else:
            self.transport.sendto(answer(req), addr)

    @property
    def ports(self) -> set[int]:
        return {addr[1] for _, addr in self.seen}


async def serve(host: str = "127.0.0.1") -> tuple[Server, asyncio.DatagramTransport, int]:
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(Server, local_addr=(host, 0))
    return server, transport, transport.get_extra_info("sockname")[1]


@pytest.fixture(autouse=True, params=["recvmmsg", "recv"])
def read_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of reading answers: one recvmmsg a wake-up, or recv until none is left."""
    if request.param == "recv":
        monkeypatch.setattr(mmsg, "create_recv_batch", lambda *a: None)
    elif not sys.platform.startswith("linux"):
        pytest.skip("recvmmsg is Linux's")
    return str(request.param)


@pytest.fixture
async def up() -> AsyncIterator[tuple[Server, int]]:
    server, transport, port = await serve()
    yield server, port
    transport.close()


@pytest.fixture
async def pool() -> AsyncIterator[UdpPool]:
    p = UdpPool(asyncio.get_running_loop(), draw)
    yield p
    p.close()


async def ask(
    pool: UdpPool, port: int, sent: bytes, wait: float = WAIT, host: str = "127.0.0.1"
) -> bytes | None:
    got: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
    pool.send(host, port, sent, wait, got.set_result)
    return await asyncio.wait_for(got, WAIT)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens on it once closed


async def test_source_ports_change_with_use_and_with_age(up: tuple[Server, int]) -> None:
    server, port = up
    pool = UdpPool(asyncio.get_running_loop(), draw, size=2, max_uses=5, max_age=60.0)
    try:
        for i in range(40):
            assert first_a(await ask(pool, port, query(f"n{i}.test"))) == "192.0.2.1"
        # 40 queries, a socket retired after 5: about 9 sockets, each on its own port.
        assert pool.opened >= 8
        assert len(server.ports) >= 8
        assert not pool._open.keys() - {p.fd for p in pool._live[("127.0.0.1", port)]}
    finally:
        pool.close()
    pool = UdpPool(asyncio.get_running_loop(), draw, size=1, max_uses=1000, max_age=0.05)
    try:
        await ask(pool, port, query("a.test"))
        await asyncio.sleep(0.1)
        await ask(pool, port, query("b.test"))  # a's socket is too old: b gets a new one
        await ask(pool, port, query("c.test"))
        assert pool.opened == 2 and len(pool._open) == 1  # a's socket is closed
        assert server.seen[-2][1] == server.seen[-1][1]  # b and c: one socket, one port
    finally:
        pool.close()


async def test_many_queries_share_a_socket_each_gets_its_own_answer(up: tuple[Server, int]) -> None:
    server, port = up
    held: list[tuple[DNSRecord, Addr]] = []

    def reverse(req: DNSRecord, addr: Addr, t: asyncio.DatagramTransport) -> None:
        held.append((req, addr))
        if len(held) == 3:  # all three in: answer the last first
            for r, a in reversed(held):
                t.sendto(answer(r, f"192.0.2.{str(r.q.qname)[1]}"), a)

    server.handler = reverse
    pool = UdpPool(asyncio.get_running_loop(), draw, size=1)
    try:
        # The same ID three times: the pool gives the second and third a free one.
        sent = [query(f"q{i}.test", qid=0x1234) for i in range(1, 4)]
        got = await asyncio.gather(*(ask(pool, port, s) for s in sent))
        assert [first_a(g) for g in got] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        assert len(server.ports) == 1 and pool.opened == 1
        assert len({r.header.id for r, _ in server.seen}) == 3
    finally:
        pool.close()


async def test_replies_that_are_not_ours_are_ignored(up: tuple[Server, int], pool: UdpPool) -> None:
    server, port = up
    spoofer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    spoofer.bind(("127.0.0.1", 0))

    def tricky(req: DNSRecord, addr: Addr, t: asyncio.DatagramTransport) -> None:
        wrong_id = DNSRecord.parse(answer(req, "198.51.100.1"))
        wrong_id.header.id = (req.header.id + 1) & 0xFFFF
        wrong_q = DNSRecord.parse(answer(req, "198.51.100.2"))
        wrong_q.q.qname = "other.test"
        t.sendto(bytes(wrong_id.pack()), addr)
        t.sendto(bytes(wrong_q.pack()), addr)
        t.sendto(b"\x00" * 5, addr)  # not even a header
        # Right ID and question, from another port of the same host: the kernel drops it.
        spoofer.sendto(answer(req, "198.51.100.3"), addr)
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, t.sendto, answer(req, "192.0.2.7"), addr)

    server.handler = tricky
    try:
        assert first_a(await ask(pool, port, query("right.test"))) == "192.0.2.7"
    finally:
        spoofer.close()


async def test_a_silent_server_times_out_never_early(up: tuple[Server, int], pool: UdpPool) -> None:
    server, port = up
    server.handler = lambda req, addr, t: None
    t0 = time.monotonic()
    results = await asyncio.gather(
        ask(pool, port, query("a.test"), 0.2), ask(pool, port, query("b.test"), 0.4)
    )
    took = time.monotonic() - t0
    assert list(results) == [None, None]
    assert 0.39 <= took < 0.4 + 0.25  # the 10 ms tick, and a loaded machine
    assert pool.in_flight == 0


async def test_icmp_port_unreachable_fails_every_query_on_the_socket_at_once(pool: UdpPool) -> None:
    port = closed_port()

    async def refused(i: int) -> bytes | None:
        try:
            return await ask(pool, port, query(f"q{i}.test"), 3.0)
        except OSError:  # the ICMP error of an earlier query, reported by this send
            return None

    t0 = time.monotonic()
    results = [await refused(i) for i in range(3)]
    results += await asyncio.gather(*(refused(i) for i in range(3, 9)))
    assert results == [None] * 9
    assert time.monotonic() - t0 < 1.0  # not the 3 s timeout
    assert pool.in_flight == 0


async def test_client_fails_over_at_once_from_a_closed_port(up: tuple[Server, int]) -> None:
    _, port = up
    client = UpstreamClient(2.0, 4.0)
    try:
        servers = [Upstream("127.0.0.1", closed_port()), Upstream("127.0.0.1", port)]
        q = from_wire(bytes(DNSRecord.question("a.test").pack()), "127.0.0.1", Transport.UDP)
        t0 = time.monotonic()
        assert first_a(await asyncio.wait_for(client.exchange(q, servers), WAIT)) == "192.0.2.1"
        assert time.monotonic() - t0 < 1.0  # not the 2 s timeout
        assert client.health[servers[0]].fails == 1
    finally:
        await client.close()


async def test_ipv6_server(pool: UdpPool) -> None:
    try:
        server, transport, port = await serve("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert first_a(await ask(pool, port, query("v6.test"), host="::1")) == "192.0.2.1"
        assert server.seen[0][1][0] == "::1"
    finally:
        transport.close()


async def test_a_flood_opens_more_sockets_up_to_a_cap(up: tuple[Server, int]) -> None:
    server, port = up
    server.handler = lambda req, addr, t: None
    loop = asyncio.get_running_loop()
    pool = UdpPool(loop, draw, size=1, per_socket=4, max_sockets=3)
    outcomes: list[bytes | None] = []
    try:
        for i in range(12):
            pool.send("127.0.0.1", port, query(f"q{i}.test"), WAIT, outcomes.append)
        assert pool.opened == 3 and pool.in_flight == 12
        assert all(len(p.waiting) == 4 for p in pool._open.values())
        with pytest.raises(OSError):
            pool.send("127.0.0.1", port, query("one-too-many.test"), WAIT, outcomes.append)
    finally:
        pool.close()
    assert outcomes == [None] * 12  # closing the pool ends what was in flight
    assert pool.in_flight == 0 and not pool._open


async def test_a_retired_socket_closes_after_its_last_answer(up: tuple[Server, int]) -> None:
    server, port = up
    held: list[tuple[DNSRecord, Addr]] = []
    server.handler = lambda req, addr, t: held.append((req, addr))
    loop = asyncio.get_running_loop()
    pool = UdpPool(loop, draw, size=1, max_uses=2)
    try:
        got: list[bytes | None] = []
        pool.send("127.0.0.1", port, query("a.test"), WAIT, got.append)
        pool.send("127.0.0.1", port, query("b.test"), WAIT, got.append)  # its last use
        assert pool.ports("127.0.0.1", port) == []  # retired, still open for its answers
        assert len(pool._open) == 1
        await asyncio.sleep(0.05)
        assert server.transport is not None
        for req, addr in held:
            server.transport.sendto(answer(req), addr)
        for _ in range(100):  # bounded: 1 s
            if len(got) == 2:
                break
            await asyncio.sleep(0.01)
        assert [first_a(g) for g in got] == ["192.0.2.1", "192.0.2.1"]
        assert not pool._open  # closed with its last answer
    finally:
        pool.close()


async def test_an_answered_query_leaves_nothing_behind(
    up: tuple[Server, int], pool: UdpPool
) -> None:
    """Its deadline stays in the heap until due, but not its callback (and all that holds)."""
    _, port = up

    class Holder:
        def __init__(self) -> None:
            self.got: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()

        def on_answer(self, answer: bytes | None) -> None:
            self.got.set_result(answer)

    holder = Holder()
    pool.send("127.0.0.1", port, query("a.test"), 30.0, holder.on_answer)
    assert first_a(await asyncio.wait_for(holder.got, WAIT)) == "192.0.2.1"
    ref = weakref.ref(holder)
    del holder
    gc.collect()
    assert ref() is None
    assert pool.in_flight == 0


async def test_each_timeout_is_honoured(up: tuple[Server, int], pool: UdpPool) -> None:
    server, port = up
    server.handler = lambda req, addr, t: None
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    ended: dict[float, float] = {}
    waits = [0.05, 0.3, 0.1, 0.2]

    def ends(wait: float) -> Callable[[bytes | None], None]:
        def end(answer: bytes | None) -> None:
            assert answer is None
            ended[wait] = loop.time()

        return end

    for wait in waits:
        pool.send("127.0.0.1", port, query(f"w{wait}.test"), wait, ends(wait))
    for _ in range(100):  # bounded: 1 s
        if len(ended) == len(waits):
            break
        await asyncio.sleep(0.01)
    for wait in waits:
        assert wait <= ended[wait] - t0 < wait + 0.15, (wait, ended[wait] - t0)


async def test_a_failing_callback_loses_no_other_answer(up: tuple[Server, int]) -> None:
    server, port = up
    held: list[tuple[DNSRecord, Addr]] = []

    def all_at_once(req: DNSRecord, addr: Addr, t: asyncio.DatagramTransport) -> None:
        held.append((req, addr))
        if len(held) == 3:  # the three answers arrive together, read in one wake-up
            for r, a in held:
                t.sendto(answer(r), a)

    server.handler = all_at_once
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: None)  # the failure is expected here
    pool = UdpPool(loop, draw, size=1)
    got: list[bytes | None] = []

    def broken(answer: bytes | None) -> None:
        raise RuntimeError("a bug in one query's callback")

    try:
        pool.send("127.0.0.1", port, query("a.test"), WAIT, got.append)
        pool.send("127.0.0.1", port, query("b.test"), WAIT, broken)
        pool.send("127.0.0.1", port, query("c.test"), WAIT, got.append)
        for _ in range(100):  # bounded: 1 s
            if len(got) == 2:
                break
            await asyncio.sleep(0.01)
        assert [first_a(g) for g in got] == ["192.0.2.1", "192.0.2.1"]
        assert pool.in_flight == 0
    finally:
        pool.close()
        loop.set_exception_handler(None)


@pytest.mark.parametrize("batched", [True, False])
async def test_queries_of_one_turn_leave_together_each_answered(
    up: tuple[Server, int], monkeypatch: pytest.MonkeyPatch, batched: bool
) -> None:
    """Queries sent in one turn of the loop leave at its end, in one sendmmsg per socket (issue
    19: a miss's upstream query is no system call of its own); or one send each without it."""
    if not batched:
        monkeypatch.setattr(mmsg, "create_send_batch", lambda *a: None)
    elif not sys.platform.startswith("linux"):
        pytest.skip("sendmmsg is Linux's")
    _, port = up
    pool = UdpPool(asyncio.get_running_loop(), draw, size=2)
    calls = 0
    if pool._sends is not None:
        real = pool._sends.send

        def counted(fd: int, k: int) -> int:
            nonlocal calls
            calls += 1
            return real(fd, k)

        pool._sends.send = counted  # type: ignore[method-assign]
    try:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(150)]
        for i, f in enumerate(futures):
            pool.send("127.0.0.1", port, query(f"t{i}.test"), WAIT, f.set_result)
        got = await asyncio.wait_for(asyncio.gather(*futures), WAIT)
        assert all(first_a(g) == "192.0.2.1" for g in got)
        if batched:
            assert calls <= 2 * 3  # two sockets, 64 queries a call at most
    finally:
        pool.close()


async def test_a_query_that_cannot_be_sent_fails_at_once(pool: UdpPool) -> None:
    """The port refuses (ICMP unreachable, pending on the socket): the queries queued in that
    turn fail when they are sent, not after their timeout."""
    port = closed_port()
    loop = asyncio.get_running_loop()
    first = await ask(pool, port, query("a.test"), wait=3.0)  # learns the port is closed
    assert first is None
    started = time.monotonic()
    futures = [loop.create_future() for _ in range(5)]
    for i, f in enumerate(futures):
        pool.send("127.0.0.1", port, query(f"b{i}.test"), 3.0, f.set_result)
    got = await asyncio.wait_for(asyncio.gather(*futures), WAIT)
    assert got == [None] * 5 and time.monotonic() - started < 1.0
