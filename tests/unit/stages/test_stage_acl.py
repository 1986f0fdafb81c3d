"""acl: private and loopback clients continue, everyone else is refused."""

from __future__ import annotations

import ipaddress

import dns.edns
import dns.message
import dns.rcode
import pytest

from resolver.config.schema import DEFAULT_ALLOWED
from resolver.core.steps import CONTINUE, Reply, Verdict
from resolver.stages.acl import AclStage
from tests.fakes import make_query


def default_acl() -> AclStage:
    return AclStage(ipaddress.ip_network(n) for n in DEFAULT_ALLOWED)


@pytest.mark.parametrize(
    ("client", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("172.31.255.254", True),
        ("172.32.0.1", False),  # just outside 172.16.0.0/12
        ("192.168.1.7", True),
        ("192.169.0.1", False),
        ("169.254.10.20", True),
        ("fd12:3456::7", True),
        ("fc00::1", True),
        ("fe80::1", True),
        ("fe80::1%eth0", True),  # scoped link-local as the socket reports it
        ("febf::1", True),  # last of fe80::/10
        ("fec0::1", False),
        ("8.8.8.8", False),
        ("100.64.0.1", False),  # CGNAT is not a LAN
        ("2001:db8::1", False),
        ("2a01:e0a::1", False),
        ("::ffff:192.168.1.7", True),  # IPv4-mapped: dual-stack socket, LAN client
        ("::ffff:127.0.0.1", True),
        ("::ffff:8.8.8.8", False),
        ("::ffff:c0a8:107", True),  # the same mapped address written in hex
    ],
)
def test_default_networks(client: str, allowed: bool) -> None:
    acl = default_acl()
    assert acl.allowed(client) is allowed
    step = acl.decide(make_query("example.test", client=client), 0.0)
    if allowed:
        assert step is CONTINUE
    else:
        assert isinstance(step, Reply)
        assert (step.verdict, step.reason) == (Verdict.REFUSED, "acl")


@pytest.mark.parametrize(
    "client", ["", "garbage", "192.168.1.300", "192.168.1", "::ffff:zz", "%eth0", "10.0.0.1/8"]
)
def test_garbage_client_string_is_refused(client: str) -> None:
    step = default_acl().decide(make_query("example.test", client=client), 0.0)
    assert isinstance(step, Reply) and step.verdict == Verdict.REFUSED


def test_refusal_is_refused_with_ede_prohibited_and_the_question() -> None:
    q = make_query("example.test", client="203.0.113.9", wire_name="Example.TEST", qid=0x6161)
    step = default_acl().decide(q, 0.0)
    assert isinstance(step, Reply)
    msg = dns.message.from_wire(step.wire)
    assert msg.rcode() == dns.rcode.REFUSED
    assert msg.id == 0x6161
    assert msg.question[0].name.to_text() == "Example.TEST."
    assert not msg.answer
    assert [int(o.code) for o in msg.options if isinstance(o, dns.edns.EDEOption)] == [18]


def test_custom_networks_only() -> None:
    acl = AclStage([ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32")])
    assert acl.allowed("10.9.9.9")
    assert acl.allowed("2001:db8::5")
    assert not acl.allowed("127.0.0.1")
    assert not acl.allowed("192.168.1.7")


def test_no_networks_refuses_everyone() -> None:
    acl = AclStage([])
    assert not acl.allowed("127.0.0.1")


def test_memo_is_bounded_and_answers_stay_right() -> None:
    acl = default_acl()
    for i in range(10_000):
        client = f"10.{i >> 8 & 255}.{i & 255}.1" if i % 2 else f"203.0.{i >> 8 & 255}.{i & 255}"
        assert acl.allowed(client) is bool(i % 2)
    assert len(acl.memo) <= 4096
    assert acl.allowed("192.168.1.7") and not acl.allowed("8.8.8.8")


def test_memo_remembers_a_decision() -> None:
    acl = default_acl()
    acl.allowed("192.168.1.7")
    acl.allowed("8.8.8.8")
    assert acl.memo == {"192.168.1.7": True, "8.8.8.8": False}


def test_name_policy_and_describe() -> None:
    acl = AclStage([ipaddress.ip_network("192.168.0.0/16")])
    assert (acl.name, acl.policy) == ("acl", False)
    assert acl.describe() == "allow 192.168.0.0/16"
