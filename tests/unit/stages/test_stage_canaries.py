"""The canary stage on its own: which names it answers, how, and the DDR records it builds."""

from __future__ import annotations

import dns.message
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dnslib import DNSRecord

from resolver.core.steps import CONTINUE, Reply, Verdict
from resolver.stages.canaries import CanaryStage, Endpoint, svcb_rdata
from tests.fakes import make_query


def reply(stage: CanaryStage, name: str, qtype: str = "A") -> Reply:
    step = stage.decide(make_query(name, qtype), 0.0)
    assert isinstance(step, Reply), name
    return step


def test_canaries_are_bypass_blocks_with_the_switches() -> None:
    stage = CanaryStage()
    r = reply(stage, "use-application-dns.net")
    assert (r.verdict, r.reason, r.category) == (Verdict.BLOCKED, "canary:firefox", "bypass")
    assert DNSRecord.parse(r.wire).header.rcode == 3  # NXDOMAIN
    assert reply(stage, "mask-h2.icloud.com", "HTTPS").reason == "canary:private-relay"
    assert stage.hits == {"canary:firefox": 1, "canary:private-relay": 1}
    # Only the names themselves: what is under them, or around them, goes on.
    for name in ("x.use-application-dns.net", "icloud.com", "mask-api.icloud.com"):
        assert stage.decide(make_query(name), 0.0) is CONTINUE
    off = CanaryStage(firefox=False, private_relay=False)
    assert off.decide(make_query("use-application-dns.net"), 0.0) is CONTINUE
    assert off.decide(make_query("mask.icloud.com"), 0.0) is CONTINUE


def test_resolver_arpa_nodata_until_advertised() -> None:
    stage = CanaryStage()
    for name in ("resolver.arpa", "_dns.resolver.arpa", "a.b.resolver.arpa"):
        r = reply(stage, name, "SVCB")
        rec = DNSRecord.parse(r.wire)
        assert (r.verdict, rec.header.rcode, rec.rr, rec.header.aa) == (Verdict.LOCAL, 0, [], 1)
    assert stage.decide(make_query("xresolver.arpa"), 0.0) is CONTINUE
    stage.advertise("box.test", [Endpoint("doh", 443), Endpoint("dot", 853)], ["192.0.2.5"])
    msg = dns.message.from_wire(reply(stage, "_dns.resolver.arpa", "SVCB").wire)
    texts = sorted(rd.to_text() for rd in msg.answer[0])
    assert texts == [
        '1 box.test. alpn="dot" port="853" ipv4hint="192.0.2.5"',
        '2 box.test. alpn="http/1.1" port="443" ipv4hint="192.0.2.5" dohpath="/dns-query{?dns}"',
    ]
    # Another type at the DDR name is still NODATA (RFC 9462 §6.4).
    assert DNSRecord.parse(reply(stage, "_dns.resolver.arpa", "A").wire).rr == []


def test_svcb_rdata_round_trips_through_dnspython() -> None:
    raw = svcb_rdata(1, "dns.example", Endpoint("doh", 8443), ["192.0.2.1", "2001:db8::1"])
    rd = dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.SVCB, raw, 0, len(raw))
    assert rd.to_text() == (
        '1 dns.example. alpn="http/1.1" port="8443" ipv4hint="192.0.2.1" '
        'ipv6hint="2001:db8::1" dohpath="/dns-query{?dns}"'
    )
