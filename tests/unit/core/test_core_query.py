"""Parsing a client's query: what the chain reads, the size limit, and the error replies."""

from __future__ import annotations

import dns.message
import dns.rcode
import pytest
from dnslib import EDNS0, RR, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from resolver.core import wire
from resolver.core.query import MalformedQuery, Transport, from_wire
from tests.fakes import make_query, parse, query_wire

CLIENT = "192.168.1.7"


def _with_flags(buf: bytes, set_bits: int = 0, clear_bits: int = 0) -> bytes:
    flags = (wire.U16.unpack_from(buf, 2)[0] | set_bits) & ~clear_bits
    return buf[:2] + wire.U16.pack(flags) + buf[4:]


def _with_count(buf: bytes, index: int, value: int) -> bytes:
    """Overwrite one of the four section counts (0 = QDCOUNT)."""
    at = 4 + 2 * index
    return buf[:at] + wire.U16.pack(value) + buf[at + 2 :]


def _malformed(buf: bytes, transport: Transport = Transport.UDP) -> MalformedQuery:
    with pytest.raises(MalformedQuery) as info:
        from_wire(buf, CLIENT, transport)
    return info.value


# --- what a good query gives ----------------------------------------------------------------------


def test_qname_is_lower_cased_and_question_bytes_keep_the_case() -> None:
    q = make_query("www.example.test", wire_name="WwW.ExAmple.TEST")
    assert q.qname == "www.example.test"
    assert q.question == b"\x03WwW\x07ExAmple\x04TEST\x00" + b"\x00\x01\x00\x01"


def test_header_fields_and_client_are_kept() -> None:
    q = make_query("a.test", qid=0xBEEF, rd=False, client="fd00::7", transport=Transport.TCP)
    assert q.id == 0xBEEF
    assert not q.flags & wire.RD
    assert q.client == "fd00::7"
    assert q.transport is Transport.TCP
    assert make_query("a.test").flags & wire.RD


@pytest.mark.parametrize(
    ("qtype", "code"), [("A", 1), ("AAAA", 28), ("MX", 15), ("PTR", 12), (65, 65), (255, 255)]
)
def test_qtype_and_qclass(qtype: str | int, code: int) -> None:
    q = make_query("a.test", qtype)
    assert (q.qtype, q.qclass) == (code, wire.C_IN)


def test_root_name_is_the_empty_string() -> None:
    assert make_query(".", "NS").qname == ""


def test_name_with_a_dot_inside_a_label_is_escaped() -> None:
    msg = DNSRecord(DNSHeader(id=1, rd=1), q=DNSQuestion(DNSLabel((b"evil.test", b"x")), 1))
    q = from_wire(bytes(msg.pack()), CLIENT, Transport.UDP)
    assert q.qname == "evil\\046test.x"  # never "evil.test.x": it would match list entries


def test_labels_of_any_octets_are_a_query() -> None:
    # RFC 2181 §11: a label is any octets. Found by hypothesis: \xe0\xa0 is not UTF-8 alone.
    head = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    question = b"\x02\xe0\xa0\x01\x80\x04Test\x00\x00\x01\x00\x01"
    q = from_wire(head + question, CLIENT, Transport.UDP)
    assert q.qname == "\\224\\160.\\128.test"
    assert q.question == question  # echoed as asked, case kept
    assert (q.qtype, q.qclass) == (1, 1)


@pytest.mark.parametrize(
    ("edns", "do", "payload"),
    [(True, False, 1232), (4096, True, 4096), (512, True, 512), (100, False, 100)],
)
def test_edns_fields(edns: int, do: bool, payload: int) -> None:
    q = make_query("a.test", edns=edns, do=do)
    assert q.edns is not None
    assert (q.edns.payload, q.edns.version, q.edns.do, q.edns.ext_rcode) == (payload, 0, do, 0)
    assert q.do is do


def test_no_edns() -> None:
    q = make_query("a.test", edns=False)
    assert q.edns is None
    assert q.do is False


@pytest.mark.parametrize(
    ("transport", "edns", "limit"),
    [
        (Transport.UDP, False, 512),  # RFC 1035 §4.2.1
        (Transport.UDP, 4096, 1232),  # min(client, ours)
        (Transport.UDP, 1232, 1232),
        (Transport.UDP, 1000, 1000),
        (Transport.UDP, 512, 512),
        (Transport.UDP, 100, 512),  # RFC 6891 §6.2.5: below 512 counts as 512
        (Transport.UDP, 0, 512),
        (Transport.TCP, False, 65535),
        (Transport.TCP, 4096, 65535),
    ],
)
def test_size_limit(transport: Transport, edns: bool | int, limit: int) -> None:
    assert make_query("a.test", edns=edns, transport=transport).size_limit == limit


