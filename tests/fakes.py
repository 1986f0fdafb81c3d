"""Fakes for unit tests of the pure core and the stages: queries, a clock, lists, answers.

Queries are packed with dnslib and parsed by the real ``resolver.core.query.from_wire``, so every
stage test also goes through the parser the server uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dnslib import EDNS0, QTYPE, RCODE, RR, DNSHeader, DNSQuestion, DNSRecord

from resolver.core.blocklist import SUBTREE, Match, MemoryBlocklist
from resolver.core.query import Query, Transport, from_wire


def qtype_code(qtype: str | int) -> int:
    return qtype if isinstance(qtype, int) else int(getattr(QTYPE, qtype))


def query_wire(
    name: str,
    qtype: str | int = "A",
    *,
    edns: bool | int = True,
    do: bool = False,
    qid: int = 0x1234,
    rd: bool = True,
    ad: bool = False,
    cd: bool = False,
    version: int = 0,
) -> bytes:
    """A client query as bytes. ``edns``: False = no OPT, True = payload 1232, int = payload."""
    header = DNSHeader(id=qid, rd=int(rd))
    if ad:
        header.ad = 1
    if cd:
        header.cd = 1
    msg = DNSRecord(header, q=DNSQuestion(name, qtype_code(qtype)))
    if edns is not False:
        payload = 1232 if edns is True else int(edns)
        msg.add_ar(EDNS0(udp_len=payload, version=version, flags="do" if do else ""))
    return bytes(msg.pack())


def make_query(
    name: str,
    qtype: str | int = "A",
    *,
    client: str = "192.168.1.7",
    transport: Transport = Transport.UDP,
    edns: bool | int = True,
    do: bool = False,
    qid: int = 0x1234,
    rd: bool = True,
    wire_name: str | None = None,
    ad: bool = False,
    cd: bool = False,
) -> Query:
    """Parse a real packed query. ``wire_name``: the spelling on the wire (e.g. mixed case)."""
    buf = query_wire(
        wire_name if wire_name is not None else name,
        qtype,
        edns=edns,
        do=do,
        qid=qid,
        rd=rd,
        ad=ad,
        cd=cd,
    )
    return from_wire(buf, client, transport)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def StaticBlocklist(  # a factory: MemoryBlocklist is compiled, interpreted code cannot subclass it
    names: Mapping[str, str] | Iterable[str] = (),
    *,
    scope: int = SUBTREE,
    category: str = "malware",
) -> MemoryBlocklist:
    """A MemoryBlocklist of SUBTREE entries: names, or a mapping name -> source."""
    table = names if isinstance(names, Mapping) else dict.fromkeys(names, "feed:test")
    return MemoryBlocklist(
        (name, scope, Match(name, source, category)) for name, source in table.items()
    )


def parse(wire: bytes) -> DNSRecord:
    """An answer as dnslib sees it, to inspect sections, flags and TTLs."""
    return DNSRecord.parse(wire)


def upstream_reply(
    query: Query,
    answers: Iterable[str] = (),
    authority: Iterable[str] = (),
    additional: Iterable[str] = (),
    *,
    rcode: int = RCODE.NOERROR,
    ad: bool = False,
    opt: bool = True,
    qid: int = 0xABCD,
) -> bytes:
    """What an upstream resolver sends back for ``query``; records as zone-file lines."""
    header = DNSHeader(id=qid, qr=1, rd=1, ra=1, rcode=rcode)
    if ad:
        header.ad = 1
    msg = DNSRecord(header, q=DNSQuestion(query.qname, query.qtype))
    for text in answers:
        for rr in RR.fromZone(text):
            msg.add_answer(rr)
    for text in authority:
        for rr in RR.fromZone(text):
            msg.add_auth(rr)
    for text in additional:
        for rr in RR.fromZone(text):
            msg.add_ar(rr)
    if opt:
        msg.add_ar(EDNS0(udp_len=4096, flags="do" if query.do else ""))
    return bytes(msg.pack())


SOA = "test. 300 IN SOA ns.test. admin.test. 1 3600 600 86400 60"
