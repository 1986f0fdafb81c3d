"""The running server under hostile traffic (issue 7 part 4): it answers a normal query after
every batch of malformed messages, never answers what must get no answer, and its memory stays
bounded after a flood of random names from random client addresses.

Random inputs come from ``random.Random`` with fixed seeds (reproducible, bounded in count); the
byte-level properties of the parsers are fuzzed with hypothesis in test_fuzz_wire.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import random
import socket
import struct
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import pytest
from dnslib import EDNS0, DNSHeader, DNSQuestion, DNSRecord, EDNSOption

from resolver.app import App
from resolver.core.query import Transport
from resolver.net.service import Pending
from resolver.stages.acl import AclStage
from tests.conftest import FakeUpstream, make_config, running

GARBAGE_SOURCE = "127.0.0.9"  # the attacker's address; the probe asks from another one
PROBE_SOURCE = "127.0.0.2"
BATCHES = 10
PER_BATCH = 200  # 2,000 malformed datagrams in all
FLOOD = 4_000  # queries in each third of the memory flood


async def start_upstream(up: FakeUpstream) -> None:
    """conftest's FakeUpstream.start binds UDP on a free port, then TCP on the same number; on a
    busy machine another socket may hold that TCP port: try again on a fresh port."""
    for _ in range(9):
        try:
            await up.start()
            return
        except OSError:
            udp = getattr(up, "udp", None)
            if udp is not None:
                udp.close()
            up.port = 0
    await up.start()


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    """conftest's ``upstream`` (the same zone), started with retries (see start_upstream)."""
    up = FakeUpstream()
    up.add("example.test. 300 IN A 192.0.2.1")
    up.add("example.test. 300 IN AAAA 2001:db8::1")
    up.add("www.example.test. 300 IN CNAME example.test.")
    await start_upstream(up)
    yield up
    await up.stop()


def _valid_query(rng: random.Random) -> bytes:
    labels = [
        "".join(rng.choice("abcdefghijXYZ0123-_") for _ in range(rng.randint(1, 12)))
        for _ in range(rng.randint(1, 4))
    ]
    rec = DNSRecord(
        DNSHeader(id=rng.randrange(65536), rd=rng.randint(0, 1), cd=rng.randint(0, 1)),
        q=DNSQuestion(".".join(labels) + ".test", rng.choice([1, 28, 16, 15, 255, 65280])),
    )
    if rng.random() < 0.5:
        opts = [EDNSOption(rng.randrange(65536), rng.randbytes(rng.randint(0, 12)))]
        rec.add_ar(EDNS0(udp_len=rng.choice([0, 512, 1232, 65535]), opts=opts))
    return bytes(rec.pack())


def _malformed(rng: random.Random) -> bytes:
    """One hostile datagram: random bytes, or a valid query with a few mutations."""
    kind = rng.randrange(8)
    if kind == 0:
        return rng.randbytes(rng.randint(0, 600))
    if kind == 1:
        return rng.randbytes(rng.randint(0, 11))  # shorter than a header
    if kind == 2:  # a plausible header, then junk
        head = struct.pack("!HHHHHH", rng.randrange(65536), 0x0100, 1, 0, 0, rng.randint(0, 1))
        return head + rng.randbytes(rng.randint(0, 300))
    buf = bytearray(_valid_query(rng))
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        n = len(buf)
        if op == 0 and n:
            buf[rng.randrange(n)] ^= rng.randint(1, 255)
        elif op == 1:
            del buf[rng.randint(0, n) :]
        elif op == 2 and n >= 12:
            struct.pack_into("!H", buf, rng.choice([4, 6, 8, 10]), rng.choice([0, 2, 255, 65535]))
        elif op == 3 and n >= 14:
            i = rng.randint(12, n - 2)
            buf[i : i + 2] = struct.pack("!H", 0xC000 | rng.randint(0, n + 8))
        elif op == 4 and n >= 3:
            buf[2] |= 0x80  # a response
        elif op == 5 and n >= 3:
            buf[2] = (buf[2] & 0x87) | (rng.choice([1, 2, 4, 5, 15]) << 3)  # another opcode
        elif op == 6:
            i = rng.randint(0, n)
            buf[i:i] = rng.randbytes(rng.randint(1, 16))
    return bytes(buf)


