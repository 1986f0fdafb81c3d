"""upstream: always forwards; and the pure helpers that build our query and match the reply."""

from __future__ import annotations

import pytest
from dnslib import DNSRecord

from resolver.core import wire
from resolver.core.query import Query
from resolver.core.steps import Forward, Upstream
from resolver.net.upstream_client import build_upstream_query, matches
from resolver.stages.upstream import UpstreamStage
from tests.fakes import make_query

SERVERS = (Upstream("9.9.9.9"), Upstream("2620:fe::fe", 5353))


@pytest.mark.parametrize(
    "q",
    [
        make_query("example.test"),
        make_query("evil.test", "AAAA"),
        make_query("", "NS"),
        make_query("x.test", client="8.8.8.8"),
    ],
)
def test_always_forwards_to_the_default_servers(q: Query) -> None:
    st = UpstreamStage(SERVERS)
    step = st.decide(q, 0.0)
    assert step == Forward(SERVERS)
    assert isinstance(step, Forward) and step.zone is None


def test_name_policy_and_describe() -> None:
    st = UpstreamStage(SERVERS)
    assert (st.name, st.policy) == ("upstream", False)
    assert st.describe() == "9.9.9.9:53, [2620:fe::fe]:5353"


@pytest.mark.parametrize(
    ("up", "text"),
    [(Upstream("1.1.1.2"), "1.1.1.2:53"), (Upstream("::1", 53), "[::1]:53")],
)
def test_upstream_str(up: Upstream, text: str) -> None:
    assert str(up) == text


# --- build_upstream_query -------------------------------------------------------------------------


def test_upstream_query_layout() -> None:
    q = make_query("www.example.test", "AAAA", wire_name="WwW.Example.TEST", qid=0x1111, do=True)
    sent = build_upstream_query(q, 0xABCD)
    qid, flags, qd, an, ns, ar = wire.HEADER.unpack_from(sent)
    assert (qid, qd, an, ns, ar) == (0xABCD, 1, 0, 0, 1)
    assert flags == wire.RD | wire.AD
    # The client's case goes upstream as it was sent (issue 14: 0x20, dns2tcp, iodine).
    assert sent[12:-11] == b"\x03WwW\x07Example\x04TEST\x00\x00\x1c\x00\x01"
    assert sent[-11:] == wire.build_opt(1232, True)


@pytest.mark.parametrize(
    ("rd", "cd", "do", "edns"),
    [(True, False, False, True), (False, False, False, False), (True, True, True, 4096)],
)
def test_upstream_query_flags(rd: bool, cd: bool, do: bool, edns: bool | int) -> None:
    q = make_query("a.test", rd=rd, cd=cd, do=do, edns=edns, ad=True)
    sent = build_upstream_query(q, 1, payload=1400)
    flags = wire.HEADER.unpack_from(sent)[1]
    assert flags & wire.RD  # we always want recursion
    assert bool(flags & wire.CD) is cd
    assert flags & wire.AD  # always asked for (RFC 6840 §5.7): the cache serves any asker
    assert sent[-11:] == wire.build_opt(1400, do)  # EDNS upstream even if the client had none


def test_upstream_query_keeps_qtype_bytes() -> None:
    sent = build_upstream_query(make_query("a.test", 65), 1)
    assert sent[-15:-11] == b"\x00\x41\x00\x01"


def test_upstream_query_is_a_valid_dns_message() -> None:
    sent = build_upstream_query(make_query("a.b.test", "MX"), 0x2222)
    parsed = DNSRecord.parse(sent)
    assert str(parsed.q.qname) == "a.b.test." and parsed.q.qtype == 15


# --- matches --------------------------------------------------------------------------------------


def reply_to(sent: bytes, *, qname: str | None = None, qid: int | None = None) -> bytes:
    req = DNSRecord.parse(sent)
    r = req.reply()
    if qname is not None:
        r.q.qname = qname
    if qid is not None:
        r.header.id = qid
    return bytes(r.pack())


def sent_for(name: str = "example.test", qtype: str | int = "A") -> bytes:
    return build_upstream_query(make_query(name, qtype), 0x5A5A)


def test_matching_reply() -> None:
    sent = sent_for()
    assert matches(reply_to(sent), sent)


def test_reply_with_0x20_case_matches() -> None:
    sent = sent_for()
    assert matches(reply_to(sent, qname="ExAmPlE.TeSt"), sent)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda s: reply_to(s, qid=0x5A5B), id="other-id"),
        pytest.param(lambda s: reply_to(s, qname="other.test"), id="other-name"),
        pytest.param(lambda s: reply_to(s, qname="example.tesu"), id="one-letter-off"),
        pytest.param(lambda s: s, id="our-own-query-echoed"),  # QR not set
        pytest.param(lambda s: reply_to(s)[:11], id="shorter-than-header"),
        pytest.param(lambda s: reply_to(s)[:4] + b"\x00\x00" + reply_to(s)[6:], id="no-question"),
        pytest.param(lambda s: reply_to(s)[:4] + b"\x00\x02" + reply_to(s)[6:], id="two-questions"),
        pytest.param(lambda s: b"", id="empty"),
    ],
)
def test_non_matching_replies(tamper: object) -> None:
    sent = sent_for()
    assert not matches(tamper(sent), sent)  # type: ignore[operator]


def test_reply_for_another_type_does_not_match() -> None:
    sent = sent_for("example.test", "A")
    other = sent_for("example.test", "AAAA")
    same_id = sent[:2] + reply_to(other)[2:]
    assert not matches(same_id, sent)


@pytest.mark.parametrize("qtype", ["A", "AAAA", "MX", "TXT", "SRV", 64])
def test_reply_matches_for_common_types(qtype: str | int) -> None:
    sent = sent_for("example.test", qtype)
    assert matches(reply_to(sent), sent)


@pytest.mark.parametrize("qtype", [65, 90])
def test_reply_matches_for_qtypes_that_look_like_upper_case_letters(qtype: int) -> None:
    sent = sent_for("example.test", qtype)
    assert matches(reply_to(sent), sent)
