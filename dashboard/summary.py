"""What the page and the API show, read from the block log in one go (on a worker thread).

These functions take an open read-only connection and ``now``; they hold no state.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from dashboard import queries
from dashboard.coverage import covered
from dashboard.queries import (
    KINDS,
    THREAT_KINDS,
    BlockRow,
    CategoryCount,
    ClientCount,
    Kind,
    NameCount,
)
from dashboard.tally import DayTally
from dashboard.weather import Weather, day_bounds, last_days, local_date, weather_for
from resolver.config.dashboard import DashboardConfig
from resolver.config.groups import DEFAULT_GROUP, Network, group_of

# The config's groups as (name, networks), networks and named clients' addresses together
# (resolver.config.groups.group_networks); empty: one policy, no groups shown.
GroupNetworks = Sequence[tuple[str, Sequence[Network]]]

# A day's blocks per (machine, family, category), largest first (DayTally's shares).
Shares = Sequence[tuple[str, CategoryCount]]

HISTORY_MAX_DAYS = 400  # the block log keeps 400 days by default; older days are not in `blocks`

# Which machine the headline names first: data leaving now (a tunnel), then a machine that
# talks to its controller or to generated domains (infected), then everything else.
_INFECTION_CATEGORIES = frozenset({"c2", "dga", "botnet", "ransomware"})


def urgency(kind: Kind, category: str) -> int:
    """2: exfiltration, 1: infection (command and control, generated domains), 0: the rest,
    -1: getting around the filter (not a threat: named when no threat stands out)."""
    if kind == "exfiltration":
        return 2
    if kind == "bypass":
        return -1
    return 1 if category in _INFECTION_CATEGORIES else 0


@dataclass(frozen=True, slots=True)
class DayWeather:
    day: dt.date
    count: int  # threats: what makes the weather
    weather: Weather
    data: bool = True  # False: the box was not running that day (or not yet installed)
    covered: float = 0.0  # seconds of the day (up to now) the box ran; see ``span``
    span: float = 0.0  # seconds of the day up to now (23, 24 or 25 hours for a past day)
    bypass: int = 0  # attempts to get around the filter: shown, never in the weather


@dataclass(frozen=True, slots=True)
class HourCell:
    """One hour of today: its blocks, and whether the box ran during it."""

    start: float  # unix seconds; local hours are 3,600 s slots from local midnight
    count: int
    data: bool  # False: the box did not run at all during this hour
    future: bool  # not begun yet


@dataclass(frozen=True, slots=True)
class GroupCount:
    """Today's blocks of one group of the commune's clients (config ``groups``)."""

    group: str
    count: int  # threats
    bypass: int  # attempts to get around the filter
    clients: int  # machines with a block


@dataclass(frozen=True, slots=True)
class Summary:
    day: dt.date  # today, in the configured time zone
    start: float  # local midnight, unix seconds
    total: int  # threats: what makes the weather (bypass attempts are kind_totals["bypass"])
    weather: Weather
    by_category: tuple[CategoryCount, ...]
    kind_totals: dict[Kind, int]
    top_names: tuple[NameCount, ...]
    top_clients: tuple[ClientCount, ...]
    highlight: ClientCount | None  # a machine that stands out, if any
    losses: dict[str, int]
    covered: float = 0.0  # seconds since midnight the box ran
    elapsed: float = 0.0  # seconds since midnight
    running_since: float | None = None  # start of the current run, if it began today
    last_heartbeat: float | None = None  # the block log's newest heartbeat
    hours: tuple[HourCell, ...] = ()  # today, hour by hour (23 to 25 of them)
    groups: tuple[GroupCount, ...] = ()  # per group, when the config has groups

    @property
    def bypass(self) -> int:
        """Attempts to get around the filter today: shown apart, never in the weather."""
        return self.kind_totals.get("bypass", 0)


@dataclass(frozen=True, slots=True)
class BlocksPage:
    day: dt.date
    total: int  # blocks matching (a row stands for its count of identical queries)
    rows: int  # rows matching: what the pages divide
    page: int  # 1-based
    page_size: int
    items: tuple[BlockRow, ...]

    @property
    def pages(self) -> int:
        return max(1, -(-self.rows // self.page_size))


def load_summary(
    conn: sqlite3.Connection,
    cfg: DashboardConfig,
    now: float,
    groups: GroupNetworks = (),
    tally: DayTally | None = None,
) -> Summary:
    """Today's figures, since local midnight in ``cfg.timezone``; per group with ``groups``.

    The figures per category, machine, hour and group come from ``tally`` (the page's, kept up
    to date from the rows written since its last read); without one, from one read of the day.
    """
    day = local_date(now, cfg.timezone)
    start, end = day_bounds(day, cfg.timezone)
    if tally is None:
        tally = DayTally()
    figures = tally.read(conn, start, end)
    shares = figures.shares
    by_category = category_counts(shares)
    kind_totals: dict[Kind, int] = dict.fromkeys(KINDS, 0)
    for c in by_category:
        kind_totals[c.kind] += c.count
    total = sum(kind_totals[k] for k in THREAT_KINDS)
    clients = _top_clients(shares, cfg.top)
    runs = queries.runs_between(conn, start, end)
    current = max(runs, default=None, key=lambda r: r[1])
    return Summary(
        day=day,
        start=start,
        total=total,
        weather=weather_for(total, cfg.thresholds),
        by_category=tuple(by_category),
        kind_totals=kind_totals,
        top_names=tally.top_names(conn, start, end, cfg.top),
        top_clients=tuple(clients),
        highlight=_highlight(shares, cfg.highlight_min),
        losses=queries.losses(conn),
        covered=covered(runs, start, end, now),
        elapsed=max(0.0, min(end, now) - start),
        running_since=current[0] if current is not None and current[0] > start else None,
        last_heartbeat=queries.last_heartbeat(conn),
        hours=_hours(conn, figures.hours, runs, start, end, now),
        groups=by_group(shares, groups) if groups else (),
    )


def by_group(shares: Shares, groups: GroupNetworks) -> tuple[GroupCount, ...]:
    """Blocks per group, from the day's shares, each machine's group judged from the config now
    (as the resolver chooses it: the block log keeps no group). Every group is listed, in the
    config's order, the default group last."""
    found = {name: [0, 0, 0] for name, _ in groups}
    found[DEFAULT_GROUP] = [0, 0, 0]
    seen: set[str] = set()
    for client, c in shares:
        counts = found[group_of(client, groups)]
        counts[1 if c.kind == "bypass" else 0] += c.count
        if client not in seen:
            seen.add(client)
            counts[2] += 1
    return tuple(GroupCount(name, *counts) for name, counts in found.items())


