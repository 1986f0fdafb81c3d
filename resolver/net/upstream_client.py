"""Ask upstream resolvers: UDP first, TCP when truncated, failover across servers.

Spoofing defences (RFC 5452): a fresh random ID and a fresh socket (so a fresh random source port)
per try; a reply counts only if it comes from the server we asked, with our ID and our question.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
import select
import socket
import ssl
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from resolver.core import wire
from resolver.core.query import DEFAULT_UDP_PAYLOAD, Query
from resolver.core.steps import Upstream
from resolver.core.wire import HEADER, U16
from resolver.net.upstream_https import HttpsUpstream
from resolver.net.upstream_tls import TlsUpstream
from resolver.stats import LATENCY_BUCKETS

# Answers that say this server cannot help with this name (another may). Not a health failure:
# SERVFAIL is often the name's fault (broken DNSSEC, dead authoritative).
_TRY_ANOTHER = frozenset((wire.SERVFAIL, wire.REFUSED, wire.NOTIMP, wire.FORMERR))
# Non-blocking from creation: one ioctl less per upstream query.
_DGRAM_NONBLOCK = socket.SOCK_DGRAM | getattr(socket, "SOCK_NONBLOCK", 0)
_MAX_BACKOFF = 60.0  # seconds a failing upstream is set aside at most

log = logging.getLogger(__name__)

_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")


def build_upstream_query(query: Query, qid: int, payload: int = DEFAULT_UDP_PAYLOAD) -> bytes:
    """Our own query for ``query``'s question: recursion desired, EDNS with the client's DO."""
    q = query.question
    question = q[:-4].translate(_LOWER) + q[-4:]
    flags = wire.RD | (query.flags & wire.CD)
    return HEADER.pack(qid, flags, 1, 0, 0, 1) + question + wire.build_opt(payload, query.do)


def matches(resp: bytes, sent: bytes) -> bool:
    """True if ``resp`` answers ``sent``: same ID, QR set, the same single question."""
    if len(resp) < 12 or resp[:2] != sent[:2]:
        return False
    flags, qd = HEADER.unpack_from(resp)[1:3]
    if not flags & wire.QR or qd != 1:
        return False
    qlen = len(sent) - 12 - 11  # our query is header + question + an 11-byte OPT
    qend = 12 + qlen
    # Only the name is compared case-insensitively: type 65 (HTTPS) is the byte "A", and
    # lower-casing it too would make every answer to it look foreign.
    return (
        resp[12 : qend - 4].translate(_LOWER) == sent[12 : qend - 4]
        and resp[qend - 4 : qend] == sent[qend - 4 : qend]
    )


# What an exchange does with its outcome: the matching answer, or None (timeout, ICMP error).
OnAnswer = Callable[[bytes | None], None]


class _UdpWaiters:
    """Upstream UDP sockets awaiting their answer, in one epoll set the loop watches.

    Each query has its own socket (a fresh random source port, RFC 5452), but registering each
    with the event loop costs uvloop a dozen system calls (poll handle, epoll add/modify/delete,
    fork checks); in our own epoll set it is one, and closing the socket removes it. The outcome
    goes to a plain callback, so a cache miss needs no task or coroutine of its own.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # Elsewhere than Linux (a developer's laptop), each socket goes to the loop itself.
        self.epoll = select.epoll() if hasattr(select, "epoll") else None
        # fd -> (socket, query sent, callback, timeout handle)
        self.waiting: dict[int, tuple[socket.socket, bytes, OnAnswer, asyncio.TimerHandle]] = {}
        if self.epoll is not None:
            loop.add_reader(self.epoll.fileno(), self._ready)

    def send(self, host: str, port: int, sent: bytes, wait: float, on_answer: OnAnswer) -> None:
        """Send ``sent`` from a new socket; ``on_answer`` gets the outcome, exactly once, later.

        Raises OSError if it cannot even be sent (then ``on_answer`` is never called).
        """
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, _DGRAM_NONBLOCK)
        try:
            # Connected: the kernel drops datagrams from any other address, and reports an ICMP
            # port unreachable as an error on the socket, so we fail over at once.
            sock.connect((host, port))
            sock.send(sent)
            fd = sock.fileno()
            if self.epoll is not None:
                self.epoll.register(fd, select.EPOLLIN)
            else:
                self.loop.add_reader(fd, self._readable, fd)
        except BaseException:
            sock.close()
            raise
        timer = self.loop.call_later(wait, self._expire, fd)
        self.waiting[fd] = (sock, sent, on_answer, timer)

    def _done(self, fd: int, answer: bytes | None) -> None:
        sock, _, on_answer, timer = self.waiting.pop(fd)
        timer.cancel()
        if self.epoll is None:
            self.loop.remove_reader(fd)
        sock.close()  # which also takes it out of the epoll set
        on_answer(answer)

    def _expire(self, fd: int) -> None:
        if fd in self.waiting:
            self._done(fd, None)

    def _ready(self) -> None:
        assert self.epoll is not None
        for fd, _ in self.epoll.poll(0, 256):
            self._readable(fd)

    def _readable(self, fd: int) -> None:
        w = self.waiting.get(fd)
        if w is None:
            return
        sock, sent = w[0], w[1]
        for _ in range(16):  # bounded: a flood of foreign datagrams cannot hold the loop
            try:
                data = sock.recv(65535)
            except BlockingIOError:
                return
            except OSError:
                self._done(fd, None)  # e.g. ICMP port unreachable: fail over at once
                return
            if matches(data, sent):
                self._done(fd, data)
                return

    def close(self) -> None:
        for fd in list(self.waiting):
            self._done(fd, None)
        if self.epoll is not None:
            with contextlib.suppress(Exception):  # the loop may be closed already
                self.loop.remove_reader(self.epoll.fileno())
            self.epoll.close()


