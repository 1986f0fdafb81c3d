"""The chain: order, short-circuit, TRUSTED, and finishing a forwarded query."""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.edns
import dns.message
import dns.rcode
import pytest
from dnslib import RCODE

from resolver.core import wire
from resolver.core.block_answer import BlockAnswer
from resolver.core.blocklist import ListHolder
from resolver.core.pipeline import ChainFellOff, Pipeline
from resolver.core.query import Query
from resolver.core.stage import Stage
from resolver.core.steps import (
    CONTINUE,
    TRUSTED,
    Drop,
    Forward,
    Reply,
    Step,
    Upstream,
    Verdict,
)
from resolver.stages.allowlist import AllowlistStage
from resolver.stages.blocklist import BlocklistStage
from resolver.stages.cache import CacheStage
from resolver.stages.upstream import UpstreamStage
from tests.fakes import SOA, FakeClock, StaticBlocklist, make_query, upstream_reply

UPSTREAM = Forward((Upstream("192.0.2.53"),))


@dataclass
class Scripted:
    """A stage that always says the same thing and notes that it was asked."""

    name: str
    step: Step
    log: list[str]
    policy: bool = True

    def decide(self, query: Query, now: float) -> Step:
        self.log.append(self.name)
        return self.step

    def describe(self) -> str:
        return "scripted"


@dataclass
class Chain:
    pipeline: Pipeline
    cache: CacheStage
    allow: ListHolder
    block: ListHolder
    clock: FakeClock = field(default_factory=FakeClock)


def chain(
    stages: list[Stage] | None = None,
    *,
    allow: tuple[str, ...] = (),
    block: tuple[str, ...] = ("evil.test",),
    cache_size: int = 100,
) -> Chain:
    allow_h = ListHolder(StaticBlocklist(allow))
    block_h = ListHolder(StaticBlocklist({n: "feed:test" for n in block}, category="phishing"))
    cache = CacheStage(cache_size, 0, 86400)
    allowlist = AllowlistStage(allow_h)
    blocklist = BlocklistStage(block_h, BlockAnswer(), allow_h)
    if stages is None:
        stages = [allowlist, blocklist, cache, UpstreamStage(UPSTREAM.servers)]
    return Chain(Pipeline(stages, cache), cache, allow_h, block_h)


def reply(rcode: int = 0) -> Reply:
    return Reply(b"x", Verdict.LOCAL if rcode == 0 else Verdict.REFUSED, "scripted")


# --- handle ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "decisive", [reply(), UPSTREAM, Drop("rate")], ids=["reply", "forward", "drop"]
)
def test_first_decision_wins_and_later_stages_are_not_asked(decisive: Step) -> None:
    log: list[str] = []
    stages = [
        Scripted("a", CONTINUE, log),
        Scripted("b", decisive, log),
        Scripted("c", reply(5), log),
    ]
    out = chain(stages).pipeline.handle(make_query("a.test"), 0.0)  # type: ignore[arg-type]
    assert out is decisive
    assert log == ["a", "b"]


def test_stages_run_in_the_given_order() -> None:
    log: list[str] = []
    names = ["acl", "local_zone", "allowlist", "blocklist", "cache"]
    stages = [Scripted(n, CONTINUE, log) for n in names] + [Scripted("upstream", UPSTREAM, log)]
    chain(stages).pipeline.handle(make_query("a.test"), 0.0)  # type: ignore[arg-type]
    assert log == [*names, "upstream"]


def test_trusted_skips_policy_stages_but_not_cache_or_upstream() -> None:
    log: list[str] = []
    stages = [
        Scripted("acl", CONTINUE, log, policy=False),
        Scripted("allowlist", TRUSTED, log),
        Scripted("blocklist", reply(), log),
        Scripted("exfiltration", reply(), log),
        Scripted("cache", CONTINUE, log, policy=False),
        Scripted("upstream", UPSTREAM, log, policy=False),
    ]
    out = chain(stages).pipeline.handle(make_query("a.test"), 0.0)  # type: ignore[arg-type]
    # The same servers, marked so that the answer skips the policy stages on its way back too.
    assert out == Forward(UPSTREAM.servers, trusted=True)
    assert log == ["acl", "allowlist", "cache", "upstream"]


def test_policy_stages_run_when_nothing_is_trusted() -> None:
    log: list[str] = []
    stages = [
        Scripted("allowlist", CONTINUE, log),
        Scripted("blocklist", reply(), log),
        Scripted("upstream", UPSTREAM, log, policy=False),
    ]
    out = chain(stages).pipeline.handle(make_query("a.test"), 0.0)  # type: ignore[arg-type]
    assert isinstance(out, Reply)
    assert log == ["allowlist", "blocklist"]


