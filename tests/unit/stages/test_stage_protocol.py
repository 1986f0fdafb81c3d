"""protocol: zone transfers, meta-types and odd classes answered at once, as unbound does."""

from __future__ import annotations

import dns.message
import dns.rcode
import pytest

from resolver.core import wire
from resolver.core.steps import CONTINUE, Reply, Verdict
from resolver.stages.protocol import ProtocolStage
from tests.fakes import make_query

STAGE = ProtocolStage()


def _reply(qtype: int | str, qclass: int = wire.C_IN, edns: bool = True) -> Reply:
    q = make_query("Zone.Test", qtype, edns=edns)._replace(qclass=qclass)
    step = STAGE.decide(q, 0.0)
    assert isinstance(step, Reply), step
    assert step.entry is None  # nothing of this is cached
    return step


@pytest.mark.parametrize("qtype", [251, 252])  # IXFR, AXFR
@pytest.mark.parametrize("edns", [False, True])
def test_zone_transfers_are_refused(qtype: int, edns: bool) -> None:
    step = _reply(qtype, edns=edns)
    msg = dns.message.from_wire(step.wire)
    assert msg.rcode() == dns.rcode.REFUSED
    assert (step.verdict, step.reason) == (Verdict.REFUSED, "zone-transfer")
    assert msg.question[0].name.to_text() == "Zone.Test."  # the asker's spelling
    assert (msg.edns == 0) is edns  # an OPT back to an EDNS query (RFC 6891 §7)


@pytest.mark.parametrize("qtype", [41, 128, 200, 248, 249, 250, 253, 254])
def test_meta_types_are_formerr(qtype: int) -> None:
    step = _reply(qtype)
    assert dns.message.from_wire(step.wire).rcode() == dns.rcode.FORMERR
    assert (step.verdict, step.reason) == (Verdict.FORMERR, "meta-type")


@pytest.mark.parametrize("qclass", [0, 2, 4, 5, 254, 1000, 65535])
def test_classes_with_nowhere_to_go_are_refused(qclass: int) -> None:
    step = _reply("A", qclass)
    assert dns.message.from_wire(step.wire).rcode() == dns.rcode.REFUSED
    assert (step.verdict, step.reason) == (Verdict.REFUSED, "class")


@pytest.mark.parametrize("qtype", ["A", "AAAA", "TXT", "HTTPS", 0, 40, 42, 127, 255, 256, 65535])
@pytest.mark.parametrize("qclass", [wire.C_IN, wire.C_CH, 255])
def test_questions_pass_on(qtype: int | str, qclass: int) -> None:
    q = make_query("a.test", qtype)._replace(qclass=qclass)
    assert STAGE.decide(q, 0.0) is CONTINUE
