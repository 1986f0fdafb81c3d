"""Whether the box protects right now: a pure function of what the resolver, the feeds' state
and the block log say. No I/O and no hidden clock, so every case is a unit test.

Four checks: the threat lists are loaded and fresh, at least one upstream answers, the
exfiltration detector is on, the block log is being written. Each is "ok", "off" or "unknown"
(nothing to judge on: no resolver counters, no query sent upstream yet); only "off" makes a
problem. Problems come most urgent first: the page's headline states the first one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from resolver.blocklog.schema import HEARTBEAT
from resolver.stats import FeedStatusRow, StatsSnapshot

Check = Literal["ok", "off", "unknown"]
CHECKS: Final = ("feeds", "upstream", "detector", "blocklog")

# A writer that has not moved its heartbeat for this long has stopped or is stuck.
HEARTBEAT_STALE: Final = 3 * HEARTBEAT + 30.0

# Problem codes, most urgent first. Without lists nothing is blocked; without an upstream
# nothing is answered (the mairie notices that one by itself, hence second); then lists that
# rot, then the block log and the detector.
FEEDS_NONE: Final = "feeds_none"  # no threat list configured and nothing loaded
FEEDS_NEVER: Final = "feeds_never"  # configured, never downloaded
FEEDS_NOT_LOADED: Final = "feeds_not_loaded"  # downloaded, but the resolver holds no entry
UPSTREAM_DOWN: Final = "upstream_down"
FEEDS_STALE: Final = "feeds_stale"  # no list refreshed within feed_stale_hours
BLOCKLOG_UNREADABLE: Final = "blocklog_unreadable"
BLOCKLOG_FAILING: Final = "blocklog_failing"  # writes fail, or the heartbeat stopped
DETECTOR_OFF: Final = "detector_off"
ORDER: Final = (
    FEEDS_NONE,
    FEEDS_NEVER,
    FEEDS_NOT_LOADED,
    UPSTREAM_DOWN,
    FEEDS_STALE,
    BLOCKLOG_UNREADABLE,
    BLOCKLOG_FAILING,
    DETECTOR_OFF,
)


@dataclass(frozen=True, slots=True)
class Problem:
    code: str  # one of ORDER
    age: float | None = None  # FEEDS_STALE: seconds since the newest good download
    error_class: str = ""  # FEEDS_*: the class of the last download failure ("dns", "tls"...)


@dataclass(frozen=True, slots=True)
class Protection:
    checks: Mapping[str, Check]
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    @property
    def protected(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class ProtectionInput:
    now: float
    snapshot: StatsSnapshot | None  # None: the page runs without the resolver's counters
    feeds: Sequence[FeedStatusRow] | None  # None: the feeds' state is not known to the page
    feed_stale_seconds: float
    blocklog_readable: bool
    last_heartbeat: float | None  # newest ``runs.seen`` of the block log; None: no run recorded


def _error_class(feeds: Sequence[FeedStatusRow]) -> str:
    """The class of the first failing feed's error, "" if none failed."""
    for f in feeds:
        if f.last_error:
            return f.error_class or "other"
    return ""


def _feeds(p: ProtectionInput) -> tuple[Check, Problem | None]:
    entries = None if p.snapshot is None else p.snapshot.blocklist_entries
    feeds = p.feeds
    if feeds is None:
        if entries is None:
            return "unknown", None
        return ("ok", None) if entries else ("off", Problem(FEEDS_NONE))
    successes = [f.last_success for f in feeds if f.last_success is not None]
    error = _error_class(feeds)
    if not feeds:
        if entries is None or entries:  # the operator's own lists only, or nothing to judge on
            return ("unknown" if entries is None else "ok"), None
        return "off", Problem(FEEDS_NONE)
    if not successes:
        return "off", Problem(FEEDS_NEVER, error_class=error)
    if entries == 0:
        return "off", Problem(FEEDS_NOT_LOADED)
    age = max(0.0, p.now - max(successes))
    if age > p.feed_stale_seconds:
        return "off", Problem(FEEDS_STALE, age=age, error_class=error)
    return "ok", None


def _upstream(s: StatsSnapshot | None) -> tuple[Check, Problem | None]:
    if s is None or s.upstream_answering is None:
        return "unknown", None
    return ("ok", None) if s.upstream_answering else ("off", Problem(UPSTREAM_DOWN))


def _detector(s: StatsSnapshot | None) -> tuple[Check, Problem | None]:
    if s is None or not s.detector_mode:
        return "unknown", None
    return ("off", Problem(DETECTOR_OFF)) if s.detector_mode == "off" else ("ok", None)


def _blocklog(p: ProtectionInput) -> tuple[Check, Problem | None]:
    if not p.blocklog_readable:
        return "off", Problem(BLOCKLOG_UNREADABLE)
    s = p.snapshot
    if s is None:
        return "unknown", None
    if s.blocklog_failing:
        return "off", Problem(BLOCKLOG_FAILING)
    if p.last_heartbeat is None:
        return "unknown", None  # a writer not started yet, or a block log older than runs
    if p.now - p.last_heartbeat > HEARTBEAT_STALE:
        return "off", Problem(BLOCKLOG_FAILING)
    return "ok", None


def protection(p: ProtectionInput) -> Protection:
    """The protection state now: each check, and the problems most urgent first."""
    results = {
        "feeds": _feeds(p),
        "upstream": _upstream(p.snapshot),
        "detector": _detector(p.snapshot),
        "blocklog": _blocklog(p),
    }
    problems = [problem for _, problem in results.values() if problem is not None]
    problems.sort(key=lambda pr: ORDER.index(pr.code))
    return Protection({name: check for name, (check, _) in results.items()}, tuple(problems))
