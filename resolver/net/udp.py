"""DNS over UDP: answer from the datagram handler when we can, a task only when we must wait."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from resolver.core.query import Transport
from resolver.net.service import Service

_UDP = Transport.UDP


class UdpServer(asyncio.DatagramProtocol):
    def __init__(self, service: Service) -> None:
        self.service = service
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, so no isinstance check here.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        out = self.service.begin(data, addr[0], _UDP)
        if out is None:
            return
        if isinstance(out, bytes):
            assert self.transport is not None
            self.transport.sendto(out, addr)
            return
        task = asyncio.get_running_loop().create_task(self._finish(out, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _finish(self, pending: Any, addr: Any) -> None:
        out = await self.service.finish(pending)
        if out is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors about earlier replies: nothing to do, and not worth a log line each
