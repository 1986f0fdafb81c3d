"""Golden answers for cache misses (issue 19): the bytes a client gets for a name asked the first
time, through real sockets on loopback, must not change when the miss path is reworked.

Each case starts its own upstream (``FakeUpstream`` with a handler answering like a recursive
resolver: QR RD RA, no AA, OPT when asked with EDNS) and its own Parafoudre, so every question is a
miss. The client's query bytes are stored with the golden (``query``) and sent as they are; the
answer is compared whole, its 2-byte ID apart (checked to echo the query's, then zeroed).

TTLs are not masked: this is the first answer, rendered in the same second the upstream's arrived
(``cached_answer.render`` ages by ``int(now - stored_at)``, so 0 unless a miss takes a whole
second), and the upstream TTLs (45 to 900 s) are inside the cache's default bounds.

The goldens were taken from the code before issue 19's rework; regenerate them only on purpose,
with ``.venv/bin/python tests/data/make_golden_misses.py`` (it prints each answer to be read).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, DNSHeader, DNSRecord, EDNSOption

from tests.conftest import FakeUpstream, make_config, running

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden_misses.json"
WAIT = 5.0  # seconds: the bound on every client wait here
QID = 0x4A3B  # the client's query ID: fixed, so the stored query bytes are the ones sent
SOA = "golden.test. {ttl} IN SOA ns.golden.test. admin.golden.test. 2026120601 3600 600 86400 {mn}"
SIG = "A" * 88  # a 64-byte signature, base64: only its bytes matter, nobody validates here


def _reply(
    req: DNSRecord, rcode: int = 0, ad: bool = False, opts: list[EDNSOption] | None = None
) -> DNSRecord:
    """An upstream recursive resolver's reply: QR RD RA (no AA), OPT (with DO echoed) if asked."""
    header = DNSHeader(id=req.header.id, qr=1, rd=req.header.rd, ra=1, ad=int(ad), rcode=rcode)
    r = DNSRecord(header, q=req.q)
    client_opt = next((rr for rr in req.ar if rr.rtype == QTYPE.OPT), None)
    if client_opt is not None:
        do = "do" if client_opt.ttl & 0x8000 else ""
        r.add_ar(EDNS0(udp_len=1232, flags=do, opts=opts or []))
    return r


def _zone(
    *texts: str, rcode: int = 0, auth: str = "", ad: bool = False
) -> Callable[[DNSRecord], DNSRecord]:
    """A handler answering every question with the records ``texts`` (and ``auth`` in authority)."""

    def handler(req: DNSRecord) -> DNSRecord:
        r = _reply(req, rcode, ad)
        for text in texts:
            for rr in RR.fromZone(text):
                r.add_answer(rr)
        if auth:
            r.add_auth(*RR.fromZone(auth))
        return r

    return handler


def _servfail_ede(req: DNSRecord) -> DNSRecord:
    ede = EDNSOption(15, (6).to_bytes(2, "big") + b"signature expired on golden.test")
    return _reply(req, RCODE.SERVFAIL, opts=[ede])


@dataclass(frozen=True)
class Case:
    """One miss: the client's question and how it asks, and how the upstream answers."""

    qname: str
    qtype: str
    handler: Callable[[DNSRecord], DNSRecord]
    edns: bool = True
    do: bool = False
    tcp: bool = False  # the client asks over TCP
    truncate_udp: bool = False  # the upstream answers UDP with TC set, the full answer over TCP
    upstream_tcp: int = 0  # how many TCP queries the upstream must have had

    def query(self) -> bytes:
        q = dns.message.make_query(
            self.qname,
            self.qtype,
            use_edns=0 if self.edns else False,
            want_dnssec=self.do,
            payload=1232,
        )
        q.id = QID
        return q.to_wire()


_MANY_A = [f"big.golden.test. 600 IN A 198.51.100.{i}" for i in range(1, 41)]  # 40 A: 672 bytes

CASES: dict[str, Case] = {
    # (a) NOERROR, two A records; the usual stub (EDNS 1232) and an old one (no EDNS).
    "noerror_a_edns": Case(
        "two.golden.test",
        "A",
        _zone("two.golden.test. 300 IN A 192.0.2.10", "two.golden.test. 300 IN A 192.0.2.11"),
    ),
    "noerror_a_plain": Case(
        "two.golden.test",
        "A",
        _zone("two.golden.test. 300 IN A 192.0.2.10", "two.golden.test. 300 IN A 192.0.2.11"),
        edns=False,
    ),
    # (b) NXDOMAIN with the zone's SOA: its TTL is min(SOA TTL 900, minimum 120) = 120 (RFC 2308
    # §5); NODATA with the SOA TTL the smaller one (45 < 600): 45.
    "nxdomain_soa": Case(
        "missing.golden.test", "A", _zone(rcode=RCODE.NXDOMAIN, auth=SOA.format(ttl=900, mn=120))
    ),
    "nodata_soa": Case("two.golden.test", "AAAA", _zone(auth=SOA.format(ttl=45, mn=600))),
    # (c) Two CNAMEs then an A, asked in mixed case: the question comes back in the client's case.
    "cname_chain_mixed_case": Case(
        "WwW.ChAiN.GoLdEn.TeSt",
        "A",
        _zone(
            "www.chain.golden.test. 300 IN CNAME edge.chain.golden.test.",
            "edge.chain.golden.test. 120 IN CNAME host.cdn.golden.test.",
            "host.cdn.golden.test. 60 IN A 192.0.2.20",
        ),
    ),
    # (d) TC from the upstream over UDP: asked again over TCP; the EDNS client gets it whole, the
    # client without EDNS (512 bytes) gets TC and empty sections.
    "tc_to_tcp_edns": Case(
        "big.golden.test", "A", _zone(*_MANY_A), truncate_udp=True, upstream_tcp=1
    ),
    "tc_to_tcp_plain_truncated": Case(
        "big.golden.test", "A", _zone(*_MANY_A), edns=False, truncate_udp=True, upstream_tcp=1
    ),
    # (e) The upstream's SERVFAIL and its EDE 6 (DNSSEC Bogus) with its text, passed on.
    "servfail_ede6": Case("bogus.golden.test", "A", _servfail_ede),
    # (f) DO set: the upstream's RRSIG and AD reach the client, its OPT says DO.
    "edns_do_rrsig_ad": Case(
        "signed.golden.test",
        "A",
        _zone(
            "signed.golden.test. 300 IN A 192.0.2.30",
            f"signed.golden.test. 300 IN RRSIG A 13 3 300 20301231000000 20261201000000 4711 "
            f"golden.test. {SIG}",
            ad=True,
        ),
        do=True,
    ),
    # (g) A client over TCP.
    "tcp_client_noerror": Case(
        "tcp.golden.test", "A", _zone("tcp.golden.test. 300 IN A 192.0.2.40"), tcp=True
    ),
}


