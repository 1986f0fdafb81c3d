"""What a client sees of its upstream through Parafoudre: its question's case, the upstream's own
error and EDE, and a quick SERVFAIL when no upstream answers (issues 14 and 22), over loopback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, TXT, DNSRecord, EDNSOption

from resolver.app import App
from tests.conftest import FakeUpstream, make_config, running

WAIT = 5.0  # seconds: the bound on every client wait here


async def ask(app: App, name: str, rdtype: str = "A") -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, use_edns=0)
    return await dns.asyncquery.udp(q, "127.0.0.1", port=app.bound[0][1], timeout=WAIT)


def ede_codes(r: dns.message.Message) -> list[int]:
    return [o.code for o in r.options if isinstance(o, dns.edns.EDEOption)]


def echo(req: DNSRecord) -> DNSRecord:
    """A TXT answer saying the question exactly as it arrived (case included)."""
    reply = req.reply()
    reply.add_answer(RR(req.q.qname, QTYPE.TXT, rdata=TXT(str(req.q.qname)), ttl=300))
    return reply


async def test_the_question_reaches_the_upstream_in_the_clients_case(tmp_path: Path) -> None:
    up = FakeUpstream(handler=echo)
    await up.start()
    try:
        async with running(make_config(tmp_path, up.port)) as app:
            r = await ask(app, "HeLLo.Case.TEST", "TXT")
            assert r.rcode() == dns.rcode.NOERROR
            assert r.answer[0][0].strings == (b"HeLLo.Case.TEST.",)
            assert [str(q.q.qname) for q in up.queries] == ["HeLLo.Case.TEST."]
            # The cache key is case-blind: another spelling is a hit, in its own case.
            r = await ask(app, "hello.case.test", "TXT")
            assert r.question[0].name.to_text() == "hello.case.test."
            assert r.answer[0][0].strings == (b"HeLLo.Case.TEST.",)
            assert len(up.queries) == 1
    finally:
        await up.stop()


def failing(rcode: int, ede: tuple[int, bytes] | None = None) -> FakeUpstream:
    def handler(req: DNSRecord) -> DNSRecord:
        r = req.reply()
        r.header.rcode = rcode
        if ede is not None:
            code, text = ede
            r.add_ar(EDNS0(udp_len=1232, opts=[EDNSOption(15, code.to_bytes(2, "big") + text)]))
        return r

    return FakeUpstream(handler=handler)


async def test_an_upstream_error_is_passed_on_with_its_ede(tmp_path: Path) -> None:
    bogus = failing(RCODE.SERVFAIL, (6, b"DNSSEC bogus"))
    refusing = failing(RCODE.REFUSED)
    await bogus.start()
    await refusing.start()
    try:
        cfg = make_config(tmp_path, bogus.port)
        async with running(cfg) as app:
            r = await ask(app, "bogus.test")
            assert r.rcode() == dns.rcode.SERVFAIL
            assert ede_codes(r) == [6]  # the upstream's reason, not 22 "no upstream answered"
        cfg = make_config(tmp_path, refusing.port)
        async with running(cfg) as app:
            r = await ask(app, "example.test")
            assert r.rcode() == dns.rcode.REFUSED and 22 not in ede_codes(r)
    finally:
        await bogus.stop()
        await refusing.stop()


async def test_no_upstream_answering_is_servfail_ede_22_within_one_try(tmp_path: Path) -> None:
    silent = FakeUpstream(silent=True)
    await silent.start()
    try:
        # make_config: timeout 0.5 s per try, 1.5 s in all.
        async with running(make_config(tmp_path, silent.port)) as app:
            r = await ask(app, "first.test")
            assert r.rcode() == dns.rcode.SERVFAIL and ede_codes(r) == [22]
            for i in range(5):  # the upstream is now known down: one try each, not 1.5 s
                t0 = time.monotonic()
                r = await ask(app, f"q{i}.test")
                assert time.monotonic() - t0 < 0.9
                assert r.rcode() == dns.rcode.SERVFAIL and ede_codes(r) == [22]
    finally:
        await silent.stop()


async def test_upstreams_down_said_once_in_the_log_and_their_return_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 22: with the default 10 s, one WARNING for a silence, one INFO when it ends.

    Real time on purpose (about 17 s): the thresholds are the shipped ones.
    """
    caplog.set_level(logging.INFO, logger="resolver.net.upstream_client")
    up = FakeUpstream(silent=True)
    up.add("back.test. 60 IN A 192.0.2.7")
    await up.start()

    def said(level: int) -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "resolver.net.upstream_client" and r.levelno == level
        ]

    try:
        async with running(make_config(tmp_path, up.port)) as app:
            start = time.monotonic()
            for i in range(40):  # bounded: 40 queries, about 12 s
                t0 = time.monotonic()
                r = await ask(app, f"q{i}.test")
                assert r.rcode() == dns.rcode.SERVFAIL
                assert time.monotonic() - t0 < (1.6 if i == 0 else 0.9)  # one try, not 1.5 s
                if said(logging.WARNING) or time.monotonic() - start > 12.5:
                    break
                await asyncio.sleep(max(0.0, 0.3 - (time.monotonic() - t0)))
            assert len(said(logging.WARNING)) == 1, caplog.text
            assert "no upstream resolver has answered for 1" in said(logging.WARNING)[0]
            up.silent = False  # back; nobody asks: the watchdog's probe finds it
            for _ in range(80):  # bounded: 8 s (a probe every 5 s)
                if said(logging.INFO):
                    break
                await asyncio.sleep(0.1)
            assert len(said(logging.INFO)) == 1 and "answer again" in said(logging.INFO)[0]
            assert (await ask(app, "back.test")).rcode() == dns.rcode.NOERROR
            assert len(said(logging.WARNING)) == 1
    finally:
        await up.stop()
