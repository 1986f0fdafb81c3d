"""A pool of upstream UDP sockets, each carrying many queries, as unbound's ``outgoing-range``.

A socket per query (a fresh random source port per try) is the textbook RFC 5452 defence, but
creating, registering and closing it cost a fifth of a cache miss's CPU. unbound keeps a set of
open ports (``outgoing-range``, ``outside_network.c``): a query goes out on a randomly chosen
one, many queries share a port while it is busy, and a port is closed once idle, so the ports in
use keep changing. This pool does the same, with these choices:

* **Random ports, never a fixed one.** Each socket is bound by the kernel to a random ephemeral
  port (Linux picks it at random in ``ip_local_port_range``, RFC 6056); a query goes out on a
  socket drawn at random from its server's pool, with a random ID not in flight on that socket.
  A socket is retired after ``max_uses`` queries or ``max_age`` seconds, whichever comes first
  (closed once its last answer is in), and a new one with a new port takes its place: an
  attacker who found a port (SAD DNS, Man et al. 2020, scanned for them through the kernel's
  ICMP rate limit) has it for seconds, and must still guess the ID (RFC 5452 §9.2).
* **Connected, one pool per server**, not unconnected sockets shared by every server with
  ``sendto``: the kernel then drops datagrams from any other address or port before we read
  them (a spoofing flood costs no Python), and reports an ICMP port unreachable as an error on
  the socket, so a server that is not listening fails its tries at once instead of after the
  timeout. Upstreams are few (one to four), so per-server pools cost a few sockets.
* **An answer counts** only on the socket that sent the query (so from the server asked, kernel
  checked), with an ID in flight there and our question (``matches``, RFC 5452 §9.1); anything
  else is read and dropped. Answers are read with one recvmmsg(2) per wake-up on Linux (up to
  ``_BATCH``; measured: 0.7 system calls fewer per exchange than recv until EAGAIN, at the same
  Python cost), elsewhere with recv, at most ``_READS`` a wake-up: a flood cannot hold the loop.
* **One timer for every try**: deadlines go to buckets of ``_TICK`` seconds (a timer wheel whose
  few ticks are in a heap) checked by a single ``call_at`` timer,
  at most every ``_TICK`` seconds while anything is in flight, instead of a timer armed and
  cancelled per try (measured under uvloop: 1.25 µs a try for ``call_later`` + ``cancel``,
  0.3 µs for the heap push; 4,000 Python instructions fewer per exchange in all). A try
  expires at its deadline or up to ``_TICK`` later, never earlier.
* **IDs never run out**: a socket carries at most ``per_socket`` queries at once (well below
  the 65,536 IDs, and few enough that a burst of answers fits its receive buffer); when the
  drawn socket is full, the least busy one is used, and when every one is full, another is
  opened, up to ``max_sockets`` per server (then the try fails as a send error would).

Each socket is registered with the event loop once, for its whole life (up to ``max_uses``
queries), so the loop's own ``add_reader`` costs nothing per query; a private epoll set, which
paid off with a socket per query, would now cost an epoll_wait per wake-up (measured: 1,000
Python instructions more per exchange).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import heapq
import itertools
import math
import socket
from collections.abc import Callable
from typing import Any, Final, cast

from resolver.net import mmsg
from resolver.net.upstream_query import matches

# Non-blocking from creation: one ioctl less per socket.
_DGRAM_NONBLOCK: Final = socket.SOCK_DGRAM | getattr(socket, "SOCK_NONBLOCK", 0)
_TICK: Final = 0.01  # seconds between two expiry checks at most (expiry is this coarse)
_READS: Final = 64  # datagrams read per socket per wake-up at most (without recvmmsg)
_BATCH: Final = 16  # datagrams read per socket per wake-up at most (recvmmsg)
_SEND_BATCH: Final = 64  # queries sent per sendmmsg at most
_MAX_QUERY: Final = 512  # our upstream query: header, a name of 255 octets at most, OPT
_MAX_ANSWER: Final = 65535  # a UDP answer is never larger (so never cut by our buffers)
_AGAIN: Final = frozenset((errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR))

POOL_SIZE: Final = 4  # sockets per server in normal use
MAX_USES: Final = 200  # queries a socket sends before it is retired
MAX_AGE: Final = 5.0  # seconds a socket is used before it is retired
PER_SOCKET: Final = 100  # queries in flight on one socket at most
MAX_SOCKETS: Final = 64  # sockets per server at most (so 6,400 queries in flight per server)

# What a try does with its outcome: the answer, or None (timeout, ICMP error, pool closed).
OnAnswer = Callable[[bytes | None], None]
# A query in flight: what we sent (to match the answer), who gets the outcome, and the number
# of its entry in the deadline heap.
_Waiter = tuple[bytes, OnAnswer, int]


class _Port:
    """One pool socket: connected to one server, its queries in flight by ID."""

    __slots__ = (
        "closed",
        "fd",
        "outbox",
        "retire_at",
        "retired",
        "server",
        "sock",
        "uses",
        "waiting",
    )

    def __init__(self, sock: socket.socket, server: tuple[str, int], retire_at: float) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.server = server
        self.waiting: dict[int, _Waiter] = {}
        self.uses = 0
        self.retire_at = retire_at
        self.retired = False  # no new query; closed once ``waiting`` is empty
        self.closed = False
        self.outbox: list[tuple[int, bytes]] = []  # (ID, query) to send at this turn's end


class UdpPool:
    """Upstream UDP sockets shared by queries; see the module docstring.

    ``draw`` gives random 16-bit numbers (a CSPRNG's): for the socket choice and for a new ID
    when the one given collides with one in flight on the chosen socket.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        draw: Callable[[], int],
        *,
        size: int = POOL_SIZE,
        max_uses: int = MAX_USES,
        max_age: float = MAX_AGE,
        per_socket: int = PER_SOCKET,
        max_sockets: int = MAX_SOCKETS,
    ) -> None:
        self.loop = loop
        self._draw = draw
        self.size = size
        self.max_uses = max_uses
        self.max_age = max_age
        self.per_socket = per_socket
        self.max_sockets = max_sockets
        self._live: dict[tuple[str, int], list[_Port]] = {}  # per server, the ones in use
        self._open: dict[int, _Port] = {}  # by fd: live and retired ones not yet closed
        # (deadline, number, socket, ID): a heap. An answered try's entry stays until its
        # deadline, so it holds no reference to the query's callback (and all it holds).
        # Deadlines in buckets of ``_TICK`` (a timer wheel): tick -> [(number, socket, ID)],
        # and a heap of the ticks that have a bucket. A try goes to the bucket of the first
        # tick at or after its deadline (never early), an append; the heap holds a few hundred
        # ticks, not one entry per try (a heap of 20,000 tries cost a miss ~2 µs of
        # comparisons). A bucket keeps no reference to an answered try's callback.
        self._buckets: dict[int, list[tuple[int, _Port, int]]] = {}
        self._ticks: list[int] = []
        self._seq = itertools.count()  # entry numbers: tell a try from a later one with its ID
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self.in_flight = 0
        self.opened = 0  # sockets opened so far (tests, and to see the ports change)
        self._batch = mmsg.create_recv_batch(_BATCH, _MAX_ANSWER + 1)  # None: recv
        self._sends = mmsg.create_send_batch(_SEND_BATCH, _MAX_QUERY)  # None: send each
        self._outgoing: list[_Port] = []  # sockets with queries to send at this turn's end

    # --- sending ----------------------------------------------------------------------------

    def send(self, host: str, port: int, sent: bytes, wait: float, on_answer: OnAnswer) -> None:
        """Send ``sent``; ``on_answer`` gets the answer or None, exactly once, later.

        The query leaves at the end of this turn of the loop, with the others sent on the same
        socket meanwhile, in one sendmmsg (a cache miss's upstream query is then not a system
        call of its own); a send that fails then gives None, as a try without an answer.
        Raises OSError if no socket can take it (then ``on_answer`` is never called). The ID
        in ``sent`` is kept unless a query with that ID is in flight on the chosen socket.
        """
        now = self.loop.time()
        p = self._pick((host, port), now)
        qid = (sent[0] << 8) | sent[1]
        waiting = p.waiting
        if qid in waiting:
            qid = self._free_id(waiting)
            sent = qid.to_bytes(2, "big") + sent[2:]
        if not p.outbox:
            if not self._outgoing:
                self.loop.call_soon(self._flush)
            self._outgoing.append(p)
        p.outbox.append((qid, sent))
        seq = next(self._seq)
        waiting[qid] = (sent, on_answer, seq)
        self.in_flight += 1
        tick = math.ceil((now + wait) / _TICK)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = []
            heapq.heappush(self._ticks, tick)
            if tick * _TICK < self._timer_at:
                self._arm(tick * _TICK)
        bucket.append((seq, p, qid))

    def _flush(self) -> None:
        """Send what this turn queued, socket by socket."""
        ports, self._outgoing = self._outgoing, []
        for p in ports:
            out, p.outbox = p.outbox, []
            if p.closed:
                continue  # its queries were failed when it closed
            out = [(qid, sent) for qid, sent in out if qid in p.waiting]  # not failed since
            if self._sends is None or len(out) == 1:
                self._send_each(p, out)
            else:
                self._send_batch(p, out)

    def _send_each(self, p: _Port, out: list[tuple[int, bytes]]) -> None:
        for qid, sent in out:
            try:
                p.sock.send(sent)
            except OSError as exc:
                if self._send_failed(p, qid, exc.errno):
                    return

    def _send_batch(self, p: _Port, out: list[tuple[int, bytes]]) -> None:
        sends = self._sends
        assert sends is not None
        at = 0
        if any(len(sent) > sends.slot for _, sent in out):
            self._send_each(p, out)  # never from our own queries; kept simple if it were
            return
        while at < len(out):
            chunk = out[at : at + sends.batch]
            for i, (_, sent) in enumerate(chunk):
                sends.put(i, sent)
            n = sends.send(p.fd, len(chunk))
            if n <= 0:  # the first message of the chunk failed
                if self._send_failed(p, chunk[0][0], ctypes.get_errno()):
                    return
                n = 1
            at += n

    def _send_failed(self, p: _Port, qid: int, err: int | None) -> bool:
        """A query could not be sent: it fails (its try moves on); True if the socket is done.

        A pending ICMP error is reported by the send and then consumed: the queries in flight
        on this socket went to the same dead port, so they all fail at once."""
        if err == errno.ECONNREFUSED:
            self._refused(p)
            return True
        w = p.waiting.get(qid)
        if w is not None:
            self._done(p, qid, w[1], None)
        return p.closed

    def _pick(self, server: tuple[str, int], now: float) -> _Port:
        """A socket to ``server`` drawn at random, retired if this is its last use."""
        live = self._live.get(server)
        if live is None:
            live = self._live[server] = []
        n = len(live)
        if n < self.size:
            return self._new(server, live, now)
        p = live[self._draw() % n]
        if now >= p.retire_at:
            # Too old to carry this query (an idle socket may have waited long): a new one does.
            self._retire(p, live)
            if not p.waiting:
                self._close(p)
            return self._new(server, live, now)
        if len(p.waiting) >= self.per_socket:
            p = min(live, key=_busy)
            if len(p.waiting) >= self.per_socket:
                if n >= self.max_sockets:
                    raise OSError(errno.ENOBUFS, "too many upstream queries in flight")
                return self._new(server, live, now)
        p.uses += 1
        if p.uses >= self.max_uses:
            self._retire(p, live)
        return p

    def _new(self, server: tuple[str, int], live: list[_Port], now: float) -> _Port:
        sock = socket.socket(
            socket.AF_INET6 if ":" in server[0] else socket.AF_INET, _DGRAM_NONBLOCK
        )
        try:
            # connect() binds the socket to a random ephemeral port, chosen by the kernel.
            sock.connect(server)
            p = _Port(sock, server, now + self.max_age)
            self.loop.add_reader(p.fd, self._readable, p)
        except BaseException:
            sock.close()
            raise
        p.uses = 1
        live.append(p)
        self._open[p.fd] = p
        self.opened += 1
        return p

    def _free_id(self, waiting: dict[int, _Waiter]) -> int:
        # At most ``per_socket`` of 65,536 IDs are taken: a few draws find a free one.
        while True:
            qid = self._draw()
            if qid not in waiting:
                return qid

    # --- answers, errors, expiry --------------------------------------------------------------

    def _readable(self, p: _Port) -> None:
        batch = self._batch
        if batch is None:
            self._read_each(p)
            return
        n = batch.recv(p.fd)
        if n < 0:
            if ctypes.get_errno() not in _AGAIN:
                self._refused(p)  # e.g. ICMP port unreachable: fail over at once
            return
        for i in range(n):
            data = batch.datagram(i)
            if data is not None and not self._answer(p, data):
                return

    def _read_each(self, p: _Port) -> None:
        recv = p.sock.recv
        for _ in range(_READS):
            try:
                data = recv(_MAX_ANSWER)
            except BlockingIOError:
                return
            except OSError:
                self._refused(p)  # e.g. ICMP port unreachable: fail over at once
                return
            if not self._answer(p, data):
                return

    def _answer(self, p: _Port, data: bytes) -> bool:
        """Give ``data`` to its query if it answers one on ``p``; False once ``p`` is closed."""
        if len(data) < 12:
            return True
        qid = (data[0] << 8) | data[1]
        w = p.waiting.get(qid)
        if w is not None and matches(data, w[0]):
            self._done(p, qid, w[1], data)
            return not p.closed  # closed: that was the last answer of a retired socket
        return True

    def _done(self, p: _Port, qid: int, on_answer: OnAnswer, answer: bytes | None) -> None:
        del p.waiting[qid]
        self.in_flight -= 1
        if p.retired and not p.waiting:
            self._close(p)
        self._give(on_answer, answer)

    def _give(self, on_answer: OnAnswer, answer: bytes | None) -> None:
        try:
            on_answer(answer)
        except Exception as exc:  # one query's failure must not lose the answers read with it
            self.loop.call_exception_handler(
                {"message": "upstream answer callback failed", "exception": exc}
            )

    def _refused(self, p: _Port) -> None:
        """An ICMP error on ``p``: every query on it went to that server's closed port."""
        if p.closed:
            return
        waiting, p.waiting = p.waiting, {}
        self.in_flight -= len(waiting)
        if p.retired:
            self._close(p)
        for w in waiting.values():
            self._give(w[1], None)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(when, self._expire)
        self._timer_at = when

    def _expire(self) -> None:
        """The one timer: fail the tries whose deadline has passed, then wait for the next."""
        self._timer = None
        self._timer_at = float("inf")
        now = self.loop.time()
        ticks = self._ticks
        buckets = self._buckets
        while ticks and ticks[0] * _TICK <= now:
            for seq, p, qid in buckets.pop(heapq.heappop(ticks)):
                w = p.waiting.get(qid)
                if w is not None and w[2] == seq:  # not answered yet (nor a later try's ID)
                    self._done(p, qid, w[1], None)
        if not self.in_flight:
            ticks.clear()  # only answered tries were left
            buckets.clear()
        elif ticks and ticks[0] * _TICK < self._timer_at:
            self._arm(max(ticks[0] * _TICK, now + _TICK))

    # --- the sockets' lives -----------------------------------------------------------------

    def _retire(self, p: _Port, live: list[_Port]) -> None:
        # Not closed here: the query being sent is its last; its answer (or expiry, or a send
        # error) closes it.
        live.remove(p)
        p.retired = True

    def _close(self, p: _Port) -> None:
        p.closed = True
        del self._open[p.fd]
        with contextlib.suppress(Exception):  # the loop may be closed already
            # Any: uvloop's returns None where asyncio's says bool (checked when compiled).
            cast(Any, self.loop).remove_reader(p.fd)
        p.sock.close()

    def ports(self, host: str, port: int) -> list[int]:
        """The local ports of the sockets in use for ``host``:``port`` (tests, diagnostics)."""
        return [p.sock.getsockname()[1] for p in self._live.get((host, port), ())]

    def close(self) -> None:
        """Close every socket; the queries in flight get None."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = float("inf")
        self._ticks.clear()
        self._buckets.clear()
        self._live.clear()
        for p in list(self._open.values()):
            p.retired = True
            waiting, p.waiting = p.waiting, {}
            self.in_flight -= len(waiting)
            self._close(p)
            for w in waiting.values():
                self._give(w[1], None)


def _busy(p: _Port) -> int:
    return len(p.waiting)
