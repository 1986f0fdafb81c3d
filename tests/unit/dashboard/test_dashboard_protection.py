"""The protection state (dashboard/protection.py) and the run coverage (dashboard/coverage.py):
pure functions, every case a line."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dashboard.coverage import covered
from dashboard.protection import (
    BLOCKLOG_FAILING,
    BLOCKLOG_UNREADABLE,
    DETECTOR_OFF,
    FEEDS_NEVER,
    FEEDS_NONE,
    FEEDS_NOT_LOADED,
    FEEDS_STALE,
    HEARTBEAT_STALE,
    UPSTREAM_DOWN,
    ProtectionInput,
    protection,
)
from resolver.stats import FeedStatusRow, StatsSnapshot, upstream_answering

NOW = 1_800_000_000.0
STALE = 48 * 3600.0


def snapshot(**kw: object) -> StatsSnapshot:
    base = StatsSnapshot(
        started_at=NOW - 3600,
        blocklist_entries=20_000,
        upstream_answering=True,
        detector_mode="block",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def fresh_feeds() -> list[FeedStatusRow]:
    return [
        FeedStatusRow("urlhaus", "malware", 12_000, NOW - 3600, ""),
        FeedStatusRow("openphish", "phishing", 8_000, NOW - 7200, ""),
    ]


def given(**kw: object) -> ProtectionInput:
    base = ProtectionInput(
        now=NOW,
        snapshot=snapshot(),
        feeds=fresh_feeds(),
        feed_stale_seconds=STALE,
        blocklog_readable=True,
        last_heartbeat=NOW - 30,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def codes(p: ProtectionInput) -> list[str]:
    return [pr.code for pr in protection(p).problems]


def test_all_well_protects() -> None:
    p = protection(given())
    assert p.protected and not p.problems
    assert dict(p.checks) == {
        "feeds": "ok",
        "upstream": "ok",
        "detector": "ok",
        "blocklog": "ok",
    }


def test_fresh_install_without_internet_names_the_feeds_first() -> None:
    # The case: feeds never downloaded (the last try could not resolve names), nothing
    # loaded, every upstream down.
    never = [FeedStatusRow("urlhaus", "malware", 0, None, "no DNS: cannot resolve x", "dns")]
    p = protection(
        given(
            feeds=never,
            snapshot=snapshot(blocklist_entries=0, upstream_answering=False),
        )
    )
    assert not p.protected
    assert [pr.code for pr in p.problems] == [FEEDS_NEVER, UPSTREAM_DOWN]
    assert p.problems[0].error_class == "dns"
    assert p.checks["feeds"] == "off" and p.checks["upstream"] == "off"


def test_feeds() -> None:
    never = [FeedStatusRow("urlhaus", "malware", 0, None, "")]
    assert codes(given(feeds=never)) == [FEEDS_NEVER]
    # Downloaded, but the resolver holds nothing: it has not reloaded.
    assert codes(given(snapshot=snapshot(blocklist_entries=0))) == [FEEDS_NOT_LOADED]
    # No feed configured and nothing loaded; with the operator's own lists only, fine.
    assert codes(given(feeds=[], snapshot=snapshot(blocklist_entries=0))) == [FEEDS_NONE]
    assert codes(given(feeds=[])) == []
    # Stale: the newest good download is older than feed_stale_hours; the age is given.
    old = [
        FeedStatusRow("a", "malware", 10, NOW - STALE - 60, "timed out", "timeout"),
        FeedStatusRow("b", "malware", 10, NOW - STALE - 3600, ""),
    ]
    p = protection(given(feeds=old))
    assert [pr.code for pr in p.problems] == [FEEDS_STALE]
    assert p.problems[0].age == pytest.approx(STALE + 60)
    assert p.problems[0].error_class == "timeout"
    # One fresh feed is enough: a single failing list shows in the feeds table, not the headline.
    mixed = [*old, FeedStatusRow("c", "c2", 5, NOW - 60, "")]
    assert codes(given(feeds=mixed)) == []


def test_unknown_is_not_a_problem() -> None:
    p = protection(given(snapshot=None, feeds=None, last_heartbeat=None))
    assert p.protected
    assert set(p.checks.values()) == {"unknown"}
    # No query sent upstream yet: nothing to judge on.
    p = protection(given(snapshot=snapshot(upstream_answering=None)))
    assert p.protected and p.checks["upstream"] == "unknown"


def test_detector_and_block_log() -> None:
    assert codes(given(snapshot=snapshot(detector_mode="off"))) == [DETECTOR_OFF]
    assert codes(given(snapshot=snapshot(detector_mode="detect"))) == []
    assert codes(given(blocklog_readable=False)) == [BLOCKLOG_UNREADABLE]
    assert codes(given(snapshot=snapshot(blocklog_failing=True))) == [BLOCKLOG_FAILING]
    # The writer's heartbeat stopped: stuck or gone.
    assert codes(given(last_heartbeat=NOW - HEARTBEAT_STALE - 1)) == [BLOCKLOG_FAILING]
    assert codes(given(last_heartbeat=NOW - HEARTBEAT_STALE + 1)) == []


def test_problems_come_most_urgent_first() -> None:
    p = given(
        feeds=[FeedStatusRow("a", "malware", 0, None, "")],
        snapshot=snapshot(detector_mode="off", upstream_answering=False, blocklog_failing=True),
    )
    assert codes(p) == [FEEDS_NEVER, UPSTREAM_DOWN, BLOCKLOG_FAILING, DETECTOR_OFF]


class Health:
    def __init__(self, fails: int, answered: int, failed: int) -> None:
        self.fails, self.answered, self.failed = fails, answered, failed


def test_upstream_answering() -> None:
    assert upstream_answering([]) is None
    assert upstream_answering([None, None]) is None  # configured, never asked
    assert upstream_answering([Health(0, 0, 0)]) is None
    assert upstream_answering([Health(3, 0, 3)]) is False  # never answered
    assert upstream_answering([Health(2, 10, 5), None]) is False  # the last tries failed
    assert upstream_answering([Health(2, 10, 5), Health(0, 4, 0)]) is True  # one answers
    assert upstream_answering([Health(0, 10, 5)]) is True  # answered again


def test_coverage() -> None:
    day = (NOW - 86_400, NOW)
    # One run from 10:00 to 12:00 of a day that ended: two hours.
    assert covered([(day[0] + 36_000, day[0] + 43_200)], *day, NOW) == 7200
    # Overlapping runs (two workers) count once; a run reaching past the window is clipped.
    runs = [(day[0] - 500, day[0] + 100), (day[0] + 50, day[0] + 200)]
    assert covered(runs, *day, NOW) == 200
    # A run whose heartbeat is recent is still up: counted until now.
    assert covered([(NOW - 600, NOW - 50)], *day, NOW) == 600
    # Nothing before the first start.
    assert covered([], *day, NOW) == 0