def _must_not_be_answered(data: bytes) -> bool:
    return len(data) < 12 or bool(data[2] & 0x80)


class _Collect(asyncio.DatagramProtocol):
    """Keeps every datagram; sets ``done`` once ``tally`` (shared by several) reaches ``target``."""

    def __init__(
        self, tally: list[int] | None = None, target: int = 0, done: asyncio.Event | None = None
    ) -> None:
        self.got: list[bytes] = []
        self.tally = tally if tally is not None else [0]
        self.target = target
        self.done = done if done is not None else asyncio.Event()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.got.append(data)
        self.tally[0] += 1
        if self.tally[0] >= self.target:
            self.done.set()


async def _probe(host: str, port: int, *, tcp: bool = False) -> dns.message.Message:
    q = dns.message.make_query("example.test", "A")
    if tcp:
        return await dns.asyncquery.tcp(q, host, port=port, timeout=2, source=PROBE_SOURCE)
    return await dns.asyncquery.udp(q, host, port=port, timeout=2, source=PROBE_SOURCE)


async def test_server_answers_after_every_batch_of_malformed_datagrams(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    rng = random.Random(20240607)
    async with running(make_config(tmp_path, upstream.port)) as app:
        host, port = app.bound[0]
        loop = asyncio.get_running_loop()
        collect = _Collect()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: collect, local_addr=(GARBAGE_SOURCE, 0), remote_addr=(host, port)
        )
        sent: dict[int, bytes] = {}  # the ID we gave each datagram -> the datagram
        try:
            for batch in range(BATCHES):
                for i in range(PER_BATCH):
                    data = _malformed(rng)
                    if len(data) >= 2:
                        # A unique ID per datagram, so every reply names what it answers.
                        qid = batch * PER_BATCH + i
                        data = struct.pack("!H", qid) + data[2:]
                        sent[qid] = data
                    transport.sendto(data)
                    if i % 50 == 49:
                        await asyncio.sleep(0)  # let the server read: a flood, not a burst
                t0 = time.monotonic()
                r = await _probe(host, port)
                assert r.rcode() == dns.rcode.NOERROR, f"batch {batch}"
                assert [rr.to_text() for rr in r.answer[0]] == ["192.0.2.1"]
                assert time.monotonic() - t0 < 2
            await asyncio.sleep(0.3)  # replies still on their way (upstream misses)
        finally:
            transport.close()
        assert app.service.malformed > BATCHES * PER_BATCH // 3
        assert collect.got, "malformed queries with a header get FORMERR/NOTIMP/BADVERS"
        for reply in collect.got:
            qid = struct.unpack_from("!H", reply)[0]
            asked = sent[qid]  # a reply only ever answers a datagram we sent
            assert not _must_not_be_answered(asked), "no answer to responses and runts"
            assert reply[2] & 0x80, "a reply is a response"
            dns.message.from_wire(reply[:2] + bytes([reply[2] & 0x87]) + reply[3:])
            # Never larger than the question asked plus an OPT (no amplification) unless it
            # is a real answer from the cache or the upstream.
            if reply[3] & 0x0F in (dns.rcode.FORMERR, dns.rcode.NOTIMP):
                assert len(reply) <= len(asked) + 11


