"""recursion: a query without RD is REFUSED here (local data answers it earlier in the chain)."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import pytest

from resolver.core.steps import CONTINUE, Reply, Verdict
from resolver.stages.recursion import RecursionStage
from tests.fakes import make_query


def test_a_recursive_query_passes_on() -> None:
    assert RecursionStage().decide(make_query("example.test", rd=True), 0.0) is CONTINUE


@pytest.mark.parametrize("edns", [False, True])
def test_a_query_without_rd_is_refused(edns: bool) -> None:
    step = RecursionStage().decide(make_query("Example.Test", rd=False, edns=edns), 0.0)
    assert isinstance(step, Reply) and step.entry is None
    assert (step.verdict, step.reason) == (Verdict.REFUSED, "no-recursion")
    msg = dns.message.from_wire(step.wire)
    assert msg.rcode() == dns.rcode.REFUSED and not msg.answer
    assert not msg.flags & dns.flags.RD and msg.flags & dns.flags.RA  # RD echoed, as unbound
    assert (msg.edns == 0) is edns
