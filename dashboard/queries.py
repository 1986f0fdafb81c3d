"""Read-only SQL on the block log. Every query is parameterised and bounded (a time window and
a LIMIT); callers run these on a worker thread, never on the event loop.

A row of ``blocks`` stands for ``count`` identical queries (same machine, name, type, verdict,
reason, category, within one write window of the resolver, ``ts`` the first's): every figure of
blocks sums ``count``; only paging counts rows.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Final, Literal

from resolver.blocklog.schema import (
    NON_THREAT_CATEGORIES,
    NON_THREAT_SQL,
    QUEUE_DROPPED,
    WRITE_FAILED,
)
from resolver.exfil.redact import default_redactor

Kind = Literal["feeds", "exfiltration", "lists", "bypass"]
KINDS: Final[tuple[Kind, ...]] = ("feeds", "exfiltration", "lists", "bypass")
# The kinds whose blocks are threats: they make the weather. "bypass" is a machine getting
# around the filter (resolver.blocklog.schema.NON_THREAT_CATEGORIES), counted apart.
THREAT_KINDS: Final[tuple[Kind, ...]] = ("feeds", "exfiltration", "lists")

# Which family of protection made a block, from the verdict and reason the resolver wrote
# (habit 4: read the reason, never re-derive it): threat feeds ("feed:urlhaus"), exfiltration
# signals (verdict "exfiltration", "exfil:entropy"), and anything else: the operator's own lists.
# A block of a non-threat category is "bypass" whatever made it (a canary, a bypass feed).
KIND_SQL: Final = (
    f"CASE WHEN category IN {NON_THREAT_SQL} THEN 'bypass'"
    " WHEN verdict = 'exfiltration' OR reason LIKE 'exfil:%' THEN 'exfiltration'"
    " WHEN reason LIKE 'feed:%' THEN 'feeds' ELSE 'lists' END"
)
# Blocks of non-threat categories, read from the (category, ts, count) index alone.
_NON_THREAT_WHERE: Final = f"category IN {NON_THREAT_SQL} AND ts >= ? AND ts < ?"


def kind_of(verdict: str, reason: str, category: str = "") -> Kind:
    """The family of a block, the same rule as the SQL above."""
    if category in NON_THREAT_CATEGORIES:
        return "bypass"
    if verdict == "exfiltration" or reason.startswith("exfil:"):
        return "exfiltration"
    if reason.startswith("feed:"):
        return "feeds"
    return "lists"


@dataclass(frozen=True, slots=True)
class BlockRow:
    id: int
    ts: float
    client: str
    qname: str
    qtype: int
    verdict: str
    reason: str
    category: str
    count: int  # identical queries this row stands for

    @property
    def kind(self) -> Kind:
        return kind_of(self.verdict, self.reason, self.category)


@dataclass(frozen=True, slots=True)
class CategoryCount:
    kind: Kind
    category: str
    count: int


@dataclass(frozen=True, slots=True)
class NameCount:
    qname: str
    count: int
    category: str  # the most frequent category of this name in the window


@dataclass(frozen=True, slots=True)
class ClientCount:
    client: str
    count: int
    category: str  # the client's most frequent category in the window
    kind: Kind
    category_count: int  # blocks of that category


def count_between(conn: sqlite3.Connection, start: float, end: float) -> int:
    """Blocks in [start, end), threats and bypass attempts alike."""
    n: int = conn.execute(
        "SELECT COALESCE(SUM(count), 0) FROM blocks WHERE ts >= ? AND ts < ?", (start, end)
    ).fetchone()[0]
    return n


def threats_between(conn: sqlite3.Connection, start: float, end: float) -> tuple[int, int]:
    """(threats, bypass attempts) in [start, end): what makes the weather, and what does not."""
    bypass: int = conn.execute(
        f"SELECT COALESCE(SUM(count), 0) FROM blocks WHERE {_NON_THREAT_WHERE}",  # noqa: S608 -- constant SQL
        (start, end),
    ).fetchone()[0]
    return count_between(conn, start, end) - bypass, bypass


def blocks_page(
    conn: sqlite3.Connection,
    start: float,
    end: float,
    *,
    category: str | None,
    client: str | None,
    limit: int,
    offset: int,
    full_names: bool = False,
) -> tuple[int, int, list[BlockRow]]:
    """(blocks matching, rows matching, one page of rows newest first) in [start, end).

    Pages are pages of rows; the blocks are the sum of their counts. An exfiltration block's
    name is cut to a short prefix and its registered domain unless ``full_names`` (the name is
    the stolen data; resolver/exfil/redact.py).
    """
    where = "ts >= ? AND ts < ?"
    args: list[object] = [start, end]
    if category:
        where += " AND category = ?"
        args.append(category)
    if client:
        where += " AND client = ?"
        args.append(client)
    sums = f"SELECT COALESCE(SUM(count), 0), COUNT(*) FROM blocks WHERE {where}"  # noqa: S608 -- fixed fragments
    total, matching = conn.execute(sums, args).fetchone()
    sql = (
        "SELECT id, ts, client, qname, qtype, verdict, reason, category, count FROM blocks"  # noqa: S608 -- fixed fragments
        f" WHERE {where} ORDER BY ts DESC, id DESC LIMIT ? OFFSET ?"
    )
    rows = conn.execute(
        sql,
        [*args, limit, offset],
    ).fetchall()
    shown = default_redactor().row_name
    items = [
        BlockRow(i, ts, c, shown(q, v, r, full=full_names), qt, v, r, cat, n)
        for i, ts, c, q, qt, v, r, cat, n in rows
    ]
    return total, matching, items


def top_names(conn: sqlite3.Connection, start: float, end: float, limit: int) -> list[NameCount]:
    """The most blocked names in [start, end); exfiltration names cut as in ``blocks_page``."""
    rows = conn.execute(
        "SELECT qname, SUM(count) AS n, MAX(category),"
        " MAX(verdict = 'exfiltration' OR reason LIKE 'exfil:%') FROM blocks"
        " WHERE ts >= ? AND ts < ? GROUP BY qname ORDER BY n DESC, qname LIMIT ?",
        (start, end, limit),
    ).fetchall()
    shown = default_redactor().shown
    return [
        NameCount(shown(qname) if exfil else qname, n, category)
        for qname, n, category, exfil in rows
    ]


def losses(conn: sqlite3.Connection) -> dict[str, int]:
    """Blocks lost since the log was created: queue full, write failed."""
    rows = conn.execute(
        "SELECT name, value FROM counters WHERE name IN (?, ?)", (QUEUE_DROPPED, WRITE_FAILED)
    ).fetchall()
    found = dict(rows)
    return {QUEUE_DROPPED: found.get(QUEUE_DROPPED, 0), WRITE_FAILED: found.get(WRITE_FAILED, 0)}


def totals_by_category(conn: sqlite3.Connection) -> dict[str, int]:
    """Blocks per category since the log was created (daily counts are never pruned)."""
    rows = conn.execute(
        "SELECT category, SUM(count) FROM daily_counts GROUP BY category LIMIT 1000"
    ).fetchall()
    return {category: int(n) for category, n in rows}


def utc_day_counts(conn: sqlite3.Connection, first: str, last: str) -> dict[str, dict[str, int]]:
    """Daily counts kept for good, {'YYYY-MM-DD' (UTC): {category: n}}, days first..last."""
    rows = conn.execute(
        "SELECT day, category, count FROM daily_counts WHERE day >= ? AND day <= ? LIMIT 100000",
        (first, last),
    ).fetchall()
    result: dict[str, dict[str, int]] = {}
    for day, category, n in rows:
        result.setdefault(day, {})[category] = n
    return result


def categories_between(conn: sqlite3.Connection, start: float, end: float) -> dict[str, int]:
    """Blocks per category in [start, end)."""
    rows = conn.execute(
        "SELECT category, SUM(count) FROM blocks WHERE ts >= ? AND ts < ?"
        " GROUP BY category LIMIT 1000",
        (start, end),
    ).fetchall()
    return dict(rows)


def oldest_event(conn: sqlite3.Connection) -> float | None:
    """Unix time of the oldest block row still kept (retention prunes older ones)."""
    ts: float | None = conn.execute("SELECT MIN(ts) FROM blocks").fetchone()[0]
    return ts


def first_counted_day(conn: sqlite3.Connection) -> str | None:
    """The first UTC day with any daily count: before it the box was not logging."""
    day: str | None = conn.execute("SELECT MIN(day) FROM daily_counts").fetchone()[0]
    return day


Run = tuple[float, float]  # (started, seen): unix seconds the box ran between


def runs_between(conn: sqlite3.Connection, start: float, end: float) -> list[Run]:
    """The runs of the box that overlap [start, end), oldest first (one row per start)."""
    rows = conn.execute(
        "SELECT started, seen FROM runs WHERE seen >= ? AND started < ? ORDER BY started"
        " LIMIT 100000",
        (start, end),
    ).fetchall()
    return [(float(a), float(b)) for a, b in rows]


def first_run(conn: sqlite3.Connection) -> float | None:
    """When the box first started with a block log that records its runs (schema v4)."""
    ts: float | None = conn.execute("SELECT MIN(started) FROM runs").fetchone()[0]
    return ts


def last_heartbeat(conn: sqlite3.Connection) -> float | None:
    """The newest heartbeat of any writer: until then, the block log was being written."""
    ts: float | None = conn.execute("SELECT MAX(seen) FROM runs").fetchone()[0]
    return ts