async def _udp(port: int, wire: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        s.connect(("127.0.0.1", port))
        await loop.sock_sendall(s, wire)
        return await asyncio.wait_for(loop.sock_recv(s, 65535), WAIT)


async def _tcp(port: int, wire: bytes) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), WAIT)
    try:
        writer.write(struct.pack("!H", len(wire)) + wire)
        size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), WAIT))[0]
        return await asyncio.wait_for(reader.readexactly(size), WAIT)
    finally:
        writer.close()


async def answer_of(case: Case, query: bytes, tmp_path: Path) -> bytes:
    """The client's answer to ``query`` from a fresh Parafoudre (a miss), its ID zeroed."""
    up = FakeUpstream(handler=case.handler, truncate_udp=case.truncate_udp)
    await up.start()
    try:
        async with running(make_config(tmp_path, up.port)) as app:
            port = app.bound[0][1]
            answer = await (_tcp(port, query) if case.tcp else _udp(port, query))
        asked = [q for q in up.queries if str(q.q.qname).lower() == case.qname.lower() + "."]
        assert len(asked) == 1 + case.upstream_tcp, "one upstream question (and its TCP retry)"
        assert up.tcp_queries == case.upstream_tcp
    finally:
        await up.stop()
    assert answer[:2] == query[:2], "the answer carries the client's ID"
    return b"\x00\x00" + answer[2:]


def _ttls(section: list[dns.rrset.RRset]) -> list[int]:
    return [rrset.ttl for rrset in section]


def check_meaning(name: str, m: dns.message.Message) -> None:
    """What the goldens mean, said once in words a reader can check without decoding hex."""
    case = CASES[name]
    assert m.flags & (dns.flags.QR | dns.flags.RD | dns.flags.RA) == (
        dns.flags.QR | dns.flags.RD | dns.flags.RA
    )
    assert not m.flags & dns.flags.AA
    assert m.question[0].name.to_text() == case.qname + "."  # the client's case, echoed
    assert (m.edns >= 0) == case.edns and bool(m.ednsflags & dns.flags.DO) == case.do
    if name == "nxdomain_soa":
        assert m.rcode() == dns.rcode.NXDOMAIN and _ttls(m.authority) == [120]  # RFC 2308 §5
    elif name == "nodata_soa":
        assert m.rcode() == dns.rcode.NOERROR and not m.answer and _ttls(m.authority) == [45]
    elif name == "servfail_ede6":
        assert m.rcode() == dns.rcode.SERVFAIL
        ede = [o for o in m.options if isinstance(o, dns.edns.EDEOption)]
        assert [(o.code, o.text) for o in ede] == [(6, "signature expired on golden.test")]
    elif name == "tc_to_tcp_plain_truncated":
        assert m.flags & dns.flags.TC and not m.answer
    elif name == "cname_chain_mixed_case":
        assert _ttls(m.answer) == [300, 120, 60]
    elif name == "edns_do_rrsig_ad":
        assert m.flags & dns.flags.AD and len(m.answer) == 2
    else:
        assert m.rcode() == dns.rcode.NOERROR and not m.flags & dns.flags.TC
        assert sum(len(rrset) for rrset in m.answer) == {
            "tc_to_tcp_edns": 40,
            "tcp_client_noerror": 1,
        }.get(name, 2)


def load_goldens() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads(GOLDEN.read_text())
    return data


@pytest.mark.parametrize("name", sorted(CASES))
async def test_a_miss_answers_the_golden_bytes(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    golden = load_goldens()[name]
    query = bytes.fromhex(golden["query"])
    assert query == case.query(), "the stored query is the one the case describes"
    answer = await answer_of(case, query, tmp_path)
    expected = bytes.fromhex(golden["answer"])
    check_meaning(name, dns.message.from_wire(answer))
    assert answer == expected, (
        f"\n--- got ---\n{dns.message.from_wire(answer)}\n--- golden ---\n"
        f"{dns.message.from_wire(expected)}"
    )


def test_every_case_has_a_golden_and_every_golden_a_case() -> None:
    assert sorted(load_goldens()) == sorted(CASES)