def test_size_limit_follows_the_server_payload() -> None:
    buf = query_wire("a.test", edns=4096)
    assert from_wire(buf, CLIENT, Transport.UDP, server_payload=4000).size_limit == 4000
    assert from_wire(buf, CLIENT, Transport.UDP, server_payload=600).size_limit == 600


def test_records_in_answer_and_authority_are_skipped() -> None:
    msg = DNSRecord(DNSHeader(id=1, rd=1), q=DNSQuestion("a.test", 1))
    msg.add_answer(*RR.fromZone("a.test. 60 IN A 192.0.2.1"))
    msg.add_ar(EDNS0(udp_len=2048, flags="do"))
    q = from_wire(bytes(msg.pack()), CLIENT, Transport.UDP)
    assert q.edns is not None and q.edns.payload == 2048 and q.do


# --- malformed queries and what they carry --------------------------------------------------------


@pytest.mark.parametrize("buf", [b"", b"\x12", bytes(11)])
def test_shorter_than_a_header_gets_no_answer(buf: bytes) -> None:
    assert _malformed(buf).response is None


@pytest.mark.parametrize("edns", [True, False])
def test_a_response_is_never_answered(edns: bool) -> None:
    buf = _with_flags(query_wire("a.test", edns=edns), set_bits=wire.QR)
    assert _malformed(buf).response is None


def _check_error_header(resp: bytes, qid: int, rcode: int, qd: int) -> DNSRecord:
    r = parse(resp)
    assert r.header.id == qid
    assert r.header.qr == 1 and r.header.ra == 1 and r.header.rd == 1
    assert r.header.rcode == rcode
    assert len(r.questions) == qd
    assert not r.rr and not r.auth
    return r


@pytest.mark.parametrize("qd", [0, 2])
def test_question_count_not_one_is_formerr(qd: int) -> None:
    buf = _with_count(query_wire("a.test", edns=False, qid=0x4321), 0, qd)
    if qd == 2:
        buf += buf[12:]  # really two questions
    exc = _malformed(buf)
    assert exc.response is not None
    _check_error_header(exc.response, 0x4321, wire.FORMERR, 0)
    assert len(exc.response) == 12


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(b"\x01a\x00\x00\x01", id="no-qclass"),
        pytest.param(b"\x01a\x00", id="no-qtype"),
        pytest.param(b"\x3fabc", id="label-past-end"),
        pytest.param(b"\xc0\x0c\x00\x01\x00\x01", id="pointer-loop"),
        pytest.param(b"", id="nothing"),
    ],
)
def test_truncated_or_broken_question_is_formerr(tail: bytes) -> None:
    buf = wire.HEADER.pack(0x5555, wire.RD, 1, 0, 0, 0) + tail
    exc = _malformed(buf)
    assert exc.response is not None
    _check_error_header(exc.response, 0x5555, wire.FORMERR, 0)


def test_two_opt_records_is_formerr_with_the_question() -> None:
    msg = DNSRecord(DNSHeader(id=0x77, rd=1), q=DNSQuestion("Two.Opt.test", 1))
    msg.add_ar(EDNS0())
    msg.add_ar(EDNS0())
    exc = _malformed(bytes(msg.pack()))
    assert exc.response is not None
    r = _check_error_header(exc.response, 0x77, wire.FORMERR, 1)
    assert str(r.q.qname) == "Two.Opt.test."
    # The asker speaks EDNS, so the error carries our OPT (RFC 6891 §7).
    assert [rr.rtype for rr in r.ar] == [wire.T_OPT]


def test_opt_not_at_the_root_is_formerr() -> None:
    buf = query_wire("a.test", edns=False)
    buf = _with_count(buf, 3, 1) + b"\x01x\x00" + wire.RR_FIXED.pack(wire.T_OPT, 1232, 0, 0)
    exc = _malformed(buf)
    assert exc.response is not None
    _check_error_header(exc.response, 0x1234, wire.FORMERR, 1)


def _opt_of(resp: bytes) -> wire.RRInfo | None:
    """The OPT record of a reply we built, or None."""
    _, rrs = wire.walk(resp)
    opts = [rr for rr in rrs if rr.rtype == wire.T_OPT]
    assert len(opts) <= 1 and all(rr.section == 2 for rr in opts)
    return opts[0] if opts else None


