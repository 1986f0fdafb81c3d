"""rebinding: private addresses behind public names dropped; local names and public ones kept."""

from __future__ import annotations

import dns.message
import pytest

from resolver.config.rebinding import PRIVATE_NETWORKS
from resolver.core.cached_answer import from_upstream
from resolver.core.steps import CONTINUE, Forward, Reply, Upstream, Verdict
from resolver.stages.rebinding import RebindingStage
from tests.fakes import make_query, upstream_reply

DEFAULT = Forward((Upstream("192.0.2.53"),))
ZONE = Forward((Upstream("192.168.1.2"),), zone="mairie.test")


def judge(name: str, records: list[str], qtype: str = "A", fwd: Forward = DEFAULT) -> Reply | None:
    stage = RebindingStage(["nas.example.org", "mairie.test"], PRIVATE_NETWORKS)
    q = make_query(name, qtype)
    assert stage.decide(q, 0.0) is CONTINUE
    entry = from_upstream(upstream_reply(q, records), 0.0, 0, 86400)
    return stage.on_answer(q, fwd, entry, 0.0)


@pytest.mark.parametrize(
    ("rdata", "qtype"),
    [
        ("A 192.168.1.1", "A"),
        ("A 10.20.30.40", "A"),
        ("A 172.31.255.255", "A"),
        ("A 127.0.0.1", "A"),
        ("A 0.0.0.0", "A"),
        ("A 169.254.169.254", "A"),  # a cloud's metadata service
        ("AAAA ::1", "AAAA"),
        ("AAAA fd00::1", "AAAA"),
        ("AAAA fe80::1", "AAAA"),
        ("AAAA ::ffff:c0a8:101", "AAAA"),  # IPv4-mapped 192.168.1.1
    ],
)
def test_private_address_for_a_public_name_is_dropped(rdata: str, qtype: str) -> None:
    out = judge("evil.example.com", [f"evil.example.com. 60 IN {rdata}"], qtype)
    assert out is not None
    assert (out.verdict, out.reason, out.category) == (Verdict.BLOCKED, "rebinding", "rebinding")
    msg = dns.message.from_wire(out.wire)
    assert (msg.rcode(), msg.answer) == (0, [])  # NODATA, as dnsmasq answers
    assert msg.authority[0].rdtype == 6  # with an SOA, so downstream caches keep it
    assert [e.code for e in msg.extended_errors()] == [15]


def test_a_private_target_behind_a_cname_is_dropped() -> None:
    out = judge(
        "www.example.com",
        [
            "www.example.com. 60 IN CNAME x.attacker.example.",
            "x.attacker.example. 60 IN A 10.0.0.1",
        ],
    )
    assert out is not None


@pytest.mark.parametrize(
    "rdata",
    ["A 192.0.2.1", "A 172.32.0.1", "A 11.0.0.1", "A 100.64.0.1", "AAAA 2001:db8::1", "TXT x"],
)
def test_public_answers_pass(rdata: str) -> None:
    qtype = rdata.split()[0]
    assert judge("www.example.com", [f"www.example.com. 60 IN {rdata}"], qtype) is None


@pytest.mark.parametrize("name", ["nas.example.org", "files.nas.example.org", "pc.mairie.test"])
def test_local_names_keep_private_answers(name: str) -> None:
    assert judge(name, [f"{name}. 60 IN A 192.168.1.10"]) is None


def test_answers_of_forwarded_zones_are_not_judged() -> None:
    assert judge("dc.ad.local", ["dc.ad.local. 60 IN A 192.168.1.2"], fwd=ZONE) is None


def test_a_name_merely_ending_like_a_local_one_is_judged() -> None:
    assert judge("evilnas.example.org", ["evilnas.example.org. 60 IN A 192.168.1.10"]) is not None


def test_private_glue_beside_a_public_answer_passes() -> None:
    """An authoritative upstream adds its name server's address in the additional section (a
    lab's ns at 127.0.0.1, an internal NS): the asker connects to the answer, not to that."""
    stage = RebindingStage([], PRIVATE_NETWORKS)
    q = make_query("h1.bench.example.net")
    resp = upstream_reply(
        q,
        ["h1.bench.example.net. 60 IN A 198.18.0.1"],
        ["bench.example.net. 60 IN NS ns.bench.example.net."],
        ["ns.bench.example.net. 60 IN A 127.0.0.1"],
    )
    entry = from_upstream(resp, 0.0, 0, 86400)
    assert entry.ar >= 1
    assert stage.on_answer(q, DEFAULT, entry, 0.0) is None
