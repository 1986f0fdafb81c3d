"""The observatory's PostgreSQL store (asyncpg).

Events are partitioned by month (``events_YYYY_MM``, created on first use), so a query of one
day or one month reads one partition and a whole year's old data can be detached or dropped
in one statement. Daily counts per commune and category are kept in their own small table,
updated in the same transaction as the events: totals for a day, a month or a year read at most
communes x days x categories rows, never the events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final

import asyncpg

from observatory.store import Campaign, DailyRow, Event, Pruned, group_names
from observatory.store_sqlite import daily_counts

SCHEMA_VERSION: Final = 4
# pg_advisory_xact_lock key: schema migration and partition creation, one process at a time.
_LOCK: Final = 0x70617261  # "para"

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)",
    """CREATE TABLE IF NOT EXISTS batches (
        batch_id uuid PRIMARY KEY,
        commune text NOT NULL,
        received timestamptz NOT NULL,
        events integer NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS events (
        day date NOT NULL,            -- local date at the observatory
        ts timestamptz NOT NULL,
        commune text NOT NULL,        -- INSEE code
        category text NOT NULL,
        reason text NOT NULL,         -- the feed or the signal
        verdict text NOT NULL,
        qname text NOT NULL,
        qtype integer NOT NULL,
        client text NOT NULL,         -- pseudonym made on the box
        count integer NOT NULL DEFAULT 1,  -- identical queries this event stands for
        domain text NOT NULL DEFAULT ''    -- registered domain of qname ('' before v4)
    ) PARTITION BY RANGE (day)""",
    # On the parent: PostgreSQL creates the same index on every partition.
    "CREATE INDEX IF NOT EXISTS events_day_commune ON events (day, commune)",
    "CREATE INDEX IF NOT EXISTS events_qname_day ON events (qname, day)",
    """CREATE TABLE IF NOT EXISTS daily_counts (
        day date NOT NULL,
        commune text NOT NULL,
        category text NOT NULL,
        count bigint NOT NULL,
        PRIMARY KEY (day, commune, category)
    )""",
    """CREATE TABLE IF NOT EXISTS box_status (
        commune text PRIMARY KEY,
        last_seen timestamptz NOT NULL
    )""",
)
# MIGRATIONS[v] takes a database from version v to v + 1, after _SCHEMA (which creates only
# what is missing). Append; never edit a shipped step.
MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    # 1 -> 2: an event stands for ``count`` identical queries (box payload version 2). With a
    # constant default, PostgreSQL adds the column to every partition without rewriting them.
    1: ("ALTER TABLE events ADD COLUMN IF NOT EXISTS count integer NOT NULL DEFAULT 1",),
    # 2 -> 3: the observatory keeps times to the minute (privacy: a machine's exact query times
    # are not needed for any figure). Rewrites the rows stored before, once.
    2: ("UPDATE events SET ts = date_trunc('minute', ts) WHERE ts <> date_trunc('minute', ts)",),
    # 3 -> 4: campaigns are grouped by registered domain, computed on arrival; older events
    # have '' and are grouped by their name (a constant default: no partition is rewritten).
    3: ("ALTER TABLE events ADD COLUMN IF NOT EXISTS domain text NOT NULL DEFAULT ''",),
}
_EVENT_COLUMNS: Final = (
    "day",
    "ts",
    "commune",
    "category",
    "reason",
    "verdict",
    "qname",
    "qtype",
    "client",
    "count",
    "domain",
)
_ADD_DAILY: Final = (
    "INSERT INTO daily_counts (day, commune, category, count) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (day, commune, category)"
    " DO UPDATE SET count = daily_counts.count + excluded.count"
)
_SEEN: Final = (
    "INSERT INTO box_status (commune, last_seen) VALUES ($1, $2) ON CONFLICT (commune)"
    " DO UPDATE SET last_seen = greatest(box_status.last_seen, excluded.last_seen)"
)
# Events before v4 have no domain: their name stands for it.
_DOMAIN: Final = "CASE WHEN domain = '' THEN qname ELSE domain END"
# Two levels: (category, domain, commune) first with a hash aggregate, then the communes per
# (category, domain). count(DISTINCT) would sort the whole day instead; measured 4x slower on
# 50,000 events a day.
_CAMPAIGNS: Final = (
    "SELECT category, dom, count(*), sum(n)::bigint, array_agg(commune ORDER BY commune)"  # noqa: S608 (constants only)
    f" FROM (SELECT category, {_DOMAIN} AS dom, commune, sum(count) AS n FROM events"
    " WHERE day = $1 GROUP BY 1, 2, 3) AS pairs"
    " GROUP BY category, dom HAVING count(*) >= $2 ORDER BY 3 DESC, 4 DESC, 2, 1 LIMIT $3"
)
# The names of the campaigns found, most blocked first.
_CAMPAIGN_NAMES: Final = (
    f"SELECT category, {_DOMAIN} AS dom, qname, sum(count)::bigint FROM events"  # noqa: S608 (constants only)
    f" WHERE day = $1 AND {_DOMAIN} = ANY($2::text[]) GROUP BY 1, 2, 3 ORDER BY 4 DESC, 3"
)


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def _partition_month(name: str) -> dt.date | None:
    """The month of a partition named events_YYYY_MM, None for any other name."""
    if len(name) != 14 or not name.startswith("events_") or name[11] != "_":
        return None
    year, month = name[7:11], name[12:14]
    if not (year.isdigit() and month.isdigit() and 1 <= int(month) <= 12):
        return None
    return dt.date(int(year), int(month), 1)


def partition_ddl(month: dt.date) -> str:
    """CREATE TABLE for the partition of ``month``; its text comes from a date only."""
    name = f"events_{month:%Y_%m}"
    return (
        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF events"
        f" FOR VALUES FROM ('{month.isoformat()}') TO ('{next_month(month).isoformat()}')"
    )


class PgStore:
    """The Store protocol on PostgreSQL."""

    def __init__(self, dsn: str, *, pool_size: int = 10, password: str | None = None) -> None:
        self._dsn = dsn
        self._password = password
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._months: set[dt.date] = set()  # partitions known to exist
        self.found_version: int | None = None
        self.schema_version = SCHEMA_VERSION

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    async def open(self) -> None:
        pool = await asyncpg.create_pool(
            self._dsn,
            password=self._password,
            min_size=1,
            max_size=self._pool_size,
            command_timeout=60,
        )
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
                for statement in _SCHEMA:
                    await conn.execute(statement)
                found = await conn.fetchval("SELECT max(version) FROM schema_version")
                if found is not None and found > SCHEMA_VERSION:
                    raise RuntimeError(
                        f"observatory database has schema v{found}, newer than v{SCHEMA_VERSION}:"
                        " upgrade Parafoudre"
                    )
                # A new database (None) got the current schema above; an older one is migrated.
                for version in range(found or SCHEMA_VERSION, SCHEMA_VERSION):
                    for statement in MIGRATIONS[version]:
                        await conn.execute(statement)
                if found != SCHEMA_VERSION:
                    await conn.execute(
                        "INSERT INTO schema_version (version) VALUES ($1)", SCHEMA_VERSION
                    )
                self.found_version = found
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _ensure_partitions(
        self, conn: asyncpg.pool.PoolConnectionProxy, days: set[dt.date]
    ) -> None:
        missing = {month_start(d) for d in days} - self._months
        if not missing:
            return
        async with conn.transaction():
            # Two connections creating the same partition at once would collide in the catalog.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            for month in sorted(missing):
                await conn.execute(partition_ddl(month))
        self._months |= missing

    async def insert_batch(
        self, *, batch_id: str | None, insee: str, received: float, events: Sequence[Event]
    ) -> bool:
        records = [
            (
                e.day,
                _utc(e.ts),
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
        daily = daily_counts(events, insee)
        async with self.pool.acquire() as conn:
            if events:
                await self._ensure_partitions(conn, {e.day for e in events})
            async with conn.transaction():
                if batch_id is not None:
                    new = await conn.fetchval(
                        "INSERT INTO batches (batch_id, commune, received, events)"
                        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
                        batch_id,
                        insee,
                        _utc(received),
                        len(records),
                    )
                    if new is None:
                        await conn.execute(_SEEN, insee, _utc(received))
                        return False
                    if records:
                        await conn.copy_records_to_table(
                            "events", records=records, columns=_EVENT_COLUMNS
                        )
                        await conn.executemany(_ADD_DAILY, daily)
                await conn.execute(_SEEN, insee, _utc(received))
        return True

    async def counts_by_commune(self, day: dt.date) -> dict[str, int]:
        rows = await self.pool.fetch(
            "SELECT commune, sum(count)::bigint FROM daily_counts WHERE day = $1 GROUP BY commune",
            day,
        )
        return {r[0]: r[1] for r in rows}

    async def totals(self, first: dt.date, last: dt.date) -> dict[str, int]:
        rows = await self.pool.fetch(
            "SELECT category, sum(count)::bigint FROM daily_counts"
            " WHERE day BETWEEN $1 AND $2 GROUP BY category",
            first,
            last,
        )
        return {r[0]: r[1] for r in rows}

    async def campaigns(self, day: dt.date, min_communes: int, limit: int) -> list[Campaign]:
        found = await self.pool.fetch(_CAMPAIGNS, day, min_communes, limit)
        if not found:
            return []
        rows = await self.pool.fetch(_CAMPAIGN_NAMES, day, sorted({r[1] for r in found}))
        names = group_names([(r[0], r[1], r[2], r[3]) for r in rows])
        return [
            Campaign(cat, dom, tuple(c), n, *names.get((cat, dom), ((), 0)))
            for cat, dom, _k, n, c in found
        ]

    async def commune_totals(self, first: dt.date, last: dt.date) -> dict[str, int]:
        rows = await self.pool.fetch(
            "SELECT commune, sum(count)::bigint FROM daily_counts"
            " WHERE day BETWEEN $1 AND $2 GROUP BY commune",
            first,
            last,
        )
        return {r[0]: r[1] for r in rows}

    async def commune_days(self, first: dt.date, last: dt.date) -> dict[str, dict[dt.date, int]]:
        rows = await self.pool.fetch(
            "SELECT commune, day, sum(count)::bigint FROM daily_counts"
            " WHERE day BETWEEN $1 AND $2 GROUP BY commune, day",
            first,
            last,
        )
        out: dict[str, dict[dt.date, int]] = {}
        for commune, day, n in rows:
            out.setdefault(commune, {})[day] = n
        return out

    async def last_seen(self) -> dict[str, float]:
        rows = await self.pool.fetch(
            "SELECT commune, extract(epoch FROM last_seen)::float8 FROM box_status"
        )
        return {r[0]: r[1] for r in rows}

    async def daily_rows(self, first: dt.date, last: dt.date) -> list[DailyRow]:
        rows = await self.pool.fetch(
            "SELECT day, commune, category, count FROM daily_counts"
            " WHERE day BETWEEN $1 AND $2 ORDER BY day, commune, category",
            first,
            last,
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def event_count(self) -> int:
        n: int = await self.pool.fetchval("SELECT coalesce(sum(count), 0)::bigint FROM events")
        return n

    async def batch_count(self) -> int:
        n: int = await self.pool.fetchval("SELECT count(*) FROM batches")
        return n

    async def prune(self, before: dt.date) -> Pruned:
        """Drop whole monthly partitions before ``before``: no row-by-row delete, no bloat."""
        events = 0
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            names = await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'events'::regclass"
            )
            for (name,) in names:
                month = _partition_month(name)
                if month is None or next_month(month) > before:
                    continue
                # The name was matched as events_YYYY_MM: safe to put in the statement.
                events += await conn.fetchval(f"SELECT count(*) FROM {name}")  # noqa: S608
                await conn.execute(f"DROP TABLE {name}")
                self._months.discard(month)
            status = await conn.execute(
                "DELETE FROM batches WHERE received < $1",
                dt.datetime.combine(before, dt.time(), dt.UTC),
            )
        return Pruned(events=events, batches=int(status.split()[-1]))
