"""The observatory's SQLite store: a trial on one machine, and the fast path of the tests.

One connection used from one worker thread, so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar

from observatory.store import Campaign, DailyRow, Event, Pruned, group_names

T = TypeVar("T")

SCHEMA_VERSION: Final = 4
# The current schema, created in a new file.
_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS batches (
        batch_id TEXT PRIMARY KEY,
        commune TEXT NOT NULL,
        received REAL NOT NULL,
        events INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY,
        day TEXT NOT NULL,          -- local date at the observatory, 'YYYY-MM-DD'
        ts REAL NOT NULL,           -- unix seconds
        commune TEXT NOT NULL,      -- INSEE code
        category TEXT NOT NULL,
        reason TEXT NOT NULL,
        verdict TEXT NOT NULL,
        qname TEXT NOT NULL,
        qtype INTEGER NOT NULL,
        client TEXT NOT NULL,       -- pseudonym made on the box
        count INTEGER NOT NULL DEFAULT 1,  -- identical queries this event stands for
        domain TEXT NOT NULL DEFAULT ''    -- registered domain of qname ('' before v4)
    )""",
    "CREATE INDEX IF NOT EXISTS events_day_commune ON events (day, commune)",
    "CREATE INDEX IF NOT EXISTS events_qname_day ON events (qname, day)",
    """CREATE TABLE IF NOT EXISTS daily_counts (
        day TEXT NOT NULL,
        commune TEXT NOT NULL,
        category TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (day, commune, category)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS box_status (
        commune TEXT PRIMARY KEY,
        last_seen REAL NOT NULL
    ) WITHOUT ROWID""",
)
# MIGRATIONS[v] takes a file from version v to v + 1. Append; never edit a shipped step.
MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    # 1 -> 2: an event stands for ``count`` identical queries (box payload version 2).
    1: ("ALTER TABLE events ADD COLUMN count INTEGER NOT NULL DEFAULT 1",),
    # 2 -> 3: times kept to the minute (as in store_pg).
    2: (
        "UPDATE events SET ts = CAST(ts / 60 AS INTEGER) * 60"
        " WHERE ts != CAST(ts / 60 AS INTEGER) * 60",
    ),
    # 3 -> 4: campaigns grouped by registered domain (as in store_pg).
    3: ("ALTER TABLE events ADD COLUMN domain TEXT NOT NULL DEFAULT ''",),
}
_INSERT_EVENT: Final = (
    "INSERT INTO events"
    " (day, ts, commune, category, reason, verdict, qname, qtype, client, count, domain)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ADD_DAILY: Final = (
    "INSERT INTO daily_counts (day, commune, category, count) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (day, commune, category) DO UPDATE SET count = count + excluded.count"
)
_SEEN: Final = (
    "INSERT INTO box_status (commune, last_seen) VALUES (?, ?)"
    " ON CONFLICT (commune) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)"
)
_DOMAIN: Final = "CASE WHEN domain = '' THEN qname ELSE domain END"
# Two levels: (category, domain, commune) first, then the communes per (category, domain), as
# in store_pg.
CAMPAIGN_SQL: Final = (
    "SELECT category, dom, count(*), sum(n), group_concat(commune) FROM"  # noqa: S608 (constants only)
    f" (SELECT category, {_DOMAIN} AS dom, commune, sum(count) AS n FROM events WHERE day = ?"
    " GROUP BY 1, 2, 3)"
    " GROUP BY category, dom HAVING count(*) >= ? ORDER BY 3 DESC, 4 DESC, 2, 1 LIMIT ?"
)
_CAMPAIGN_NAMES: Final = (
    f"SELECT category, {_DOMAIN} AS dom, qname, sum(count) FROM events"  # noqa: S608 (constants only)
    " WHERE day = ? AND dom IN (SELECT value FROM json_each(?))"
    " GROUP BY 1, 2, 3 ORDER BY 4 DESC, 3"
)


def daily_counts(events: Sequence[Event], insee: str) -> list[tuple[dt.date, str, str, int]]:
    """(day, commune, category, queries) of ``events``, sorted (a stable lock order)."""
    counts: dict[tuple[dt.date, str], int] = {}
    for e in events:
        counts[e.day, e.category] = counts.get((e.day, e.category), 0) + e.count
    return [(day, insee, cat, n) for (day, cat), n in sorted(counts.items())]


