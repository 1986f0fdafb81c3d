"""/metrics in the Prometheus text format, through prometheus-client and a custom collector.

Nothing is counted per query: at scrape time the handler takes the resolver's ``StatsSnapshot``
(on the loop, where the counters live), reads the block log on the dashboard's worker thread,
and a fresh registry with one collector turns both into metric families.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from dashboard import queries
from dashboard.api import feed_rows, protection_now
from dashboard.context import CONTEXT, FeedStatusRow, read_db
from dashboard.protection import Protection
from dashboard.queries import CategoryCount
from dashboard.summary import category_counts
from dashboard.weather import Weather, since_midnight, weather_for
from resolver.blocklog.schema import (
    NON_THREAT_CATEGORIES,
    QUEUE_DROPPED,
    WRITE_FAILED,
    BlockLogError,
)
from resolver.stats import LATENCY_BUCKETS, StatsSnapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BlockLogFigures:
    """What /metrics reads from the block log."""

    today: tuple[CategoryCount, ...]  # since local midnight
    totals: dict[str, int]  # since the log was created
    losses: dict[str, int]  # persisted loss counters
    last_heartbeat: float | None = None  # the block log's newest heartbeat

    @property
    def threats_today(self) -> int:
        """What makes the weather: every block of today but the bypass attempts."""
        return sum(c.count for c in self.today if c.category not in NON_THREAT_CATEGORIES)

    @property
    def bypass_today(self) -> int:
        return sum(c.count for c in self.today if c.category in NON_THREAT_CATEGORIES)


@dataclass(frozen=True, slots=True)
class MetricsInput:
    now: float
    version: str
    uptime: float
    snapshot: StatsSnapshot | None
    blocklog: BlockLogFigures | None  # None: the block log could not be read
    weather: Weather | None
    feeds: Sequence[FeedStatusRow] = field(default_factory=tuple)
    protection: Protection | None = None


def latency_buckets(counts: Sequence[int]) -> list[tuple[str, float]]:
    """Per-bucket counts (one per LATENCY_BUCKETS bound, then +Inf) -> cumulative buckets."""
    if len(counts) != len(LATENCY_BUCKETS) + 1:
        counts = (0,) * (len(LATENCY_BUCKETS) + 1)
    bounds = [repr(float(b)) for b in LATENCY_BUCKETS] + ["+Inf"]
    result, running = [], 0
    for bound, n in zip(bounds, counts, strict=True):
        running += n
        result.append((bound, float(running)))
    return result


class ParafoudreCollector(Collector):
    """Turns one scrape's inputs into metric families."""

    def __init__(self, data: MetricsInput) -> None:
        self._data = data

    def collect(self) -> Iterator[Metric]:
        d = self._data
        info = GaugeMetricFamily(
            "parafoudre_build_info", "Version of Parafoudre, as a label.", labels=["version"]
        )
        info.add_metric([d.version], 1)
        yield info
        yield GaugeMetricFamily(
            "parafoudre_uptime_seconds", "Seconds since the resolver started.", value=d.uptime
        )
        if d.snapshot is not None:
            yield from _resolver_metrics(d.snapshot)
        yield from _blocklog_metrics(d)
        yield from _feed_metrics(d)
        if d.protection is not None:
            yield from _protection_metrics(d.protection)


def _protection_metrics(p: Protection) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "parafoudre_protected",
        "1 if the box protects: lists loaded and fresh, an upstream answering, the exfiltration"
        " detector on, the block log written.",
        value=int(p.protected),
    )
    checks = GaugeMetricFamily(
        "parafoudre_protection_check",
        "Each protection check: 1 ok, 0 failing (absent while unknown).",
        labels=["check"],
    )
    for name, state in p.checks.items():
        if state != "unknown":
            checks.add_metric([name], int(state == "ok"))
    yield checks
    problems = GaugeMetricFamily(
        "parafoudre_protection_problem",
        "1 for each current protection problem, by code (feeds_never, upstream_down, ...).",
        labels=["problem"],
    )
    for problem in p.problems:
        problems.add_metric([problem.code], 1)
    yield problems


def _resolver_metrics(s: StatsSnapshot) -> Iterator[Metric]:
    queries_ = CounterMetricFamily(
        "parafoudre_queries", "Queries answered, by verdict.", labels=["verdict"]
    )
    for verdict, n in sorted(s.queries_by_verdict.items()):
        queries_.add_metric([verdict], n)
    yield queries_
    if s.blocks_by_group:
        groups = CounterMetricFamily(
            "parafoudre_group_blocks", "Blocked queries, by policy group.", labels=["group"]
        )
        for group, n in sorted(s.blocks_by_group.items()):
            groups.add_metric([group], n)
        yield groups
    yield CounterMetricFamily(
        "parafoudre_malformed_queries", "Malformed queries (FORMERR, NOTIMP, ...).", s.malformed
    )
    yield CounterMetricFamily(
        "parafoudre_dropped_queries", "Queries not answered (caps, policy).", s.dropped
    )
    yield CounterMetricFamily("parafoudre_cache_hits", "Answers served from cache.", s.cache_hits)
    yield CounterMetricFamily("parafoudre_cache_misses", "Cache lookups missed.", s.cache_misses)
    lookups = s.cache_hits + s.cache_misses
    yield GaugeMetricFamily(
        "parafoudre_cache_hit_ratio",
        "Cache hits over lookups since start (0 before any lookup).",
        value=s.cache_hits / lookups if lookups else 0.0,
    )
    yield GaugeMetricFamily("parafoudre_cache_entries", "Answers in cache.", s.cache_entries)
    yield HistogramMetricFamily(
        "parafoudre_upstream_latency_seconds",
        "Time to get an answer from an upstream resolver.",
        buckets=latency_buckets(s.upstream_latency_counts),
        sum_value=s.upstream_latency_sum,
    )
    yield CounterMetricFamily(
        "parafoudre_upstream_failures",
        "Upstream tries that failed or timed out.",
        s.upstream_failures,
    )
    yield GaugeMetricFamily(
        "parafoudre_blocklist_entries", "Names in the loaded blocklist.", s.blocklist_entries
    )
    yield CounterMetricFamily("parafoudre_list_reloads", "Blocklist reloads.", s.list_reloads)
    yield CounterMetricFamily(
        "parafoudre_list_reload_failures", "Blocklist reloads that failed.", s.list_reload_failures
    )
    yield CounterMetricFamily(
        "parafoudre_blocklog_queue_dropped",
        "Block events dropped since start because the block log queue was full.",
        s.blocklog_dropped,
    )
    yield CounterMetricFamily(
        "parafoudre_blocklog_written", "Block events written since start.", s.blocklog_written
    )
    yield CounterMetricFamily(
        "parafoudre_blocklog_write_failed",
        "Block events lost since start because SQLite refused the write.",
        s.blocklog_write_failed,
    )


