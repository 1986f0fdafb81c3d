"""rate_limit: a token bucket per client; every query counts, cached ones too (meter)."""

from __future__ import annotations

from resolver.core.steps import CONTINUE, Drop
from resolver.stages.rate_limit import RateLimitStage
from tests.fakes import make_query


def test_a_burst_then_drops_then_refills_at_the_rate() -> None:
    st = RateLimitStage(rate=2.0, burst=5)
    assert [st.meter("10.0.0.1", 100.0) for _ in range(5)] == [None] * 5
    drop = st.meter("10.0.0.1", 100.0)
    assert isinstance(drop, Drop) and drop.reason == "rate_limit"
    assert st.limited == 1
    assert st.meter("10.0.0.1", 100.5) is None  # half a second at 2/s: one token
    assert st.meter("10.0.0.1", 100.5) is not None


def test_clients_have_their_own_buckets() -> None:
    st = RateLimitStage(rate=1.0, burst=1)
    assert st.meter("10.0.0.1", 0.0) is None
    assert st.meter("10.0.0.1", 0.0) is not None
    assert st.meter("10.0.0.2", 0.0) is None


def test_a_clock_stepped_back_neither_refills_nor_takes() -> None:
    st = RateLimitStage(rate=10.0, burst=2)
    st.meter("c", 50.0)
    st.meter("c", 50.0)
    assert st.meter("c", 40.0) is not None  # no refill from the past
    assert st.meter("c", 50.2) is None  # refilled from the last good time


def test_a_long_pause_refills_no_more_than_the_burst() -> None:
    st = RateLimitStage(rate=100.0, burst=3)
    for _ in range(3):
        st.meter("c", 0.0)
    assert [st.meter("c", 1000.0) for _ in range(4)].count(None) == 3


def test_buckets_are_bounded_least_recently_seen_first() -> None:
    st = RateLimitStage(rate=1.0, burst=1, max_clients=2)
    st.meter("a", 0.0)
    st.meter("b", 0.0)
    st.meter("c", 0.0)  # evicts "a"
    assert len(st.buckets) == 2 and "a" not in st.buckets
    assert st.meter("a", 0.0) is None  # a new bucket, full


def test_decide_and_meter_agree() -> None:
    st = RateLimitStage(rate=1.0, burst=1)
    assert st.decide(make_query("x.test", client="10.0.0.9"), 0.0) is CONTINUE
    assert isinstance(st.decide(make_query("x.test", client="10.0.0.9"), 0.0), Drop)
    assert st.allow("10.0.0.9", 0.0) is False
    assert (st.name, st.policy) == ("rate_limit", False)
