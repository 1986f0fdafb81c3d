"""local_zone: the box's own records, localhost, conditional forwarding, private reverse zones."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from resolver.core.steps import CONTINUE, TRUSTED, Reply, Verdict
from resolver.stages.local_zone import LocalZoneStage, parse_record
from tests.fakes import make_query

RECORDS = (
    "nas.mairie.local 600 IN A 192.168.1.10",
    "printer.mairie.local A 192.168.1.20",
    "printer.mairie.local A 192.168.1.21",
    "intranet.mairie.local CNAME nas.mairie.local.",
    "nas.mairie.local MX 10 mail.mairie.local.",
    "mail.mairie.local AAAA fd00::25",
)


def stage(
    records: Sequence[str] = RECORDS,
    forwards: Sequence[tuple[str, bool]] = (),
    private_reverse: bool = True,
) -> LocalZoneStage:
    return LocalZoneStage([parse_record(r) for r in records], forwards, private_reverse)


def answer(step: object) -> dns.message.Message:
    assert isinstance(step, Reply), step
    return dns.message.from_wire(step.wire)


def rdata(msg: dns.message.Message) -> list[tuple[str, int, str]]:
    return [
        (dns.rdatatype.to_text(rrset.rdtype), rrset.ttl, rd.to_text())
        for rrset in msg.answer
        for rd in rrset
    ]


# --- own records ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "qtype", "expected"),
    [
        ("nas.mairie.local", "A", [("A", 600, "192.168.1.10")]),
        ("NAS.Mairie.LOCAL", "A", [("A", 600, "192.168.1.10")]),
        ("nas.mairie.local", "MX", [("MX", 300, "10 mail.mairie.local.")]),
        ("mail.mairie.local", "AAAA", [("AAAA", 300, "fd00::25")]),
        (
            "printer.mairie.local",
            "A",
            [("A", 300, "192.168.1.20"), ("A", 300, "192.168.1.21")],
        ),
        # a CNAME answers any type the name has no record of (RFC 1034 §3.6.2)
        ("intranet.mairie.local", "A", [("CNAME", 300, "nas.mairie.local.")]),
        ("intranet.mairie.local", "AAAA", [("CNAME", 300, "nas.mairie.local.")]),
        ("intranet.mairie.local", "CNAME", [("CNAME", 300, "nas.mairie.local.")]),
    ],
)
def test_own_records(name: str, qtype: str, expected: list[tuple[str, int, str]]) -> None:
    q = make_query(name.lower(), qtype, wire_name=name, qid=0x3131)
    step = stage().decide(q, 0.0)
    assert isinstance(step, Reply) and (step.verdict, step.reason) == (Verdict.LOCAL, "local")
    msg = answer(step)
    assert msg.rcode() == dns.rcode.NOERROR
    assert msg.flags & dns.flags.AA
    assert msg.id == 0x3131
    assert msg.question[0].name.to_text() == name + "."
    assert sorted(rdata(msg)) == sorted(expected)


@pytest.mark.parametrize(
    ("name", "qtype"),
    [
        ("nas.mairie.local", "AAAA"),
        ("nas.mairie.local", "TXT"),
        ("mail.mairie.local", "A"),
        ("printer.mairie.local", "CNAME"),  # asked for a CNAME it does not have
    ],
)
def test_nodata_for_another_type(name: str, qtype: str) -> None:
    step = stage().decide(make_query(name, qtype), 0.0)
    assert isinstance(step, Reply) and step.verdict == Verdict.LOCAL
    msg = answer(step)
    assert msg.rcode() == dns.rcode.NOERROR and not msg.answer
    assert msg.flags & dns.flags.AA


def test_any_gets_one_record() -> None:
    msg = answer(stage().decide(make_query("printer.mairie.local", "ANY"), 0.0))
    assert len(rdata(msg)) == 1


def test_other_class_gets_nodata() -> None:
    q = make_query("nas.mairie.local")._replace(qclass=4)  # HESIOD
    msg = answer(stage().decide(q, 0.0))
    assert msg.rcode() == dns.rcode.NOERROR and not msg.answer


def test_class_any_gets_the_record() -> None:
    q = make_query("nas.mairie.local")._replace(qclass=255)
    assert rdata(answer(stage().decide(q, 0.0))) == [("A", 600, "192.168.1.10")]


# --- CHAOS class (RFC 4892) -----------------------------------------------------------------------


def chaos(name: str, qtype: str = "TXT") -> object:
    q = make_query(name, qtype)._replace(qclass=3)
    return LocalZoneStage([], [], identity="box-1").decide(q, 0.0)


@pytest.mark.parametrize("name", ["id.server", "hostname.bind"])
@pytest.mark.parametrize("qtype", ["TXT", "ANY"])
def test_chaos_identity(name: str, qtype: str) -> None:
    step = chaos(name, qtype)
    assert isinstance(step, Reply) and (step.verdict, step.reason) == (Verdict.LOCAL, "id")
    msg = answer(step)
    assert msg.rcode() == dns.rcode.NOERROR
    assert [rd.to_text() for rrset in msg.answer for rd in rrset] == ['"box-1"']


@pytest.mark.parametrize(
    ("name", "qtype"), [("version.bind", "TXT"), ("id.server", "A"), ("nas.mairie.local", "A")]
)
def test_other_chaos_questions_are_refused(name: str, qtype: str) -> None:
    step = chaos(name, qtype)
    assert isinstance(step, Reply) and (step.verdict, step.reason) == (Verdict.REFUSED, "chaos")
    assert answer(step).rcode() == dns.rcode.REFUSED


def test_a_name_under_an_own_record_is_not_answered() -> None:
    assert stage().decide(make_query("x.nas.mairie.local"), 0.0) is CONTINUE


@pytest.mark.parametrize(
    "text",
    ["nas A", "nas.mairie.local A not-an-ip", "", "x BOGUS 1", "a A 1.2.3.4\nb A 1.2.3.5"],
)
def test_parse_record_refuses_bad_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_record(text)


def test_parse_record() -> None:
    r = parse_record("NAS.Mairie.Local. 120 IN A 192.168.1.10")
    assert (r.name, r.rtype, r.ttl, r.rdata) == ("nas.mairie.local", 1, 120, b"\xc0\xa8\x01\x0a")
    assert parse_record("nas.mairie.local A 192.168.1.10").ttl == 300


# --- localhost (RFC 6761 §6.3) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qtype", "expected"),
    [("A", [("A", 300, "127.0.0.1")]), ("AAAA", [("AAAA", 300, "::1")]), ("MX", [])],
)
def test_localhost(qtype: str, expected: list[tuple[str, int, str]]) -> None:
    msg = answer(stage(()).decide(make_query("localhost", qtype), 0.0))
    assert msg.rcode() == dns.rcode.NOERROR
    assert rdata(msg) == expected


@pytest.mark.parametrize("name", ["foo.localhost", "a.b.localhost", "LOCALHOST.localhost"])
def test_names_under_localhost_are_nxdomain(name: str) -> None:
    step = stage(()).decide(make_query(name.lower(), wire_name=name), 0.0)
    assert isinstance(step, Reply) and (step.verdict, step.reason) == (Verdict.LOCAL, "local")
    msg = answer(step)
    assert msg.rcode() == dns.rcode.NXDOMAIN and msg.flags & dns.flags.AA


@pytest.mark.parametrize("name", ["notlocalhost", "localhost.example.test", "localhost-x.test"])
def test_names_that_only_look_like_localhost_continue(name: str) -> None:
    assert stage(()).decide(make_query(name), 0.0) is CONTINUE


# --- conditional forwarding -----------------------------------------------------------------------


FORWARDS = [("mairie.local", False), ("_msdcs.mairie.local", True)]


@pytest.mark.parametrize("forwards", [FORWARDS, FORWARDS[::-1]], ids=["short-first", "long-first"])
@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("pc1.mairie.local", CONTINUE),  # judged by the policy stages, routed by upstream
        ("mairie.local", CONTINUE),
        ("_msdcs.mairie.local", TRUSTED),  # the operator trusts this zone
        ("_ldap._tcp.dc._msdcs.mairie.local", TRUSTED),
        ("PC1.MAIRIE.LOCAL", CONTINUE),
    ],
)
def test_forward_zones_are_judged_unless_trusted(
    forwards: list[tuple[str, bool]], name: str, step: object
) -> None:
    got = stage((), forwards).decide(make_query(name.lower(), "SRV", wire_name=name), 0.0)
    assert got is step


@pytest.mark.parametrize("name", ["notmairie.local", "mairie.localx", "local", "example.test"])
def test_names_outside_forward_zones_continue(name: str) -> None:
    assert stage((), FORWARDS).decide(make_query(name), 0.0) is CONTINUE


def test_forward_zone_names_are_normalised() -> None:
    st = stage((), [("Mairie.Local.", True)])
    assert st.decide(make_query("pc1.mairie.local"), 0.0) is TRUSTED


def test_own_record_beats_a_forward_zone() -> None:
    step = stage(RECORDS, FORWARDS).decide(make_query("nas.mairie.local"), 0.0)
    assert isinstance(step, Reply) and step.verdict == Verdict.LOCAL


# --- reverse zones (RFC 6303) ---------------------------------------------------------------------


def ptr(address: str) -> str:
    return ipaddress.ip_address(address).reverse_pointer


PRIVATE = [
    "10.0.0.5",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.5",
    "169.254.1.1",
    "127.0.0.1",
    "0.1.2.3",
    "fd00::1",
    "fe80::1",
    "febf::1",
    "::1",
]


@pytest.mark.parametrize("address", PRIVATE)
def test_private_reverse_is_nxdomain(address: str) -> None:
    step = stage(()).decide(make_query(ptr(address), "PTR"), 0.0)
    assert isinstance(step, Reply)
    assert (step.verdict, step.reason) == (Verdict.LOCAL, "private-reverse")
    msg = answer(step)
    assert msg.rcode() == dns.rcode.NXDOMAIN and msg.flags & dns.flags.AA


@pytest.mark.parametrize("zone", ["10.in-addr.arpa", "168.192.in-addr.arpa", "d.f.ip6.arpa"])
def test_private_reverse_zone_apex_is_nxdomain(zone: str) -> None:
    assert isinstance(stage(()).decide(make_query(zone, "SOA"), 0.0), Reply)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "172.32.0.1", "172.15.255.255", "192.169.1.1", "2001:db8::1", "fec0::1"]
)
def test_public_reverse_continues(address: str) -> None:
    assert stage(()).decide(make_query(ptr(address), "PTR"), 0.0) is CONTINUE


def test_forwarded_private_reverse_zone_is_left_to_the_upstream_stage() -> None:
    st = stage((), [("1.168.192.in-addr.arpa", False)])
    assert st.decide(make_query(ptr("192.168.1.21"), "PTR"), 0.0) is CONTINUE
    # the rest of 192.168/16 is still answered locally
    assert isinstance(st.decide(make_query(ptr("192.168.2.21"), "PTR"), 0.0), Reply)


def test_private_reverse_can_be_turned_off() -> None:
    st = stage((), private_reverse=False)
    assert st.decide(make_query(ptr("192.168.1.5"), "PTR"), 0.0) is CONTINUE


@pytest.mark.parametrize("name", ["example.test", "in-addr.arpa", "arpa", "1.1.1.1.in-addr.arpa"])
def test_other_names_continue(name: str) -> None:
    assert stage().decide(make_query(name), 0.0) is CONTINUE


def test_name_policy_and_describe() -> None:
    st = stage(RECORDS, FORWARDS)
    assert (st.name, st.policy) == ("local_zone", False)
    assert "_msdcs.mairie.local" in st.describe() and "mairie.local" in st.describe()