async def test_server_answers_after_malformed_messages_over_tcp(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    rng = random.Random(7)
    async with running(make_config(tmp_path, upstream.port)) as app:
        host, port = app.bound[0]
        reader, writer = await asyncio.open_connection(host, port, local_addr=(GARBAGE_SOURCE, 0))
        try:
            for batch in range(4):
                frames = []
                for _ in range(100):
                    data = _malformed(rng)[:65535]
                    frames.append(struct.pack("!H", len(data)) + data)
                writer.write(b"".join(frames))
                # A normal query on the same connection, then on a fresh one from another client.
                q = dns.message.make_query("example.test", "A")
                q.id = 0xFFFF - batch
                wire_q = q.to_wire()
                writer.write(struct.pack("!H", len(wire_q)) + wire_q)
                await writer.drain()
                deadline = time.monotonic() + 3
                while True:  # skip the FORMERRs until our answer comes
                    assert time.monotonic() < deadline
                    size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 3))
                    msg = await asyncio.wait_for(reader.readexactly(size[0]), 3)
                    if msg[:2] == wire_q[:2] and msg[12 : len(wire_q)] == wire_q[12:]:
                        break
                # Answered: resolved, or blocked for this source only, whose random names under
                # .test (no real TLD) put it in the exfiltration detector's cool-down.
                answer = dns.message.from_wire(msg)
                assert answer.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN), answer
                r = await _probe(host, port, tcp=True)
                assert r.rcode() == dns.rcode.NOERROR
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


# --------------------------------------------------------------------------------------------
# Memory: a flood of random names from random client addresses


def _random_client(rng: random.Random, pool: list[str]) -> str:
    if rng.random() < 0.7:
        return rng.choice(pool)  # returning clients: the ACL memo and the fast path are used
    kind = rng.randrange(4)
    if kind == 0:
        return str(ipaddress.IPv4Address(rng.randrange(1 << 32)))  # mostly strangers
    if kind == 1:
        return f"192.168.{rng.randrange(256)}.{rng.randrange(256)}"
    if kind == 2:
        return str(ipaddress.IPv6Address((0xFD << 120) | rng.randrange(1 << 120)))
    return str(ipaddress.IPv6Address(rng.randrange(1 << 128))) + "%eth0"


def _flood_query(rng: random.Random) -> bytes:
    label = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    kind = rng.randrange(4)
    if kind == 0:
        name, qtype = f"{label}.evil.test", 1  # blocked: cached, logged
    elif kind == 1:
        name, qtype = f"{rng.randrange(256)}.{rng.randrange(256)}.10.in-addr.arpa", 12
    elif kind == 2:
        name, qtype = f"{label}.example.test", 255  # ANY: minimal answer
    else:
        name, qtype = f"{label}.Evil.TEST", 28
    rec = DNSRecord(DNSHeader(id=rng.randrange(65536)), q=DNSQuestion(name, qtype))
    if rng.random() < 0.5:
        rec.add_ar(EDNS0(udp_len=1232, flags="do" if rng.random() < 0.5 else ""))
    return bytes(rec.pack())


def _state_sizes(app: App) -> dict[str, int]:
    acl = next(s for s in app.stages if isinstance(s, AclStage))
    assert app.rate_limit is not None
    return {
        "parsed": len(app.service._parsed),
        "cache": len(app.cache.entries),
        "acl_memo": len(acl.memo),
        "rate_buckets": len(app.rate_limit.buckets),
        "refreshing": len(app.service._refreshing),
        "upstream_health": len(app.upstream.health.servers),
        "tcp_connections": len(app.tcp_limits.connections),
        "blocklog_queue": len(app.blocklog._queue),
    }