def _hours(
    conn: sqlite3.Connection,
    counts: dict[int, int],
    runs: list[queries.Run],
    start: float,
    end: float,
    now: float,
) -> tuple[HourCell, ...]:
    """Today hour by hour, from the threats per hour slot. An hour the box did not run at all
    has no data (never a calm hour); before runs were recorded (a block log older than v4),
    every past hour counts as covered."""
    recorded = queries.first_run(conn) is not None
    cells = []
    for slot in range(round((end - start) / 3600)):  # 23, 24 or 25 on DST change days
        a = start + slot * 3600
        future = a >= now
        up = not recorded or covered(runs, a, a + 3600, now) > 0
        n = counts.get(slot, 0)
        cells.append(HourCell(a, n, (up or n > 0) and not future, future))
    return tuple(cells)


def category_counts(shares: Shares) -> list[CategoryCount]:
    """Blocks by family and category, largest first (then by category), from the shares."""
    totals: dict[tuple[Kind, str], int] = {}
    for _, c in shares:
        totals[c.kind, c.category] = totals.get((c.kind, c.category), 0) + c.count
    ordered = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0][1], kv[0][0]))
    return [CategoryCount(kind, category, n) for (kind, category), n in ordered]


def _top_clients(shares: Shares, limit: int) -> list[ClientCount]:
    """The machines with the most blocks (then by address), each with its main category (the
    most blocks, then the first category by name)."""
    main: dict[str, CategoryCount] = {}
    totals: dict[str, int] = {}
    for client, c in shares:
        totals[client] = totals.get(client, 0) + c.count
        best = main.get(client)
        if best is None or (-c.count, c.category, c.kind) < (-best.count, best.category, best.kind):
            main[client] = c
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [
        ClientCount(client, n, main[client].category, main[client].kind, main[client].count)
        for client, n in ranked
    ]


def _highlight(shares: Shares, minimum: int) -> ClientCount | None:
    """The machine to look at first: among (machine, category) pairs with at least ``minimum``
    blocks, the most urgent kind (a tunnel above an infection above list blocks), then the most
    blocks."""
    pairs = [p for p in shares if p[1].count >= minimum]
    if not pairs:
        return None
    client, c = max(pairs, key=lambda p: (urgency(p[1].kind, p[1].category), p[1].count))
    total = sum(share.count for machine, share in shares if machine == client)
    return ClientCount(client, total, c.category, c.kind, c.count)


def load_history(
    conn: sqlite3.Connection, cfg: DashboardConfig, now: float, days: int
) -> list[DayWeather]:
    """The weather of the last ``days`` local days (today included), oldest first.

    A day without any block is sunny only if the box ran that day (its ``runs``); before the
    first recorded run (a block log older than schema v4), only if the box was already logging
    (a daily count on or before that day). Otherwise the day has no data.
    """
    days = max(1, min(days, HISTORY_MAX_DAYS))
    dates = last_days(now, cfg.timezone, days)
    first_start, _ = day_bounds(dates[0], cfg.timezone)
    runs = queries.runs_between(conn, first_start, now + 1)
    first_run = queries.first_run(conn)
    first_logged = queries.first_counted_day(conn)
    result = []
    for day in dates:
        start, end = day_bounds(day, cfg.timezone)
        count, bypass = queries.threats_between(conn, start, end)
        span = max(0.0, min(end, now) - start)
        recorded = first_run is not None and end > first_run
        # Before runs were recorded, a day counts as covered as far back as the box was logging.
        up = covered(runs, start, end, now) if recorded else span
        if count or bypass:
            data = True
        elif recorded:
            data = up > 0
        else:
            data = first_logged is not None and first_logged <= day.isoformat()
            up = span if data else 0.0
        weather = weather_for(count, cfg.thresholds)
        result.append(DayWeather(day, count, weather, data, up, span, bypass))
    return result


def load_blocks(
    conn: sqlite3.Connection,
    cfg: DashboardConfig,
    day: dt.date,
    *,
    category: str | None = None,
    client: str | None = None,
    page: int = 1,
    page_size: int | None = None,
) -> BlocksPage:
    """One page of the blocks of local ``day``, newest first; sizes clamped to the config."""
    size = max(1, min(page_size or cfg.page_size, cfg.max_page_size))
    page = max(1, page)
    start, end = day_bounds(day, cfg.timezone)
    total, rows, items = queries.blocks_page(
        conn, start, end, category=category, client=client, limit=size, offset=(page - 1) * size
    )
    return BlocksPage(day, total, rows, page, size, tuple(items))