def _blocklog_metrics(d: MetricsInput) -> Iterator[Metric]:
    readable = d.blocklog is not None
    yield GaugeMetricFamily(
        "parafoudre_blocklog_readable", "1 if the dashboard can read the block log.", int(readable)
    )
    if d.blocklog is None:
        return
    today = GaugeMetricFamily(
        "parafoudre_blocks_today",
        "Blocks since local midnight, by family (feeds, exfiltration, lists; bypass: attempts to"
        " get around the filter, not threats) and category.",
        labels=["kind", "category"],
    )
    for c in d.blocklog.today:
        today.add_metric([c.kind, c.category], c.count)
    yield today
    yield GaugeMetricFamily(
        "parafoudre_threats_today",
        "Threats blocked since local midnight: what makes the weather (bypass attempts left out).",
        d.blocklog.threats_today,
    )
    yield GaugeMetricFamily(
        "parafoudre_bypass_attempts_today",
        "Attempts to get around the filter since local midnight (canaries, bypass feeds).",
        d.blocklog.bypass_today,
    )
    total = CounterMetricFamily(
        "parafoudre_blocks",
        "Blocks since the block log was created, by category.",
        labels=["category"],
    )
    for category, n in sorted(d.blocklog.totals.items()):
        total.add_metric([category], n)
    yield total
    lost = CounterMetricFamily(
        "parafoudre_blocklog_lost",
        "Block events lost since the block log was created, by cause (persisted).",
        labels=["cause"],
    )
    lost.add_metric([QUEUE_DROPPED], d.blocklog.losses.get(QUEUE_DROPPED, 0))
    lost.add_metric([WRITE_FAILED], d.blocklog.losses.get(WRITE_FAILED, 0))
    yield lost
    if d.weather is not None:
        yield GaugeMetricFamily(
            "parafoudre_weather_level",
            "Today's weather: 0 sunny, 1 cloudy, 2 rain, 3 storm, 4 tornado.",
            d.weather.level,
        )


def _feed_metrics(d: MetricsInput) -> Iterator[Metric]:
    age = GaugeMetricFamily(
        "parafoudre_feed_age_seconds",
        "Seconds since the feed was last downloaded successfully (absent if never).",
        labels=["feed"],
    )
    entries = GaugeMetricFamily("parafoudre_feed_entries", "Names in the feed.", labels=["feed"])
    failing = GaugeMetricFamily(
        "parafoudre_feed_failing", "1 if the feed's last update failed.", labels=["feed"]
    )
    for f in d.feeds:
        if f.last_success is not None:
            age.add_metric([f.name], max(0.0, d.now - f.last_success))
        entries.add_metric([f.name], f.entries)
        failing.add_metric([f.name], int(bool(f.last_error)))
    yield age
    yield entries
    yield failing


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics."""
    ctx = request.app[CONTEXT]
    now = ctx.clock()
    snapshot = ctx.stats() if ctx.stats is not None else None
    start, end = since_midnight(now, ctx.cfg.timezone)

    def read(conn: sqlite3.Connection) -> BlockLogFigures:
        return BlockLogFigures(
            today=tuple(category_counts(ctx.tally.read(conn, start, end).shares)),
            totals=queries.totals_by_category(conn),
            losses=queries.losses(conn),
            last_heartbeat=queries.last_heartbeat(conn),
        )

    figures: BlockLogFigures | None
    try:
        figures = await read_db(request.app, read)
    except BlockLogError as exc:
        log.debug("dashboard: /metrics without block log: %s", exc)
        figures = None
    prot = protection_now(
        ctx,
        now,
        readable=figures is not None,
        last_heartbeat=figures.last_heartbeat if figures is not None else None,
    )
    weather = None
    if figures is not None:
        weather = weather_for(figures.threats_today, ctx.cfg.thresholds)
    data = MetricsInput(
        now=now,
        version=ctx.version,
        uptime=ctx.uptime(),
        snapshot=snapshot,
        blocklog=figures,
        weather=weather,
        feeds=tuple(feed_rows(ctx)),
        protection=prot,
    )
    # A registry per scrape: no global state, and the collector sees exactly this scrape's data.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ParafoudreCollector(data))
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