class SqliteStore:
    """The Store protocol on one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="observatory-db")
        self._conn: sqlite3.Connection | None = None
        self.found_version: int | None = None
        self.schema_version = SCHEMA_VERSION

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError("store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, conn)

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA busy_timeout = 5000")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("BEGIN IMMEDIATE")
                found: int = conn.execute("PRAGMA user_version").fetchone()[0]
                if found > SCHEMA_VERSION:
                    raise RuntimeError(
                        f"observatory database {self.path} has schema v{found}, newer than"
                        f" v{SCHEMA_VERSION}: upgrade Parafoudre"
                    )
                for statement in _SCHEMA:
                    conn.execute(statement)
                # A new file (0) got the current schema above; an older one is migrated.
                for version in range(found or SCHEMA_VERSION, SCHEMA_VERSION):
                    for statement in MIGRATIONS[version]:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
                self.found_version = found or None
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.close()
                raise
            return conn

        self._conn = await asyncio.get_running_loop().run_in_executor(self._executor, connect)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=False)

    async def insert_batch(
        self, *, batch_id: str | None, insee: str, received: float, events: Sequence[Event]
    ) -> bool:
        rows = [
            (
                e.day.isoformat(),
                e.ts,
                insee,
                e.category,
                e.reason,
                e.verdict,
                e.qname,
                e.qtype,
                e.client,
                e.count,
                e.domain,
            )
            for e in events
        ]
        daily = [(d.isoformat(), c, cat, n) for d, c, cat, n in daily_counts(events, insee)]

        def write(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if batch_id is not None:
                    new = conn.execute(
                        "INSERT INTO batches (batch_id, commune, received, events)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (batch_id, insee, received, len(rows)),
                    ).rowcount
                    if not new:
                        conn.execute(_SEEN, (insee, received))
                        conn.execute("COMMIT")
                        return False
                    conn.executemany(_INSERT_EVENT, rows)
                    conn.executemany(_ADD_DAILY, daily)
                conn.execute(_SEEN, (insee, received))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return True

        return await self._run(write)

    async def counts_by_commune(self, day: dt.date) -> dict[str, int]:
        def read(conn: sqlite3.Connection) -> dict[str, int]:
            return dict(
                conn.execute(
                    "SELECT commune, sum(count) FROM daily_counts WHERE day = ? GROUP BY commune",
                    (day.isoformat(),),
                ).fetchall()
            )

        return await self._run(read)

    async def totals(self, first: dt.date, last: dt.date) -> dict[str, int]:
        def read(conn: sqlite3.Connection) -> dict[str, int]:
            return dict(
                conn.execute(
                    "SELECT category, sum(count) FROM daily_counts WHERE day BETWEEN ? AND ?"
                    " GROUP BY category",
                    (first.isoformat(), last.isoformat()),
                ).fetchall()
            )

        return await self._run(read)

    async def campaigns(self, day: dt.date, min_communes: int, limit: int) -> list[Campaign]:
        def read(conn: sqlite3.Connection) -> list[Campaign]:
            found = conn.execute(CAMPAIGN_SQL, (day.isoformat(), min_communes, limit)).fetchall()
            if not found:
                return []
            domains = json.dumps(sorted({r[1] for r in found}))
            rows = conn.execute(_CAMPAIGN_NAMES, (day.isoformat(), domains)).fetchall()
            names = group_names(rows)
            return [
                Campaign(cat, dom, tuple(sorted(c.split(","))), n, *names.get((cat, dom), ((), 0)))
                for cat, dom, _k, n, c in found
            ]

        return await self._run(read)

    async def commune_totals(self, first: dt.date, last: dt.date) -> dict[str, int]:
        def read(conn: sqlite3.Connection) -> dict[str, int]:
            return dict(
                conn.execute(
                    "SELECT commune, sum(count) FROM daily_counts WHERE day BETWEEN ? AND ?"
                    " GROUP BY commune",
                    (first.isoformat(), last.isoformat()),
                ).fetchall()
            )

        return await self._run(read)

    async def commune_days(self, first: dt.date, last: dt.date) -> dict[str, dict[dt.date, int]]:
        def read(conn: sqlite3.Connection) -> dict[str, dict[dt.date, int]]:
            out: dict[str, dict[dt.date, int]] = {}
            for commune, day, n in conn.execute(
                "SELECT commune, day, sum(count) FROM daily_counts WHERE day BETWEEN ? AND ?"
                " GROUP BY commune, day",
                (first.isoformat(), last.isoformat()),
            ):
                out.setdefault(commune, {})[dt.date.fromisoformat(day)] = n
            return out

        return await self._run(read)

    async def last_seen(self) -> dict[str, float]:
        def read(conn: sqlite3.Connection) -> dict[str, float]:
            return dict(conn.execute("SELECT commune, last_seen FROM box_status").fetchall())

        return await self._run(read)

    async def daily_rows(self, first: dt.date, last: dt.date) -> list[DailyRow]:
        def read(conn: sqlite3.Connection) -> list[DailyRow]:
            return [
                (dt.date.fromisoformat(day), commune, category, count)
                for day, commune, category, count in conn.execute(
                    "SELECT day, commune, category, count FROM daily_counts"
                    " WHERE day BETWEEN ? AND ? ORDER BY day, commune, category",
                    (first.isoformat(), last.isoformat()),
                )
            ]

        return await self._run(read)

    async def event_count(self) -> int:
        def read(conn: sqlite3.Connection) -> int:
            n: int = conn.execute("SELECT coalesce(sum(count), 0) FROM events").fetchone()[0]
            return n

        return await self._run(read)

    async def batch_count(self) -> int:
        def read(conn: sqlite3.Connection) -> int:
            n: int = conn.execute("SELECT count(*) FROM batches").fetchone()[0]
            return n

        return await self._run(read)

    async def prune(self, before: dt.date) -> Pruned:
        cutoff = dt.datetime.combine(before, dt.time(), dt.UTC).timestamp()

        def delete(conn: sqlite3.Connection) -> Pruned:
            conn.execute("BEGIN IMMEDIATE")
            try:
                events = conn.execute(
                    "DELETE FROM events WHERE day < ?", (before.isoformat(),)
                ).rowcount
                batches = conn.execute("DELETE FROM batches WHERE received < ?", (cutoff,)).rowcount
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return Pruned(events=events, batches=batches)

        return await self._run(delete)
