"""Ask upstream resolvers: UDP first, TCP when truncated, failover across servers.

Two drivers share one ``Resolution`` (``resolver.core.resolution``), which decides every try
and judges every reply: ``exchange_soon`` makes plain UDP tries with callbacks (a cache miss
needs no task) and hands over to a task only for TCP or an encrypted upstream; ``exchange``
is the same loop as a coroutine. Neither decides anything itself.

Spoofing defences (RFC 5452): a fresh random ID and a fresh socket (so a fresh random source port)
per try; a reply counts only if it comes from the server we asked, with our ID and our question.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import socket
import ssl
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from resolver.core.query import Query
from resolver.core.resolution import Alarm, Resolution, Try, UpstreamHealth
from resolver.core.steps import Upstream
from resolver.net import framing
from resolver.net.upstream_https import HttpsUpstream
from resolver.net.upstream_query import build_probe, build_upstream_query, matches
from resolver.net.upstream_tls import TlsUpstream
from resolver.stats import LATENCY_BUCKETS

# Re-exported: callers and tests imported them from here before upstream_query existed.
__all__ = ["OnAnswer", "UpstreamClient", "build_upstream_query", "matches"]

# Non-blocking from creation: one ioctl less per upstream query.
_DGRAM_NONBLOCK = socket.SOCK_DGRAM | getattr(socket, "SOCK_NONBLOCK", 0)
# What a failed try raises: no reply, a broken connection, a reply that is not one.
_NO_REPLY = (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError)

log = logging.getLogger(__name__)

# What an exchange does with its outcome: the answer, an upstream's error answer when every
# server gave one, or None when no upstream replied (timeout, ICMP error).
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


class UpstreamClient:
    """Sends one query to the best server that answers well, within a total deadline.

    ``timeout``: seconds per try; ``total_timeout``: for the whole exchange. ``alarm_after``,
    ``alarm_every`` and ``probe_every``: when to log that no upstream answers and how often to
    probe them meanwhile (UpstreamHealth).
    """

    def __init__(
        self,
        timeout: float,
        total_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        *,
        alarm_after: float = 10.0,
        alarm_every: float = 60.0,
        probe_every: float = 5.0,
    ) -> None:
        self.timeout = timeout
        self.total_timeout = total_timeout
        self.ssl_context = ssl_context  # None: the system's CAs (tests give a test CA)
        self.health = UpstreamHealth(
            LATENCY_BUCKETS,
            alarm_after=alarm_after,
            alarm_every=alarm_every,
            probe_every=probe_every,
        )
        # One long-lived DNS-over-TLS connection or HTTPS session per encrypted upstream.
        self.encrypted: dict[Upstream, TlsUpstream | HttpsUpstream] = {}
        self._waiters: _UdpWaiters | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self._closing = False
        self._ids = _RandomIds()

    # Counters read by /metrics (resolver.stats), kept by the shared health bookkeeping.
    @property
    def failures(self) -> int:
        return self.health.failures

    @property
    def latency_counts(self) -> list[int]:
        return self.health.latency_counts

    @property
    def latency_sum(self) -> float:
        return self.health.latency_sum

    def resolution(self, servers: Sequence[Upstream], now: float) -> Resolution:
        """A new resolution over ``servers`` with this client's timeouts and health."""
        return Resolution(self.health, tuple(servers), now, self.timeout, self.total_timeout)

    # --- the callback driver ---------------------------------------------------------------

    def exchange_soon(
        self, query: Query, servers: Sequence[Upstream], on_answer: OnAnswer
    ) -> asyncio.Task[None] | None:
        """``exchange`` with the outcome to a callback: plain UDP tries need no task.

        Each UDP try is a socket and a callback; a try over TCP (after truncation) or to an
        encrypted upstream runs the rest of the resolution in a task, which is then returned
        if it is the first try (None otherwise). ``on_answer`` is called exactly once.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        return self._advance(self.resolution(servers, loop.time()), query, on_answer, loop)

    def _advance(
        self,
        res: Resolution,
        query: Query,
        on_answer: OnAnswer,
        loop: asyncio.AbstractEventLoop,
    ) -> asyncio.Task[None] | None:
        """Make ``res``'s next try by callback, or hand it to a task, or give its outcome."""
        while True:
            t = res.next_try(loop.time())
            if t is None or self._closing:
                on_answer(res.response if t is None else None)
                return None
            if t.tcp or t.server.kind != "udp":
                return self._keep(self._finish(res, query, on_answer))
            sent = build_upstream_query(query, self._ids.next())
            try:
                self._waiters_for(loop).send(
                    t.server.host, t.server.port, sent, t.wait, self._then(res, query, on_answer)
                )
                return None
            except OSError:
                self._judge(res, None, loop.time())

    def _then(self, res: Resolution, query: Query, on_answer: OnAnswer) -> OnAnswer:
        """What a UDP try does with its reply: judge it, then go on."""

        def then(reply: bytes | None) -> None:
            loop = self._loop
            if self._closing or loop is None:
                on_answer(None)
                return
            self._judge(res, reply, loop.time())
            self._advance(res, query, on_answer, loop)

        return then

    async def _finish(self, res: Resolution, query: Query, on_answer: OnAnswer) -> None:
        on_answer(await self._run(res, query))

    def _keep(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- the coroutine driver --------------------------------------------------------------

    async def exchange(self, query: Query, servers: Sequence[Upstream]) -> bytes | None:
        """The answer of the best server that gives one (see ``Resolution``).

        Returns the answer; an upstream's error answer (SERVFAIL, REFUSED, ...) when every
        server tried gave one (``resolution.failure_reply`` turns it into the reply);
        None when no upstream replied.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        return await self._run(self.resolution(servers, loop.time()), query)

    async def _run(self, res: Resolution, query: Query | None) -> bytes | None:
        """Make ``res``'s tries until it is done; ``query`` None: a probe."""
        loop = asyncio.get_running_loop()
        while not self._closing and (t := res.next_try(loop.time())) is not None:
            qid = self._ids.next()
            sent = build_upstream_query(query, qid) if query is not None else build_probe(qid)
            try:
                reply: bytes | None = await self._ask(t, sent)
            except _NO_REPLY:
                reply = None
            self._judge(res, reply, loop.time())
        return res.response

    async def _ask(self, t: Try, sent: bytes) -> bytes:
        server = t.server
        if server.kind != "udp":
            # DNS over TLS or HTTPS: one long-lived connection, never truncated.
            return await self._encrypted(server).exchange(sent, t.wait)
        if t.tcp:
            return await self._tcp(server, sent, t.wait)
        return await self._udp(server, sent, t.wait)

    # --- health: the watchdog that speaks and probes while no upstream answers -------------

    def _judge(self, res: Resolution, reply: bytes | None, now: float) -> None:
        res.query_result(reply, now)
        if self._watchdog is None and self.health.watching:
            self._arm_watchdog()

    def _arm_watchdog(self) -> None:
        loop = self._loop
        if loop is None or self._closing:
            return
        now = loop.time()
        when = self.health.next_check(now)
        if when is not None:
            self._watchdog = loop.call_later(max(when - now, 0.01), self._tick)

    def _tick(self) -> None:
        """Off the query path: log what changed, probe what is due, and watch on."""
        self._watchdog = None
        loop = self._loop
        if loop is None or self._closing:
            return
        now = loop.time()
        alarm = self.health.alarm(now)
        if alarm is not None:
            _say(alarm)
        for server in self.health.probes_due(now):
            self._keep(self._probe(server))
        self._arm_watchdog()

    async def _probe(self, server: Upstream) -> None:
        loop = asyncio.get_running_loop()
        try:
            res = Resolution(self.health, (server,), loop.time(), self.timeout, self.timeout)
            await self._run(res, None)
        finally:
            self.health.probe_ended(server)
            # The watchdog was set without this server (a probe was on its way): set it again.
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None
            self._arm_watchdog()

    # --- transports ------------------------------------------------------------------------

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
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._waiters is not None:
            self._waiters.close()
            self._waiters = None
        transports = list(self.encrypted.values())
        self.encrypted.clear()
        for transport in transports:
            await transport.close()

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
                writer.write(framing.frame(sent))
                while True:
                    resp = await framing.read_frame(reader)
                    if matches(resp, sent):
                        return resp
            finally:
                writer.close()


def _say(alarm: Alarm) -> None:
    """One log line for a change in the upstreams' state (never per query)."""
    if alarm.down:
        log.warning(
            "no upstream resolver has answered for %.0f s (%d tries failed since the last "
            "message): clients get SERVFAIL until one answers; check the network and "
            "upstream.servers (`parafoudre doctor` tests each one)",
            alarm.seconds,
            alarm.failed,
        )
    else:
        log.info("upstream resolvers answer again, after %.0f s without an answer", alarm.seconds)
