"""DNS over TLS for the commune's machines (RFC 7858): the TCP listener's protocol, inside TLS.

RFC 7858 §3.3 keeps TCP's framing, pipelining and out-of-order answers, so a connection is a
``TcpConnection`` over asyncio's TLS transport: the same Service (ACL, rate limit, policy), the
same bounds (connections, queries in flight, idle time), with limits of its own; answers are
padded to blocks of 468 octets (RFC 8467). A handshake that does not finish within the idle
timeout is abandoned by asyncio, so a client that connects and says nothing holds nothing long.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Final

from resolver.net.padding import pad
from resolver.net.service import Service
from resolver.net.tcp import TcpConnection, TcpLimits

DEFAULT_PORT: Final = 853  # RFC 7858 §3.1
_BACKLOG: Final = 256


class DotConnection(TcpConnection):
    """A TCP connection whose answers are padded (RFC 8467): inside TLS, sizes still leak."""

    def _write(self, out: bytes) -> None:
        super()._write(pad(out))


async def start_dot(
    loop: asyncio.AbstractEventLoop,
    service: Service,
    sock: socket.socket,
    context: ssl.SSLContext,
    limits: TcpLimits,
) -> asyncio.Server:
    """Serve DNS over TLS on a bound, listening socket."""
    return await loop.create_server(
        lambda: DotConnection(service, limits),
        sock=sock,
        ssl=context,
        backlog=_BACKLOG,
        ssl_handshake_timeout=limits.idle_timeout,
    )
