"""The hand-written wire reader (RFC 1035 §4): names, compression, record walk, OPT and EDE."""

from __future__ import annotations

import dns.edns
import dns.message
import pytest
from dnslib import EDNS0, RR, DNSHeader, DNSQuestion, DNSRecord

from resolver.core import wire
from resolver.core.wire import WireError

HDR = bytes(12)


def test_read_name_plain() -> None:
    buf = HDR + b"\x03www\x07Example\x04test\x00" + b"tail"
    labels, end = wire.read_name(buf, 12)
    assert labels == [b"www", b"Example", b"test"]
    assert buf[end:] == b"tail"


def test_read_name_root() -> None:
    assert wire.read_name(HDR + b"\x00", 12) == ([], 13)


def test_read_name_compressed_returns_offset_after_the_pointer() -> None:
    first = b"\x07example\x04test\x00"
    second_at = 12 + len(first)
    buf = HDR + first + b"\x03www\xc0\x0c" + b"tail"
    labels, end = wire.read_name(buf, second_at)
    assert labels == [b"www", b"example", b"test"]
    assert end == second_at + 6
    assert buf[end:] == b"tail"


def test_read_name_follows_a_chain_of_backward_pointers() -> None:
    # 12: test. / 18: example -> 12 / 28: www -> 18
    buf = HDR + b"\x04test\x00" + b"\x07example\xc0\x0c" + b"\x03www\xc0\x12"
    labels, end = wire.read_name(buf, 28)
    assert labels == [b"www", b"example", b"test"]
    assert end == len(buf)


@pytest.mark.parametrize(
    ("body", "start"),
    [
        pytest.param(b"\xc0\x0c", 12, id="points-to-itself"),
        pytest.param(b"\xc0\x0e\xc0\x0c", 14, id="two-pointers-in-a-loop"),
        pytest.param(b"\x01a\xc0\x0c", 12, id="label-then-pointer-to-own-start"),
    ],
)
def test_read_name_pointer_loop_is_refused(body: bytes, start: int) -> None:
    with pytest.raises(WireError, match="backwards"):
        wire.read_name(HDR + body, start)


def test_read_name_forward_pointer_is_refused() -> None:
    buf = HDR + b"\xc0\x0e" + b"\x01a\x00"
    with pytest.raises(WireError, match="backwards"):
        wire.read_name(buf, 12)


def _name_of(sizes: list[int]) -> bytes:
    return b"".join(bytes([n]) + b"a" * n for n in sizes) + b"\x00"


def test_read_name_accepts_exactly_255_octets() -> None:
    name = _name_of([63, 63, 63, 61])
    assert len(name) == 255
    labels, end = wire.read_name(HDR + name, 12)
    assert [len(x) for x in labels] == [63, 63, 63, 61]
    assert end == 12 + 255


_LONG_PREFIX = _name_of([49] * 4)  # 201 octets at offset 12


