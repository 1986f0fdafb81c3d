"""Upstream answers kept in wire form: TTL clamping, negative caching, rendering for an asker."""

from __future__ import annotations

import dns.flags
import dns.message
import pytest
from dnslib import CNAME, EDNS0, QTYPE, RCODE, RR, DNSHeader, DNSQuestion, DNSRecord

from resolver.core import wire
from resolver.core.cached_answer import (
    STALE_TTL,
    CachedAnswer,
    cname_targets,
    from_upstream,
    render,
    stale_copy,
)
from resolver.core.query import Query
from resolver.core.wire import WireError
from tests.fakes import SOA, make_query, parse, upstream_reply

NOW = 1_700_000_000.0
A_300 = "example.test. 300 IN A 192.0.2.1"


def store(
    q: Query, *records: str, min_ttl: int = 0, max_ttl: int = 86400, **kw: object
) -> CachedAnswer:
    return from_upstream(upstream_reply(q, records, **kw), NOW, min_ttl, max_ttl)  # type: ignore[arg-type]


def ttls(resp: bytes) -> list[int]:
    return [rr.ttl for rr in wire.walk(resp)[1] if rr.rtype != wire.T_OPT]


# --- from_upstream --------------------------------------------------------------------------------


def test_positive_answer_cached_for_its_smallest_ttl() -> None:
    q = make_query("example.test")
    entry = store(q, A_300, "example.test. 120 IN A 192.0.2.2")
    assert (entry.an, entry.ns, entry.ar) == (2, 0, 0)
    assert entry.ttls == (300, 120)
    assert entry.ttl == 120
    assert entry.rcode == wire.NOERROR
    assert entry.stored_at == NOW


@pytest.mark.parametrize(
    ("ttl", "min_ttl", "max_ttl", "kept"),
    [
        (300, 0, 86400, 300),
        (5, 30, 86400, 30),  # raised to min_ttl
        (604800, 0, 86400, 86400),  # lowered to max_ttl
        (0, 0, 86400, 0),
        (0, 10, 60, 10),
        (100, 100, 100, 100),
    ],
)
def test_ttl_clamping(ttl: int, min_ttl: int, max_ttl: int, kept: int) -> None:
    q = make_query("example.test")
    entry = store(q, f"example.test. {ttl} IN A 192.0.2.1", min_ttl=min_ttl, max_ttl=max_ttl)
    assert entry.ttls == (kept,)
    assert entry.ttl == kept
    assert ttls(render(entry, q, NOW)) == [kept]  # the stored bytes carry the clamped TTL


def test_ttl_with_the_top_bit_set_is_not_read_as_negative() -> None:
    q = make_query("example.test")
    resp = bytearray(upstream_reply(q, [A_300]))
    rr = wire.walk(bytes(resp))[1][0]
    wire.U32.pack_into(resp, rr.ttl_at, 0xFFFFFFFF)
    entry = from_upstream(bytes(resp), NOW, 0, 86400)
    assert 0 <= entry.ttls[0] <= 86400


@pytest.mark.parametrize("raw", [0x80000001, 0xFFFFFFFF])
def test_ttl_with_the_top_bit_set_means_zero(raw: int) -> None:
    q = make_query("example.test")
    resp = bytearray(upstream_reply(q, [A_300]))
    rr = wire.walk(bytes(resp))[1][0]
    wire.U32.pack_into(resp, rr.ttl_at, raw)
    entry = from_upstream(bytes(resp), NOW, 0, 86400)
    assert entry.ttls == (0,)


@pytest.mark.parametrize(
    ("rcode", "soa", "min_ttl", "cache_ttl"),
    [
        # SOA TTL 300, MINIMUM 60: the negation holds min(300, 60) = 60 s (RFC 2308 §5)
        (RCODE.NXDOMAIN, SOA, 0, 60),
        (RCODE.NOERROR, SOA, 0, 60),  # NODATA
        (RCODE.NXDOMAIN, "test. 30 IN SOA ns.test. admin.test. 1 3600 600 86400 60", 0, 30),
        (RCODE.NXDOMAIN, SOA, 120, 120),  # min_ttl applies to negative answers too
    ],
)
def test_negative_answer_ttl_from_soa(rcode: int, soa: str, min_ttl: int, cache_ttl: int) -> None:
    q = make_query("nothing.test")
    entry = from_upstream(upstream_reply(q, authority=[soa], rcode=rcode), NOW, min_ttl, 86400)
    assert entry.ttl == cache_ttl
    assert (entry.an, entry.ns) == (0, 1)
    assert entry.ttls == (cache_ttl,)  # the SOA is never kept by a client longer than by us
    assert entry.rcode == rcode


def test_negative_answer_caps_every_record_ttl() -> None:
    q = make_query("nothing.test")
    resp = upstream_reply(q, authority=[SOA, "test. 3600 IN NS ns.test."], rcode=RCODE.NXDOMAIN)
    entry = from_upstream(resp, NOW, 0, 86400)
    assert entry.ttls == (60, 60)