@pytest.mark.parametrize("stages", [[], [CONTINUE, CONTINUE], [TRUSTED, CONTINUE]])
def test_chain_that_never_decides_raises(stages: list[Step]) -> None:
    log: list[str] = []
    scripted = [Scripted(f"s{i}", s, log, policy=False) for i, s in enumerate(stages)]
    with pytest.raises(ChainFellOff, match=r"lost\.test"):
        chain(scripted).pipeline.handle(make_query("lost.test"), 0.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "kind", "verdict"),
    [
        ("clean.test", Forward, None),
        ("evil.test", Reply, Verdict.BLOCKED),
        ("a.b.evil.test", Reply, Verdict.BLOCKED),
        ("ok.evil.test", Forward, None),  # allowlisted under a blocked parent
        ("x.ok.evil.test", Forward, None),
    ],
)
def test_real_stages(name: str, kind: type, verdict: str | None) -> None:
    c = chain(allow=("ok.evil.test",))
    out = c.pipeline.handle(make_query(name), c.clock())
    assert isinstance(out, kind)
    if isinstance(out, Reply):
        assert (out.verdict, out.reason, out.category) == (verdict, "feed:test", "phishing")
    else:
        assert isinstance(out, Forward)
        assert out.servers == UPSTREAM.servers
        assert out.trusted == name.endswith("ok.evil.test")


def test_a_reply_carrying_an_entry_is_kept_in_the_cache() -> None:
    c = chain()
    q = make_query("evil.test")
    out = c.pipeline.handle(q, c.clock())
    assert isinstance(out, Reply) and out.entry is not None
    assert c.cache.lookup(q.cache_key, c.clock()) is out.entry


# --- complete -------------------------------------------------------------------------------------


def ede(resp: bytes) -> list[tuple[int, str]]:
    msg = dns.message.from_wire(resp)
    return [(int(o.code), o.text or "") for o in msg.options if isinstance(o, dns.edns.EDEOption)]


def test_no_upstream_answer_is_servfail_with_ede_22() -> None:
    c = chain()
    q = make_query("example.test", qid=0x2222)
    out = c.pipeline.complete(q, UPSTREAM, None, c.clock())
    assert (out.verdict, out.reason) == (Verdict.SERVFAIL, "upstream")
    msg = dns.message.from_wire(out.wire)
    assert msg.rcode() == dns.rcode.SERVFAIL and msg.id == 0x2222
    assert ede(out.wire) == [(22, "no upstream answered")]
    assert len(c.cache.entries) == 0


def _record_after_opt(q: Query) -> bytes:
    good = upstream_reply(q, ["example.test. 300 IN A 192.0.2.1"])
    extra = b"\xc0\x0c" + wire.RR_FIXED.pack(wire.T_A, wire.C_IN, 60, 4) + bytes(4)
    return good[:10] + wire.U16.pack(2) + good[12:] + extra


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda q: b"\x00\x01", id="short"),
        pytest.param(
            lambda q: upstream_reply(q, ["example.test. 300 IN A 1.2.3.4"])[:-3], id="cut"
        ),
        pytest.param(_record_after_opt, id="record-after-opt"),
    ],
)
def test_malformed_upstream_answer_is_servfail(make: object) -> None:
    c = chain()
    q = make_query("example.test")
    out = c.pipeline.complete(q, UPSTREAM, make(q), c.clock())  # type: ignore[operator]
    assert (out.verdict, out.reason) == (Verdict.SERVFAIL, "upstream")
    assert dns.message.from_wire(out.wire).rcode() == dns.rcode.SERVFAIL
    assert len(c.cache.entries) == 0


def test_good_answer_is_forwarded_cached_then_served_from_cache() -> None:
    c = chain()
    q = make_query("example.test")
    resp = upstream_reply(q, ["example.test. 300 IN A 192.0.2.1"])
    out = c.pipeline.complete(q, UPSTREAM, resp, c.clock())
    assert (out.verdict, out.reason) == (Verdict.FORWARDED, "upstream")
    assert [str(a) for a in dns.message.from_wire(out.wire).answer] == [
        "example.test. 300 IN A 192.0.2.1"
    ]
    c.clock.advance(10)
    again = c.pipeline.handle(make_query("Example.Test", qid=7), c.clock())
    assert isinstance(again, Reply)
    assert (again.verdict, again.reason) == (Verdict.CACHED, "cache")
    msg = dns.message.from_wire(again.wire)
    assert msg.id == 7 and msg.answer[0].ttl == 290


def test_cname_to_a_blocked_target_is_blocked_and_not_cached() -> None:
    c = chain()
    q = make_query("alias.test", do=True)
    resp = upstream_reply(
        q,
        ["alias.test. 300 IN CNAME Tracker.Evil.test.", "tracker.evil.test. 300 IN A 192.0.2.66"],
    )
    out = c.pipeline.complete(q, UPSTREAM, resp, c.clock())
    assert out.verdict == Verdict.BLOCKED
    assert out.reason == "feed:test cname:tracker.evil.test"
    assert out.category == "phishing"
    msg = dns.message.from_wire(out.wire)
    assert msg.rcode() == dns.rcode.NXDOMAIN and not msg.answer
    assert ede(out.wire) == [(15, "feed:test cname:tracker.evil.test")]
    assert len(c.cache.entries) == 0


