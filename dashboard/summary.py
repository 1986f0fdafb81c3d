"""What the page and the API show, read from the block log in one go (on a worker thread).

These functions take an open read-only connection and ``now``; they hold no state.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass

from dashboard import queries
from dashboard.queries import KINDS, BlockRow, CategoryCount, ClientCount, Kind, NameCount
from dashboard.weather import Weather, day_bounds, last_days, local_date, weather_for
from resolver.config.dashboard import DashboardConfig

HISTORY_MAX_DAYS = 400  # the block log keeps 400 days by default; older days are not in `blocks`


@dataclass(frozen=True, slots=True)
class DayWeather:
    day: dt.date
    count: int
    weather: Weather


@dataclass(frozen=True, slots=True)
class Summary:
    day: dt.date  # today, in the configured time zone
    start: float  # local midnight, unix seconds
    total: int
    weather: Weather
    by_category: tuple[CategoryCount, ...]
    kind_totals: dict[Kind, int]
    top_names: tuple[NameCount, ...]
    top_clients: tuple[ClientCount, ...]
    highlight: ClientCount | None  # a machine that stands out, if any
    losses: dict[str, int]


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


def load_summary(conn: sqlite3.Connection, cfg: DashboardConfig, now: float) -> Summary:
    """Today's figures, since local midnight in ``cfg.timezone``."""
    day = local_date(now, cfg.timezone)
    start, end = day_bounds(day, cfg.timezone)
    by_category = queries.counts_by_category(conn, start, end)
    kind_totals: dict[Kind, int] = dict.fromkeys(KINDS, 0)
    for c in by_category:
        kind_totals[c.kind] += c.count
    total = sum(kind_totals.values())
    clients = queries.top_clients(conn, start, end, cfg.top)
    # The machine with the most blocks of one category stands out once it passes the minimum.
    candidates = [c for c in clients if c.category_count >= cfg.highlight_min]
    highlight = max(candidates, key=lambda c: c.category_count, default=None)
    return Summary(
        day=day,
        start=start,
        total=total,
        weather=weather_for(total, cfg.thresholds),
        by_category=tuple(by_category),
        kind_totals=kind_totals,
        top_names=tuple(queries.top_names(conn, start, end, cfg.top)),
        top_clients=tuple(clients),
        highlight=highlight,
        losses=queries.losses(conn),
    )


def load_history(
    conn: sqlite3.Connection, cfg: DashboardConfig, now: float, days: int
) -> list[DayWeather]:
    """The weather of the last ``days`` local days (today included), oldest first."""
    days = max(1, min(days, HISTORY_MAX_DAYS))
    result = []
    for day in last_days(now, cfg.timezone, days):
        start, end = day_bounds(day, cfg.timezone)
        count = queries.count_between(conn, start, end)
        result.append(DayWeather(day, count, weather_for(count, cfg.thresholds)))
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
