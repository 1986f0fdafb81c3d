"""DNS over TLS to one upstream resolver (RFC 7858), so the commune's queries are not in clear.

One TLS connection per upstream, kept open and shared: queries are pipelined on it (RFC 7766
framing, each message preceded by its two-byte length), several in flight at once, and each
reply is handed to the query with its ID and question. The certificate must chain to a trusted
CA and carry ``server_name``; ``host`` is the address to connect to, so finding the upstream
never needs a DNS lookup (a resolver must not depend on itself to reach its upstream).

A connection the server closes is replaced by a new one at the next query; a query caught by
the close is sent once more on the new connection. A connection idle for ``idle_timeout``
seconds is closed (RFC 7766 §6.2.3: clients should not hold idle connections open for long).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import ssl

from resolver.core.wire import U16
from resolver.net import framing
from resolver.net.upstream_query import matches

log = logging.getLogger(__name__)

DOT_PORT = 853
_MAX_MESSAGE = framing.MAX_MESSAGE
_SSL_SHUTDOWN_TIMEOUT = 2.0  # seconds a closing connection waits for the server's close_notify


def default_ssl_context() -> ssl.SSLContext:
    """The system's CAs, certificate and name checked, TLS 1.2 at least."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class _Connection:
    """One TLS connection: the queries in flight on it, and the task reading its replies."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        idle_timeout: float,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_timeout = idle_timeout
        # wire ID -> (the query as sent, the future its reply goes to)
        self.pending: dict[int, tuple[bytes, asyncio.Future[bytes]]] = {}
        self.closed = False
        self.sent = 0
        self._loop = asyncio.get_running_loop()
        self._idle: asyncio.TimerHandle | None = None
        self._task = self._loop.create_task(self._read())
        self._arm_idle()

    async def ask(self, query: bytes) -> bytes:
        """Send ``query`` on this connection and wait for its reply (with the query's ID)."""
        if self.closed:
            raise ConnectionError("connection closed")
        # The caller's ID is kept unless another query in flight here already uses it.
        qid = U16.unpack_from(query)[0]
        while qid in self.pending:
            qid = secrets.randbits(16)
        sent = U16.pack(qid) + query[2:]
        fut: asyncio.Future[bytes] = self._loop.create_future()
        self.pending[qid] = (sent, fut)
        self._disarm_idle()
        try:
            self.sent += 1
            try:
                self.writer.write(framing.frame(sent))
                await self.writer.drain()
            except OSError as exc:
                self.shut(exc)
                raise
            resp = await fut
        finally:
            self._forget(qid, fut)
        return query[:2] + resp[2:]

    def _forget(self, qid: int, fut: asyncio.Future[bytes]) -> None:
        entry = self.pending.get(qid)
        if entry is not None and entry[1] is fut:
            del self.pending[qid]
        if fut.done() and not fut.cancelled():
            fut.exception()  # mark it retrieved: the waiter may have been cancelled meanwhile
        else:
            fut.cancel()
        if not self.pending:
            self._arm_idle()

    async def _read(self) -> None:
        error: Exception = ConnectionError("connection closed by the server")
        try:
            while True:
                resp = await framing.read_frame(self.reader)
                if len(resp) < 12:
                    continue
                entry = self.pending.get(U16.unpack_from(resp)[0])
                if entry is None:
                    continue  # a late reply to a query that gave up
                sent, fut = entry
                if not fut.done() and matches(resp, sent):
                    fut.set_result(resp)
        except asyncio.IncompleteReadError:
            pass  # the server closed the connection (idle timeout, restart, ...)
        except OSError as exc:  # ssl.SSLError and ConnectionResetError included
            error = exc
        except Exception as exc:
            log.exception("DNS over TLS: reading the connection failed")
            error = ConnectionError(f"reading the connection failed: {exc}")
        self.shut(error)

    def shut(self, error: Exception) -> None:
        """Close the connection; the queries in flight fail with ``error``."""
        if self.closed:
            return
        self.closed = True
        self._disarm_idle()
        for _, fut in self.pending.values():
            if not fut.done():
                fut.set_exception(error)
        self.pending.clear()
        if self._task is not asyncio.current_task():
            self._task.cancel()
        self.writer.close()

    async def aclose(self) -> None:
        self.shut(ConnectionError("connection closed"))
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(_SSL_SHUTDOWN_TIMEOUT):
                await self.writer.wait_closed()

    def _arm_idle(self) -> None:
        if self._idle is None and not self.closed:
            self._idle = self._loop.call_later(self.idle_timeout, self._on_idle)

    def _disarm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _on_idle(self) -> None:
        self._idle = None
        if not self.pending:
            self.shut(ConnectionError("idle connection closed"))


class TlsUpstream:
    """DNS over TLS to one server: ``exchange`` sends a query and returns the matching reply."""

    def __init__(
        self,
        host: str,
        port: int = DOT_PORT,
        *,
        server_name: str,
        ssl_context: ssl.SSLContext | None = None,
        idle_timeout: float = 30.0,
        max_inflight: int = 100,
    ) -> None:
        if not server_name:
            raise ValueError("DNS over TLS needs the server's certificate name")
        ipaddress.ip_address(host)  # an address: reaching the upstream needs no DNS lookup
        if idle_timeout <= 0 or max_inflight < 1:
            raise ValueError("idle_timeout must be positive and max_inflight at least 1")
        self.host = host
        self.port = port
        self.server_name = server_name
        self.ssl_context = ssl_context if ssl_context is not None else default_ssl_context()
        self.idle_timeout = idle_timeout
        self.connects = 0  # connections opened, for metrics and tests
        self._conn: _Connection | None = None
        self._connect_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(max_inflight)
        self._closed = False

    def __repr__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"TlsUpstream(tls://{host}:{self.port}#{self.server_name})"

    async def exchange(self, query: bytes, timeout: float) -> bytes:  # noqa: ASYNC109
        """The reply to ``query`` (same ID and question), within ``timeout`` seconds.

        Raises TimeoutError, OSError (ConnectionError, ssl.SSLError: a refused certificate
        is an ssl.SSLCertVerificationError) or ValueError (a query that is not one).
        """
        if not 12 <= len(query) <= _MAX_MESSAGE:
            raise ValueError("not a DNS query")
        async with asyncio.timeout(timeout), self._slots:
            for attempt in (1, 2):
                conn = await self._connection()
                try:
                    return await conn.ask(query)
                except ConnectionError:
                    # The server closed the connection as we used it (its idle timeout, a
                    # restart): once more on a fresh connection, within the same deadline.
                    if attempt == 2 or self._closed:
                        raise
                    log.debug("%r: connection lost, reconnecting", self)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        async with self._connect_lock:  # one connection for all the queries waiting for it
            conn = self._conn
            if conn is not None and not conn.closed:
                return conn
            if self._closed:
                raise ConnectionError(f"{self!r} is closed")
            reader, writer = await asyncio.open_connection(
                self.host,
                self.port,
                ssl=self.ssl_context,
                server_hostname=self.server_name,
                ssl_shutdown_timeout=_SSL_SHUTDOWN_TIMEOUT,
            )
            if self._closed:  # close() ran during the handshake
                writer.close()
                raise ConnectionError(f"{self!r} is closed")
            self.connects += 1
            self._conn = conn = _Connection(reader, writer, self.idle_timeout)
            return conn

    async def close(self) -> None:
        """Close the connection; later exchanges fail with ConnectionError."""
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.aclose()