def test_cname_chain_is_checked_at_every_step() -> None:
    c = chain(block=("middle.evil.test",))
    q = make_query("alias.test")
    resp = upstream_reply(
        q,
        [
            "alias.test. 300 IN CNAME middle.evil.test.",
            "middle.evil.test. 300 IN CNAME clean.cdn.test.",
            "clean.cdn.test. 300 IN A 192.0.2.66",
        ],
    )
    out = c.pipeline.complete(q, UPSTREAM, resp, c.clock())
    assert out.verdict == Verdict.BLOCKED
    assert out.reason == "feed:test cname:middle.evil.test"


def test_cname_to_a_blocked_target_is_served_when_the_query_name_is_allowlisted() -> None:
    c = chain(allow=("alias.test",))
    q = make_query("alias.test")
    resp = upstream_reply(
        q, ["alias.test. 300 IN CNAME tracker.evil.test.", "tracker.evil.test. 300 IN A 192.0.2.6"]
    )
    fwd = c.pipeline.handle(q, c.clock())
    assert isinstance(fwd, Forward) and fwd.trusted
    out = c.pipeline.complete(q, fwd, resp, c.clock())
    assert out.verdict == Verdict.FORWARDED
    assert len(c.cache.entries) == 1


def test_cname_to_an_allowlisted_target_is_not_blocked() -> None:
    c = chain(allow=("cdn.partner.test",), block=("partner.test",))
    q = make_query("www.mairie.test")
    resp = upstream_reply(
        q,
        ["www.mairie.test. 300 IN CNAME cdn.partner.test.", "cdn.partner.test. 60 IN A 192.0.2.9"],
    )
    direct = c.pipeline.handle(make_query("cdn.partner.test"), c.clock())
    assert isinstance(direct, Forward)  # the allowlisted name itself resolves
    out = c.pipeline.complete(q, UPSTREAM, resp, c.clock())
    assert out.verdict == Verdict.FORWARDED


def test_conditional_forward_answers_are_checked_but_not_cached() -> None:
    c = chain(block=("evil.test",))
    q = make_query("pc1.mairie.local")
    resp = upstream_reply(
        q, ["pc1.mairie.local. 1200 IN CNAME x.evil.test.", "x.evil.test. 60 IN A 192.168.1.21"]
    )
    fwd = Forward((Upstream("192.168.1.2"),), zone="mairie.local")
    out = c.pipeline.complete(q, fwd, resp, c.clock())
    assert (out.verdict, out.reason) == (Verdict.BLOCKED, "feed:test cname:x.evil.test")
    clean = upstream_reply(q, ["pc1.mairie.local. 1200 IN A 192.168.1.21"])
    assert c.pipeline.complete(q, fwd, clean, c.clock()).verdict == Verdict.FORWARDED
    assert len(c.cache.entries) == 0  # the mairie's own zone changes without notice


def test_trusted_conditional_forward_answers_are_not_checked() -> None:
    c = chain(block=("evil.test",))
    q = make_query("pc1.mairie.local")
    resp = upstream_reply(
        q, ["pc1.mairie.local. 1200 IN CNAME x.evil.test.", "x.evil.test. 60 IN A 192.168.1.21"]
    )
    fwd = Forward((Upstream("192.168.1.2"),), zone="mairie.local", trusted=True)
    out = c.pipeline.complete(q, fwd, resp, c.clock())
    assert (out.verdict, out.reason) == (Verdict.FORWARDED, "upstream")


@pytest.mark.parametrize(
    ("rcode", "authority"),
    [(RCODE.SERVFAIL, []), (RCODE.NXDOMAIN, []), (RCODE.NOERROR, [])],
    ids=["servfail", "nxdomain-without-soa", "nodata-without-soa"],
)
def test_uncacheable_answers_are_forwarded_but_not_cached(rcode: int, authority: list[str]) -> None:
    c = chain()
    q = make_query("example.test")
    out = c.pipeline.complete(q, UPSTREAM, upstream_reply(q, [], authority, rcode=rcode), 0.0)
    assert out.verdict == Verdict.FORWARDED
    assert dns.message.from_wire(out.wire).rcode() == rcode
    assert len(c.cache.entries) == 0


def test_negative_answer_is_cached() -> None:
    c = chain()
    q = make_query("nothing.test")
    c.pipeline.complete(q, UPSTREAM, upstream_reply(q, [], [SOA], rcode=RCODE.NXDOMAIN), 0.0)
    assert len(c.cache.entries) == 1


def test_nothing_is_cached_when_the_cache_is_disabled() -> None:
    c = chain(cache_size=0)
    q = make_query("example.test")
    resp = upstream_reply(q, ["example.test. 300 IN A 192.0.2.1"])
    assert c.pipeline.complete(q, UPSTREAM, resp, 0.0).verdict == Verdict.FORWARDED
    assert len(c.cache.entries) == 0
    assert isinstance(c.pipeline.handle(q, 1.0), Forward)
