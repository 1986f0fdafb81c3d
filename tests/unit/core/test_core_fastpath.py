"""The fast path answers exactly the bytes the full pipeline answers (ARCHITECTURE §2.6)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from pathlib import Path

import pytest
from dnslib import EDNS0, QTYPE, RR, DNSRecord, EDNSOption

from resolver.app import App
from resolver.config import Config
from resolver.config.loader import load_text
from resolver.core.cached_answer import from_upstream
from resolver.core.fastpath import parse_fast
from resolver.core.query import MalformedQuery, Transport, from_wire
from resolver.net.service import Pending
from resolver.net.udp import UdpServer

_UDP = Transport.UDP

NOW = 1_800_000_000.0
TICK = [0.0]  # seconds since NOW; the test moves it so TTLs age as the queries go


def _app(tmp_path: Path, fast: bool) -> App:
    tmp_path.mkdir(parents=True, exist_ok=True)
    lst = tmp_path / "block.txt"
    lst.write_text("evil.test\n")
    cfg = load_text(
        f"state_dir: {tmp_path}\nblocking:\n  mode: null\n  lists:\n    - path: {lst}\n",
        Config,
    )
    app = App(cfg)
    app.lists.load_now()
    if not fast:
        app.service.fast = False
    app.service.prefetch = None  # no event loop here to refresh answers in the background
    app.service.clock = lambda: NOW + TICK[0]
    # The same upstream answers in both caches.
    answers = {
        ("example.test", "A"): [
            "example.test. 300 IN A 192.0.2.1",
            "example.test. 300 IN A 192.0.2.2",
        ],
        ("example.test", "AAAA"): ["example.test. 200 IN AAAA 2001:db8::1"],
        ("www.example.test", "A"): [
            "www.example.test. 60 IN CNAME example.test.",
            "example.test. 300 IN A 192.0.2.1",
        ],
        ("big.test", "TXT"): [f'big.test. 100 IN TXT "{"y" * 200} {i}"' for i in range(8)],
    }
    for (name, qtype), rrs in answers.items():
        for do in (False, True):
            q = DNSRecord.question(name, qtype)
            q.add_ar(EDNS0(udp_len=1232, flags="do" if do else ""))
            r = q.reply()
            for text in rrs:
                r.add_answer(*RR.fromZone(text))
            r.header.ad = 1
            key = from_wire(bytes(q.pack()), "127.0.0.1", Transport.UDP).cache_key
            app.cache.store(key, from_upstream(bytes(r.pack()), NOW, 0, 86400))
    q = DNSRecord.question("nothing.test", "A")
    r = q.reply()
    r.header.rcode = 3
    r.add_auth(*RR.fromZone("test. 300 IN SOA ns.test. admin.test. 1 3600 600 86400 60"))
    key = from_wire(bytes(q.pack()), "127.0.0.1", Transport.UDP).cache_key
    app.cache.store(key, from_upstream(bytes(r.pack()), NOW, 0, 86400))
    return app


def _queries() -> list[bytes]:
    out = []
    names = [
        "example.test",
        "EXAMPLE.test",
        "eXaMpLe.TeSt",
        "www.example.test",
        "evil.test",
        "a.EVIL.test",
        "nothing.test",
        "big.test",
    ]
    for name, qtype, edns, do, rd, cd, ad, cookie, payload in itertools.product(
        names,
        ["A", "AAAA", "TXT"],
        [False, True],
        [False, True],
        [True, False],
        [False, True],
        [False, True],
        [False, True],
        [512, 1232, 4096],
    ):
        if not edns and (do or cookie or payload != 512):
            continue
        q = DNSRecord.question(name, qtype)
        q.header.id = len(out) & 0xFFFF
        q.header.rd = int(rd)
        q.header.cd = int(cd)
        q.header.ad = int(ad)
        if edns:
            opts = [EDNSOption(10, b"\x01\x02\x03\x04\x05\x06\x07\x08")] if cookie else []
            q.add_ar(EDNS0(udp_len=payload, flags="do" if do else "", opts=opts))
        out.append(bytes(q.pack()))
    return out


@pytest.mark.parametrize("transport", [Transport.UDP, Transport.TCP])
def test_fast_path_gives_the_same_bytes_as_the_full_path(
    tmp_path: Path, transport: Transport
) -> None:
    fast, full = _app(tmp_path / "f", True), _app(tmp_path / "s", False)
    queries = _queries()
    assert len(queries) > 500
    for round_ in range(2):  # the second round hits the parse memo
        for i, data in enumerate(queries):
            TICK[0] = (round_ * len(queries) + i) * 0.37
            a = fast.service.begin(data, "127.0.0.1", transport)
            b = full.service.begin(data, "127.0.0.1", transport)
            if isinstance(a, Pending) or isinstance(b, Pending):
                # a miss (e.g. MX) forwards in both: compare the decision, not bytes
                assert isinstance(a, Pending) and isinstance(b, Pending)
                fast.service.inflight = full.service.inflight = 0
                continue
            assert a == b, (round_, DNSRecord.parse(data))
    # and the fast path really answered most of them
    assert fast.service.fast
    assert len(fast.service._parsed) > 100
    assert fast.service.counts["blocked"] == full.service.counts["blocked"] > 0
    assert fast.service.counts["cached"] == full.service.counts["cached"] > 0


def test_parse_fast_refuses_what_it_does_not_handle() -> None:
    q = DNSRecord.question("example.test", "A")
    plain = bytes(q.pack())
    assert parse_fast(plain) is not None
    assert parse_fast(plain[:-1]) is None  # truncated
    assert parse_fast(plain + b"\x00") is None  # trailing junk
    resp = bytearray(plain)
    resp[2] |= 0x80
    assert parse_fast(bytes(resp)) is None  # a response
    notify = bytearray(plain)
    notify[2] |= 0x20
    assert parse_fast(bytes(notify)) is None  # opcode NOTIFY
    q.add_ar(EDNS0(version=1))
    assert parse_fast(bytes(q.pack())) is None  # EDNS version 1 → BADVERS on the full path
    ptr = plain[:12] + b"\xc0\x0c" + plain[-4:]
    assert parse_fast(ptr) is None  # compression in a question
    norec = bytearray(plain)
    norec[2] &= 0xFE
    assert parse_fast(bytes(norec)) is None  # RD=0: never from the cache (stages.recursion)
    cookie = DNSRecord.question("example.test", "A")
    cookie.add_ar(EDNS0(opts=[EDNSOption(10, bytes(8))]))
    good = bytes(cookie.pack())
    assert parse_fast(good) is not None
    # An option whose length runs past the OPT's end: FORMERR on the full path (RFC 6891).
    bad = good[:-10] + b"\x00\x0c" + good[-8:]
    assert parse_fast(bad) is None and from_wire_fails(bad)
    assert QTYPE.A == 1


def from_wire_fails(data: bytes) -> bool:
    try:
        from_wire(data, "127.0.0.1", _UDP)
    except MalformedQuery:
        return True
    return False


async def _udp_answers(sock_addr: tuple[str, int], queries: list[bytes]) -> list[bytes | None]:
    """Send ``queries`` in one burst from one socket; their answers in the same order."""
    loop = asyncio.get_running_loop()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setblocking(False)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    try:
        ids = {}
        for n, data in enumerate(queries):
            qid = n & 0xFFFF
            ids[qid] = n
            await loop.sock_sendto(client, qid.to_bytes(2, "big") + data[2:], sock_addr)
        out: list[bytes | None] = [None] * len(queries)
        with contextlib.suppress(TimeoutError):
            for _ in range(len(queries)):
                data = await asyncio.wait_for(loop.sock_recv(client, 65535), 2.0)
                n = ids[int.from_bytes(data[:2], "big")]
                out[n] = queries[n][:2] + data[2:]  # back to the ID the reference used
        return out
    finally:
        client.close()


async def test_batched_udp_and_its_answer_memo_give_the_same_bytes(tmp_path: Path) -> None:
    """Over a real socket: bursts through recvmmsg/sendmmsg, repeats served from the memo of
    rendered answers, all byte-identical to the full path at the same time."""
    fast, full = _app(tmp_path / "f", True), _app(tmp_path / "s", False)
    for app in (fast, full):
        assert app.rate_limit is not None
        app.rate_limit.burst = 1e9  # thousands of queries within the fake clock's 1.4 s
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    server = UdpServer(fast.service, sock)
    if not server.batched:
        pytest.skip("recvmmsg/sendmmsg are not available on this platform")
    server.start(asyncio.get_running_loop())
    # Answers that need no upstream (MX and the like would be forwarded: left out).
    TICK[0] = 0.0
    queries = [
        d for d in _queries() if not isinstance(full.service.begin(d, "127.0.0.1", _UDP), Pending)
    ]
    full.service.inflight = 0
    before = dict(full.service.counts)
    try:
        # 0.0 and 0.5: the same second, so the second round comes from the memo; 1.3: a new
        # second, TTLs one second older, the memo starts again.
        for tick in (0.0, 0.5, 1.3, 1.4):
            TICK[0] = tick
            expected = [full.service.begin(d, "127.0.0.1", _UDP) for d in queries]
            for start in range(0, len(queries), 100):
                got = await _udp_answers(sock.getsockname(), queries[start : start + 100])
                for n, answer in enumerate(got):
                    assert answer == expected[start + n], (tick, DNSRecord.parse(queries[n]))
            if tick in (0.5, 1.4):
                assert len(fast.cache.rendered) > 100  # answered from the memo this round
    finally:
        server.close()
    for verdict in ("blocked", "cached"):
        assert fast.service.counts[verdict] == full.service.counts[verdict] - before[verdict] > 0


async def test_batched_udp_memo_still_applies_the_rate_limit(tmp_path: Path) -> None:
    lst = tmp_path / "block.txt"
    lst.write_text("evil.test\n")
    cfg = load_text(
        f"state_dir: {tmp_path}\nblocking:\n  lists:\n    - path: {lst}\n"
        "rate_limit:\n  rate: 1.0\n  burst: 40\n",
        Config,
    )
    app = App(cfg)
    app.lists.load_now()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    server = UdpServer(app.service, sock)
    server.start(asyncio.get_running_loop())
    q = DNSRecord.question("a.evil.test", "A")
    try:
        got = await _udp_answers(sock.getsockname(), [bytes(q.pack())] * 100)
    finally:
        server.close()
    answered = sum(1 for a in got if a is not None)
    # The burst (40 tokens, one refilled per second) and no more, though 38 came from the memo.
    assert 40 <= answered <= 42
    assert app.service.counts["blocked"] == answered
    assert app.service.dropped == 100 - answered
    assert len(app.cache.rendered) == 1
