"""cache: hits until the TTL runs out (on a fake clock), bounded LRU, clear(), size 0."""

from __future__ import annotations

import dns.message
import pytest
from dnslib import RCODE

from resolver.core.block_answer import BlockAnswer
from resolver.core.cached_answer import CachedAnswer, blocked_entry, from_upstream
from resolver.core.query import Query
from resolver.core.steps import CONTINUE, Forward, Recheck, Reply, Verdict
from resolver.stages.cache import CacheStage
from tests.fakes import SOA, FakeClock, make_query, upstream_reply


def answer(q: Query, now: float, ttl: int = 300) -> CachedAnswer:
    resp = upstream_reply(q, [f"{q.qname}. {ttl} IN A 192.0.2.1"])
    return from_upstream(resp, now, 0, 86400)


def filled(size: int = 100, ttl: int = 300) -> tuple[CacheStage, FakeClock, Query]:
    clock = FakeClock()
    cache = CacheStage(size, 0, 86400)
    q = make_query("example.test")
    cache.store(q.cache_key, answer(q, clock(), ttl))
    return cache, clock, q


def test_miss_on_an_empty_cache() -> None:
    cache = CacheStage(10, 0, 86400)
    assert cache.decide(make_query("example.test"), 0.0) is CONTINUE
    assert (cache.hits, cache.misses) == (0, 1)


def test_hit_is_rendered_for_the_asker_with_aged_ttl() -> None:
    cache, clock, _ = filled()
    clock.advance(42.5)
    step = cache.decide(make_query("example.test", wire_name="EXAMPLE.test", qid=0x4444), clock())
    assert isinstance(step, Reply)
    assert (step.verdict, step.reason) == (Verdict.CACHED, "cache")
    msg = dns.message.from_wire(step.wire)
    assert msg.id == 0x4444
    assert msg.question[0].name.to_text() == "EXAMPLE.test."
    assert msg.answer[0].ttl == 258
    assert (cache.hits, cache.misses) == (1, 0)


@pytest.mark.parametrize(
    ("age", "hit"), [(0, True), (1, True), (299.99, True), (300, False), (10_000, False)]
)
def test_expiry(age: float, hit: bool) -> None:
    cache, clock, q = filled(ttl=300)
    clock.advance(age)
    step = cache.decide(q, clock())
    assert isinstance(step, Reply) is hit
    assert (cache.lookup(q.cache_key, clock()) is not None) is hit


def test_expired_entry_is_replaced_by_the_next_store() -> None:
    cache, clock, q = filled(ttl=10)
    clock.advance(20)
    assert cache.decide(q, clock()) is CONTINUE
    cache.store(q.cache_key, answer(q, clock(), ttl=10))
    assert isinstance(cache.decide(q, clock()), Reply)
    assert len(cache.entries) == 1


def test_negative_answer_expires_with_the_soa_minimum() -> None:
    clock = FakeClock()
    cache = CacheStage(10, 0, 86400)
    q = make_query("nothing.test")
    resp = upstream_reply(q, authority=[SOA], rcode=RCODE.NXDOMAIN)
    cache.store(q.cache_key, from_upstream(resp, clock(), 0, 86400))
    clock.advance(59)
    step = cache.decide(q, clock())
    assert isinstance(step, Reply)
    assert dns.message.from_wire(step.wire).rcode() == RCODE.NXDOMAIN
    clock.advance(1)
    assert cache.decide(q, clock()) is CONTINUE


@pytest.mark.parametrize(
    ("other", "hit"),
    [
        (make_query("Example.Test"), True),
        (make_query("example.test", qid=9, client="10.0.0.9", edns=False), True),
        (make_query("example.test", do=True), False),
        (make_query("example.test", "AAAA"), False),
        (make_query("www.example.test"), False),
    ],
)
def test_what_counts_as_the_same_question(other: Query, hit: bool) -> None:
    cache, clock, _ = filled()
    assert isinstance(cache.decide(other, clock()), Reply) is hit


def test_size_bound_evicts_the_least_recently_used() -> None:
    clock = FakeClock()
    cache = CacheStage(2, 0, 86400)
    a, b, c = (make_query(f"{n}.test") for n in "abc")
    cache.store(a.cache_key, answer(a, clock()))
    cache.store(b.cache_key, answer(b, clock()))
    assert isinstance(cache.decide(a, clock()), Reply)  # a is now the most recent
    cache.store(c.cache_key, answer(c, clock()))
    assert len(cache.entries) == 2
    assert isinstance(cache.decide(a, clock()), Reply)
    assert cache.decide(b, clock()) is CONTINUE
    assert isinstance(cache.decide(c, clock()), Reply)


def test_many_stores_stay_within_the_size() -> None:
    clock = FakeClock()
    cache = CacheStage(50, 0, 86400)
    for i in range(500):
        q = make_query(f"n{i}.test")
        cache.store(q.cache_key, answer(q, clock()))
    assert len(cache.entries) == 50


