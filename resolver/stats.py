"""A snapshot of the resolver's counters, read by the dashboard and /metrics at scrape time.

The hot path only increments plain integers; this snapshot is built when someone asks, so
metrics cost nothing per query.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

# Upper bounds (seconds) of the upstream latency histogram buckets; +Inf is implicit.
LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True, slots=True)
class StaleList:
    """An operator list file that cannot be read: what stands in for it, and why."""

    kind: str  # "blocklist" or "allowlist"
    name: str
    path: str
    entries: int  # names in the copy still in use (0: none was ever read)
    loaded_at: float  # unix seconds of the read that gave that copy; 0.0: never read
    error: str  # why the file cannot be read, e.g. "No such file or directory"


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    started_at: float  # unix time the server started
    queries_by_verdict: dict[str, int] = field(default_factory=dict)  # "cached": 12, ...
    malformed: int = 0  # queries answered FORMERR/NOTIMP/BADVERS or ignored as malformed
    dropped: int = 0  # queries not answered (in-flight cap, policy drops)
    cache_hits: int = 0
    cache_misses: int = 0
    cache_entries: int = 0
    upstream_failures: int = 0  # tries that timed out or failed
    # Per-bucket (not cumulative) counts of answered upstream exchanges, one more for +Inf.
    upstream_latency_counts: tuple[int, ...] = ()
    upstream_latency_sum: float = 0.0
    blocklist_entries: int = 0
    list_reloads: int = 0
    list_reload_failures: int = 0
    blocklog_dropped: int = 0  # block events lost because the queue was full
    blocklog_written: int = 0
    blocklog_write_failed: int = 0
    # The protection state (dashboard/protection.py). None: no upstream asked yet. False: the
    # last try of every upstream asked failed (see ``upstream_answering`` below).
    upstream_answering: bool | None = None
    detector_mode: str = ""  # the exfiltration detector: "block", "detect", "off"; "" unknown
    blocklog_failing: bool = False  # the block log's last write or heartbeat failed
    # Operator list files that could not be read at the last reload: the resolver keeps their
    # last good copy (resolver/blocklist_holder.py), which is stale until the file is back.
    stale_lists: tuple[StaleList, ...] = ()
    # Blocked queries per policy group (config groups:), the default group included; empty
    # when the config has no groups.
    blocks_by_group: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FeedStatusRow:
    """One threat feed as the page shows it, adapted from the feeds' state files by the server
    (``resolver.feeds_status``), so that the page never imports the feeds package.
    """

    name: str
    category: str
    entries: int
    last_success: float | None  # unix seconds of the last good download, None if never
    last_error: str  # "" when the last attempt succeeded
    # The class of the last failure ("dns", "route", "refused", "tls", "http", "timeout",
    # "other"; "" if none), so the page can say it in its own language.
    error_class: str = ""


class _UpstreamHealth(Protocol):
    fails: int  # consecutive failed tries
    answered: int
    failed: int


def upstream_answering(health: Iterable[_UpstreamHealth | None]) -> bool | None:
    """Whether at least one upstream answered its last try; None if none was asked yet.

    ``health`` has one entry per configured upstream (None: never asked). An upstream whose
    last try failed counts as down until it answers again; one that answered, as up.
    """
    asked = [h for h in health if h is not None and (h.answered or h.failed)]
    if not asked:
        return None
    return any(h.fails == 0 for h in asked)
