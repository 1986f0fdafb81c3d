"""DNS over UDP: answer from the readiness callback when we can, a task only when we must wait.

The socket is read directly from a reader callback that drains up to a batch of datagrams per
wake-up, instead of through a DatagramProtocol: that saves the transport machinery's work per
datagram, which costs as much as our whole answer on the fast path.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Final

from resolver.core.query import Transport
from resolver.net.service import Service

_UDP = Transport.UDP
_BATCH: Final = 64  # datagrams read per wake-up before letting other callbacks run
_MAX_DATAGRAM: Final = 65535


class UdpServer:
    """Serves one bound, non-blocking UDP socket on the running loop."""

    def __init__(self, service: Service, sock: socket.socket) -> None:
        self.service = service
        self.sock = sock
        self.tasks: set[asyncio.Task[None]] = set()
        self.send_failures = 0  # answers dropped because the socket buffer was full
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def _readable(self) -> None:
        recvfrom = self.sock.recvfrom
        begin = self.service.begin
        for _ in range(_BATCH):
            try:
                data, addr = recvfrom(_MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError:
                continue  # e.g. an ICMP error queued on the socket: skip it, read on
            out = begin(data, addr[0], _UDP)
            if out is None:
                continue
            if type(out) is bytes:
                self._send(out, addr)
            else:
                assert self._loop is not None
                task = self._loop.create_task(self._finish(out, addr))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    def _send(self, out: bytes, addr: Any) -> None:
        try:
            self.sock.sendto(out, addr)
        except OSError:
            # A full send buffer (or a vanished client): UDP's answer is to drop; the client
            # retries. Counted, never blocking the loop.
            self.send_failures += 1

    async def _finish(self, pending: Any, addr: Any) -> None:
        out = await self.service.finish(pending)
        if out is not None and not self._closed:
            self._send(out, addr)
