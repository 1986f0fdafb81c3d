"""Ask upstream resolvers: UDP first, TCP when truncated, failover across servers.

Two drivers share one ``Resolution`` (``resolver.core.resolution``), which decides every try
and judges every reply: ``exchange_soon`` makes plain UDP tries with callbacks (a cache miss
needs no task) and hands over to a task only for TCP or an encrypted upstream; ``exchange``
is the same loop as a coroutine. Neither decides anything itself.

Spoofing defences (RFC 5452): a fresh random ID per try, sent from a pool of sockets on random
source ports that keep changing (``resolver.net.upstream_udp``, as unbound's outgoing-range); a
reply counts only if it comes from the server we asked, with our ID and our question.
"""

from __future__ import annotations

import asyncio
import logging
import os
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
from resolver.net.upstream_udp import UdpPool
from resolver.stats import LATENCY_BUCKETS

# Re-exported: callers and tests imported them from here before upstream_query existed.
__all__ = ["OnAnswer", "UpstreamClient", "build_upstream_query", "matches"]

# What a failed try raises: no reply, a broken connection, a reply that is not one.
_NO_REPLY = (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError)

log = logging.getLogger(__name__)

# What an exchange does with its outcome: the answer, an upstream's error answer when every
# server gave one, or None when no upstream replied (timeout, ICMP error).
OnAnswer = Callable[[bytes | None], None]


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


class _Exchange(Resolution):
    """A callback driver's resolution with what it needs from a try to the next.

    One object per cache miss from the send to the answer: its bound ``landed`` is the pool's
    callback, instead of a closure (and its cells) per try.
    """

    __slots__ = ("client", "on_answer", "query")

    client: UpstreamClient
    query: Query
    on_answer: OnAnswer

    def landed(self, reply: bytes | None) -> None:
        """What a UDP try does with its reply: judge it, then go on (once per cache miss)."""
        client = self.client
        loop = client._loop
        if client._closing or loop is None:
            self.on_answer(None)
            return
        now = loop.time()
        self.query_result(reply, now)
        if client._watchdog is None and client.health.watching:
            client._arm_watchdog()  # as _judge does
        if self.done:  # answered: what _advance would find, without a Try
            self.on_answer(self.response)
        else:
            client._advance(self, now)


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
        self._pool: UdpPool | None = None
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

        Each UDP try is a datagram and a callback; a try over TCP (after truncation) or to an
        encrypted upstream runs the rest of the resolution in a task, which is then returned
        if it is the first try (None otherwise). ``on_answer`` is called exactly once.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        now = loop.time()
        ex = _Exchange(self.health, tuple(servers), now, self.timeout, self.total_timeout)
        ex.client = self
        ex.query = query
        ex.on_answer = on_answer
        return self._advance(ex, now)

    def _advance(self, ex: _Exchange, now: float) -> asyncio.Task[None] | None:
        """Make ``ex``'s next try by callback, or hand it to a task, or give its outcome."""
        while True:
            t = ex.next_try(now)
            if t is None or self._closing:
                ex.on_answer(ex.response if t is None else None)
                return None
            server = t.server
            if t.tcp or server.kind != "udp":
                return self._keep(self._finish(ex, ex.query, ex.on_answer))
            sent = build_upstream_query(ex.query, self._ids.next())
            loop = self._loop
            assert loop is not None  # set by exchange_soon before any try
            pool = self._pool
            if pool is None or pool.loop is not loop:
                pool = self._pool_for(loop)
            try:
                pool.send(server.host, server.port, sent, t.wait, ex.landed)
                return None
            except OSError:
                now = loop.time()
                self._judge(ex, None, now)

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
        """Close the UDP socket pool and the encrypted upstreams' connections."""
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        transports = list(self.encrypted.values())
        self.encrypted.clear()
        for transport in transports:
            await transport.close()

    def _pool_for(self, loop: asyncio.AbstractEventLoop) -> UdpPool:
        pool = self._pool
        if pool is None or pool.loop is not loop:
            if pool is not None:
                pool.close()  # a previous loop's (tests run one loop each): free its sockets
            pool = self._pool = UdpPool(loop, self._ids.next)
        return pool

    async def _udp(self, server: Upstream, sent: bytes, wait: float) -> bytes:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bytes | None] = loop.create_future()

        def on_answer(answer: bytes | None) -> None:
            if not done.done():
                done.set_result(answer)

        self._pool_for(loop).send(server.host, server.port, sent, wait, on_answer)
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
