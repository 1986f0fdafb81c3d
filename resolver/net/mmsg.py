"""Batched UDP I/O on Linux: recvmmsg(2) and sendmmsg(2) through ctypes.

On a busy resolver most of the CPU goes to the kernel, and a recvfrom/sendto pair per query pays
the system-call entry twice per answer; these calls read up to a batch of datagrams and send all
their answers in two calls. The buffers, the message headers and their iovecs are allocated once
and reused: the hot loop (resolver.net.udp) reads and writes them through flat memoryviews.

Layouts come from ctypes structures (so field offsets are the platform's), and anything that
does not fit the assumptions (another OS, no recvmmsg in libc, odd alignment) makes ``create``
return None: the caller then uses plain recvfrom/sendto.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import mmap
import socket
import sys
from collections.abc import Callable
from typing import Final

BATCH: Final = 64  # datagrams per call
SLOT: Final = (
    4096  # bytes per datagram buffer; a larger query is dropped, a larger answer sent alone
)
NAME: Final = 28  # sizeof(struct sockaddr_in6), which also holds a sockaddr_in
MSG_DONTWAIT: Final = 0x40
MSG_TRUNC: Final = 0x20


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", _Msghdr), ("len", ctypes.c_uint)]


class MmsgBuffers:
    """One socket's receive and send batches.

    The hot loop uses the flat views: ``u32[i * msg_u32 + len_u32]`` is the length of received
    datagram i and ``u32[i * msg_u32 + namelen_u32]`` the length of its source address;
    ``rview[i * SLOT:]`` its bytes, ``names[i * NAME:]`` its address. To answer, copy the answer
    to ``sview[k * SLOT:]``, set send message k's iovec length
    (``siov[k * iov_ptr + iovlen_ptr]``), address (``sptr[k * msg_ptr + name_ptr]``: the
    receive address buffer ``names_at + i * NAME``; its length is set once, since every peer of
    a socket has the size of the socket's family), then ``send(count)`` sends them all.
    """

    def __init__(
        self, fd: int, family: int, recvmmsg: Callable[..., int], sendmmsg: Callable[..., int]
    ) -> None:
        self.fd = fd
        self._recvmmsg = recvmmsg
        self._sendmmsg = sendmmsg
        self._rbuf = ctypes.create_string_buffer(BATCH * SLOT)
        self._sbuf = ctypes.create_string_buffer(BATCH * SLOT)
        self._names = ctypes.create_string_buffer(BATCH * NAME)
        self._riov = (_Iovec * BATCH)()
        self._siov = (_Iovec * BATCH)()
        self._rmsg = (_Mmsghdr * BATCH)()
        self._smsg = (_Mmsghdr * BATCH)()
        rbase = ctypes.addressof(self._rbuf)
        sbase = ctypes.addressof(self._sbuf)
        self.names_at = ctypes.addressof(self._names)
        for i in range(BATCH):
            self._riov[i].base = rbase + i * SLOT
            self._riov[i].len = SLOT
            self._siov[i].base = sbase + i * SLOT
            r = self._rmsg[i].hdr
            r.name = self.names_at + i * NAME
            r.namelen = NAME
            r.iov = ctypes.addressof(self._riov[i])
            r.iovlen = 1
            s = self._smsg[i].hdr
            s.iov = ctypes.addressof(self._siov[i])
            s.iovlen = 1
            # A socket's peers all have its family's address size (IPv4 peers of an IPv6
            # socket come as mapped addresses), so the kernel's receive lengths are this too.
            s.namelen = 16 if family == socket.AF_INET else NAME
        self.rmsg_at = ctypes.addressof(self._rmsg)
        self.smsg_at = ctypes.addressof(self._smsg)
        msg = ctypes.sizeof(_Mmsghdr)
        ptr = ctypes.sizeof(ctypes.c_void_p)
        self.msg_size = msg
        self.msg_u32 = msg // 4
        self.len_u32 = _Mmsghdr.len.offset // 4
        self.namelen_u32 = _Msghdr.namelen.offset // 4
        self.flags_u32 = _Msghdr.flags.offset // 4
        self.msg_ptr = msg // ptr
        self.name_ptr = _Msghdr.name.offset // ptr
        self.iov_ptr = ctypes.sizeof(_Iovec) // ptr
        self.iovlen_ptr = _Iovec.len.offset // ptr
        self.rview = memoryview(self._rbuf).cast("B")
        self.sview = memoryview(self._sbuf).cast("B")
        self.names = memoryview(self._names).cast("B")
        self.names_u32 = self.names.cast("I")
        self.names_u16 = self.names.cast("H")
        self.u32 = memoryview(self._rmsg).cast("B").cast("I")
        self.s32 = memoryview(self._smsg).cast("B").cast("I")
        self.sptr = memoryview(self._smsg).cast("B").cast("P")
        self.siov = memoryview(self._siov).cast("B").cast("P")

    def recv(self) -> int:
        """Datagrams read into the batch (0: none waiting; -1: an error such as a queued ICMP)."""
        return int(self._recvmmsg(self.fd, self.rmsg_at, BATCH, MSG_DONTWAIT, None))

    def send(self, k: int) -> int:
        """Send messages 0..k-1; return how many could not be sent (a full buffer drops them)."""
        sent = 0
        failed = 0
        while sent < k:
            r = int(self._sendmmsg(self.fd, self.smsg_at + sent * self.msg_size, k - sent, 0))
            if r <= 0:
                # The first unsent message failed (full buffer, vanished client): UDP drops it,
                # the client retries; go on with the rest.
                failed += 1
                sent += 1
            else:
                sent += r
        return failed

    def source(self, i: int) -> tuple[str, tuple[str, int] | tuple[str, int, int, int]] | None:
        """The client text and the address tuple of datagram i (None for an unknown family)."""
        base = i * NAME
        return address(bytes(self.names[base : base + NAME]))

    def raw_source(self, i: int) -> bytes:
        """Datagram i's source as the kernel gave it (a sockaddr), for ``queue_send``."""
        base = i * NAME
        return self.names[base : base + NAME].tobytes()

    def queue_send(self, k: int, out: bytes, raw: bytes) -> None:
        """Make send message k ``out`` to the sockaddr ``raw`` (``len(out)`` <= SLOT).

        Writes ``raw`` into receive address slot k: only between two receive batches (the
        answers of upstream exchanges, sent from a callback of their own)."""
        so = k * SLOT
        self.sview[so : so + len(out)] = out
        self.siov[k * self.iov_ptr + self.iovlen_ptr] = len(out)
        self.names[k * NAME : k * NAME + NAME] = raw
        self.sptr[k * self.msg_ptr + self.name_ptr] = self.names_at + k * NAME


def address(raw: bytes) -> tuple[str, tuple[str, int] | tuple[str, int, int, int]] | None:
    """The client text and the address tuple of a sockaddr (None for an unknown family)."""
    family = int.from_bytes(raw[:2], sys.byteorder)
    port = (raw[2] << 8) | raw[3]
    if family == socket.AF_INET:
        host = socket.inet_ntoa(raw[4:8])
        return host, (host, port)
    if family == socket.AF_INET6:
        host = socket.inet_ntop(socket.AF_INET6, raw[8:24])
        flow = int.from_bytes(raw[4:8], "big")
        scope = int.from_bytes(raw[24:28], sys.byteorder)
        text = host
        if scope:
            try:
                text = f"{host}%{socket.if_indextoname(scope)}"
            except OSError:
                text = f"{host}%{scope}"
        return text, (text, port, flow, scope)
    return None


# The C signatures: int recvmmsg(int, struct mmsghdr *, unsigned, int, struct timespec *);
# int sendmmsg(int, struct mmsghdr *, unsigned, int).
_SIGNATURES: Final = {
    "recvmmsg": [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p],
    "sendmmsg": [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int],
}


@functools.cache  # find_library runs ldconfig: once a process, not once a socket
def _libc(name: str) -> Callable[..., int] | None:
    """libc's ``name`` (recvmmsg or sendmmsg) with its signature, errno kept; None if absent."""
    try:
        fn = getattr(ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    fn.argtypes = _SIGNATURES[name]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def create(sock: socket.socket) -> MmsgBuffers | None:
    """Batches for ``sock``, or None where recvmmsg/sendmmsg cannot be used."""
    if not sys.platform.startswith("linux") or sock.family not in (
        socket.AF_INET,
        socket.AF_INET6,
    ):
        return None
    recvmmsg, sendmmsg = _libc("recvmmsg"), _libc("sendmmsg")
    if recvmmsg is None or sendmmsg is None:
        return None
    ptr = ctypes.sizeof(ctypes.c_void_p)
    if (
        ctypes.sizeof(ctypes.c_size_t) != ptr  # lengths are written through pointer-sized views
        or ctypes.sizeof(_Mmsghdr) % ptr
        or _Mmsghdr.len.offset % 4
        or _Msghdr.namelen.offset % 4
        or _Msghdr.name.offset % ptr
        or _Iovec.len.offset % ptr
        or NAME % 4
    ):
        return None
    return MmsgBuffers(sock.fileno(), sock.family, recvmmsg, sendmmsg)


class RecvBatch:
    """recvmmsg(2) for connected sockets (the upstream UDP pool): one set of buffers for all.

    A connected socket's datagrams all come from its peer, so no source address is read, and
    one batch serves every socket in turn: take each datagram (``datagram``) before the next
    ``recv``. The buffers are an anonymous mapping, so only the pages that datagrams were
    written to become resident, however large a slot is.
    """

    def __init__(self, recvmmsg: Callable[..., int], batch: int, slot: int) -> None:
        self._recvmmsg = recvmmsg
        self.batch = batch
        self.slot = slot
        self._map = mmap.mmap(-1, batch * slot)
        base = ctypes.addressof(ctypes.c_char.from_buffer(self._map))
        self._iov = (_Iovec * batch)()
        self._msg = (_Mmsghdr * batch)()
        for i in range(batch):
            self._iov[i].base = base + i * slot
            self._iov[i].len = slot
            self._msg[i].hdr.iov = ctypes.addressof(self._iov[i])
            self._msg[i].hdr.iovlen = 1
        self._at = ctypes.addressof(self._msg)
        self._view = memoryview(self._map)
        self._u32 = memoryview(self._msg).cast("B").cast("I")
        self._msg_u32 = ctypes.sizeof(_Mmsghdr) // 4
        self._len_u32 = _Mmsghdr.len.offset // 4
        self._flags_u32 = _Msghdr.flags.offset // 4

    def recv(self, fd: int) -> int:
        """Datagrams read from ``fd`` (0: none waiting; -1: an error, see ``ctypes.get_errno``)."""
        return int(self._recvmmsg(fd, self._at, self.batch, MSG_DONTWAIT, None))

    def datagram(self, i: int) -> bytes | None:
        """Datagram i of the last ``recv``; None if it did not fit a slot (it was cut)."""
        k = i * self._msg_u32
        if self._u32[k + self._flags_u32] & MSG_TRUNC:
            return None
        start = i * self.slot
        return bytes(self._view[start : start + self._u32[k + self._len_u32]])


def create_recv_batch(batch: int, slot: int) -> RecvBatch | None:
    """A ``RecvBatch``, or None where recvmmsg cannot be used (then read one datagram a call)."""
    recvmmsg = _libc("recvmmsg") if sys.platform.startswith("linux") else None
    if recvmmsg is None:
        return None
    if ctypes.sizeof(_Mmsghdr) % 4 or _Mmsghdr.len.offset % 4 or _Msghdr.flags.offset % 4:
        return None  # read through a 32-bit view
    return RecvBatch(recvmmsg, batch, slot)


class SendBatch:
    """sendmmsg(2) for connected sockets (the upstream UDP pool): the messages are copied into
    slots (``put``), then sent in one call (``send``)."""

    def __init__(self, sendmmsg: Callable[..., int], batch: int, slot: int) -> None:
        self._sendmmsg = sendmmsg
        self.batch = batch
        self.slot = slot
        self._buf = ctypes.create_string_buffer(batch * slot)
        base = ctypes.addressof(self._buf)
        self._iov = (_Iovec * batch)()
        self._msg = (_Mmsghdr * batch)()
        for i in range(batch):
            self._iov[i].base = base + i * slot
            self._msg[i].hdr.iov = ctypes.addressof(self._iov[i])
            self._msg[i].hdr.iovlen = 1
        self._at = ctypes.addressof(self._msg)
        self._view = memoryview(self._buf).cast("B")
        self._lens = memoryview(self._iov).cast("B").cast("P")
        self._len_ptr = _Iovec.len.offset // ctypes.sizeof(ctypes.c_void_p)
        self._iov_ptr = ctypes.sizeof(_Iovec) // ctypes.sizeof(ctypes.c_void_p)

    def put(self, i: int, data: bytes) -> None:
        """Message i is ``data`` (at most ``slot`` octets)."""
        start = i * self.slot
        self._view[start : start + len(data)] = data
        self._lens[i * self._iov_ptr + self._len_ptr] = len(data)

    def send(self, fd: int, k: int) -> int:
        """Send messages 0..k-1 on ``fd``: how many left (-1: the first failed, see errno)."""
        return int(self._sendmmsg(fd, self._at, k, 0))


def create_send_batch(batch: int, slot: int) -> SendBatch | None:
    """A ``SendBatch``, or None where sendmmsg cannot be used (then send one a call)."""
    sendmmsg = _libc("sendmmsg") if sys.platform.startswith("linux") else None
    if sendmmsg is None:
        return None
    ptr = ctypes.sizeof(ctypes.c_void_p)
    if ctypes.sizeof(ctypes.c_size_t) != ptr or _Iovec.len.offset % ptr:
        return None  # lengths are written through a pointer-sized view
    return SendBatch(sendmmsg, batch, slot)
