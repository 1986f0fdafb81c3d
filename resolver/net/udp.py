"""DNS over UDP: answer from the readiness callback when we can, a task only when we must wait.

The socket is read directly from a reader callback, not through a DatagramProtocol, whose
machinery costs as much per datagram as our whole answer. On Linux the callback reads and answers
whole batches with recvmmsg/sendmmsg (resolver.net.mmsg): most of a busy resolver's CPU is the
kernel's, and two system calls per batch instead of two per query is the largest saving there is.
A query whose exact bytes (less the ID) were answered from the cache earlier in the same second
gets that answer again with its ID patched in (CacheStage.rendered), after the ACL and the rate
limit have had their say; everything else goes through Service.begin.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import socket
from typing import Any, Final

from resolver.blocklog.writer import BlockEvent
from resolver.core.query import Transport
from resolver.core.steps import Verdict
from resolver.net import mmsg
from resolver.net.service import Service

_UDP = Transport.UDP
_BATCH: Final = 64  # datagrams read per wake-up by the portable loop
_ROUNDS: Final = 4  # batches per wake-up by the Linux loop, before other callbacks get a turn
_MAX_DATAGRAM: Final = 65535
_CLIENTS_MAX: Final = 4096  # client address texts remembered; reset when full
_CACHED = Verdict.CACHED
_BLOCKED = Verdict.BLOCKED


class UdpServer:
    """Serves one bound, non-blocking UDP socket on the running loop."""

    def __init__(self, service: Service, sock: socket.socket, *, batched: bool = True) -> None:
        self.service = service
        self.sock = sock
        self.tasks: set[asyncio.Task[None]] = set()
        self.send_failures = 0  # answers dropped because the socket buffer was full
        self.oversized = 0  # queries longer than a batch slot, dropped
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._bufs = mmsg.create(sock) if batched else None
        # Client address (IPv4 as an int, IPv6 as its bytes) -> its text, as the ACL, the rate
        # limit and the block log know it.
        self._clients: dict[int | bytes, str] = {}

    @property
    def batched(self) -> bool:
        return self._bufs is not None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(
            self.sock.fileno(), self._readable if self._bufs is None else self._readable_batched
        )

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
                self._wait(out, addr)

    def _readable_batched(self) -> None:
        bufs = self._bufs
        assert bufs is not None
        service = self.service
        fast = service.fast
        if fast is None:
            cache = None
            memo: dict[bytes, Any] = {}
            acl_memo: dict[str, bool] = {}
            rate = None
        else:
            cache = fast.cache
            memo = cache.rendered
            acl_memo = fast.acl_memo
            rate = fast.rate_limit
        buckets = rate.buckets if rate is not None else None
        begin = service.begin
        offer = service.offer
        clients = self._clients
        u32 = bufs.u32
        msg_u32 = bufs.msg_u32
        len_at = bufs.len_u32
        flags_at = bufs.flags_u32
        rview = bufs.rview
        sview = bufs.sview
        names = bufs.names
        names_u32 = bufs.names_u32
        names_u16 = bufs.names_u16
        names_at = bufs.names_at
        siov = bufs.siov
        iov_ptr = bufs.iov_ptr
        iovlen_at = bufs.iovlen_ptr
        sptr = bufs.sptr
        msg_ptr = bufs.msg_ptr
        name_at = bufs.name_ptr
        slot = mmsg.SLOT
        name_size = mmsg.NAME
        inet = socket.AF_INET
        trunc = mmsg.MSG_TRUNC
        for _ in range(_ROUNDS):
            n = bufs.recv()
            if n <= 0:
                if n < 0 and ctypes.get_errno() not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    continue  # e.g. an ICMP error queued on the socket: it is now cleared
                return
            now = service.clock()
            if cache is not None:
                second = int(now)
                if second != cache.rendered_second:
                    memo.clear()  # answers rendered last second have TTLs a second too long
                    cache.rendered_second = second
            k = 0
            cached = blocked = dropped = 0
            for i in range(n):
                at = i * msg_u32
                if u32[at + flags_at] & trunc:
                    self.oversized += 1
                    continue
                off = i * slot
                end = off + u32[at + len_at]
                nb = i * name_size
                if names_u16[nb >> 1] == inet:
                    ckey: int | bytes = names_u32[(nb >> 2) + 1]
                else:
                    ckey = names[nb + 8 : nb + name_size].tobytes()
                client = clients.get(ckey)
                if client is None:
                    source = bufs.source(i)
                    if source is None:
                        continue
                    client = source[0]
                    if len(clients) >= _CLIENTS_MAX:
                        clients.clear()
                    clients[ckey] = client
                hit = (
                    memo.get(rview[off + 2 : end].tobytes())
                    if acl_memo.get(client) is True
                    else None
                )
                if hit is not None:
                    if buckets is not None:
                        # The rate limit's own test, inlined for the common case of a client
                        # already seen since this batch began (no time elapsed for ``now``,
                        # so nothing to refill; tokens left). Same outcome as allow().
                        b = buckets.get(client)
                        if b is not None and b[1] >= now and b[0] >= 1.0:
                            b[0] -= 1.0
                        elif rate is not None and not rate.allow(client, now):
                            dropped += 1
                            continue
                    answer, event = hit
                    so = k * slot
                    length = len(answer)
                    sview[so : so + length] = answer
                    sview[so] = rview[off]  # the asker's ID
                    sview[so + 1] = rview[off + 1]
                    if event is None:
                        cached += 1
                    else:
                        blocked += 1
                        if offer is not None:
                            offer(BlockEvent(now, client, *event))
                else:
                    out = begin(rview[off:end].tobytes(), client, _UDP)
                    if out is None:
                        continue
                    if type(out) is not bytes or len(out) > slot:
                        source = bufs.source(i)
                        if source is not None:
                            if type(out) is bytes:
                                self._send(out, source[1])
                            else:
                                self._wait(out, source[1])
                        continue
                    length = len(out)
                    so = k * slot
                    sview[so : so + length] = out
                siov[k * iov_ptr + iovlen_at] = length
                sptr[k * msg_ptr + name_at] = names_at + nb
                k += 1
            if k:
                self.send_failures += bufs.send(k)
            if cached or blocked or dropped:
                counts = service.counts
                counts[_CACHED] += cached
                counts[_BLOCKED] += blocked
                service.dropped += dropped
                if cache is not None:
                    cache.hits += cached + blocked
            if n < mmsg.BATCH:
                return

    def _wait(self, pending: Any, addr: Any) -> None:
        if self.service.forward(pending, lambda out: self._send(out, addr)):
            return
        assert self._loop is not None
        task = self._loop.create_task(self._finish(pending, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _send(self, out: bytes, addr: Any) -> None:
        if self._closed:
            return
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
