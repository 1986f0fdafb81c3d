"""Both upstream drivers over real sockets on loopback: the same resolution, by callback or await.

Each test runs the callback driver (``exchange_soon``) and the coroutine driver (``exchange``)
against the same local upstream and expects the same outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest
from dnslib import QTYPE, RCODE, RR, TXT, DNSRecord

from resolver.core import wire
from resolver.core.query import DEFAULT_UDP_PAYLOAD, Query, Transport, from_wire
from resolver.core.steps import Upstream
from resolver.net.upstream_client import UpstreamClient, build_upstream_query, matches
from tests.conftest import FakeUpstream
from tests.fakes import make_query

WAIT = 5.0  # seconds: the bound on every wait here

Exchange = Callable[[UpstreamClient, Query, list[Upstream]], Awaitable[bytes | None]]


async def by_callback(client: UpstreamClient, q: Query, servers: list[Upstream]) -> bytes | None:
    got: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
    client.exchange_soon(q, servers, got.set_result)
    return await asyncio.wait_for(got, WAIT)


async def by_await(client: UpstreamClient, q: Query, servers: list[Upstream]) -> bytes | None:
    return await asyncio.wait_for(client.exchange(q, servers), WAIT)


DRIVERS = [pytest.param(by_callback, id="callback"), pytest.param(by_await, id="coroutine")]


def client_query(name: str, qtype: str = "A") -> Query:
    return from_wire(bytes(DNSRecord.question(name, qtype).pack()), "127.0.0.1", Transport.UDP)


def echo(req: DNSRecord) -> DNSRecord:
    """A TXT answer that says the question exactly as it arrived (case included)."""
    reply = req.reply()
    reply.add_answer(RR(req.q.qname, QTYPE.TXT, rdata=TXT(str(req.q.qname)), ttl=60))
    return reply


async def started(up: FakeUpstream) -> FakeUpstream:
    await up.start()
    return up


@pytest.mark.parametrize("exchange", DRIVERS)
async def test_question_case_reaches_the_upstream_intact(exchange: Exchange) -> None:
    up = await started(FakeUpstream(handler=echo))
    client = UpstreamClient(0.5, 2.0)
    try:
        servers = [Upstream("127.0.0.1", up.port)]
        resp = await exchange(client, client_query("HeLLo.Case.TEST", "TXT"), servers)
        assert resp is not None
        assert str(DNSRecord.parse(resp).rr[0].rdata) == '"HeLLo.Case.TEST."'
        assert str(up.queries[-1].q.qname) == "HeLLo.Case.TEST."

        # An upstream that answers with the name in another case is still answering us.
        def lower(req: DNSRecord) -> DNSRecord:
            r = echo(req)
            r.q.qname = str(req.q.qname).lower()
            return r

        up.handler = lower
        resp = await exchange(client, client_query("MiXeD.tEsT", "TXT"), servers)
        assert resp is not None and str(DNSRecord.parse(resp).q.qname) == "mixed.test."
    finally:
        await client.close()
        await up.stop()


@pytest.mark.parametrize("exchange", DRIVERS)
async def test_truncated_answer_is_asked_again_over_tcp(exchange: Exchange) -> None:
    up = FakeUpstream(truncate_udp=True)
    up.add("big.test. 60 IN A 192.0.2.9")
    await up.start()
    client = UpstreamClient(0.5, 2.0)
    try:
        resp = await exchange(client, client_query("big.test"), [Upstream("127.0.0.1", up.port)])
        assert resp is not None and DNSRecord.parse(resp).short() == "192.0.2.9"
        assert up.tcp_queries == 1 and len(up.queries) == 2  # once over UDP, once over TCP
    finally:
        await client.close()
        await up.stop()


@pytest.mark.parametrize("exchange", DRIVERS)
async def test_every_server_errs_its_answer_is_passed_on(exchange: Exchange) -> None:
    def servfail(req: DNSRecord) -> DNSRecord:
        r = req.reply()
        r.header.rcode = RCODE.SERVFAIL
        return r

    def refused(req: DNSRecord) -> DNSRecord:
        r = req.reply()
        r.header.rcode = RCODE.REFUSED
        return r

    a = await started(FakeUpstream(handler=refused))
    b = await started(FakeUpstream(handler=servfail))
    client = UpstreamClient(0.5, 2.0)
    try:
        servers = [Upstream("127.0.0.1", a.port), Upstream("127.0.0.1", b.port)]
        resp = await exchange(client, client_query("bogus.test"), servers)
        assert resp is not None and DNSRecord.parse(resp).header.rcode == RCODE.SERVFAIL
        assert (len(a.queries), len(b.queries)) == (1, 1)  # an error answer is not retried
        assert client.failures == 0  # both are up
    finally:
        await client.close()
        await a.stop()
        await b.stop()


@pytest.mark.parametrize("exchange", DRIVERS)
async def test_while_every_upstream_is_down_clients_wait_one_try(exchange: Exchange) -> None:
    up = await started(FakeUpstream(silent=True))
    client = UpstreamClient(0.2, 1.5)
    try:
        servers = [Upstream("127.0.0.1", up.port)]
        t0 = time.monotonic()
        assert await exchange(client, client_query("a.test"), servers) is None
        assert 0.35 < time.monotonic() - t0 < 1.0  # tried twice: a datagram may be lost
        for i in range(5):
            t0 = time.monotonic()
            assert await exchange(client, client_query(f"q{i}.test"), servers) is None
            assert time.monotonic() - t0 < 0.35  # one try, not total_timeout
    finally:
        await client.close()
        await up.stop()


async def test_silence_is_said_once_and_a_probe_finds_the_return(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="resolver.net.upstream_client")
    up = await started(FakeUpstream(silent=True))
    up.add("a.test. 60 IN A 192.0.2.1")
    client = UpstreamClient(0.1, 0.5, alarm_after=0.3, alarm_every=60.0, probe_every=0.3)
    try:
        servers = [Upstream("127.0.0.1", up.port)]
        for _ in range(3):
            assert await by_callback(client, client_query("a.test"), servers) is None
        for _ in range(50):  # bounded: 5 s
            if any(r.levelno == logging.WARNING for r in caplog.records):
                break
            await asyncio.sleep(0.1)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, caplog.text
        assert "no upstream resolver has answered" in warnings[0].getMessage()
        # The upstream comes back; no client asks anything: a probe finds it.
        up.silent = False
        for _ in range(30):  # bounded: 3 s (a probe every 0.3 s)
            if any(r.levelno == logging.INFO for r in caplog.records):
                break
            await asyncio.sleep(0.1)
        infos = [r for r in caplog.records if r.levelno == logging.INFO]
        assert len(infos) == 1 and "answer again" in infos[0].getMessage(), caplog.text
        assert any(str(q.q.qname) == "." and q.q.qtype == QTYPE.NS for q in up.queries)
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
        assert await by_await(client, client_query("a.test"), servers) is not None
    finally:
        await client.close()
        await up.stop()


@pytest.mark.parametrize("do", [False, True])
@pytest.mark.parametrize("cd", [False, True])
@pytest.mark.parametrize("edns", [False, True])
def test_query_at_the_usual_payload_carries_the_clients_do_and_cd(
    do: bool, cd: bool, edns: bool
) -> None:
    """Built from precomputed pieces: the same bytes as the header, question and OPT written
    out, for every DO and CD a client may send (a client without EDNS has no DO)."""
    q = make_query("Mixed.Case.test", "AAAA", do=do and edns, cd=cd, edns=edns, rd=False)
    sent = build_upstream_query(q, 0xBEEF)
    flags = wire.RD | wire.AD | (wire.CD if cd else 0)
    opt = wire.build_opt(DEFAULT_UDP_PAYLOAD, do and edns)
    assert sent == wire.HEADER.pack(0xBEEF, flags, 1, 0, 0, 1) + q.question + opt
    assert build_upstream_query(q, 0xBEEF, payload=DEFAULT_UDP_PAYLOAD + 1)[:-11] == sent[:-11]


def test_an_answer_matches_with_its_question_as_sent_or_in_another_case() -> None:
    sent = build_upstream_query(make_query("MiXeD.test", 65, wire_name="MiXeD.test"), 0x0101)
    answer = bytearray(sent)
    answer[2] |= 0x80  # QR
    assert matches(bytes(answer), sent)
    lower = bytes(answer).replace(b"MiXeD", b"mixed")
    assert matches(lower, sent)
    assert not matches(lower.replace(b"mixed", b"mixex"), sent)
    other_type = lower[: len(sent) - 15] + b"\x00\x61" + lower[len(sent) - 13 :]
    assert other_type != lower and not matches(other_type, sent)  # type 97 ("a") is not 65 ("A")
    assert not matches(sent, sent)  # not an answer (QR clear)
