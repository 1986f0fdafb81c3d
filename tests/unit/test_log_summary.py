"""Summary: a recurring event is said once, then counted; a flood of keys stays a few lines."""

from __future__ import annotations

from resolver.log_summary import Summary


def test_first_event_said_then_counted_then_said_as_a_count() -> None:
    s: Summary[str] = Summary(every=60.0)
    assert s.event("a", 0.0)
    assert not any(s.event("a", t) for t in (1.0, 2.0, 30.0))
    assert s.due(59.0) == []
    assert s.due(60.0) == [("a", 3)]
    assert s.due(61.0) == []
    assert not s.event("a", 70.0)  # said at 60: counted again
    assert s.due(120.0) == [("a", 1)]


def test_a_key_quiet_for_a_while_is_forgotten_and_said_afresh() -> None:
    s: Summary[str] = Summary(every=60.0)
    assert s.event("a", 0.0)
    assert s.due(61.0) == []  # nothing unsaid: forgotten
    assert s.event("a", 500.0)


def test_a_flood_of_keys_is_bounded_and_summed() -> None:
    s: Summary[int] = Summary(every=3600.0, max_keys=100, new_per_minute=10)
    said = sum(s.event(i, 0.0) for i in range(10_000))
    assert said == 10
    assert s.take_others() == 9_990
    assert s.take_others() == 0
    assert sum(s.event(i, 60.0) for i in range(10_000, 10_100)) == 10  # the next minute