@pytest.mark.parametrize(
    ("rcode", "answer", "authority"),
    [
        pytest.param(RCODE.NXDOMAIN, [], [], id="nxdomain-without-soa"),
        pytest.param(RCODE.NOERROR, [], [], id="nodata-without-soa"),
        pytest.param(RCODE.NOERROR, [], ["test. 300 IN NS ns.test."], id="referral"),
        pytest.param(RCODE.SERVFAIL, [], [], id="servfail"),
        pytest.param(RCODE.SERVFAIL, [], [SOA], id="servfail-with-soa"),
        pytest.param(RCODE.REFUSED, [], [], id="refused"),
        pytest.param(RCODE.SERVFAIL, [A_300], [], id="servfail-with-answer"),
    ],
)
def test_uncacheable_answers_have_ttl_zero(
    rcode: int, answer: list[str], authority: list[str]
) -> None:
    q = make_query("example.test")
    entry = from_upstream(upstream_reply(q, answer, authority, rcode=rcode), NOW, 0, 86400)
    assert entry.ttl == 0
    assert entry.rcode == rcode


def test_upstream_opt_is_stripped_and_other_additional_records_kept() -> None:
    q = make_query("example.test")
    resp = upstream_reply(q, [A_300], additional=["ns.example.test. 900 IN A 192.0.2.53"])
    entry = from_upstream(resp, NOW, 0, 86400)
    assert entry.ar == 1
    assert b"\x00\x00\x29" not in entry.body  # no OPT record left
    assert entry.ttls == (300, 900)
    r = parse(render(entry, make_query("example.test", edns=False), NOW))
    assert r.header.ar == 1 and str(r.ar[0].rdata) == "192.0.2.53"


def test_record_after_opt_is_refused() -> None:
    msg = DNSRecord(DNSHeader(id=1, qr=1, ra=1), q=DNSQuestion("example.test", 1))
    msg.add_answer(*RR.fromZone(A_300))
    msg.add_ar(EDNS0(udp_len=4096))
    msg.add_ar(*RR.fromZone("ns.example.test. 900 IN A 192.0.2.53"))
    with pytest.raises(WireError, match="after OPT"):
        from_upstream(bytes(msg.pack()), NOW, 0, 86400)


@pytest.mark.parametrize("cut", [1, 6, 20])
def test_truncated_upstream_answer_is_refused(cut: int) -> None:
    resp = upstream_reply(make_query("example.test"), [A_300], [SOA])
    with pytest.raises(WireError):
        from_upstream(resp[:-cut], NOW, 0, 86400)


# --- render ---------------------------------------------------------------------------------------


def test_render_uses_the_askers_id_and_question_case() -> None:
    entry = store(make_query("example.test"), A_300)
    asker = make_query("example.test", wire_name="ExAmple.TEST", qid=0xBEEF)
    out = render(entry, asker, NOW)
    r = parse(out)
    assert r.header.id == 0xBEEF
    assert str(r.q.qname) == "ExAmple.TEST."
    # the answer's owner is compressed to the question, so it follows the asker's case too
    assert str(r.rr[0].rname).lower() == "example.test."
    assert str(r.rr[0].rdata) == "192.0.2.1"
    assert out[12 : 12 + len(asker.question)] == asker.question


@pytest.mark.parametrize(
    ("age", "expected"),
    [(0, [300, 60]), (0.9, [300, 60]), (30, [270, 30]), (59.99, [241, 1]), (100.4, [200, 0])],
)
def test_render_ages_ttls(age: float, expected: list[int]) -> None:
    q = make_query("example.test")
    entry = store(q, A_300, "example.test. 60 IN A 192.0.2.2")
    assert ttls(render(entry, q, NOW + age)) == expected
    assert entry.ttls == (300, 60)  # the entry itself never changes


@pytest.mark.parametrize(("age", "expected"), [(0, 300), (100.4, 200), (299.9, 1), (1000, 0)])
def test_render_ttl_never_goes_below_zero(age: float, expected: int) -> None:
    q = make_query("example.test")
    entry = store(q, A_300)
    assert ttls(render(entry, q, NOW + age)) == [expected]


def test_render_ages_negative_answers() -> None:
    q = make_query("nothing.test")
    entry = from_upstream(upstream_reply(q, authority=[SOA], rcode=RCODE.NXDOMAIN), NOW, 0, 86400)
    out = render(entry, q, NOW + 30)
    r = parse(out)
    assert r.header.rcode == RCODE.NXDOMAIN
    assert r.auth[0].ttl == 30


@pytest.mark.parametrize(
    ("do", "ad", "kept"),
    [(False, False, False), (True, False, True), (False, True, True), (True, True, True)],
)
def test_render_keeps_ad_only_when_the_asker_set_do_or_ad(do: bool, ad: bool, kept: bool) -> None:
    entry = store(make_query("example.test", do=True), A_300, ad=True)
    out = render(entry, make_query("example.test", do=do, ad=ad), NOW)
    assert bool(wire.HEADER.unpack_from(out)[1] & wire.AD) is kept


