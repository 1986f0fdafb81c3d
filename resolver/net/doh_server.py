"""DNS over HTTPS for the commune's machines (RFC 8484): ``/dns-query``, GET and POST, HTTP/1.1.

Each request's DNS message goes to the same Service as UDP and TCP (ACL, rate limit, policy);
the client is the connection's peer address. Bounded like the TCP listener: connections at once
(past the cap the oldest is closed), idle time counted from the last complete request (a client
that trickles a request is closed too), and a message of at most 65,535 bytes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import socket
import ssl
import time
from typing import Any, Final

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from resolver.core import wire
from resolver.core.query import Transport
from resolver.net.framing import MAX_MESSAGE
from resolver.net.padding import pad
from resolver.net.service import Dropped, Pending, Service

DEFAULT_PORT: Final = 443
PATH: Final = "/dns-query"
DNS_MESSAGE: Final = "application/dns-message"
_MAX_GET: Final = (MAX_MESSAGE * 4 + 2) // 3  # base64url of the largest message, no padding
_BACKLOG: Final = 256
_TCP = Transport.TCP


class DohServer(web.Server):
    """aiohttp's low-level server with a connection cap and an idle sweep."""

    def __init__(self, service: Service, idle_timeout: float, max_connections: int) -> None:
        super().__init__(
            self._handle,
            keepalive_timeout=idle_timeout,
            max_line_size=_MAX_GET + 1024,
            max_field_size=8190,
            access_log=None,  # queries are never logged one by one
        )
        self.service = service
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        # handler -> (monotonic time of its last complete request, requests in progress)
        self.seen: dict[RequestHandler, list[float]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self.requests = 0

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if len(self.seen) >= self.max_connections:
            # Make room by closing the connection quiet the longest, as the TCP listener does.
            oldest = min(self.seen, key=lambda h: self.seen[h][0])
            self._close(oldest)
        self.seen[handler] = [time.monotonic(), 0.0]
        if self._sweeper is None:
            self._arm()

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.seen.pop(handler, None)

    def _close(self, handler: RequestHandler) -> None:
        self.seen.pop(handler, None)
        handler.force_close()
        if handler.transport is not None:
            handler.transport.close()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(self.idle_timeout / 2, self._sweep)

    def _sweep(self) -> None:
        """Close connections with nothing in progress and no complete request for too long."""
        self._sweeper = None
        limit = time.monotonic() - self.idle_timeout
        for handler, (last, busy) in list(self.seen.items()):
            if not busy and last < limit:
                self._close(handler)
        if self.seen:
            self._arm()

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for handler in list(self.seen):
            self._close(handler)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        state = self.seen.get(request.protocol)
        if state is not None:
            state[1] += 1
        try:
            return await self._answer(request)
        finally:
            if state is not None:
                state[0] = time.monotonic()
                state[1] -= 1

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path != PATH:
            return web.Response(status=404, text="DNS over HTTPS is at /dns-query\n")
        if request.method == "GET":
            message = _from_get(request.query.get("dns"))
        elif request.method == "POST":
            if request.content_type != DNS_MESSAGE:
                return web.Response(status=415, text=f"send {DNS_MESSAGE}\n")
            try:
                async with asyncio.timeout(self.idle_timeout):  # a body that never ends
                    message = await _read_body(request)
            except TimeoutError:
                return web.Response(status=408, text="request body too slow\n")
        else:
            return web.Response(status=405, headers={"Allow": "GET, POST"})
        if isinstance(message, web.Response):
            return message
        self.requests += 1
        return await self._resolve(message, _client(request))

    async def _resolve(self, message: bytes, client: str) -> web.Response:
        service = self.service
        out = service.begin(message, client, _TCP)
        if isinstance(out, Pending):
            out = await service.finish(out)
        elif isinstance(out, Dropped):
            # Refused (rate limit, overload): HTTP says so (RFC 8484 §4.2.1), the client retries.
            status = 400 if not out.ends_stream else 429 if out.reason == "rate_limit" else 503
            return web.Response(status=status, text=f"{out.reason}\n")
        return web.Response(
            body=pad(out),  # RFC 8467: inside TLS, sizes still leak
            content_type=DNS_MESSAGE,
            headers={"Cache-Control": f"max-age={min_ttl(out)}"},
        )


def _client(request: web.BaseRequest) -> str:
    peer: Any = request.transport.get_extra_info("peername") if request.transport else None
    return str(peer[0]) if peer else ""


def _from_get(param: str | None) -> bytes | web.Response:
    """RFC 8484 §4.1: ``dns`` is the message in base64url without padding."""
    if not param:
        return web.Response(status=400, text="missing ?dns=\n")
    if len(param) > _MAX_GET:
        return web.Response(status=414, text="message too long\n")
    try:
        return base64.urlsafe_b64decode(param + "=" * (-len(param) % 4))
    except (binascii.Error, ValueError):
        return web.Response(status=400, text="dns is not base64url\n")


async def _read_body(request: web.BaseRequest) -> bytes | web.Response:
    length = request.content_length
    if length is not None and length > MAX_MESSAGE:
        return web.Response(status=413, text="message too long\n")
    body = bytearray()
    while True:  # bounded: stops once past one message (a chunked body says no length first)
        chunk = await request.content.read(MAX_MESSAGE + 1 - len(body))
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > MAX_MESSAGE:
            return web.Response(status=413, text="message too long\n")


def min_ttl(message: bytes) -> int:
    """The freshness an HTTP cache may give the answer: its smallest TTL (RFC 8484 §5.1)."""
    try:
        _, rrs = wire.walk(message)
    except wire.WireError:
        return 0
    ttls = [rr.ttl for rr in rrs if rr.rtype != wire.T_OPT]
    return min(ttls) if ttls else 0


async def start_doh(
    loop: asyncio.AbstractEventLoop,
    server: DohServer,
    sock: socket.socket,
    context: ssl.SSLContext,
) -> asyncio.Server:
    """Serve DNS over HTTPS on a bound, listening socket."""
    return await loop.create_server(
        server, sock=sock, ssl=context, backlog=_BACKLOG, ssl_handshake_timeout=server.idle_timeout
    )