async def test_memory_stays_bounded_under_a_flood_of_random_names_and_clients(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    blocklist = tmp_path / "block.txt"
    blocklist.write_text("evil.test\n")
    cfg = make_config(
        tmp_path,
        upstream.port,
        f"blocking:\n  lists:\n    - path: {blocklist}\n"
        "cache:\n  size: 500\n"
        "rate_limit:\n  max_clients: 256\n"
        "blocklog:\n  queue_size: 500\n",
    )
    rng = random.Random(99)
    pool = [
        f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(6000)
    ]
    async with running(cfg) as app:
        service = app.service

        # Built before tracing starts: dnslib is slow, and its garbage is not the server's.
        warm, first, second = (
            [(_flood_query(rng), _random_client(rng, pool)) for _ in range(FLOOD)] for _ in range(3)
        )

        def flood(queries: list[tuple[bytes, str]]) -> None:
            for data, client in queries:
                out = service.begin(data, client, Transport.UDP)
                assert not isinstance(out, Pending), "this flood never needs the upstream"

        flood(warm)  # every bounded structure fills to its cap
        tracemalloc.start()
        try:
            # Steady state: what the first traced flood leaves alive, the second replaces.
            flood(first)
            await asyncio.sleep(0.2)  # the block log writer drains its queue
            gc.collect()
            before, _ = tracemalloc.get_traced_memory()
            flood(second)
            await asyncio.sleep(0.2)
            gc.collect()
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        sizes = _state_sizes(app)
        assert sizes["cache"] <= 500
        assert sizes["rate_buckets"] <= 256
        assert sizes["acl_memo"] <= 4096
        assert sizes["parsed"] <= 8192
        assert sizes["blocklog_queue"] <= 500
        assert sizes["refreshing"] == 0
        # The second flood, as big as the first, adds next to nothing: a leak of even 400
        # bytes a query would show here.
        assert after - before < 1_600_000, (before, after, sizes)

        # And the real sockets: random names that go upstream, from 100 client addresses.
        host, port = app.bound[0]
        loop = asyncio.get_running_loop()
        endpoints = []
        tally = [0]
        all_answered = asyncio.Event()
        try:
            for i in range(100):
                collect = _Collect(tally, 300, all_answered)
                t, _ = await loop.create_datagram_endpoint(
                    lambda c=collect: c,  # type: ignore[misc]
                    local_addr=(f"127.0.{1 + i // 250}.{1 + i % 250}", 0),
                    remote_addr=(host, port),
                )
                endpoints.append((t, collect))
            for _ in range(3):
                for i, (t, _c) in enumerate(endpoints):
                    label = "".join(rng.choice("abcdefghij") for _ in range(10))
                    t.sendto(DNSRecord.question(f"{label}.unknown.test").pack())
                    if i % 10 == 9:
                        # Paced: the server's socket buffer holds a few hundred datagrams at
                        # most, and this test shares the event loop with the server.
                        await asyncio.sleep(0.01)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_answered.wait(), 5)
        finally:
            for t, _c in endpoints:
                t.close()
        answered = [DNSRecord.parse(d) for _, c in endpoints for d in c.got]
        assert len(answered) == 300
        assert all(r.header.rcode == 3 for r in answered)  # NXDOMAIN from the fake upstream
        sizes = _state_sizes(app)
        assert sizes["cache"] <= 500 and sizes["rate_buckets"] <= 256
        assert service.inflight == 0
        r = await _probe(host, port)
        assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.RA


async def test_flood_from_one_address_does_not_starve_another(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """Rate limiting in the real server: 3,000 queries from one client, another still answered."""
    cfg = make_config(tmp_path, upstream.port, "rate_limit:\n  rate: 200\n  burst: 1000\n")
    async with running(cfg) as app:
        host, port = app.bound[0]
        flooder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        flooder.bind((GARBAGE_SOURCE, 0))
        flooder.setblocking(False)
        q = dns.message.make_query("example.test", "A").to_wire()
        try:
            await _probe(host, port)  # cached from now on
            for i in range(3000):
                with contextlib.suppress(BlockingIOError):
                    flooder.sendto(struct.pack("!H", i) + q[2:], (host, port))
                if i % 100 == 99:
                    r = await _probe(host, port)
                    assert r.rcode() == dns.rcode.NOERROR
        finally:
            flooder.close()
        assert app.rate_limit is not None and app.rate_limit.limited > 0