class _RandomIds:
    """Query IDs from the system's CSPRNG, read 4 KiB at a time instead of once per query."""

    def __init__(self) -> None:
        self._ids = memoryview(os.urandom(4096)).cast("H")
        self._next = 0

    def next(self) -> int:
        n = self._next
        if n >= len(self._ids):
            self._ids = memoryview(os.urandom(4096)).cast("H")
            n = 0
        self._next = n + 1
        return self._ids[n]


@dataclass(slots=True)
class Health:
    """What we know of one upstream: its smoothed latency and its recent failures."""

    srtt: float = 0.0  # smoothed round-trip time, seconds; 0 until measured (so tried early)
    fails: int = 0  # consecutive failures
    down_until: float = 0.0  # loop time before which it is tried only as a last resort
    answered: int = 0
    failed: int = 0

    def order_key(self, now: float, index: int) -> tuple[bool, float, int]:
        return (now < self.down_until, self.srtt, index)


class UpstreamClient:
    """Sends one query to the best server that answers well, within a total deadline.

    Servers are tried healthiest and fastest first. A failing server is set aside for an
    exponential backoff (1 s, 2 s, ... 60 s), then tried again first if it is the faster:
    a recovered server is used again without a restart.
    """

    def __init__(
        self, timeout: float, total_timeout: float, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.timeout = timeout
        self.total_timeout = total_timeout
        self.ssl_context = ssl_context  # None: the system's CAs (tests give a test CA)
        self.health: dict[Upstream, Health] = {}
        # One long-lived DNS-over-TLS connection or HTTPS session per encrypted upstream.
        self.encrypted: dict[Upstream, TlsUpstream | HttpsUpstream] = {}
        self._waiters: _UdpWaiters | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._ids = _RandomIds()
        self.failures = 0
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0

    def _health(self, server: Upstream) -> Health:
        h = self.health.get(server)
        if h is None:
            h = self.health[server] = Health()
        return h

    def order(self, servers: Sequence[Upstream], now: float) -> list[Upstream]:
        """The servers in the order to try them now."""
        ranked = sorted(
            range(len(servers)), key=lambda i: self._health(servers[i]).order_key(now, i)
        )
        return [servers[i] for i in ranked]

    def _failed(self, server: Upstream, now: float) -> None:
        h = self._health(server)
        h.fails += 1
        h.failed += 1
        # 1, 2, 4 ... 60 s; the exponent is capped (2.0 ** 1024 overflows after a long outage).
        h.down_until = now + min(2.0 ** min(h.fails - 1, 6), _MAX_BACKOFF)
        self.failures += 1

    def _answered(self, server: Upstream, rtt: float) -> None:
        h = self._health(server)
        h.srtt = rtt if h.srtt == 0.0 else 0.7 * h.srtt + 0.3 * rtt
        h.fails = 0
        h.down_until = 0.0
        h.answered += 1
        self._observe(rtt)

    def exchange_soon(
        self, query: Query, servers: Sequence[Upstream], on_answer: OnAnswer
    ) -> asyncio.Task[None] | None:
        """``exchange`` with the outcome to a callback: the common first try without a task.

        The first try, to the best server if it is plain UDP, is a socket and a callback; only
        when it fails (timeout, error, truncation, a refusing rcode) does the rest of the
        failover run as ``exchange`` in a task, which is then returned (None otherwise).
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + self.total_timeout
        order = self.order(servers, start)
        tries = order + order  # each server twice at most, as in exchange()
        server = order[0]
        if server.kind == "udp":
            sent = build_upstream_query(query, self._ids.next())

            def first(resp: bytes | None) -> None:
                if self._closing:
                    on_answer(None)
                    return
                now = loop.time()
                if resp is None:
                    self._failed(server, now)
                    self._keep(self._exchange_then(query, on_answer, tries[1:], deadline))
                    return
                flags = HEADER.unpack_from(resp)[1]
                if flags & wire.TC:
                    # This try goes on over TCP, as it would have within exchange().
                    self._keep(self._exchange_then(query, on_answer, tries, deadline, tcp=True))
                elif (flags & wire.RCODE_MASK) in _TRY_ANOTHER:
                    self._keep(self._exchange_then(query, on_answer, tries[1:], deadline))
                else:
                    self._answered(server, now - start)
                    on_answer(resp)

            try:
                self._waiters_for(loop).send(
                    server.host, server.port, sent, min(self.timeout, self.total_timeout), first
                )
                return None
            except OSError:
                self._failed(server, start)
                return self._keep(self._exchange_then(query, on_answer, tries[1:], deadline))
        return self._keep(self._exchange_then(query, on_answer, tries, deadline))

    async def _exchange_then(
        self,
        query: Query,
        on_answer: OnAnswer,
        tries: list[Upstream],
        deadline: float,
        *,
        tcp: bool = False,
    ) -> None:
        on_answer(await self.exchange(query, tries, tries=tries, deadline=deadline, tcp=tcp))

    def _keep(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def exchange(
        self,
        query: Query,
        servers: Sequence[Upstream],
        *,
        tries: list[Upstream] | None = None,
        deadline: float | None = None,
        tcp: bool = False,
    ) -> bytes | None:
        """The first good answer of the servers, tried best first, each twice at most.

        ``tries``: the servers left to try, in order, when ``exchange_soon`` made the first
        try; ``deadline``: loop time, by default ``total_timeout`` from now; ``tcp``: the
        first of ``tries`` already answered truncated over UDP, so it is asked over TCP only.
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        if deadline is None:
            deadline = start + self.total_timeout
        if tries is None:
            order = self.order(servers, start)
            # Each server twice at most: a lost datagram deserves one retry.
            tries = order + order
        for i, server in enumerate(tries):
            remaining = deadline - loop.time()
            if remaining <= 0.005:
                break
            sent = build_upstream_query(query, self._ids.next())
            t0 = loop.time()
            try:
                if server.kind != "udp":
                    # DNS over TLS or HTTPS: one long-lived connection, never truncated.
                    transport = self._encrypted(server)
                    resp = await transport.exchange(sent, min(self.timeout, remaining))
                elif i == 0 and tcp:
                    resp = await self._tcp(server, sent, min(self.timeout * 2, remaining))
                else:
                    resp = await self._udp(server, sent, min(self.timeout, remaining))
                    if HEADER.unpack_from(resp)[1] & wire.TC:
                        remaining = deadline - loop.time()
                        if remaining <= 0:
                            break
                        resp = await self._tcp(server, sent, min(self.timeout * 2, remaining))
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                self._failed(server, loop.time())
                continue
            rcode = HEADER.unpack_from(resp)[1] & wire.RCODE_MASK
            if rcode in _TRY_ANOTHER:
                # This server cannot help with this name; another may. Not a health failure:
                # SERVFAIL is often the name's fault (broken DNSSEC, dead authoritative).
                continue
            self._answered(server, loop.time() - t0)
            return resp
        return None

    def _encrypted(self, server: Upstream) -> TlsUpstream | HttpsUpstream:
        transport = self.encrypted.get(server)
        if transport is None:
            if server.kind == "tls":
                transport = TlsUpstream(
                    server.host,
                    server.port,
                    server_name=server.server_name,
                    ssl_context=self.ssl_context,
                )
            else:
                transport = HttpsUpstream(
                    server.url, address=server.host or None, ssl_context=self.ssl_context
                )
            self.encrypted[server] = transport
        return transport

    async def close(self) -> None:
        """Close the encrypted upstreams' connections (and our epoll set)."""
        self._closing = True
        if self._waiters is not None:
            self._waiters.close()
            self._waiters = None
        transports = list(self.encrypted.values())
        self.encrypted.clear()
        for transport in transports:
            await transport.close()

    def _observe(self, seconds: float) -> None:
        self.latency_sum += seconds
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def _waiters_for(self, loop: asyncio.AbstractEventLoop) -> _UdpWaiters:
        waiters = self._waiters
        if waiters is None or waiters.loop is not loop:
            waiters = self._waiters = _UdpWaiters(loop)
        return waiters

    async def _udp(self, server: Upstream, sent: bytes, wait: float) -> bytes:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bytes | None] = loop.create_future()

        def on_answer(answer: bytes | None) -> None:
            if not done.done():
                done.set_result(answer)

        self._waiters_for(loop).send(server.host, server.port, sent, wait, on_answer)
        answer = await done
        if answer is None:
            raise TimeoutError
        return answer

    async def _tcp(self, server: Upstream, sent: bytes, wait: float) -> bytes:
        async with asyncio.timeout(wait):
            reader, writer = await asyncio.open_connection(server.host, server.port)
            try:
                writer.write(U16.pack(len(sent)) + sent)
                while True:
                    size = U16.unpack(await reader.readexactly(2))[0]
                    resp = await reader.readexactly(size)
                    if matches(resp, sent):
                        return resp
            finally:
                writer.close()
