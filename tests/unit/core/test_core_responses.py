"""Answers built in wire form: blocked names, errors, and truncation to the client's limit."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from resolver.core import responses, wire
from resolver.core.query import Query, Transport
from resolver.core.responses import BlockAnswer
from tests.fakes import make_query, parse

REASON = "feed:urlhaus"


def read(resp: bytes) -> dns.message.Message:
    """dnspython as an independent reader of what we built."""
    return dns.message.from_wire(resp)


def ede(msg: dns.message.Message) -> list[tuple[int, str]]:
    return [(int(o.code), o.text or "") for o in msg.options if isinstance(o, dns.edns.EDEOption)]


def answers(msg: dns.message.Message) -> list[tuple[str, int, str]]:
    return [
        (dns.rdatatype.to_text(rrset.rdtype), rrset.ttl, rd.to_text())
        for rrset in msg.answer
        for rd in rrset
    ]


NULL = BlockAnswer.build("null", 60, None, None)
SINK_BOTH = BlockAnswer.build("sinkhole", 30, "192.168.1.250", "fd00::250")
SINK_V4 = BlockAnswer.build("sinkhole", 30, "192.168.1.250", None)
SINK_V6 = BlockAnswer.build("sinkhole", 30, None, "fd00::250")


@pytest.mark.parametrize(
    ("how", "qtype", "rcode", "expected"),
    [
        (BlockAnswer(), "A", dns.rcode.NXDOMAIN, []),
        (BlockAnswer(), "AAAA", dns.rcode.NXDOMAIN, []),
        (BlockAnswer(), "MX", dns.rcode.NXDOMAIN, []),
        (BlockAnswer("refused"), "A", dns.rcode.REFUSED, []),
        (BlockAnswer("refused"), "MX", dns.rcode.REFUSED, []),
        (NULL, "A", dns.rcode.NOERROR, [("A", 60, "0.0.0.0")]),
        (NULL, "AAAA", dns.rcode.NOERROR, [("AAAA", 60, "::")]),
        (NULL, "MX", dns.rcode.NOERROR, []),  # NODATA
        (SINK_BOTH, "A", dns.rcode.NOERROR, [("A", 30, "192.168.1.250")]),
        (SINK_BOTH, "AAAA", dns.rcode.NOERROR, [("AAAA", 30, "fd00::250")]),
        (SINK_BOTH, "MX", dns.rcode.NOERROR, []),
        (SINK_V4, "A", dns.rcode.NOERROR, [("A", 30, "192.168.1.250")]),
        (SINK_V4, "AAAA", dns.rcode.NOERROR, []),  # no IPv6 sink: NODATA
        (SINK_V6, "A", dns.rcode.NOERROR, []),
        (SINK_V6, "AAAA", dns.rcode.NOERROR, [("AAAA", 30, "fd00::250")]),
    ],
)
def test_make_blocked(
    how: BlockAnswer, qtype: str, rcode: int, expected: list[tuple[str, int, str]]
) -> None:
    q = make_query("x.evil.test", qtype, wire_name="X.Evil.TEST", qid=0x4242, do=True)
    msg = read(responses.make_blocked(q, how, REASON))
    assert msg.rcode() == rcode
    assert answers(msg) == expected
    assert all(rrset.name.to_text() == "X.Evil.TEST." for rrset in msg.answer)
    assert ede(msg) == [(responses.EDE_BLOCKED, REASON)]
    assert msg.id == 0x4242
    assert msg.question[0].name.to_text() == "X.Evil.TEST."  # the asker's spelling
    assert msg.flags & dns.flags.QR and msg.flags & dns.flags.RA and msg.flags & dns.flags.RD
    assert not msg.flags & dns.flags.AA
    if expected or rcode == dns.rcode.REFUSED:
        assert not msg.authority
    else:
        # A negative answer (NXDOMAIN or NODATA) carries an SOA (RFC 2308 §3).
        (soa,) = msg.authority
        assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == "."
    assert msg.ednsflags & dns.flags.DO


@pytest.mark.parametrize("ttl", [60, 5, 3600])
@pytest.mark.parametrize("edns", [False, True])
def test_blocked_nxdomain_has_an_soa_downstream_caches_can_keep(ttl: int, edns: bool) -> None:
    """RFC 2308: a negative answer without SOA is not cached, so a domain controller or a
    laptop in front of the box would ask again for every lookup of a blocked name."""
    q = make_query("ads.evil.test", "AAAA", wire_name="Ads.Evil.Test", edns=edns)
    msg = read(responses.make_blocked(q, BlockAnswer("nxdomain", ttl), REASON))
    assert msg.rcode() == dns.rcode.NXDOMAIN and not msg.answer
    (rrset,) = msg.authority
    assert rrset.rdtype == dns.rdatatype.SOA and rrset.rdclass == 1
    # The root: above every name, and never the blocked name itself, which would then exist.
    assert rrset.name.to_text() == "."
    (soa,) = rrset
    # The negative TTL is min(SOA TTL, MINIMUM) (RFC 2308 §5): the block's TTL, both ways.
    assert rrset.ttl == soa.minimum == ttl
    assert (soa.mname.to_text(), soa.rname.to_text()) == ("parafoudre.invalid.", "nobody.invalid.")
    assert ede(msg) == ([(responses.EDE_BLOCKED, REASON)] if edns else [])


@pytest.mark.parametrize("how", [BlockAnswer(), NULL, SINK_BOTH])
def test_make_blocked_without_edns_has_no_opt(how: BlockAnswer) -> None:
    q = make_query("evil.test", "A", edns=False)
    resp = responses.make_blocked(q, how, REASON)
    assert wire.HEADER.unpack_from(resp)[5] == 0
    assert read(resp).edns == -1


def test_null_mode_answers_nodata_for_another_class() -> None:
    q = make_query("evil.test", "A")._replace(qclass=3)  # CHAOS
    msg = read(responses.make_blocked(q, NULL, REASON))
    assert msg.rcode() == dns.rcode.NOERROR and not msg.answer


def test_block_answer_build() -> None:
    assert BlockAnswer.build("nxdomain", 60, "192.0.2.1", None) == BlockAnswer("nxdomain", 60)
    assert SINK_V4.ipv4 == bytes([192, 168, 1, 250]) and not SINK_V4.has_ipv6
    assert SINK_V6.ipv6[-2:] == b"\x02\x50" and not SINK_V6.has_ipv4
    assert NULL.ipv4 == bytes(4) and NULL.ipv6 == bytes(16)


@pytest.mark.parametrize(("rd", "cd"), [(True, False), (False, True), (True, True)])
def test_response_flags_echo_rd_and_cd(rd: bool, cd: bool) -> None:
    q = make_query("a.test", rd=rd, cd=cd, ad=True)
    flags = responses.response_flags(q, wire.NXDOMAIN)
    assert flags & wire.QR and flags & wire.RA
    assert bool(flags & wire.RD) is rd
    assert bool(flags & wire.CD) is cd
    assert not flags & wire.AD  # our own answers are not validated data
    assert flags & wire.RCODE_MASK == wire.NXDOMAIN
    assert responses.response_flags(q, 0, aa=True) & wire.AA


def test_make_error_with_ede() -> None:
    q = make_query("a.test")
    msg = read(responses.make_error(q, wire.SERVFAIL, responses.EDE_NO_REACHABLE_AUTHORITY, "x"))
    assert msg.rcode() == dns.rcode.SERVFAIL
    assert ede(msg) == [(22, "x")]
    assert not msg.answer and not msg.authority


def test_make_error_without_ede() -> None:
    msg = read(responses.make_error(make_query("a.test"), wire.REFUSED))
    assert msg.rcode() == dns.rcode.REFUSED
    assert msg.edns == 0 and ede(msg) == []


def test_opt_for_echoes_do_and_advertises_our_payload() -> None:
    assert responses.opt_for(make_query("a.test", edns=False)) == b""
    opt = responses.opt_for(make_query("a.test", edns=4096, do=True))
    assert opt == wire.build_opt(1232, True)


def test_answer_rr_points_at_the_question_name() -> None:
    rr = responses.answer_rr(wire.T_A, 42, b"\x01\x02\x03\x04")
    assert rr == b"\xc0\x0c" + wire.RR_FIXED.pack(wire.T_A, wire.C_IN, 42, 4) + b"\x01\x02\x03\x04"


# --- fit(): truncation to the client's size limit -------------------------------------------------


def _big_answer(q_edns: bool | int, transport: Transport = Transport.UDP) -> tuple[bytes, Query]:
    q = make_query("big.test", "TXT", edns=q_edns, transport=transport, wire_name="Big.Test")
    txt = b"\x3f" + b"x" * 63
    rrs = b"".join(responses.answer_rr(wire.T_TXT, 300, txt) for _ in range(40))
    return responses.make_response(q, wire.NOERROR, rrs, 40), q


@pytest.mark.parametrize(("edns", "limit"), [(False, 512), (True, 1232), (800, 800)])
def test_fit_truncates_and_keeps_question_and_opt(edns: bool | int, limit: int) -> None:
    big, q = _big_answer(edns)
    assert len(big) > 2000
    out = responses.fit(q, big)
    assert len(out) <= limit
    r = parse(out)
    assert r.header.tc == 1
    assert r.header.id == 0x1234
    assert r.header.rcode == 0
    assert (r.header.a, r.header.auth) == (0, 0)
    assert str(r.q.qname) == "Big.Test."
    assert r.q.qtype == wire.T_TXT
    has_opt = edns is not False
    assert r.header.ar == (1 if has_opt else 0)
    if has_opt:
        assert out.endswith(wire.build_opt(1232, False))


def test_fit_leaves_an_answer_that_fits_alone() -> None:
    q = make_query("a.test", edns=False)
    small = responses.make_response(q, wire.NOERROR, responses.answer_rr(wire.T_A, 1, bytes(4)), 1)
    assert responses.fit(q, small) is small


def test_fit_never_truncates_over_tcp() -> None:
    big, q = _big_answer(False, Transport.TCP)
    assert responses.fit(q, big) is big


def test_fit_keeps_the_rcode() -> None:
    big, q = _big_answer(False)
    flags = wire.U16.unpack_from(big, 2)[0] | wire.NXDOMAIN
    big = big[:2] + wire.U16.pack(flags) + big[4:]
    out = responses.fit(q, big)
    assert parse(out).header.rcode == wire.NXDOMAIN and parse(out).header.tc == 1