@pytest.mark.parametrize(
    ("buf", "start"),
    [
        pytest.param(HDR + _name_of([63, 63, 63, 62]), 12, id="256-octets"),
        pytest.param(HDR + _name_of([63] * 5), 12, id="five-long-labels"),
        # 60 octets, then a pointer to the 201 octets at offset 12: 261 in all
        pytest.param(
            HDR + _LONG_PREFIX + b"\x3b" + b"b" * 59 + b"\xc0\x0c",
            12 + len(_LONG_PREFIX),
            id="through-compression",
        ),
    ],
)
def test_read_name_longer_than_255_octets_is_refused(buf: bytes, start: int) -> None:
    with pytest.raises(WireError, match="255"):
        wire.read_name(buf, start)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"\x05ab", "label runs past the end", id="label-past-end"),
        pytest.param(b"\x01a", "name runs past the end", id="no-terminator"),
        pytest.param(b"", "name runs past the end", id="nothing"),
        pytest.param(b"\x01a\xc0", "truncated compression pointer", id="half-pointer"),
        pytest.param(b"\x41abc\x00", "unknown label type", id="label-type-01"),
        pytest.param(b"\x81abc\x00", "unknown label type", id="label-type-10"),
    ],
)
def test_read_name_bad_bytes(body: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        wire.read_name(HDR + body, 12)


@pytest.mark.parametrize(
    ("body", "end"),
    [
        (b"\x03www\x04test\x00rest", 10),
        (b"\x03www\xc0\x0crest", 6),
        (b"\x00rest", 1),
    ],
)
def test_skip_name(body: bytes, end: int) -> None:
    assert wire.skip_name(HDR + body, 12) == 12 + end


@pytest.mark.parametrize("body", [b"\x05ab", b"\x03www", b"\xc0", b"\x40a\x00"])
def test_skip_name_bad_bytes(body: bytes) -> None:
    with pytest.raises(WireError):
        wire.skip_name(HDR + body, 12)


@pytest.mark.parametrize(
    ("labels", "text"),
    [
        ([b"www", b"example", b"test"], "www.example.test"),
        ([b"WWW", b"ExAmPlE", b"TEST"], "www.example.test"),
        ([], ""),
        ([b"_dmarc", b"x-y", b"*"], "_dmarc.x-y.*"),
        ([b"a.b", b"c"], "a\\046b.c"),  # a dot inside a label is not a separator
        ([b"A.B"], "a\\046b"),  # lowered, then escaped
        ([b"\xc3\xa9t\xc3\xa9", b"fr"], "\\195\\169t\\195\\169.fr"),
        ([b"a b"], "a\\032b"),
        ([b"back\\slash"], "back\\092slash"),
        ([b"\x00"], "\\000"),
    ],
)
def test_labels_to_text(labels: list[bytes], text: str) -> None:
    assert wire.labels_to_text(labels) == text


def test_escaped_text_never_collides_with_a_plain_name() -> None:
    # "a.b" as one label and "a", "b" as two must not give the same text (list lookups use it)
    assert wire.labels_to_text([b"a.b"]) != wire.labels_to_text([b"a", b"b"])


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("www.example.test", b"\x03www\x07example\x04test\x00"),
        ("www.example.test.", b"\x03www\x07example\x04test\x00"),
        ("Mixed.Case", b"\x05Mixed\x04Case\x00"),
        ("", b"\x00"),
        (".", b"\x00"),
    ],
)
def test_name_to_wire(name: str, encoded: bytes) -> None:
    assert wire.name_to_wire(name) == encoded


@pytest.mark.parametrize(
    "name",
    [
        "a..b",
        ".a",
        "a" * 64 + ".test",
        ".".join(["a" * 63] * 4),  # 4 * 64 + 1 = 257 octets
    ],
)
def test_name_to_wire_refuses_bad_names(name: str) -> None:
    with pytest.raises(WireError):
        wire.name_to_wire(name)


def test_name_to_wire_round_trips_through_read_name() -> None:
    encoded = wire.name_to_wire("a.bc.def.example")
    labels, end = wire.read_name(HDR + encoded, 12)
    assert wire.labels_to_text(labels) == "a.bc.def.example"
    assert end == 12 + len(encoded)


def _packed_response() -> bytes:
    msg = DNSRecord(DNSHeader(id=7, qr=1, rd=1, ra=1), q=DNSQuestion("www.example.test", 1))
    msg.add_answer(*RR.fromZone("www.example.test. 300 IN CNAME example.test."))
    msg.add_answer(*RR.fromZone("example.test. 120 IN A 192.0.2.1"))
    msg.add_auth(*RR.fromZone("example.test. 3600 IN NS ns1.example.test."))
    msg.add_ar(*RR.fromZone("ns1.example.test. 900 IN A 192.0.2.53"))
    msg.add_ar(EDNS0(udp_len=4096, flags="do"))
    return bytes(msg.pack())


def test_walk_over_a_dnslib_packed_response() -> None:
    buf = _packed_response()
    qend, rrs = wire.walk(buf)
    assert qend == 12 + len(b"\x03www\x07example\x04test\x00") + 4
    assert [(r.section, r.rtype, r.rclass) for r in rrs] == [
        (0, wire.T_CNAME, wire.C_IN),
        (0, wire.T_A, wire.C_IN),
        (1, wire.T_NS, wire.C_IN),
        (2, wire.T_A, wire.C_IN),
        (2, wire.T_OPT, 4096),  # OPT's class is the payload size
    ]
    assert [r.ttl for r in rrs[:4]] == [300, 120, 3600, 900]
    for r in rrs:
        assert wire.U32.unpack_from(buf, r.ttl_at)[0] == r.ttl
        assert r.rdata_at == r.ttl_at + 6
    a = rrs[1]
    assert buf[a.rdata_at : a.rdata_at + a.rdlength] == bytes([192, 0, 2, 1])
    assert rrs[-1].rdata_at + rrs[-1].rdlength == len(buf)
    # the CNAME owner is compressed to the question name at offset 12
    assert wire.read_name(buf, rrs[0].start)[0] == [b"www", b"example", b"test"]
    target = wire.read_name(buf, rrs[0].rdata_at)[0]
    assert wire.labels_to_text(target) == "example.test"


