"""rate_limit: a token bucket per client; every query counts, cached ones too (meter)."""

from __future__ import annotations

import ipaddress

from resolver.core.steps import CONTINUE, Drop
from resolver.stages.rate_limit import ErrorLimiter, RateLimitStage
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


def test_exempt_networks_are_never_limited_others_still_are() -> None:
    dc = ipaddress.ip_network("192.168.1.2/32")
    st = RateLimitStage(rate=1.0, burst=2, exempt=[dc, ipaddress.ip_network("fd00::/8")])
    assert all(st.meter("192.168.1.2", 0.0) is None for _ in range(10_000))
    assert all(st.meter("::ffff:192.168.1.2", 0.0) is None for _ in range(100))  # dual stack
    assert all(st.meter("fd00::53", 0.0) is None for _ in range(100))
    assert [st.meter("192.168.1.3", 0.0) is None for _ in range(3)] == [True, True, False]
    assert "except 192.168.1.2/32" in st.describe()


def test_limited_clients_are_counted_for_the_log_and_drained() -> None:
    st = RateLimitStage(rate=1.0, burst=1)
    for _ in range(5):
        st.meter("10.0.0.1", 0.0)
    st.meter("10.0.0.2", 0.0)
    st.meter("10.0.0.2", 0.0)
    assert st.drain_limited() == ({"10.0.0.1": 4, "10.0.0.2": 1}, 0)
    assert st.drain_limited() == ({}, 0)


def test_error_limiter_answers_a_burst_then_one_in_slip() -> None:
    lim = ErrorLimiter(rate=1.0, burst=3, slip=4)
    answered = [lim.allow("203.0.113.7", 10.0) for _ in range(23)]
    assert answered[:3] == [True] * 3
    assert answered[3:] == [False, False, False, True] * 5  # one in 4 past the burst
    # The same /24 shares the budget; another /24 has its own.
    assert not lim.allow("203.0.113.8", 10.0)
    assert lim.allow("203.0.114.7", 10.0)
    assert lim.allow("203.0.113.7", 11.0)  # one refilled after a second


def test_error_limiter_groups_ipv6_by_56_and_can_drop_all() -> None:
    lim = ErrorLimiter(rate=1.0, burst=1, slip=0)
    assert lim.allow("2001:db8:0:100::1", 0.0)
    assert not any(lim.allow("2001:db8:0:1ff::2", 0.0) for _ in range(50))  # same /56
    assert lim.allow("2001:db8:0:200::1", 0.0)
    assert lim.dropped == 50
