"""DNS over TLS and DNS over HTTPS upstreams against local servers with a test CA (loopback only).

The servers are started here on 127.0.0.1, with certificates from a throwaway CA (trustme) for
the name dns.test and the address 127.0.0.1; they answer q<N>.example.test with 192.0.2.<N>.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from dnslib import QTYPE, RR, A, DNSRecord

from resolver.core.query import Query
from resolver.net.upstream_client import build_upstream_query
from resolver.net.upstream_https import DNS_MESSAGE, HttpsUpstream
from resolver.net.upstream_tls import TlsUpstream, default_ssl_context
from tests.fakes import make_query

trustme = pytest.importorskip("trustme", reason="trustme (test extra) makes the test CA")

WAIT = 3.0  # seconds: the bound on every wait in this file


# --- a tiny answerer, a test CA -------------------------------------------------------------------


def address_for(name: str) -> str:
    """q7.example.test -> 192.0.2.7; anything else -> 192.0.2.0."""
    first = name.split(".")[0]
    return f"192.0.2.{int(first[1:]) % 256}" if first[1:].isdigit() else "192.0.2.0"


def answer(req: DNSRecord) -> DNSRecord:
    reply = req.reply()
    name = str(req.q.qname).rstrip(".")
    if req.q.qtype == QTYPE.A:
        reply.add_answer(RR(name, QTYPE.A, rdata=A(address_for(name)), ttl=60))
    return reply


def query(name: str, qid: int = 0x1234, qtype: str = "A") -> bytes:
    """Our upstream query for ``name``, exactly as UpstreamClient builds it."""
    q: Query = make_query(name, qtype)
    return build_upstream_query(q, qid)


def first_a(resp: bytes) -> str:
    rec = DNSRecord.parse(resp)
    return str(rec.rr[0].rdata) if rec.rr else ""


@pytest.fixture(scope="module")
def ca() -> Any:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_ctx(ca: Any) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("dns.test", "127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="module")
def client_ctx(ca: Any) -> ssl.SSLContext:
    ctx = default_ssl_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture(scope="module")
def other_ca_ctx() -> ssl.SSLContext:
    ctx = default_ssl_context()
    trustme.CA().configure_trust(ctx)
    return ctx


async def eventually(cond: Callable[[], bool], what: str) -> None:
    for _ in range(int(WAIT / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    assert cond(), what


# --- a DNS-over-TLS server ------------------------------------------------------------------------


@dataclass
class DotServer:
    ctx: ssl.SSLContext
    port: int = 0
    connections: int = 0  # accepted (handshake done)
    open_now: int = 0
    queries: list[DNSRecord] = field(default_factory=list)
    inflight: int = 0
    peak_inflight: int = 0
    silent: bool = False
    # Per connection: after this many answered queries, close at the next one without answering
    # (what a server closing an idle connection looks like to a client that just sent a query).
    drop_after: int | None = None
    close_after_answer: bool = False  # close each connection right after its first answer
    wrong_question: bool = False  # answer another name with the same ID
    delay: Callable[[DNSRecord], float] = lambda _req: 0.0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._on_conn, "127.0.0.1", 0, ssl=self.ctx)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WAIT):
                await self.server.wait_closed()

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        tasks: set[asyncio.Task[None]] = set()
        served = 0
        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                data = await reader.readexactly(size)
                if self.drop_after is not None and served >= self.drop_after:
                    break
                served += 1
                req = DNSRecord.parse(data)
                self.queries.append(req)
                if self.silent:
                    continue
                task = asyncio.get_running_loop().create_task(self._answer(req, writer))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                if self.close_after_answer:
                    await task
                    break
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            for task in tasks:
                task.cancel()
            self.open_now -= 1
            writer.close()

    async def _answer(self, req: DNSRecord, writer: asyncio.StreamWriter) -> None:
        self.inflight += 1
        self.peak_inflight = max(self.peak_inflight, self.inflight)
        try:
            await asyncio.sleep(self.delay(req))
            if self.wrong_question:
                req = DNSRecord.question("other.test", "A")
                req.header.id = self.queries[-1].header.id
            out = answer(req).pack()
            writer.write(struct.pack("!H", len(out)) + out)
        finally:
            self.inflight -= 1


@pytest.fixture
async def dot(server_ctx: ssl.SSLContext) -> AsyncIterator[DotServer]:
    srv = DotServer(server_ctx)
    await srv.start()
    yield srv
    await srv.stop()


@contextlib.asynccontextmanager
async def tls_client(port: int, **kw: Any) -> AsyncIterator[TlsUpstream]:
    kw.setdefault("server_name", "dns.test")
    up = TlsUpstream("127.0.0.1", port, **kw)
    try:
        yield up
    finally:
        await up.close()


# --- DNS over TLS ---------------------------------------------------------------------------------


async def test_dot_exchange_answers(dot: DotServer, client_ctx: ssl.SSLContext) -> None:
    async with tls_client(dot.port, ssl_context=client_ctx) as up:
        sent = query("q7.example.test", qid=0xBEEF)
        resp = await up.exchange(sent, WAIT)
    assert resp[:2] == b"\xbe\xef"
    assert first_a(resp) == "192.0.2.7"
    assert dot.queries[0].header.id == 0xBEEF  # no collision: the caller's ID goes on the wire
    assert dot.connections == 1


async def test_dot_reuses_one_connection_for_sequential_queries(
    dot: DotServer, client_ctx: ssl.SSLContext
) -> None:
    async with tls_client(dot.port, ssl_context=client_ctx) as up:
        for i in range(20):
            resp = await up.exchange(query(f"q{i}.example.test", qid=i), WAIT)
            assert first_a(resp) == f"192.0.2.{i}"
        assert up.connects == 1
    assert dot.connections == 1
    assert len(dot.queries) == 20


async def test_dot_pipelines_concurrent_queries_on_one_connection(
    dot: DotServer, client_ctx: ssl.SSLContext
) -> None:
    # Later queries are answered first: replies come back out of order and are matched by ID.
    dot.delay = lambda req: 0.2 - int(str(req.q.qname).split(".")[0][1:]) * 0.01
    async with tls_client(dot.port, ssl_context=client_ctx) as up:
        names = [f"q{i}.example.test" for i in range(20)]
        replies = await asyncio.gather(
            *(up.exchange(query(n, qid=1000 + i), WAIT) for i, n in enumerate(names))
        )
        for i, resp in enumerate(replies):
            assert struct.unpack("!H", resp[:2])[0] == 1000 + i
            assert first_a(resp) == f"192.0.2.{i}"
        assert up.connects == 1
    assert dot.connections == 1
    assert dot.peak_inflight > 10  # really in flight together, not one after the other


async def test_dot_same_id_twice_in_flight(dot: DotServer, client_ctx: ssl.SSLContext) -> None:
    dot.delay = lambda _req: 0.1
    async with tls_client(dot.port, ssl_context=client_ctx) as up:
        a, b = await asyncio.gather(
            up.exchange(query("q1.example.test", qid=42), WAIT),
            up.exchange(query("q2.example.test", qid=42), WAIT),
        )
    assert (a[:2], b[:2]) == (b"\x00\x2a", b"\x00\x2a")
    assert (first_a(a), first_a(b)) == ("192.0.2.1", "192.0.2.2")
    assert len({q.header.id for q in dot.queries}) == 2  # one of them got another wire ID


async def test_dot_max_inflight_queues_the_rest(dot: DotServer, client_ctx: ssl.SSLContext) -> None:
    dot.delay = lambda _req: 0.05
    async with tls_client(dot.port, ssl_context=client_ctx, max_inflight=3) as up:
        replies = await asyncio.gather(
            *(up.exchange(query(f"q{i}.example.test", qid=i), WAIT) for i in range(10))
        )
    assert [first_a(r) for r in replies] == [f"192.0.2.{i}" for i in range(10)]
    assert dot.peak_inflight <= 3
    assert dot.connections == 1


@pytest.mark.parametrize("how", ["drop_unanswered", "close_after_answer"])
async def test_dot_reconnects_after_the_server_closes(
    dot: DotServer, client_ctx: ssl.SSLContext, how: str
) -> None:
    if how == "drop_unanswered":
        dot.drop_after = 1  # the 2nd query on a connection finds it closed: sent again
    else:
        dot.close_after_answer = True
    async with tls_client(dot.port, ssl_context=client_ctx) as up:
        for i in range(3):
            resp = await up.exchange(query(f"q{i}.example.test", qid=i), WAIT)
            assert first_a(resp) == f"192.0.2.{i}"
        assert up.connects == 3
    assert dot.connections == 3


async def test_dot_idle_connection_is_closed(dot: DotServer, client_ctx: ssl.SSLContext) -> None:
    async with tls_client(dot.port, ssl_context=client_ctx, idle_timeout=0.2) as up:
        await up.exchange(query("q1.example.test"), WAIT)
        assert dot.open_now == 1
        await eventually(lambda: dot.open_now == 0, "the idle connection was not closed")
        resp = await up.exchange(query("q2.example.test"), WAIT)
        assert first_a(resp) == "192.0.2.2"
    assert dot.connections == 2


async def test_dot_busy_connection_is_not_idle(dot: DotServer, client_ctx: ssl.SSLContext) -> None:
    dot.delay = lambda _req: 0.4  # longer than the idle timeout
    async with tls_client(dot.port, ssl_context=client_ctx, idle_timeout=0.1) as up:
        resp = await up.exchange(query("q3.example.test"), WAIT)
    assert first_a(resp) == "192.0.2.3"
    assert dot.connections == 1


async def test_dot_wrong_certificate_name_is_refused(
    dot: DotServer, client_ctx: ssl.SSLContext
) -> None:
    async with tls_client(dot.port, ssl_context=client_ctx, server_name="dns.quad9.net") as up:
        with pytest.raises(ssl.SSLCertVerificationError):
            await up.exchange(query("q1.example.test"), WAIT)
    assert dot.queries == []


@pytest.mark.parametrize("trust", ["system", "other_ca"])
async def test_dot_untrusted_ca_is_refused(
    dot: DotServer, other_ca_ctx: ssl.SSLContext, trust: str
) -> None:
    ctx = None if trust == "system" else other_ca_ctx
    async with tls_client(dot.port, ssl_context=ctx) as up:
        with pytest.raises(ssl.SSLCertVerificationError):
            await up.exchange(query("q1.example.test"), WAIT)
    assert dot.queries == []


async def test_dot_certificate_for_the_address(dot: DotServer, client_ctx: ssl.SSLContext) -> None:
    async with tls_client(dot.port, ssl_context=client_ctx, server_name="127.0.0.1") as up:
        assert first_a(await up.exchange(query("q5.example.test"), WAIT)) == "192.0.2.5"


async def test_dot_timeout_is_honoured(dot: DotServer, client_ctx: ssl.SSLContext) -> None:
    dot.silent = True
    loop = asyncio.get_running_loop()
    async with tls_client(dot.port, ssl_context=client_ctx) as up:
        t0 = loop.time()
        with pytest.raises(TimeoutError):
            await up.exchange(query("q1.example.test"), 0.3)
        assert 0.25 <= loop.time() - t0 < 1.0
        # the connection stays usable for the next query
        dot.silent = False
        assert first_a(await up.exchange(query("q2.example.test"), WAIT)) == "192.0.2.2"
        assert up.connects == 1


async def test_dot_reply_to_another_question_is_not_taken(
    dot: DotServer, client_ctx: ssl.SSLContext
) -> None:
    dot.wrong_question = True
    async with tls_client(dot.port, ssl_context=client_ctx) as up:
        with pytest.raises(TimeoutError):
            await up.exchange(query("q1.example.test"), 0.3)


async def test_dot_connection_refused_is_an_os_error(client_ctx: ssl.SSLContext) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens on it once closed
    async with tls_client(port, ssl_context=client_ctx) as up:
        with pytest.raises(OSError):
            await up.exchange(query("q1.example.test"), WAIT)


async def test_dot_close_closes_the_connection(dot: DotServer, client_ctx: ssl.SSLContext) -> None:
    up = TlsUpstream("127.0.0.1", dot.port, server_name="dns.test", ssl_context=client_ctx)
    await up.exchange(query("q1.example.test"), WAIT)
    await up.close()
    await eventually(lambda: dot.open_now == 0, "the connection stayed open")
    with pytest.raises(ConnectionError):
        await up.exchange(query("q1.example.test"), WAIT)


async def test_dot_close_fails_the_queries_in_flight(
    dot: DotServer, client_ctx: ssl.SSLContext
) -> None:
    dot.silent = True
    up = TlsUpstream("127.0.0.1", dot.port, server_name="dns.test", ssl_context=client_ctx)
    tasks = [
        asyncio.ensure_future(up.exchange(query(f"q{i}.example.test", qid=i), WAIT))
        for i in range(5)
    ]
    await eventually(lambda: len(dot.queries) == 5, "the queries did not arrive")
    await up.close()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 1.0)
    assert all(isinstance(r, ConnectionError) for r in results), results


async def test_dot_handshake_that_never_ends_times_out(client_ctx: ssl.SSLContext) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def mute(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # accepts TCP, never speaks TLS

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    try:
        async with tls_client(port, ssl_context=client_ctx) as up:
            t0 = loop.time()
            with pytest.raises(TimeoutError):
                await up.exchange(query("q1.example.test"), 0.3)
            assert loop.time() - t0 < 1.0
    finally:
        for w in accepted:
            w.close()
        server.close()


def test_dot_default_context_verifies_and_needs_tls12() -> None:
    up = TlsUpstream("9.9.9.9", server_name="dns.quad9.net")  # no I/O until the first query
    assert up.port == 853
    assert up.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert up.ssl_context.check_hostname
    assert up.ssl_context.minimum_version >= ssl.TLSVersion.TLSv1_2
    with pytest.raises(ValueError):
        TlsUpstream("9.9.9.9", server_name="")
    with pytest.raises(ValueError):
        TlsUpstream("dns.quad9.net", server_name="dns.quad9.net")  # would need a DNS lookup


# --- a DNS-over-HTTPS server ----------------------------------------------------------------------


@dataclass
class DohServer:
    ctx: ssl.SSLContext
    port: int = 0
    mode: str = "ok"  # ok, ctype, status500, slow, huge, wrong_question
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(
            {
                "method": request.method,
                "ctype": request.content_type,
                "accept": request.headers.get("Accept"),
                "host": request.host,
                "id": struct.unpack("!H", body[:2])[0],
                "peer": peer,
            }
        )
        if self.mode == "status500":
            return web.Response(status=500, text="oops")
        if self.mode == "slow":
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WAIT):
                    await self.release.wait()
        if self.mode == "huge":
            return web.Response(body=b"\0" * 70000, content_type=DNS_MESSAGE)
        req = DNSRecord.parse(body)
        if self.mode == "wrong_question":
            other = DNSRecord.question("other.test", "A")
            other.header.id = req.header.id
            req = other
        ctype = "text/plain" if self.mode == "ctype" else DNS_MESSAGE
        return web.Response(body=answer(req).pack(), content_type=ctype)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/dns-query", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self.runner, sock, ssl_context=self.ctx).start()

    async def stop(self) -> None:
        self.release.set()
        async with asyncio.timeout(WAIT * 2):
            await self.runner.cleanup()


@pytest.fixture
async def doh(server_ctx: ssl.SSLContext) -> AsyncIterator[DohServer]:
    srv = DohServer(server_ctx)
    await srv.start()
    yield srv
    await srv.stop()


@contextlib.asynccontextmanager
async def https_client(url: str, **kw: Any) -> AsyncIterator[HttpsUpstream]:
    up = HttpsUpstream(url, **kw)
    try:
        yield up
    finally:
        await up.close()


# --- DNS over HTTPS -------------------------------------------------------------------------------


async def test_doh_exchange_posts_a_dns_message(doh: DohServer, client_ctx: ssl.SSLContext) -> None:
    async with https_client(
        f"https://127.0.0.1:{doh.port}/dns-query", ssl_context=client_ctx
    ) as up:
        resp = await up.exchange(query("q9.example.test", qid=0xABCD), WAIT)
    assert resp[:2] == b"\xab\xcd"  # the caller's ID, restored
    assert first_a(resp) == "192.0.2.9"
    (req,) = doh.requests
    assert (req["method"], req["ctype"], req["accept"]) == ("POST", DNS_MESSAGE, DNS_MESSAGE)
    assert req["id"] == 0  # RFC 8484 §4.1


async def test_doh_keeps_the_connection_alive(doh: DohServer, client_ctx: ssl.SSLContext) -> None:
    async with https_client(
        f"https://127.0.0.1:{doh.port}/dns-query", ssl_context=client_ctx
    ) as up:
        for i in range(10):
            assert first_a(await up.exchange(query(f"q{i}.example.test", qid=i), WAIT)) == (
                f"192.0.2.{i}"
            )
        replies = await asyncio.gather(
            *(up.exchange(query(f"q{i}.example.test", qid=i), WAIT) for i in range(10))
        )
    assert [first_a(r) for r in replies] == [f"192.0.2.{i}" for i in range(10)]
    assert len({r["peer"] for r in doh.requests[:10]}) == 1  # sequential: one connection


async def test_doh_address_override_needs_no_dns_lookup(
    doh: DohServer, client_ctx: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_lookup(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"DNS lookup attempted: {args}")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_lookup)
    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    async with https_client(
        f"https://dns.test:{doh.port}/dns-query", address="127.0.0.1", ssl_context=client_ctx
    ) as up:
        resp = await up.exchange(query("q4.example.test"), WAIT)
    assert first_a(resp) == "192.0.2.4"
    assert doh.requests[0]["host"] == f"dns.test:{doh.port}"


@pytest.mark.parametrize("mode", ["ctype", "status500", "wrong_question", "huge"])
async def test_doh_bad_replies_raise(doh: DohServer, client_ctx: ssl.SSLContext, mode: str) -> None:
    doh.mode = mode
    async with https_client(
        f"https://127.0.0.1:{doh.port}/dns-query", ssl_context=client_ctx
    ) as up:
        with pytest.raises((OSError, ValueError)) as err:
            await up.exchange(query("q1.example.test"), WAIT)
    expected = ConnectionError if mode in ("ctype", "status500") else ValueError
    assert isinstance(err.value, expected)


async def test_doh_wrong_certificate_name_is_refused(
    doh: DohServer, client_ctx: ssl.SSLContext
) -> None:
    async with https_client(
        f"https://dns.quad9.net:{doh.port}/dns-query", address="127.0.0.1", ssl_context=client_ctx
    ) as up:
        with pytest.raises(OSError) as err:
            await up.exchange(query("q1.example.test"), WAIT)
    assert "certificate" in str(err.value).lower()
    assert doh.requests == []


@pytest.mark.parametrize("trust", ["system", "other_ca"])
async def test_doh_untrusted_ca_is_refused(
    doh: DohServer, other_ca_ctx: ssl.SSLContext, trust: str
) -> None:
    ctx = None if trust == "system" else other_ca_ctx
    async with https_client(f"https://127.0.0.1:{doh.port}/dns-query", ssl_context=ctx) as up:
        with pytest.raises(OSError):
            await up.exchange(query("q1.example.test"), WAIT)
    assert doh.requests == []


async def test_doh_timeout_is_honoured(doh: DohServer, client_ctx: ssl.SSLContext) -> None:
    doh.mode = "slow"
    loop = asyncio.get_running_loop()
    async with https_client(
        f"https://127.0.0.1:{doh.port}/dns-query", ssl_context=client_ctx
    ) as up:
        t0 = loop.time()
        with pytest.raises(TimeoutError):
            await up.exchange(query("q1.example.test"), 0.3)
        assert 0.25 <= loop.time() - t0 < 1.0
    doh.release.set()


async def test_doh_after_close_raises(doh: DohServer, client_ctx: ssl.SSLContext) -> None:
    up = HttpsUpstream(f"https://127.0.0.1:{doh.port}/dns-query", ssl_context=client_ctx)
    await up.exchange(query("q1.example.test"), WAIT)
    await up.close()
    with pytest.raises(ConnectionError):
        await up.exchange(query("q1.example.test"), WAIT)


def test_doh_refuses_urls_that_are_not_https() -> None:
    for url in ("http://dns.test/dns-query", "dns.test/dns-query", "https:///dns-query"):
        with pytest.raises(ValueError):
            HttpsUpstream(url)
    with pytest.raises(ValueError):
        HttpsUpstream("https://dns.test/dns-query", address="dns.test")


# --- through the whole resolver (needs the UpstreamClient integration) ----------------------------


@pytest.mark.parametrize("kind", ["tls", "https"])
async def test_resolver_forwards_over_encrypted_upstream(
    tmp_path: Any,
    dot: DotServer,
    doh: DohServer,
    client_ctx: ssl.SSLContext,
    kind: str,
) -> None:
    import dns.asyncquery
    import dns.message

    from tests.conftest import make_config, running

    server = (
        f"tls://127.0.0.1:{dot.port}#dns.test"
        if kind == "tls"
        else f"https://dns.test:{doh.port}/dns-query#127.0.0.1"
    )
    cfg = make_config(tmp_path, 1, f"upstream:\n  servers: ['{server}']\n")
    async with running(cfg) as app:
        app.upstream.ssl_context = client_ctx
        port = app.bound[0][1]
        for i in range(5):
            q = dns.message.make_query(f"q{i}.example.test", "A")
            r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=WAIT)
            assert [rr.to_text() for rr in r.answer[0]] == [f"192.0.2.{i}"]
    if kind == "tls":
        assert dot.connections == 1 and len(dot.queries) == 5
        await eventually(lambda: dot.open_now == 0, "App.stop did not close the connection")
    else:
        assert len(doh.requests) == 5
