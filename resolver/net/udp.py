"""DNS over UDP: answer from the readiness callback when we can, a task only when we must wait.

The socket is read directly from a reader callback, not through a DatagramProtocol, whose
machinery costs as much per datagram as our whole answer. On Linux the callback reads and answers
whole batches with recvmmsg/sendmmsg (resolver.net.mmsg): most of a busy resolver's CPU is the
kernel's, and two system calls per batch instead of two per query is the largest saving there is.
A query whose exact bytes (less the ID) were answered from the cache earlier in the same second
gets that answer again with its ID patched in (Service.recall, when the pipeline admits it);
everything else goes through Service.begin. Answers that wait for an upstream are sent in
batches too: all those that land in one turn of the loop leave in one sendmmsg. The transport
decides nothing itself.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import socket
from typing import Any, Final, cast

from resolver.core.query import Transport
from resolver.net import mmsg
from resolver.net.service import Dropped, Pending, Service

_UDP = Transport.UDP
_BATCH: Final = 64  # datagrams read per wake-up by the portable loop
_ROUNDS: Final = 4  # batches per wake-up by the Linux loop, before other callbacks get a turn
_MAX_DATAGRAM: Final = 65535
_CLIENTS_MAX: Final = 4096  # client address texts remembered; reset when full
_INET: Final = socket.AF_INET
_TRUNC: Final = mmsg.MSG_TRUNC


class UdpServer:
    """Serves one bound, non-blocking UDP socket on the running loop."""

    def __init__(self, service: Service, sock: socket.socket, *, batched: bool = True) -> None:
        self.service = service
        self.sock = sock
        self.send_failures = 0  # answers dropped because the socket buffer was full
        self.oversized = 0  # queries longer than a batch slot, dropped
        # Turns that sent answers of upstream exchanges, and those answers: their ratio is how
        # many leave per sendmmsg.
        self.flushes = 0
        self.flushed = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._bufs = mmsg.create(sock) if batched else None
        # Client address (IPv4 as an int, IPv6 as its bytes) -> its text, as the ACL, the rate
        # limit and the block log know it.
        self._clients: dict[int | bytes, str] = {}
        # Answers of upstream exchanges waiting for this turn's sendmmsg: (answer, sockaddr).
        self._later: list[tuple[bytes, bytes]] = []

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
            # Any: uvloop's remove_reader returns None where asyncio's says bool, and compiled
            # code (setup.py) checks a bool it is told it gets.
            cast(Any, self._loop).remove_reader(self.sock.fileno())
        self.sock.close()

    def _readable(self) -> None:
        recvfrom = self.sock.recvfrom
        service = self.service
        for _ in range(_BATCH):
            try:
                data, addr = recvfrom(_MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError:
                continue  # e.g. an ICMP error queued on the socket: skip it, read on
            out = service.begin(data, addr[0], _UDP)
            if out.__class__ is bytes:
                self._send(out, addr)
            elif isinstance(out, Pending):
                self._wait(out, addr)

    def _readable_batched(self) -> None:
        bufs = self._bufs
        assert bufs is not None
        for _ in range(_ROUNDS):
            n = bufs.recv()
            if n <= 0:
                if n < 0 and ctypes.get_errno() not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    continue  # e.g. an ICMP error queued on the socket: it is now cleared
                return
            k = self._answer_batch(bufs, n, self.service.tick())
            if k:
                self.send_failures += bufs.send(k)
            if n < mmsg.BATCH:
                return

    def _answer_batch(self, bufs: mmsg.MmsgBuffers, n: int, now: float) -> int:
        """Answer the ``n`` datagrams read; returns how many answers wait in the send slots."""
        u32 = bufs.u32
        msg_u32 = bufs.msg_u32
        len_at = bufs.len_u32
        rview = bufs.rview
        sview = bufs.sview
        names_u32 = bufs.names_u32
        names_u16 = bufs.names_u16
        flags_at = bufs.flags_u32
        siov = bufs.siov
        iovlen_at = bufs.iovlen_ptr
        iov_ptr = bufs.iov_ptr
        sptr = bufs.sptr
        msg_ptr = bufs.msg_ptr
        name_at = bufs.name_ptr
        names_at = bufs.names_at
        clients = self._clients
        answer_slot = self._answer_slot
        slot = mmsg.SLOT
        name_size = mmsg.NAME
        k = 0
        for i in range(n):
            at = i * msg_u32
            if u32[at + flags_at] & _TRUNC:
                self.oversized += 1
                continue
            nb = i * name_size
            if names_u16[nb >> 1] == _INET:
                ckey: int | bytes = names_u32[(nb >> 2) + 1]
            else:
                ckey = bufs.names[nb + 8 : nb + name_size].tobytes()
            client = clients.get(ckey)
            if client is None:
                client = self._new_client(bufs, i, ckey)
                if client is None:
                    continue
            off = i * slot
            out = answer_slot(bufs, i, off, off + u32[at + len_at], client, now)
            if out is None:
                continue
            so = k * slot
            length = len(out)
            sview[so : so + length] = out
            sview[so] = rview[off]  # the asker's ID (a recalled answer has the first asker's)
            sview[so + 1] = rview[off + 1]
            siov[k * iov_ptr + iovlen_at] = length
            sptr[k * msg_ptr + name_at] = names_at + nb
            k += 1
        return k

    def _new_client(self, bufs: mmsg.MmsgBuffers, i: int, ckey: int | bytes) -> str | None:
        source = bufs.source(i)
        if source is None:
            return None
        clients = self._clients
        if len(clients) >= _CLIENTS_MAX:
            clients.clear()
        client: str = source[0]
        clients[ckey] = client
        return client

    def _answer_slot(
        self, bufs: mmsg.MmsgBuffers, i: int, off: int, end: int, client: str, now: float
    ) -> bytes | None:
        """The answer to datagram ``i`` for its send slot, or None: nothing to queue (dropped,
        waiting for the upstream, or too long for a slot and sent on its own)."""
        rview = bufs.rview
        service = self.service
        out: bytes | Pending | Dropped | None = service.recall(
            rview[off + 2 : end].tobytes(), client, now
        )
        if out is None:
            out = service.begin(rview[off:end].tobytes(), client, _UDP)
        if out.__class__ is bytes:
            if len(out) <= mmsg.SLOT:
                return out
            source = bufs.source(i)
            if source is not None:
                self._send(out, source[1])
        elif isinstance(out, Pending):
            raw = bufs.raw_source(i)
            self.service.forward(out, lambda answer: self._send_soon(answer, raw))
        return None

    def _send_soon(self, out: bytes, raw: bytes) -> None:
        """Queue the answer of an upstream exchange: those that land in one turn of the loop
        leave in one sendmmsg (``_flush``) instead of a sendto each."""
        later = self._later
        later.append((out, raw))
        if len(later) == 1 and self._loop is not None:
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        later, self._later = self._later, []
        bufs = self._bufs
        if self._closed or bufs is None:
            return
        self.flushes += 1
        self.flushed += len(later)
        k = 0
        for out, raw in later:
            if len(out) > mmsg.SLOT:
                source = mmsg.address(raw)
                if source is not None:
                    self._send(out, source[1])
                continue
            if k == mmsg.BATCH:
                self.send_failures += bufs.send(k)
                k = 0
            bufs.queue_send(k, out, raw)
            k += 1
        if k:
            self.send_failures += bufs.send(k)

    def _wait(self, pending: Pending, addr: Any) -> None:
        self.service.forward(pending, lambda out: self._send(out, addr))

    def _send(self, out: bytes, addr: Any) -> None:
        if self._closed:
            return
        try:
            self.sock.sendto(out, addr)
        except OSError:
            # A full send buffer (or a vanished client): UDP's answer is to drop; the client
            # retries. Counted, never blocking the loop.
            self.send_failures += 1