def test_clear_empties_the_cache() -> None:
    cache, clock, q = filled()
    cache.clear()
    assert len(cache.entries) == 0
    assert cache.decide(q, clock()) is CONTINUE


def test_size_zero_disables_the_cache() -> None:
    clock = FakeClock()
    cache = CacheStage(0, 0, 86400)
    q = make_query("example.test")
    cache.store(q.cache_key, answer(q, clock()))
    assert len(cache.entries) == 0
    assert cache.decide(q, clock()) is CONTINUE


def test_a_cached_block_is_served_as_a_block() -> None:
    clock = FakeClock()
    cache = CacheStage(10, 0, 86400)
    q = make_query("evil.test")
    entry = blocked_entry(
        q.qname, q.qtype, q.qclass, BlockAnswer(), "feed:urlhaus", "malware", clock()
    )
    cache.store(q.cache_key, entry)
    step = cache.decide(q, clock())
    assert isinstance(step, Reply)
    assert (step.verdict, step.reason, step.category) == (
        Verdict.BLOCKED,
        "feed:urlhaus",
        "malware",
    )
    assert dns.message.from_wire(step.wire).rcode() == RCODE.NXDOMAIN


def test_name_policy_and_describe() -> None:
    cache = CacheStage(10, 5, 600)
    assert (cache.name, cache.policy) == ("cache", False)
    assert (cache.min_ttl, cache.max_ttl) == (5, 600)
    assert cache.describe() == "10 entries, 64 MB, ttl 5..600 s"


def big_answer(q: Query, now: float, records: int) -> CachedAnswer:
    rrs = [f'{q.qname}. 300 IN TXT "{"x" * 200}{i}"' for i in range(records)]
    return from_upstream(upstream_reply(q, rrs), now, 0, 86400)


def test_bounded_in_bytes_least_recently_used_first() -> None:
    # 64 KB of cache; each answer about 4 KB (20 TXT records of 200 bytes): 15 fit, not 100.
    cache = CacheStage(10_000, 0, 86400, max_bytes=65536, max_entry_bytes=8192)
    queries = [make_query(f"n{i}.example.test") for i in range(100)]
    for q in queries:
        cache.store(q.cache_key, big_answer(q, 0.0, 20))
        assert cache.entries.currsize <= 65536
    assert 10 <= len(cache.entries) <= 16
    assert cache.lookup(queries[-1].cache_key, 1.0) is not None
    assert cache.lookup(queries[0].cache_key, 1.0) is None


def test_an_answer_over_the_entry_cap_is_not_kept() -> None:
    cache = CacheStage(10, 0, 86400, max_bytes=1 << 20, max_entry_bytes=2048)
    q = make_query("huge.example.test")
    cache.store(q.cache_key, big_answer(q, 0.0, 20))
    assert (len(cache.entries), cache.too_large) == (0, 1)
    small = make_query("small.example.test")
    cache.store(small.cache_key, answer(small, 0.0))
    assert len(cache.entries) == 1


def test_after_a_list_change_the_fast_lookup_misses_but_policy_checked_queries_keep_answers() -> (
    None
):
    """A feeds update must not send every popular name back upstream at once (seen as a p99
    of 35 ms during reloads): the full path, which judged the name against the new lists just
    before this stage, takes the answer back for the answer judges to check again (Recheck:
    CNAME targets and addresses listed since); blocks are fetched again."""
    cache, clock, q = filled()
    evil = make_query("evil.test")
    cache.store(evil.cache_key, blocked_entry("evil.test", 1, 1, BlockAnswer(), "list", "", 0.0))
    www = make_query("www.example.test")
    chain = upstream_reply(
        www, ["www.example.test. 300 IN CNAME example.test.", "example.test. 300 IN A 192.0.2.1"]
    )
    cache.store(www.cache_key, from_upstream(chain, clock(), 0, 86400))
    cache.invalidate()
    clock.advance(10)
    assert cache.lookup(q.cache_key, clock()) is None  # never for the fast path, which skips policy
    step = cache.decide(q, clock())
    assert isinstance(step, Recheck)
    assert cache.revalidated == 1
    assert cache.lookup(q.cache_key, clock()) is None  # not before the judges said so
    cache.on_answer(q, Forward(()), step.entry, clock())  # the pipeline's recheck keeps it
    assert cache.lookup(q.cache_key, clock()) is not None  # and the fast path has it again
    again = cache.decide(q, clock())
    assert isinstance(again, Reply) and again.verdict == Verdict.CACHED
    assert dns.message.from_wire(again.wire).answer[0].ttl == 290  # the same answer, aged
    assert cache.decide(evil, clock()) is CONTINUE  # no longer blocked: ask upstream
    assert isinstance(cache.decide(www, clock()), Recheck)  # its CNAME target judged again
    clock.advance(300)
    cache.invalidate()
    assert cache.decide(q, clock()) is CONTINUE  # expired meanwhile: upstream as always
