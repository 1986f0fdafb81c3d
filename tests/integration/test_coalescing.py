"""Issue 14: identical questions in flight share one upstream exchange, over real sockets.

200 clients asking for one uncached name at once made 200 upstream queries: 200 chances for an
off-path spoofer (RFC 5452 §5). Now one, and every client still gets its own answer: its ID,
its question's case, an answer fitted to its own size limit.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from dnslib import DNSRecord

from resolver.core.query import Transport, from_wire
from resolver.core.steps import Forward, Upstream
from resolver.net.service import Pending
from tests.conftest import FakeUpstream, make_config, running

N = 200


def _case(name: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name)


async def test_concurrent_identical_queries_make_one_upstream_query(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    for i in range(30):  # an answer of ~1,100 octets: over 512, under 1232
        upstream.add(f'big.example.test. 300 IN TXT "{i:02d}{"x" * 20}"')
    upstream.delay = 0.3  # every client asks while the first query is in flight
    rng = random.Random(14)
    async with running(make_config(tmp_path, upstream.port)) as app:
        host, port = app.bound[0]
        queries = []
        for i in range(N):
            kind = i % 4  # no EDNS (512), EDNS 1232, EDNS 4096, TCP
            q = dns.message.make_query(
                _case("big.example.test", rng),
                "TXT",
                use_edns=False if kind == 0 else 0,
                payload=1232 if kind == 1 else 4096,
            )
            q.id = 1000 + i
            queries.append((q, kind))

        async def ask(q: dns.message.Message, kind: int) -> dns.message.Message:
            if kind == 3:
                return await dns.asyncquery.tcp(q, host, port=port, timeout=5)
            return await dns.asyncquery.udp(q, host, port=port, timeout=5, ignore_trailing=True)

        answers = await asyncio.wait_for(asyncio.gather(*(ask(q, k) for q, k in queries)), 30)
        assert len(upstream.queries) + upstream.tcp_queries == 1
        assert app.service.coalesced == N - 1
        for (q, kind), r in zip(queries, answers, strict=True):
            assert r.id == q.id
            assert r.question[0].name.to_text() == q.question[0].name.to_text()  # its case
            assert r.rcode() == dns.rcode.NOERROR
            if kind == 0:  # no EDNS: 512 octets at most, so truncated
                assert r.flags & dns.flags.TC and not r.answer
                assert r.edns < 0
            else:
                assert len(r.answer[0]) == 30 and not r.flags & dns.flags.TC
                assert r.edns == 0
        assert app.service.inflight == 0


async def test_different_questions_are_not_shared(tmp_path: Path, upstream: FakeUpstream) -> None:
    upstream.delay = 0.2
    async with running(make_config(tmp_path, upstream.port)) as app:
        host, port = app.bound[0]
        qs = [
            dns.message.make_query("example.test", "A"),
            dns.message.make_query("example.test", "AAAA"),
            dns.message.make_query("example.test", "A", want_dnssec=True),  # DO set
            dns.message.make_query("www.example.test", "A"),
        ]
        await asyncio.gather(*(dns.asyncquery.udp(q, host, port=port, timeout=5) for q in qs))
        assert len(upstream.queries) == 4
        assert app.service.coalesced == 0


async def test_same_question_to_different_servers_is_not_shared(tmp_path: Path) -> None:
    # Two Forward targets for the same question (a group or a zone routed elsewhere): each
    # server is asked; neither's answer goes to the other's waiters.
    one, two = FakeUpstream(delay=0.2), FakeUpstream(delay=0.2)
    one.add("example.test. 300 IN A 192.0.2.1")
    two.add("example.test. 300 IN A 192.0.2.2")
    await one.start()
    await two.start()
    try:
        async with running(make_config(tmp_path, one.port)) as app:
            svc = app.service
            wire = dns.message.make_query("example.test", "A").to_wire()
            q = from_wire(wire, "127.0.0.1", Transport.UDP)
            fwd_one = Forward((Upstream("127.0.0.1", one.port),))
            fwd_two = Forward((Upstream("127.0.0.1", two.port),))
            svc.inflight += 3  # as begin() counts each pending query
            got = await asyncio.gather(
                svc.finish(Pending(q, fwd_one)),
                svc.finish(Pending(q, fwd_two)),
                svc.finish(Pending(q, fwd_one)),
            )
        addresses = [DNSRecord.parse(g).a.rdata.toZone() for g in got]
        assert addresses == ["192.0.2.1", "192.0.2.2", "192.0.2.1"]
        assert (len(one.queries), len(two.queries), svc.coalesced) == (1, 1, 1)
    finally:
        await one.stop()
        await two.stop()


async def test_an_upstream_that_never_answers_fails_every_waiter_once(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.silent = True
    async with running(make_config(tmp_path, upstream.port, "cache:\n  stale_max_age: 0\n")) as app:
        host, port = app.bound[0]
        qs = [dns.message.make_query("example.test", "A") for _ in range(20)]
        answers = await asyncio.wait_for(
            asyncio.gather(*(dns.asyncquery.udp(q, host, port=port, timeout=5) for q in qs)), 10
        )
        assert {r.rcode() for r in answers} == {dns.rcode.SERVFAIL}
        assert [r.id for r in answers] == [q.id for q in qs]
        assert app.service.coalesced == 19
        assert app.service.inflight == 0 and not app.service._flights
