"""blocklist: exact, subtree and wildcard entries; the answer and its reason; list swaps."""

from __future__ import annotations

import struct

import dns.edns
import dns.message
import dns.rcode
import pytest

from resolver.core.block_answer import BlockAnswer
from resolver.core.blocklist import (
    EXACT,
    SUBTREE,
    WILDCARD,
    ListHolder,
    Match,
    MemoryBlocklist,
    parents,
)
from resolver.core.cached_answer import from_upstream
from resolver.core.steps import CONTINUE, Forward, Reply, Verdict
from resolver.stages.blocklist import BlocklistStage
from tests.fakes import StaticBlocklist, make_query


def entry(
    name: str, scope: int, source: str = "feed:x", category: str = "malware"
) -> tuple[str, int, Match]:
    return (name, scope, Match(name, source, category))


LISTS = MemoryBlocklist(
    [
        entry("exact.test", EXACT, "feed:exact"),
        entry("sub.test", SUBTREE, "feed:sub"),
        entry("wild.test", WILDCARD, "feed:wild"),
        # the same name listed twice: "x" and "*.x" together are a subtree
        entry("both.test", EXACT, "feed:both-exact"),
        entry("both.test", WILDCARD, "feed:both-wild"),
    ]
)


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("exact.test", "feed:exact"),
        ("a.exact.test", None),
        ("test", None),
        ("sub.test", "feed:sub"),
        ("a.sub.test", "feed:sub"),
        ("a.b.c.sub.test", "feed:sub"),
        ("notsub.test", None),
        ("wild.test", None),  # "*.wild.test" does not cover wild.test itself
        ("a.wild.test", "feed:wild"),
        ("a.b.wild.test", "feed:wild"),
        ("both.test", "feed:both-exact"),
        ("a.both.test", "feed:both-wild"),
        ("", None),
        ("other.example", None),
    ],
)
def test_memory_blocklist_scopes(name: str, source: str | None) -> None:
    m = LISTS.match(name)
    assert (m.source if m else None) == source


def test_the_nearest_listed_ancestor_wins() -> None:
    lists = MemoryBlocklist(
        [entry("test", SUBTREE, "feed:tld"), entry("a.test", SUBTREE, "feed:a")]
    )
    m = lists.match("x.a.test")
    assert m is not None and (m.entry, m.source) == ("a.test", "feed:a")


def test_memory_blocklist_len_counts_names() -> None:
    assert len(LISTS) == 4
    assert len(MemoryBlocklist()) == 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.b.c", ["a.b.c", "b.c", "c"]), ("c", ["c"]), ("", [""])],
)
def test_parents(name: str, expected: list[str]) -> None:
    assert list(parents(name)) == expected


def stage(lists: MemoryBlocklist = LISTS, how: BlockAnswer | None = None) -> BlocklistStage:
    return BlocklistStage(ListHolder(lists), how or BlockAnswer())


def ede(wire: bytes) -> list[tuple[int, str]]:
    msg = dns.message.from_wire(wire)
    return [(int(o.code), o.text or "") for o in msg.options if isinstance(o, dns.edns.EDEOption)]


@pytest.mark.parametrize(
    ("name", "source"),
    [("exact.test", "feed:exact"), ("a.sub.test", "feed:sub"), ("x.wild.test", "feed:wild")],
)
def test_blocked_reply_carries_verdict_reason_and_category(name: str, source: str) -> None:
    q = make_query(name, wire_name=name.upper(), qid=0x5151)
    step = stage().decide(q, 0.0)
    assert isinstance(step, Reply)
    assert (step.verdict, step.reason, step.category) == (Verdict.BLOCKED, source, "malware")
    msg = dns.message.from_wire(step.wire)
    assert msg.rcode() == dns.rcode.NXDOMAIN
    assert msg.id == 0x5151
    assert msg.question[0].name.to_text() == name.upper() + "."
    assert ede(step.wire) == [(15, source)]


