"""The real server on loopback, a local upstream, dnspython as the client."""

from __future__ import annotations

import asyncio
import sqlite3
import struct
import time
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from resolver.app import App
from tests.conftest import FakeUpstream, make_config, running


def addr(app: App) -> tuple[str, int]:
    return app.bound[0]


async def ask(
    app: App, name: str, rdtype: str = "A", *, tcp: bool = False, edns: int = 0, **kw: object
) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, use_edns=edns, **kw)  # type: ignore[arg-type]
    host, port = addr(app)
    if tcp:
        return await dns.asyncquery.tcp(q, host, port=port, timeout=3)
    return await dns.asyncquery.udp(q, host, port=port, timeout=3)


def ede_texts(resp: dns.message.Message) -> list[tuple[int, str]]:
    return [(int(o.code), o.text or "") for o in resp.options if isinstance(o, dns.edns.EDEOption)]


async def test_resolves_through_upstream_over_udp_and_tcp(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    async with running(make_config(tmp_path, upstream.port)) as app:
        for tcp in (False, True):
            r = await ask(app, "example.test", tcp=tcp)
            assert r.rcode() == dns.rcode.NOERROR
            assert [rr.to_text() for rr in r.answer[0]] == ["192.0.2.1"]
            assert r.flags & dns.flags.RA
        r = await ask(app, "example.test", "AAAA")
        assert r.answer[0][0].to_text() == "2001:db8::1"
        r = await ask(app, "nothing.test")
        assert r.rcode() == dns.rcode.NXDOMAIN


async def test_stranger_is_refused(tmp_path: Path, upstream: FakeUpstream) -> None:
    cfg = make_config(tmp_path, upstream.port, "acl:\n  allow: [10.0.0.0/8]\n")
    async with running(cfg) as app:
        r = await ask(app, "example.test", edns=0)
        assert r.rcode() == dns.rcode.REFUSED
        assert not r.answer
        r = await ask(app, "example.test", tcp=True)
        assert r.rcode() == dns.rcode.REFUSED
    assert upstream.queries == []  # nothing was forwarded for a stranger


def _blocking_config(tmp_path: Path, port: int, extra: str = "") -> object:
    lst = tmp_path / "block.txt"
    lst.write_text("# operator list\nevil.test\nbad.test  # with a comment\n")
    return make_config(
        tmp_path,
        port,
        f"blocking:\n  lists:\n    - path: {lst}\n      name: local\n"
        f"      category: phishing\n{extra}",
    )


@pytest.mark.parametrize("rdtype", ["A", "AAAA"])
@pytest.mark.parametrize("name", ["evil.test", "a.b.evil.test", "EviL.TEST"])
async def test_blocked_name_and_subdomains(
    tmp_path: Path, upstream: FakeUpstream, name: str, rdtype: str
) -> None:
    async with running(_blocking_config(tmp_path, upstream.port)) as app:  # type: ignore[arg-type]
        r = await ask(app, name, rdtype)
        assert r.rcode() == dns.rcode.NXDOMAIN
        assert ede_texts(r) == [(15, "list:local")]
        assert r.question[0].name.to_text() == name + "."  # case echoed
        r = await ask(app, "notevil.test", rdtype)  # a sibling that only shares a suffix
        assert r.rcode() == dns.rcode.NXDOMAIN and not ede_texts(r)
    assert all(str(q.q.qname).lower().rstrip(".") != name.lower() for q in upstream.queries)


async def test_null_and_sinkhole_modes(tmp_path: Path, upstream: FakeUpstream) -> None:
    cfg = _blocking_config(tmp_path, upstream.port, "  mode: null\n")
    async with running(cfg) as app:  # type: ignore[arg-type]
        r = await ask(app, "evil.test", "A")
        assert r.rcode() == dns.rcode.NOERROR and r.answer[0][0].to_text() == "0.0.0.0"
        r = await ask(app, "evil.test", "AAAA")
        assert r.answer[0][0].to_text() == "::"
        r = await ask(app, "evil.test", "MX")
        assert r.rcode() == dns.rcode.NOERROR and not r.answer
    cfg = _blocking_config(
        tmp_path, upstream.port, "  mode: sinkhole\n  sinkhole_ipv4: 192.168.1.250\n"
    )
    async with running(cfg) as app:  # type: ignore[arg-type]
        r = await ask(app, "x.evil.test", "A")
        assert r.answer[0][0].to_text() == "192.168.1.250"
        r = await ask(app, "x.evil.test", "AAAA")
        assert r.rcode() == dns.rcode.NOERROR and not r.answer
    cfg = _blocking_config(tmp_path, upstream.port, "  mode: refused\n")
    async with running(cfg) as app:  # type: ignore[arg-type]
        assert (await ask(app, "evil.test")).rcode() == dns.rcode.REFUSED


async def test_allowlisted_subdomain_of_blocked_parent_resolves(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.add("ok.bad.test. 300 IN A 192.0.2.5")
    cfg = _blocking_config(tmp_path, upstream.port, "allowlist:\n  names: [ok.bad.test]\n")
    async with running(cfg) as app:  # type: ignore[arg-type]
        r = await ask(app, "ok.bad.test")
        assert r.rcode() == dns.rcode.NOERROR
        assert r.answer[0][0].to_text() == "192.0.2.5"
        assert (await ask(app, "other.bad.test")).rcode() == dns.rcode.NXDOMAIN


async def test_cname_to_blocked_name_is_blocked(tmp_path: Path, upstream: FakeUpstream) -> None:
    upstream.add("alias.test. 300 IN CNAME tracker.evil.test.")
    upstream.add("tracker.evil.test. 300 IN A 192.0.2.66")
    async with running(_blocking_config(tmp_path, upstream.port)) as app:  # type: ignore[arg-type]
        r = await ask(app, "alias.test")
        assert r.rcode() == dns.rcode.NXDOMAIN
        assert ede_texts(r)[0][0] == 15
        assert "cname:tracker.evil.test" in ede_texts(r)[0][1]
        # and it stays blocked on the second ask (the upstream answer was not cached)
        assert (await ask(app, "alias.test")).rcode() == dns.rcode.NXDOMAIN
        # a CNAME to a clean name resolves
        r = await ask(app, "www.example.test")
        assert r.rcode() == dns.rcode.NOERROR and len(r.answer) == 2


async def test_malformed_packet_gets_formerr_and_server_keeps_answering(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    async with running(make_config(tmp_path, upstream.port)) as app:
        host, port = addr(app)
        loop = asyncio.get_running_loop()
        got: asyncio.Queue[bytes] = asyncio.Queue()

        class P(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, a: object) -> None:
                got.put_nowait(data)

        t, _ = await loop.create_datagram_endpoint(P, remote_addr=(host, port))
        try:
            # a header that claims one question, then a label running past the end
            t.sendto(struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + b"\x3fabc")
            data = await asyncio.wait_for(got.get(), 2)
            assert data[:2] == b"\xbe\xef"
            assert data[3] & 0x0F == dns.rcode.FORMERR
            # a compression loop in the question
            t.sendto(
                struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01"
            )
            data = await asyncio.wait_for(got.get(), 2)
            assert data[3] & 0x0F == dns.rcode.FORMERR
            # two questions
            q = dns.message.make_query("example.test", "A").to_wire()
            two = q[:4] + b"\x00\x02" + q[6:] + q[12:]
            t.sendto(two)
            data = await asyncio.wait_for(got.get(), 2)
            assert data[3] & 0x0F == dns.rcode.FORMERR
            t.sendto(b"\x00\x01\x02")  # shorter than a header: no answer at all
        finally:
            t.close()
        r = await ask(app, "example.test")
        assert r.rcode() == dns.rcode.NOERROR
        assert app.service.malformed == 4


async def test_notimp_badvers_and_response_ignored(tmp_path: Path, upstream: FakeUpstream) -> None:
    async with running(make_config(tmp_path, upstream.port)) as app:
        q = dns.message.make_query("example.test", "A")
        q.set_opcode(dns.opcode.NOTIFY)
        host, port = addr(app)
        r = await dns.asyncquery.udp(q, host, port=port, timeout=2)
        assert r.rcode() == dns.rcode.NOTIMP
        q = dns.message.make_query("example.test", "A", use_edns=1)
        r = await dns.asyncquery.udp(q, host, port=port, timeout=2)
        assert r.rcode() == dns.rcode.BADVERS
        assert r.edns == 0
        q = dns.message.make_query("example.test", "A")
        q.flags |= dns.flags.QR
        with pytest.raises(dns.exception.Timeout):
            await dns.asyncquery.udp(q, host, port=port, timeout=0.5)


async def test_upstream_down_gives_servfail_within_timeout(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.silent = True
    async with running(make_config(tmp_path, upstream.port)) as app:
        t0 = time.monotonic()
        r = await ask(app, "example.test", edns=0)
        elapsed = time.monotonic() - t0
        assert r.rcode() == dns.rcode.SERVFAIL
        assert elapsed < 2.5  # total_timeout is 1.5 s
        assert ede_texts(r)[0][0] == 22


async def test_failover_to_second_upstream(tmp_path: Path, upstream: FakeUpstream) -> None:
    dead = FakeUpstream(silent=True)
    await dead.start()
    try:
        cfg = make_config(
            tmp_path,
            upstream.port,
            f"upstream:\n  servers: ['127.0.0.1:{dead.port}', '127.0.0.1:{upstream.port}']\n"
            "  timeout: 0.3\n  total_timeout: 2\n",
        )
        async with running(cfg) as app:
            r = await ask(app, "example.test")
            assert r.rcode() == dns.rcode.NOERROR
            # the working server is now preferred: the next miss does not wait for the dead one
            t0 = time.monotonic()
            r = await ask(app, "example.test", "AAAA")
            assert r.rcode() == dns.rcode.NOERROR
            assert time.monotonic() - t0 < 0.25
    finally:
        await dead.stop()


async def test_cache_hits_come_back_with_aged_ttls(tmp_path: Path, upstream: FakeUpstream) -> None:
    async with running(make_config(tmp_path, upstream.port)) as app:
        start = time.time()
        app.service.clock = lambda: start
        r1 = await ask(app, "example.test")
        assert r1.answer[0].ttl == 300
        app.service.clock = lambda: start + 100.4
        r2 = await ask(app, "Example.Test")
        assert r2.answer[0].ttl == 200
        assert r2.question[0].name.to_text() == "Example.Test."
        assert len(upstream.queries) == 1
        app.service.clock = lambda: start + 301
        r3 = await ask(app, "example.test")
        assert r3.answer[0].ttl == 300  # expired: fetched again
        assert len(upstream.queries) == 2
        # negative answers are cached for the SOA minimum (60 s here)
        app.service.clock = lambda: start
        await ask(app, "nothing.test")
        app.service.clock = lambda: start + 30
        r = await ask(app, "nothing.test")
        assert r.rcode() == dns.rcode.NXDOMAIN
        assert len(upstream.queries) == 3
        assert r.authority[0].ttl == 30


async def test_udp_truncation_and_tcp_retry(tmp_path: Path, upstream: FakeUpstream) -> None:
    for i in range(60):
        upstream.add(f'big.test. 300 IN TXT "{"x" * 50} {i}"')
    async with running(make_config(tmp_path, upstream.port)) as app:
        r = await ask(app, "big.test", "TXT", edns=0, payload=1232)
        assert r.flags & dns.flags.TC
        assert not r.answer
        r = await ask(app, "big.test", "TXT", tcp=True)
        assert len(r.answer[0]) == 60
        # without EDNS the limit is 512 bytes
        r = await ask(app, "big.test", "TXT", edns=-1)
        assert r.flags & dns.flags.TC


async def test_upstream_truncated_answer_is_retried_over_tcp(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.truncate_udp = True
    async with running(make_config(tmp_path, upstream.port)) as app:
        r = await ask(app, "example.test")
        assert r.answer[0][0].to_text() == "192.0.2.1"
        assert upstream.tcp_queries == 1


async def test_local_records_and_conditional_forwarding(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    dc = FakeUpstream()
    dc.add("pc1.mairie.local. 1200 IN A 192.168.1.21")
    dc.add("21.1.168.192.in-addr.arpa. 1200 IN PTR pc1.mairie.local.")
    await dc.start()
    try:
        extra = f"""
local_zone:
  records:
    - "nas.mairie.local 600 IN A 192.168.1.10"
  forward_zones:
    - zone: mairie.local
      servers: ["127.0.0.1:{dc.port}"]
    - zone: 1.168.192.in-addr.arpa
      servers: ["127.0.0.1:{dc.port}"]
"""
        async with running(make_config(tmp_path, upstream.port, extra)) as app:
            r = await ask(app, "nas.mairie.local")
            assert r.answer[0][0].to_text() == "192.168.1.10" and r.flags & dns.flags.AA
            r = await ask(app, "pc1.mairie.local")
            assert r.answer[0][0].to_text() == "192.168.1.21"
            r = await ask(app, "21.1.168.192.in-addr.arpa", "PTR")
            assert r.answer[0][0].to_text() == "pc1.mairie.local."
            # other private reverse names never leave the box
            r = await ask(app, "5.0.0.10.in-addr.arpa", "PTR")
            assert r.rcode() == dns.rcode.NXDOMAIN
        assert upstream.queries == []
        assert len(dc.queries) == 2
    finally:
        await dc.stop()


async def test_blocks_are_logged_to_sqlite(tmp_path: Path, upstream: FakeUpstream) -> None:
    async with running(_blocking_config(tmp_path, upstream.port)) as app:  # type: ignore[arg-type]
        await ask(app, "evil.test")
        await ask(app, "x.bad.test", "AAAA")
        await ask(app, "example.test")
        assert await asyncio.to_thread(app.blocklog.flush)
    db = sqlite3.connect(tmp_path / "state" / "blocks.sqlite")
    rows = db.execute(
        "SELECT client, qname, qtype, verdict, reason, category FROM blocks ORDER BY id"
    ).fetchall()
    assert rows == [
        ("127.0.0.1", "evil.test", 1, "blocked", "list:local", "phishing"),
        ("127.0.0.1", "x.bad.test", 28, "blocked", "list:local", "phishing"),
    ]


async def test_reload_swaps_lists_and_clears_cache(tmp_path: Path, upstream: FakeUpstream) -> None:
    async with running(_blocking_config(tmp_path, upstream.port)) as app:  # type: ignore[arg-type]
        assert (await ask(app, "example.test")).rcode() == dns.rcode.NOERROR
        (tmp_path / "block.txt").write_text("example.test\n")
        # queries keep being answered while the reload runs
        answers = await asyncio.gather(app.reload(), *(ask(app, "evil.test") for _ in range(20)))
        assert answers[0] is True
        assert all(a.rcode() == dns.rcode.NXDOMAIN for a in answers[1:])
        r = await ask(app, "example.test")
        assert r.rcode() == dns.rcode.NXDOMAIN and ede_texts(r)  # not served from the old cache
        assert (await ask(app, "evil.test")).rcode() == dns.rcode.NXDOMAIN
        assert not ede_texts(await ask(app, "evil.test"))  # no longer blocked: upstream NXDOMAIN


class _Broken:
    def __len__(self) -> int:
        return 1

    def match(self, name: str) -> None:
        raise RuntimeError("a bug in a stage")


async def test_bug_in_a_stage_is_servfail_and_one_log_line(
    tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(make_config(tmp_path, upstream.port)) as app:
        good = app.lists.blocklist.current
        app.lists.blocklist.current = _Broken()
        for _ in range(3):
            r = await ask(app, "example.test")
            assert r.rcode() == dns.rcode.SERVFAIL
        errors = [r for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1  # rate-limited: one traceback, not one per query
        assert "example.test" in errors[0].getMessage()
        app.lists.blocklist.current = good
        assert (await ask(app, "example.test")).rcode() == dns.rcode.NOERROR


async def test_upstream_health_prefers_the_healthy_and_returns_to_a_recovered_one(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    first = FakeUpstream(silent=True)
    first.add("example.test. 300 IN A 192.0.2.1")
    await first.start()
    upstream.delay = 0.05  # the second server works but is slower
    try:
        cfg = make_config(
            tmp_path,
            upstream.port,
            f"upstream:\n  servers: ['127.0.0.1:{first.port}', '127.0.0.1:{upstream.port}']\n"
            "  timeout: 0.3\n  total_timeout: 2\ncache:\n  size: 0\n",
        )
        async with running(cfg) as app:
            assert (await ask(app, "example.test")).rcode() == dns.rcode.NOERROR
            t0 = time.monotonic()
            assert (await ask(app, "example.test")).rcode() == dns.rcode.NOERROR
            assert time.monotonic() - t0 < 0.25  # the dead one is set aside
            first.silent = False  # it recovers
            await asyncio.sleep(1.1)  # after its backoff it is tried again, and is faster
            n = len(first.queries)
            for _ in range(3):
                assert (await ask(app, "example.test")).rcode() == dns.rcode.NOERROR
            assert len(first.queries) >= n + 3 - 1
            health = app.upstream.health
            assert all(h.fails == 0 for h in health.values())
    finally:
        await first.stop()


async def test_truncated_upstream_answer_is_asked_once_over_udp_then_tcp(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.truncate_udp = True
    async with running(make_config(tmp_path, upstream.port, "cache:\n  size: 0\n")) as app:
        r = await ask(app, "example.test")
        assert r.answer[0][0].to_text() == "192.0.2.1"
        # One UDP query (answered truncated), then TCP: the UDP query is not repeated.
        assert len(upstream.queries) - upstream.tcp_queries == 1
        assert upstream.tcp_queries == 1


async def test_a_box_without_threat_lists_says_so_at_start_with_the_command_to_run(
    tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    async with running(make_config(tmp_path, upstream.port)):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("parafoudre feeds update" in w for w in warnings), warnings
    lst = tmp_path / "block.txt"
    lst.write_text("evil.test\n")
    caplog.clear()
    async with running(
        make_config(tmp_path, upstream.port, f"blocking:\n  lists:\n    - path: {lst}\n")
    ):
        pass
    assert not any("feeds update" in r.getMessage() for r in caplog.records)