@pytest.mark.parametrize("cut", [1, 4, 11, 20])
def test_walk_refuses_a_truncated_response(cut: int) -> None:
    buf = _packed_response()
    with pytest.raises(WireError):
        wire.walk(buf[:-cut])


def test_walk_refuses_counts_larger_than_the_message() -> None:
    buf = bytearray(_packed_response())
    buf[7] += 1  # one more answer than there is
    with pytest.raises(WireError):
        wire.walk(bytes(buf))


def test_walk_refuses_less_than_a_header() -> None:
    with pytest.raises(WireError, match="header"):
        wire.walk(bytes(11))


def test_walk_refuses_a_truncated_question() -> None:
    buf = wire.HEADER.pack(1, 0, 1, 0, 0, 0) + b"\x01a\x00\x00\x01"
    with pytest.raises(WireError, match="question"):
        wire.walk(buf)


@pytest.mark.parametrize(
    ("payload", "do", "ext_rcode", "expected_ttl"),
    [
        (1232, False, 0, 0),
        (1232, True, 0, 0x8000),
        (4096, True, 1, 0x01008000),
        (512, False, 1, 0x01000000),
    ],
)
def test_build_opt(payload: int, do: bool, ext_rcode: int, expected_ttl: int) -> None:
    opt = wire.build_opt(payload, do, ext_rcode)
    assert len(opt) == 11
    assert opt[0] == 0  # root owner
    assert wire.RR_FIXED.unpack_from(opt, 1) == (wire.T_OPT, payload, expected_ttl, 0)


def test_build_opt_carries_options() -> None:
    options = wire.ede_option(15, "x")
    opt = wire.build_opt(1232, False, 0, options)
    assert wire.RR_FIXED.unpack_from(opt, 1)[3] == len(options)
    assert opt[11:] == options


def test_ede_option_layout_rfc8914() -> None:
    option = wire.ede_option(15, "feed:urlhaus")
    assert option == (
        b"\x00\x0f"  # OPTION-CODE 15: Extended DNS Error
        + b"\x00\x0e"  # OPTION-LENGTH: 2 + 12
        + b"\x00\x0f"  # INFO-CODE 15: Blocked
        + b"feed:urlhaus"
    )


def test_ede_option_without_text() -> None:
    assert wire.ede_option(22, "") == b"\x00\x0f\x00\x02\x00\x16"


def test_ede_option_text_is_capped_at_200_octets() -> None:
    option = wire.ede_option(15, "x" * 300)
    assert wire.U16.unpack_from(option, 2)[0] == 2 + 200
    assert option[6:] == b"x" * 200


def test_ede_option_is_read_back_by_dnspython() -> None:
    msg = wire.HEADER.pack(1, wire.QR, 0, 0, 0, 1) + wire.build_opt(
        1232, False, 0, wire.ede_option(18, "acl")
    )
    parsed = dns.message.from_wire(msg)
    (ede,) = parsed.options
    assert isinstance(ede, dns.edns.EDEOption)
    assert (int(ede.code), ede.text) == (18, "acl")


def test_ede_option_text_cap_keeps_valid_utf8() -> None:
    option = wire.ede_option(15, "a" + "é" * 150)  # 301 octets: 200 would cut an "é" in two
    text = option[6:].decode("utf-8")  # strict: raises on a cut character
    assert text == "a" + "é" * 99
    assert wire.U16.unpack_from(option, 2)[0] == 2 + len(option[6:])
    # and a client parser accepts the whole message
    msg = wire.HEADER.pack(1, wire.QR, 0, 0, 0, 1) + wire.build_opt(1232, False, 0, option)
    assert dns.message.from_wire(msg).options[0].text == text
