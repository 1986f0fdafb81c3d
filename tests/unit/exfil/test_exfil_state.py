"""Bounded state: windows, tracks, LRU map."""

from __future__ import annotations

from resolver.exfil.state import DISTINCT, NAMES, VOLUME, LruMap, Track, Window


def test_window_sums_then_forgets_whole_buckets() -> None:
    w = Window(60.0, 6)
    assert w.add(0.0, (1, 10, 0, 0, 1))[NAMES] == 1
    assert w.add(25.0, (1, 10, 0, 0, 1))[VOLUME] == 20
    assert w.add(59.0, (0, 0, 0, 0, 1))[DISTINCT] == 3
    # at 60 s the first bucket [0, 10) leaves; at 90 s the one of 25 s leaves as well
    assert w.add(60.0, (0, 0, 0, 0, 0))[NAMES] == 1
    assert w.add(90.0, (0, 0, 0, 0, 0))[NAMES] == 0
    assert w.add(1000.0, (0, 0, 0, 0, 0)) == [0, 0, 0, 0, 0]


def test_window_survives_a_clock_set_back() -> None:
    w = Window(60.0, 6)
    w.add(1000.0, (5, 5, 5, 5, 5))
    assert w.add(500.0, (1, 0, 0, 0, 0)) == [1, 0, 0, 0, 0]


def test_track_remembers_recent_names_only() -> None:
    t = Track(60.0, 3600.0)
    assert not t.seen(1)
    assert t.seen(1)
    for k in range(2, 2 + Track.RECENT):
        t.seen(k)
    assert not t.seen(1)  # forgotten: bounded
    assert len(t.recent) == Track.RECENT


def test_lru_map_evicts_the_least_recently_used() -> None:
    m: LruMap[str, int] = LruMap(2)
    m.put("a", 1)
    m.put("b", 2)
    assert m.get("a") == 1  # "a" now most recent
    m.put("c", 3)
    assert m.peek("b") is None and m.peek("a") == 1 and len(m) == 2
    m.pop("a")
    m.pop("zz")
    assert len(m) == 1
    m.clear()
    assert len(m) == 0
