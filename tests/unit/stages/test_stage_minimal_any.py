"""minimal_any: ANY gets one synthesised HINFO (RFC 8482 §4.2); other types pass on."""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from resolver.core.steps import CONTINUE, Reply, Verdict
from resolver.stages.minimal_any import MinimalAnyStage
from tests.fakes import make_query


def test_any_gets_one_hinfo() -> None:
    step = MinimalAnyStage().decide(make_query("Example.Test", "ANY", wire_name="Example.Test"), 0)
    assert isinstance(step, Reply) and (step.verdict, step.reason) == (Verdict.LOCAL, "rfc8482")
    msg = dns.message.from_wire(step.wire)
    assert msg.rcode() == dns.rcode.NOERROR
    ((rrset),) = msg.answer
    assert rrset.rdtype == dns.rdatatype.HINFO and rrset.name.to_text() == "Example.Test."
    (hinfo,) = rrset
    assert (hinfo.cpu, hinfo.os) == (b"RFC8482", b"")


@pytest.mark.parametrize("qtype", ["A", "AAAA", "TXT", "MX"])
def test_other_types_pass_on(qtype: str) -> None:
    assert MinimalAnyStage().decide(make_query("example.test", qtype), 0) is CONTINUE
