"""DNS over TCP (RFC 7766): length-prefixed messages, pipelined, answered out of order.

Bounded everywhere: connections per server, queries in flight per connection, idle time (counted
from the last complete message, so a client that trickles bytes cannot hold a connection).
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

from resolver.core.query import Transport
from resolver.net import framing
from resolver.net.service import Dropped, Pending, Service

_TCP = Transport.TCP


class TcpLimits:
    def __init__(self, idle_timeout: float, max_connections: int, max_pipelined: int) -> None:
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_pipelined = max_pipelined
        self.connections: dict[TcpConnection, None] = {}  # insertion order = age


_END_GRACE = 2.0  # seconds a refused client has to read its last answers and close


class TcpConnection(asyncio.Protocol):
    def __init__(self, service: Service, limits: TcpLimits) -> None:
        self.service = service
        self.limits = limits
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.client = ""
        self.inflight = 0
        self.paused = False  # reading paused (by us)
        self.write_paused = False  # the transport asked us to stop writing
        self.eof = False
        self.refusing = False  # a query was dropped: answering what is in flight, then closing
        self.last_message = time.monotonic()
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        conns = self.limits.connections
        if len(conns) >= self.limits.max_connections:
            # Make room by closing the connection that has been quiet longest (RFC 7766 §6.2.2).
            oldest = min(conns, key=lambda c: c.last_message)
            oldest.close()
        conns[self] = None
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.limits.connections.pop(self, None)
        if self.timer is not None:
            self.timer.cancel()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self.limits.connections.pop(self, None)

    def _arm(self, delay: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        wait = self.limits.idle_timeout if delay is None else delay
        self.timer = loop.call_at(loop.time() + wait, self._check_idle)

    def _check_idle(self) -> None:
        idle = time.monotonic() - self.last_message
        timeout = self.limits.idle_timeout
        if self.inflight == 0 and idle >= timeout:
            self.close()
        elif self.inflight == 0:
            # Woken a little early (the loop's clock is coarser than time.monotonic, uvloop's
            # by a millisecond) or a message came meanwhile: wait only what is left, not a
            # whole timeout again (a silent connection lived up to twice the timeout).
            self._arm(max(timeout - idle, 0.01))
        else:
            self._arm()

    def _blocked(self) -> bool:
        """Stop taking queries: too many in flight, or the client does not read its answers."""
        return self.inflight >= self.limits.max_pipelined or self.write_paused

    def _resume_if_possible(self) -> None:
        if self.paused and not self._blocked() and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
            if len(self.buffer) >= 2:
                self.data_received(b"")

    def pause_writing(self) -> None:
        # The client's answers pile up past the transport's high-water mark: read no more
        # queries until it takes them, so a client that never reads costs bounded memory.
        self.write_paused = True
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._resume_if_possible()

    def data_received(self, data: bytes) -> None:
        if self.refusing:
            return  # read and discard: closing with unread data would reset the connection
        buf = self.buffer
        buf += data
        while not self._blocked():
            msg = framing.pop_frame(buf)
            if msg is None:
                break
            self.last_message = time.monotonic()
            self._handle(msg)
            if self.transport is None or self.transport.is_closing() or self.refusing:
                return
        if self._blocked() and not self.paused and self.transport:
            # Stop reading: the kernel's buffers then push back on a client that floods us.
            self.transport.pause_reading()
            self.paused = True

    def _handle(self, msg: bytes) -> None:
        out = self.service.begin(msg, self.client, _TCP)
        if out.__class__ is bytes:
            self._write(out)
        elif isinstance(out, Pending):
            self.inflight += 1
            self.service.forward(out, self._answered)
        elif isinstance(out, Dropped) and out.ends_stream:
            # Dropped (rate limit, overload): over UDP the client retries after its timeout,
            # but a TCP client would wait on a connection that answers no more until our idle
            # timeout. End it instead, after the answers in flight.
            self._refuse()

    def _refuse(self) -> None:
        self.refusing = True
        self.buffer.clear()
        if self.inflight == 0:
            self._end()

    def _end(self) -> None:
        """Half-close after the answers written so far (the client reads them, then EOF)."""
        t = self.transport
        if t is None or t.is_closing():
            return
        if t.can_write_eof():
            t.write_eof()
            # Close for good when the client does, or after a grace period.
            asyncio.get_running_loop().call_later(_END_GRACE, self.close)
        else:
            self.close()

    def _answered(self, out: bytes) -> None:
        self.inflight -= 1
        self._write(out)
        if self.refusing:
            if self.inflight == 0:
                self._end()
            return
        if self.eof and self.inflight == 0:
            self.close()
            return
        self._resume_if_possible()

    def _write(self, out: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(framing.frame(out))

    def eof_received(self) -> bool | None:
        # Half-closed by the client: finish what is in flight, then close (RFC 7766 §6.2.4).
        self.eof = True
        if self.refusing and self.inflight == 0:
            return None
        if self.inflight == 0:
            return None  # close now
        return True
