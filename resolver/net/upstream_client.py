"""Ask upstream resolvers: UDP first, TCP when truncated, failover across servers.

Spoofing defences (RFC 5452): a fresh random ID and a fresh socket (so a fresh random source port)
per try; a reply counts only if it comes from the server we asked, with our ID and our question.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import secrets
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from resolver.core import wire
from resolver.core.query import DEFAULT_UDP_PAYLOAD, Query
from resolver.core.steps import Upstream
from resolver.core.wire import HEADER, U16
from resolver.net.upstream_https import HttpsUpstream
from resolver.net.upstream_tls import TlsUpstream
from resolver.stats import LATENCY_BUCKETS

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


class _UdpExchange(asyncio.DatagramProtocol):
    def __init__(self, sent: bytes, done: asyncio.Future[bytes]) -> None:
        self.sent = sent
        self.done = done

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        # The socket is connected, so the kernel already dropped datagrams from other addresses.
        if not self.done.done() and matches(data, self.sent):
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)  # ICMP port unreachable: fail over at once


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

    async def exchange(self, query: Query, servers: Sequence[Upstream]) -> bytes | None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + self.total_timeout
        order = self.order(servers, start)
        # Each server twice at most: a lost datagram deserves one retry.
        for server in order + order:
            remaining = deadline - loop.time()
            if remaining <= 0.005:
                break
            sent = build_upstream_query(query, secrets.randbits(16))
            t0 = loop.time()
            try:
                if server.kind != "udp":
                    # DNS over TLS or HTTPS: one long-lived connection, never truncated.
                    transport = self._encrypted(server)
                    resp = await transport.exchange(sent, min(self.timeout, remaining))
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
            if rcode in (wire.SERVFAIL, wire.REFUSED, wire.NOTIMP, wire.FORMERR):
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
        """Close the encrypted upstreams' connections."""
        transports = list(self.encrypted.values())
        self.encrypted.clear()
        for transport in transports:
            await transport.close()

    def _observe(self, seconds: float) -> None:
        self.latency_sum += seconds
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    async def _udp(self, server: Upstream, sent: bytes, wait: float) -> bytes:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bytes] = loop.create_future()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpExchange(sent, done), remote_addr=(server.host, server.port)
        )
        try:
            transport.sendto(sent)
            return await asyncio.wait_for(done, wait)
        finally:
            transport.close()

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