def test_render_never_sets_ad_the_upstream_did_not_set() -> None:
    entry = store(make_query("example.test", do=True), A_300, ad=False)
    out = render(entry, make_query("example.test", do=True, ad=True), NOW)
    assert not wire.HEADER.unpack_from(out)[1] & wire.AD


@pytest.mark.parametrize(("rd", "cd"), [(True, False), (False, False), (True, True), (False, True)])
def test_render_echoes_rd_and_cd(rd: bool, cd: bool) -> None:
    entry = store(make_query("example.test"), A_300)
    flags = wire.HEADER.unpack_from(render(entry, make_query("example.test", rd=rd, cd=cd), NOW))[1]
    assert bool(flags & wire.RD) is rd
    assert bool(flags & wire.CD) is cd
    assert flags & wire.QR and flags & wire.RA
    assert not flags & wire.AA


@pytest.mark.parametrize(("edns", "do"), [(False, False), (True, False), (4096, True)])
def test_render_opt_only_when_the_asker_used_edns(edns: bool | int, do: bool) -> None:
    entry = store(make_query("example.test"), A_300)  # the upstream did send an OPT
    out = render(entry, make_query("example.test", edns=edns, do=do), NOW)
    msg = dns.message.from_wire(out)
    if edns is False:
        assert msg.edns == -1
        assert wire.HEADER.unpack_from(out)[5] == 0
    else:
        assert msg.edns == 0
        assert msg.payload == 1232
        assert bool(msg.ednsflags & dns.flags.DO) is do
        assert out.endswith(wire.build_opt(1232, do))


def test_render_keeps_the_rcode() -> None:
    q = make_query("nothing.test")
    entry = from_upstream(upstream_reply(q, authority=[SOA], rcode=RCODE.NXDOMAIN), NOW, 0, 86400)
    assert render(entry, q, NOW)[3] & 0x0F == RCODE.NXDOMAIN


def test_render_is_read_by_dnspython() -> None:
    q = make_query("www.example.test", do=True)
    entry = store(
        q,
        "www.example.test. 300 IN CNAME example.test.",
        A_300,
        additional=["ns.example.test. 900 IN A 192.0.2.53"],
    )
    msg = dns.message.from_wire(render(entry, q, NOW + 10))
    assert [rrset.to_text() for rrset in msg.answer] == [
        "www.example.test. 290 IN CNAME example.test.",
        "example.test. 290 IN A 192.0.2.1",
    ]


# --- cname_targets --------------------------------------------------------------------------------


def test_cname_targets_of_a_chain() -> None:
    q = make_query("alias.test")
    entry = store(
        q,
        "alias.test. 300 IN CNAME Step.Two.test.",
        "step.two.test. 300 IN CNAME tracker.evil.test.",
        "tracker.evil.test. 300 IN A 192.0.2.66",
    )
    assert cname_targets(entry, q.question) == ["step.two.test", "tracker.evil.test"]


def test_cname_targets_read_with_the_askers_question() -> None:
    q = make_query("alias.test")
    entry = store(q, "alias.test. 300 IN CNAME alias.evil.test.")  # compressed against the qname
    asker = make_query("alias.test", wire_name="ALIAS.Test")
    assert cname_targets(entry, asker.question) == ["alias.evil.test"]


def test_cname_targets_include_dname() -> None:
    q = make_query("www.old.test")
    msg = DNSRecord(DNSHeader(id=1, qr=1, ra=1), q=DNSQuestion("www.old.test", 1))
    msg.add_answer(RR("old.test", QTYPE.DNAME, rdata=CNAME("new.evil.test"), ttl=300))
    entry = from_upstream(bytes(msg.pack()), NOW, 0, 86400)
    assert cname_targets(entry, q.question) == ["new.evil.test"]


def test_cname_targets_only_from_the_answer_section() -> None:
    q = make_query("example.test")
    entry = store(q, A_300, additional=["x.test. 300 IN CNAME evil.test."])
    assert entry.cnames == ()
    assert cname_targets(entry, q.question) == []


def test_cname_targets_empty_without_cname() -> None:
    q = make_query("example.test")
    assert cname_targets(store(q, A_300), q.question) == []


# --- stale_copy (RFC 8767) ------------------------------------------------------------------------


def test_stale_copy_serves_every_record_for_30_seconds() -> None:
    q = make_query("example.test")
    entry = store(q, A_300, "example.test. 60 IN A 192.0.2.2")
    later = NOW + 1000
    stale = stale_copy(entry, later)
    assert stale.ttls == (STALE_TTL, STALE_TTL) and STALE_TTL == 30
    assert (stale.stored_at, stale.ttl) == (later, 30)
    assert ttls(render(stale, q, later)) == [30, 30]
    assert ttls(render(stale, q, later + 10)) == [20, 20]
    assert entry.ttls == (300, 60)  # the original is untouched
    assert ttls(render(entry, q, NOW)) == [300, 60]
