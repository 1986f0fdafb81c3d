"""Bounded state: windows, tracks, the information bound, LRU map."""

from __future__ import annotations

import random
import string

from resolver.exfil.state import DISTINCT, NAMES, SLOTS, VOLUME, Info, LruMap, Track, Window


def v(*head: int) -> tuple[int, ...]:
    return (*head, *(0,) * (SLOTS - len(head)))


def test_window_sums_then_forgets_whole_buckets() -> None:
    w = Window(60.0, 6)
    assert w.add(0.0, v(1, 10, 0, 0, 1))[NAMES] == 1
    assert w.add(25.0, v(1, 10, 0, 0, 1))[VOLUME] == 20
    assert w.add(59.0, v(0, 0, 0, 0, 1))[DISTINCT] == 3
    # at 60 s the first bucket [0, 10) leaves; at 90 s the one of 25 s leaves as well
    assert w.add(60.0, v())[NAMES] == 1
    assert w.add(90.0, v())[NAMES] == 0
    assert w.add(1000.0, v()) == [0] * SLOTS


def test_window_survives_a_clock_set_back() -> None:
    w = Window(60.0, 6)
    w.add(1000.0, (5,) * SLOTS)
    assert w.add(500.0, v(1)) == list(v(1))


def test_track_remembers_recent_names_only() -> None:
    t = Track(60.0, 3600.0)
    assert not t.seen(1)
    assert t.seen(1)
    for k in range(2, 2 + Track.RECENT):
        t.seen(k)
    assert not t.seen(1)  # forgotten: bounded
    assert len(t.recent) == Track.RECENT


def test_track_sees_regular_gaps_and_ignores_bursts() -> None:
    t = Track(60.0, 3600.0)
    rng = random.Random(1)
    now = 0.0
    for _ in range(7):
        t.tick(now, 5.0)
        t.tick(now + 0.5, 5.0)  # a burst within the round: not a gap
        now += 300 * rng.uniform(0.8, 1.0)
    assert len(t.gaps) == 6 and t.periodic(6, 0.25)
    t2 = Track(60.0, 3600.0)
    now = 0.0
    for _ in range(9):
        t2.tick(now, 5.0)
        now += rng.choice([6.0, 60.0, 900.0])
    assert not t2.periodic(6, 0.25)
    assert len(t2.gaps) <= Track.GAPS


def test_information_bound_credits_repetition_not_fresh_data() -> None:
    """Paxson et al. 2013: compressed size bounds what the names can carry."""
    rng = random.Random(2)
    fresh = Info()
    data = sum(fresh.add("".join(rng.choice(string.hexdigits[:16]) for _ in range(60)))
               for _ in range(20))  # fmt: skip
    same = Info()
    tenant = sum(same.add(f"selector{i % 2 + 1}-contoso-com._domainkey.contoso") for i in range(20))
    assert data > 20 * 25  # ~0.5 octet per hex character
    assert tenant < data / 5
    t = Track(60.0, 3600.0)
    first = "xy" * 10 + ".abcdef0123456789abcdef0123456789"
    assert t.information(first, 52, 12, True) == (20 * 53 + 32 * 41 + 79) // 80  # its capacity
    assert t.info is None
    # the second: the repeated label is free, the rest compressed against the first
    assert 0 < t.information("yx" * 10 + ".abcdef0123456789abcdef0123456789", 52, 12, True) <= 14
    assert t.information("x1.abcdef0123456789abcdef0123456789", 34, 12, True) == 2  # "x1" alone


def test_lru_map_evicts_the_least_recently_used() -> None:
    m: LruMap[str, int] = LruMap(2)
    assert not m.put("a", 1)
    m.put("b", 2)
    assert m.get("a") == 1  # "a" now most recent
    assert m.put("c", 3)  # "b" evicted
    assert m.peek("b") is None and m.peek("a") == 1 and len(m) == 2
    assert m.key_list() == ["a", "c"]
    m.pop("a")
    m.pop("zz")
    assert len(m) == 1
    m.clear()
    assert len(m) == 0


def test_persistence_counts_the_slots_with_data_over_the_span() -> None:
    t = Track(60.0, 3600.0)
    assert t.persist(0.0, 600.0, 24) == 1
    assert t.persist(10.0, 600.0, 24) == 1  # the same slot
    assert t.persist(700.0, 600.0, 24) == 2
    assert t.persist(700.0 + 23 * 600.0, 600.0, 24) == 2  # the first slot has left the span
    assert t.persist(100.0, 600.0, 24) == 1  # a clock set back starts again


def test_plain_names_outlive_a_burst_of_data_names() -> None:
    t = Track(60.0, 3600.0)
    assert not t.seen(7)
    t.keep_plain(7)
    for k in range(100, 200):
        t.seen(k)
    assert t.seen(7)


def test_scattered_answers_are_all_different_over_many_networks() -> None:
    rng = random.Random(3)
    data = Track(60.0, 3600.0)
    pool = Track(60.0, 3600.0)
    for i in range(8):
        data.address(int.from_bytes(rng.randbytes(4), "big"))
        pool.address((23 << 24) + (rng.choice((5, 6)) << 16) + i)  # a CDN's pool: one /8
    assert data.scattered(8)
    assert not pool.scattered(8)
    assert not Track(60.0, 3600.0).scattered(8)  # no answers yet: nothing to tell


def test_the_first_answer_to_a_new_name_says_if_the_name_looked_like_data() -> None:
    t = Track(60.0, 3600.0)
    t.expect(11)
    t.expect(12)
    t.mark_data(12)
    assert t.fresh(12) == 2
    assert t.fresh(11) == 1
    assert t.fresh(11) == 0  # only the first answer counts


def test_window_counting_methods_sum_as_add_does() -> None:
    """count_name and count_answer are ``add`` unrolled: fed alike, from bursts to pauses longer
    than the window and a clock set back, they hold the same totals."""
    rng = random.Random(4)
    for span, buckets in ((60.0, 6), (3600.0, 12)):
        w, ref = Window(span, buckets), Window(span, buckets)
        now = 1_700_000_000.0
        for _ in range(5000):
            now += rng.choice([0.0, 0.5, span / buckets, span * 2, -span / 3])
            a, b, c = rng.choice([0, 1, 7]), rng.choice([0, 2, 40]), rng.choice([0, 1])
            if rng.random() < 0.5:
                w.count_name(now, a, b, c, c, a + b)
                assert ref.add(now, (a, b, c, c, 1, a + b, 0, 0, 0)) == w.totals
            else:
                w.count_answer(now, b, b, c)
                assert ref.add(now, (0, 0, 0, 0, 0, b, b, 1, c)) == w.totals


def test_window_totals_are_the_sums_of_its_buckets_across_pauses() -> None:
    """Against the definition: at time ``now`` the totals are the sums of the values counted in
    the last ``buckets`` buckets, whether the clock moved by bursts or by pauses longer than
    the window (the pause resets all at once)."""
    rng = random.Random(6)
    span, buckets = 60.0, 6
    width = span / buckets
    w = Window(span, buckets)
    history: list[tuple[int, tuple[int, ...]]] = []
    now = 1_700_000_000.0
    for _ in range(3000):
        now += rng.choice([0.0, 0.3, width, span * 0.7, span * 4])
        values = tuple(rng.choice([0, 1, 5]) for _ in range(SLOTS))
        b = int(now // width)
        history.append((b, values))
        totals = w.add(now, values)
        live = [v for at, v in history if at > b - buckets]
        assert totals == [sum(v[k] for v in live) for k in range(SLOTS)]
        history = [(at, v) for at, v in history if at > b - buckets]