@pytest.mark.parametrize("name", ["a.exact.test", "wild.test", "clean.test"])
def test_unlisted_names_continue(name: str) -> None:
    assert stage().decide(make_query(name), 0.0) is CONTINUE


def test_empty_list_continues() -> None:
    assert BlocklistStage(ListHolder(), BlockAnswer()).decide(make_query("a.test"), 0.0) is CONTINUE


def test_null_mode_answers_zero_address() -> None:
    st = stage(StaticBlocklist(["evil.test"]), BlockAnswer.build("null", 60, None, None))
    step = st.decide(make_query("evil.test", "A"), 0.0)
    assert isinstance(step, Reply)
    msg = dns.message.from_wire(step.wire)
    assert msg.rcode() == dns.rcode.NOERROR
    assert [str(rrset) for rrset in msg.answer] == ["evil.test. 60 IN A 0.0.0.0"]


def test_holder_swap_is_seen_by_the_next_query() -> None:
    holder = ListHolder(StaticBlocklist({"old.test": "feed:old"}))
    st = BlocklistStage(holder, BlockAnswer())
    first = st.decide(make_query("old.test"), 0.0)
    assert isinstance(first, Reply) and first.reason == "feed:old"
    holder.current = StaticBlocklist({"new.test": "feed:new"})
    assert st.decide(make_query("old.test"), 0.0) is CONTINUE
    second = st.decide(make_query("x.new.test"), 0.0)
    assert isinstance(second, Reply) and second.reason == "feed:new"


def test_check_targets_blocks_on_the_first_listed_target() -> None:
    st = stage(StaticBlocklist({"evil.test": "feed:a", "worse.test": "feed:b"}, category="c2"))
    q = make_query("alias.test")
    out = st.check_targets(q, ["clean.test", "x.evil.test", "worse.test"])
    assert out is not None
    assert (out.verdict, out.reason, out.category) == (
        Verdict.BLOCKED,
        "feed:a cname:x.evil.test",
        "c2",
    )
    assert ede(out.wire) == [(15, "feed:a cname:x.evil.test")]


def test_check_targets_reason_keeps_at_most_100_characters_of_the_target() -> None:
    target = "a" * 63 + "." + "b" * 63 + ".evil.test"
    out = stage(StaticBlocklist(["evil.test"])).check_targets(make_query("x.test"), [target])
    assert out is not None
    assert out.reason == "feed:test cname:" + target[:100]


@pytest.mark.parametrize("targets", [[], ["clean.test"], ["notevil.test", "evil.test.example"]])
def test_check_targets_none_listed(targets: list[str]) -> None:
    assert stage(StaticBlocklist(["evil.test"])).check_targets(make_query("x"), targets) is None


def test_name_policy_and_describe() -> None:
    st = stage()
    assert (st.name, st.policy) == ("blocklist", True)
    assert st.describe() == "4 entries, answer nxdomain"


def test_an_alias_that_cannot_be_read_is_servfail_not_passed_unjudged() -> None:
    """A CNAME whose target points into its own label (not backwards, RFC 1035 §4.1.4) hides
    "tracker.example" from a reader that follows it: the lists cannot judge it, so it does not
    reach the client."""

    q = make_query("www.test", "A", edns=False)
    head = struct.pack("!HHHHHH", 1, 0x8180, 1, 1, 0, 0) + q.question
    hidden = b"x\x07tracker\x07example\x00"
    at = len(head) + 12
    rdata = bytes([len(hidden)]) + hidden + struct.pack("!H", 0xC000 | (at + 2))
    resp = head + b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 300, len(rdata)) + rdata
    entry = from_upstream(resp, 0.0, 0, 86400)
    out = stage(MemoryBlocklist([("tracker.example", SUBTREE, Match("x", "feed:t", "c2"))]))
    reply = out.on_answer(q, Forward(()), entry, 0.0)
    assert reply is not None and reply.verdict == Verdict.SERVFAIL
    assert dns.message.from_wire(reply.wire).rcode() == dns.rcode.SERVFAIL
