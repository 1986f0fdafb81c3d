"""The answer-ip stage in process: every A/AAAA of an answer against the artifact's ranges."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from dnslib import AAAA, CNAME, QTYPE, RR, A, DNSRecord

from resolver import blocklist_file
from resolver.blocklist_holder import ChainedBlocklist
from resolver.core import cached_answer
from resolver.core.block_answer import BlockAnswer
from resolver.core.blocklist import ListHolder, MemoryBlocklist
from resolver.core.query import Transport, from_wire
from resolver.core.steps import CONTINUE, Forward, Verdict
from resolver.stages.answer_ip import AnswerIpStage, addresses

NETS = [
    (ipaddress.ip_network("203.0.113.0/24"), 0),
    (ipaddress.ip_network("198.51.100.7/32"), 1),
    (ipaddress.ip_network("2001:db8:bad::/48"), 0),
]


def artifact(tmp_path: Path) -> blocklist_file.CompiledBlocklist:
    path = tmp_path / "b.pfb"
    prov = [("feed:urlhaus", "malware"), ("feed:sinkholes", "sinkhole")]
    blocklist_file.write_atomic(path, [("listed.example", 2, 0)], prov, networks=NETS)
    return blocklist_file.read(path)


def exchange(name: str, qtype: str, *records: RR) -> tuple:
    req = DNSRecord.question(name, qtype)
    q = from_wire(bytes(req.pack()), "192.168.1.9", Transport.UDP)
    reply = req.reply()
    for rr in records:
        reply.add_answer(rr)
    return q, cached_answer.from_upstream(bytes(reply.pack()), 0.0, 0, 86400)


def test_every_address_of_the_answer_is_read() -> None:
    q, entry = exchange(
        "www.example.fr",
        "A",
        RR("www.example.fr", QTYPE.CNAME, rdata=CNAME("cdn.example.net")),
        RR("cdn.example.net", QTYPE.A, rdata=A("192.0.2.1"), ttl=60),
        RR("cdn.example.net", QTYPE.A, rdata=A("203.0.113.9"), ttl=60),
    )
    assert addresses(entry, q.question) == [bytes([192, 0, 2, 1]), bytes([203, 0, 113, 9])]


def test_a_listed_address_blocks_and_names_the_feed(tmp_path: Path) -> None:
    stage = AnswerIpStage(ListHolder(artifact(tmp_path)), BlockAnswer())
    q, entry = exchange("fresh.example", "A", RR("fresh.example", rdata=A("203.0.113.9")))
    assert stage.decide(q, 0.0) is CONTINUE
    out = stage.on_answer(q, Forward(()), entry, 0.0)
    assert out is not None and out.verdict == Verdict.BLOCKED
    assert (out.reason, out.category) == ("feed:urlhaus answer-ip:203.0.113.9", "malware")
    q6, e6 = exchange(
        "fresh.example", "AAAA", RR("fresh.example", QTYPE.AAAA, rdata=AAAA("2001:db8:bad::1"))
    )
    assert stage.on_answer(q6, Forward(()), e6, 0.0) is not None
    clean, ce = exchange("ok.example", "A", RR("ok.example", rdata=A("192.0.2.1")))
    assert stage.on_answer(clean, Forward(()), ce, 0.0) is None


def test_a_sinkhole_address_names_the_machine_as_infected(tmp_path: Path) -> None:
    stage = AnswerIpStage(ListHolder(artifact(tmp_path)), BlockAnswer())
    q, entry = exchange("old-c2.example", "A", RR("old-c2.example", rdata=A("198.51.100.7")))
    out = stage.on_answer(q, Forward(()), entry, 0.0)
    assert out is not None and out.category == "c2"  # the page ranks it as an infection


def test_operator_lists_chained_before_the_artifact(tmp_path: Path) -> None:
    chained = ChainedBlocklist([MemoryBlocklist(), artifact(tmp_path)])
    stage = AnswerIpStage(ListHolder(chained), BlockAnswer())
    q, entry = exchange("fresh.example", "A", RR("fresh.example", rdata=A("203.0.113.200")))
    assert stage.on_answer(q, Forward(()), entry, 0.0) is not None
    only_operator = AnswerIpStage(ListHolder(MemoryBlocklist()), BlockAnswer())
    assert only_operator.on_answer(q, Forward(()), entry, 0.0) is None