def _with_opt(rdata: bytes, *, do: bool = False, qid: int = 0x1234) -> bytes:
    """A query for Opt.Test whose OPT record carries ``rdata`` as its options."""
    buf = _with_count(query_wire("Opt.Test", edns=False, qid=qid), 3, 1)
    ttl = 0x8000 if do else 0
    return buf + b"\x00" + wire.RR_FIXED.pack(wire.T_OPT, 4096, ttl, len(rdata)) + rdata


_COOKIE = b"\x00\x0a\x00\x08" + bytes(range(8))  # a client cookie (RFC 7873)


@pytest.mark.parametrize(
    "rdata",
    [
        pytest.param(b"", id="no-options"),
        pytest.param(_COOKIE, id="cookie"),
        pytest.param(_COOKIE + b"\xfd\xe9\x00\x00", id="cookie-and-empty-option"),
    ],
)
def test_well_formed_edns_options_are_read(rdata: bytes) -> None:
    q = from_wire(_with_opt(rdata), CLIENT, Transport.UDP)
    assert q.edns is not None and q.edns.payload == 4096 and q.qname == "opt.test"


@pytest.mark.parametrize(
    "rdata",
    [
        pytest.param(b"\x00\x0a\x00\x14" + bytes(8), id="option-longer-than-the-record"),
        pytest.param(b"\x00\x0a\x00\x04" + bytes(7), id="three-bytes-left-after-an-option"),
        pytest.param(_COOKIE + b"\x00", id="one-byte-past-the-last-option"),
        pytest.param(b"\x00\x0a\x00", id="option-header-cut"),
    ],
)
@pytest.mark.parametrize("do", [False, True])
def test_edns_option_with_a_bad_length_is_formerr_with_an_opt(rdata: bytes, do: bool) -> None:
    """RFC 6891 §6.1.2 lays options end to end in the RDATA; one that does not fit is a
    malformed message (FORMERR), and the asker, who spoke EDNS, gets our OPT (§7)."""
    exc = _malformed(_with_opt(rdata, do=do, qid=0x0B0B))
    assert exc.response is not None
    r = _check_error_header(exc.response, 0x0B0B, wire.FORMERR, 1)
    assert str(r.q.qname) == "Opt.Test."
    opt = _opt_of(exc.response)
    assert opt is not None and opt.rdlength == 0 and bool(opt.ttl & 0x8000) is do


def test_formerr_without_an_opt_for_a_query_without_one() -> None:
    buf = _with_count(query_wire("a.test", edns=False), 3, 1) + b"\x01x\x00\x00\x01"
    exc = _malformed(buf)
    assert exc.response is not None and _opt_of(exc.response) is None


@pytest.mark.parametrize("qd", [0, 2])
@pytest.mark.parametrize("do", [False, True])
def test_question_count_not_one_with_edns_is_formerr_with_an_opt(qd: int, do: bool) -> None:
    single = query_wire("a.test", edns=False, qid=0x4321)
    question = single[12:]
    opt = b"\x00" + wire.RR_FIXED.pack(wire.T_OPT, 1232, 0x8000 if do else 0, 0)
    buf = wire.HEADER.pack(0x4321, wire.RD, qd, 0, 0, 1) + question * qd + opt
    exc = _malformed(buf)
    assert exc.response is not None
    _check_error_header(exc.response, 0x4321, wire.FORMERR, 0)
    got = _opt_of(exc.response)
    assert got is not None and bool(got.ttl & 0x8000) is do


def test_unreadable_question_gives_formerr_without_an_opt() -> None:
    # Nothing after a broken question can be found, the OPT included.
    buf = wire.HEADER.pack(0x5555, wire.RD, 1, 0, 0, 1) + b"\x3fabc"
    exc = _malformed(buf)
    assert exc.response is not None and _opt_of(exc.response) is None


@pytest.mark.parametrize("cut", [1, 5, 10])
def test_truncated_additional_record_is_formerr(cut: int) -> None:
    exc = _malformed(query_wire("a.test", edns=True)[:-cut])
    assert exc.response is not None
    _check_error_header(exc.response, 0x1234, wire.FORMERR, 1)


@pytest.mark.parametrize(("opcode", "name"), [(4, "NOTIFY"), (5, "UPDATE"), (2, "STATUS")])
def test_other_opcodes_are_notimp_with_the_question_echoed(opcode: int, name: str) -> None:
    buf = _with_flags(query_wire("Zone.Test", "SOA", edns=False), set_bits=opcode << 11)
    exc = _malformed(buf)
    assert exc.response is not None
    r = _check_error_header(exc.response, 0x1234, wire.NOTIMP, 1)
    assert r.header.opcode == opcode, name
    assert str(r.q.qname) == "Zone.Test."
    assert r.q.qtype == 6


@pytest.mark.parametrize("opcode", [4, 5])
@pytest.mark.parametrize("do", [False, True])
def test_notimp_to_an_edns_query_carries_an_opt(opcode: int, do: bool) -> None:
    """dig says "retry with +noedns" when an EDNS query gets an answer without OPT."""
    buf = _with_flags(query_wire("Zone.Test", "SOA", do=do), set_bits=opcode << 11)
    exc = _malformed(buf)
    assert exc.response is not None
    r = _check_error_header(exc.response, 0x1234, wire.NOTIMP, 1)
    assert r.header.opcode == opcode
    opt = _opt_of(exc.response)
    assert opt is not None and opt.ttl >> 16 == 0 and bool(opt.ttl & 0x8000) is do
    parsed = dns.message.from_wire(
        exc.response[:2] + bytes([exc.response[2] & 0x87]) + exc.response[3:]
    )
    assert parsed.edns == 0


def test_notimp_without_edns_has_no_opt() -> None:
    buf = _with_flags(query_wire("Zone.Test", "SOA", edns=False), set_bits=4 << 11)
    exc = _malformed(buf)
    assert exc.response is not None and _opt_of(exc.response) is None


def test_notimp_without_a_question() -> None:
    buf = _with_count(_with_flags(query_wire("a.test", edns=False), set_bits=4 << 11), 0, 0)
    exc = _malformed(buf[:12])
    assert exc.response is not None
    _check_error_header(exc.response, 0x1234, wire.NOTIMP, 0)


@pytest.mark.parametrize("do", [False, True])
def test_edns_version_1_is_badvers(do: bool) -> None:
    exc = _malformed(query_wire("Bad.Vers.test", edns=4096, do=do, version=1, qid=0x99))
    resp = exc.response
    assert resp is not None
    # BADVERS is 16: header RCODE 0, the upper 8 bits in the OPT's extended RCODE (RFC 6891 §6.1.3)
    assert wire.HEADER.unpack_from(resp)[1] & wire.RCODE_MASK == 0
    _, rrs = wire.walk(resp)
    (opt,) = rrs
    assert opt.rtype == wire.T_OPT and opt.section == 2
    assert opt.ttl >> 24 == 1
    assert (opt.ttl >> 16) & 0xFF == 0  # we answer with the version we speak
    assert bool(opt.ttl & 0x8000) is do
    assert opt.rclass == 1232
    parsed = dns.message.from_wire(resp)
    assert parsed.rcode() == dns.rcode.BADVERS
    assert parsed.id == 0x99
    assert parsed.question[0].name.to_text() == "Bad.Vers.test."


# --- the cache key --------------------------------------------------------------------------------


def test_cache_key_ignores_case() -> None:
    a = make_query("example.test", wire_name="ExAmPlE.TeSt")
    b = make_query("example.test")
    assert a.question != b.question
    assert a.cache_key == b.cache_key


def test_cache_key_ignores_id_client_and_transport() -> None:
    a = make_query("example.test", qid=1, client="10.0.0.1")
    b = make_query("example.test", qid=2, client="10.0.0.2", transport=Transport.TCP)
    assert a.cache_key == b.cache_key


def test_cache_key_depends_on_the_do_bit() -> None:
    assert make_query("a.test", do=True).cache_key != make_query("a.test", do=False).cache_key
    # no EDNS and EDNS without DO ask the same thing
    assert make_query("a.test", edns=False).cache_key == make_query("a.test").cache_key


def test_cache_key_depends_on_type() -> None:
    assert make_query("a.test", "A").cache_key != make_query("a.test", "AAAA").cache_key


def test_cache_key_does_not_lower_case_the_qtype() -> None:
    # 65 (HTTPS) is 0x0041, whose low byte is an ASCII "A": lowering it would make 0x0061 (97)
    https = make_query("a.test", 65)
    assert https.cache_key.endswith(b"\x00\x41\x00\x01\x00")
    assert https.cache_key != make_query("a.test", 97).cache_key
    assert make_query("A.TEST", 65).cache_key == https.cache_key


def test_cache_key_depends_on_the_cd_bit() -> None:
    # an answer fetched with checking disabled must not reach clients relying on validation
    keys = {
        make_query("a.test", do=do, cd=cd).cache_key for do in (False, True) for cd in (False, True)
    }
    assert len(keys) == 4
