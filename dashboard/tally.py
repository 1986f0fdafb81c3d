"""Today's blocks per machine, family and category, and per hour, read once and then kept up
to date from the rows written since.

On a day of a burst (a malware asking a million distinct listed names), every read of the
whole day's rows takes a second or more, and the page reads them at each refresh (every 30 s)
and at each ``/metrics`` scrape. Rows of ``blocks`` never change once written (the writer
merges repeats before it inserts; retention deletes only rows older than a day) and their ids
only grow (one writer, committing in order): the sums of the rows added since the last read,
added to the last sums, are the sums of the whole day. The most blocked names, which cannot be
kept that way, are read again, less often on the days they are expensive (NAMES_REUSE).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

from dashboard import queries
from dashboard.queries import KIND_SQL, CategoryCount, Kind, NameCount
from resolver.blocklog.schema import NON_THREAT_SQL


def _reads(select: str, rest: str) -> tuple[str, str]:
    """(the first read of a window, a read of the rows after an id) of one query. The first goes
    by the time index; the next by id, which only the table's own order (rowid) gives: NOT
    INDEXED keeps the time index out of their way."""
    return (
        f"{select} FROM blocks WHERE {rest}",
        f"{select} FROM blocks NOT INDEXED WHERE id > ? AND {rest}",
    )


# Our own constant SQL: the family rule of the page (queries.KIND_SQL), the non-threat list.
_SHARES = _reads(
    f"SELECT client, {KIND_SQL} AS kind, category, SUM(count)",
    "ts >= ? AND ts < ? GROUP BY client, kind, category",
)
_HOURS = _reads(
    "SELECT CAST((ts - ?) / 3600 AS INTEGER) AS slot, SUM(count)",
    f"ts >= ? AND ts < ? AND category NOT IN {NON_THREAT_SQL} GROUP BY slot",
)

Share = tuple[str, CategoryCount]


@dataclass(frozen=True, slots=True)
class DayFigures:
    """A window's blocks per (machine, family, category), largest first then by machine, and
    its threats (bypass attempts left out) per hour slot from the window's start."""

    shares: tuple[Share, ...]
    hours: dict[int, int]


# The most blocked names cannot be kept up to date from the new rows alone (a day of a burst
# has a million distinct names): they are read again, but a read that took t seconds is reused
# for NAMES_REUSE * t seconds (at most NAMES_REUSE_MAX): a few milliseconds on a usual day, so
# always fresh; a minute or two on a day of a million blocks, when a read takes seconds.
NAMES_REUSE: Final = 50.0
NAMES_REUSE_MAX: Final = 300.0


class DayTally:
    """One window's figures (today's, for the page and /metrics), shared by the dashboard's
    threads; a new window, or a block log file replaced, starts again from a whole read."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._names: tuple[tuple[float, float, int], float, tuple[NameCount, ...]] | None = None
        self._names_lock = threading.Lock()
        self._lock = threading.Lock()
        self._key: tuple[float, float, int, int, float] | None = None
        self._last_id = 0
        self._shares: dict[tuple[str, Kind, str], int] = {}
        self._hours: dict[int, int] = {}

    def read(self, conn: sqlite3.Connection, start: float, end: float) -> DayFigures:
        with self._lock:
            conn.execute("BEGIN")  # one snapshot: MAX(id) and the sums see the same rows
            try:
                self._catch_up(conn, start, end)
            except BaseException:
                self._key = None  # sums half added: the next read starts from a whole read
                raise
            finally:
                conn.execute("COMMIT")
            ordered = sorted(self._shares.items(), key=lambda kv: (-kv[1], kv[0][0]))
            return DayFigures(
                tuple((client, CategoryCount(kind, cat, n)) for (client, kind, cat), n in ordered),
                dict(self._hours),
            )

    def top_names(
        self, conn: sqlite3.Connection, start: float, end: float, limit: int
    ) -> tuple[NameCount, ...]:
        """queries.top_names, reused as NAMES_REUSE says."""
        key = (start, end, limit)
        with self._names_lock:
            now = self._clock()
            kept = self._names
            if kept is not None and kept[0] == key and now < kept[1]:
                return kept[2]
            names = tuple(queries.top_names(conn, start, end, limit))
            took = self._clock() - now
            self._names = (key, now + min(NAMES_REUSE * took, NAMES_REUSE_MAX), names)
            return names

    def _catch_up(self, conn: sqlite3.Connection, start: float, end: float) -> None:
        top: int = conn.execute("SELECT COALESCE(MAX(id), 0) FROM blocks").fetchone()[0]
        key = (start, end, *_file_identity(conn))
        if key != self._key or top < self._last_id:
            self._key, self._last_id = key, 0
            self._shares.clear()
            self._hours.clear()
        if top == self._last_id:
            return
        which = 0 if self._last_id == 0 else 1
        since = (self._last_id,) if which else ()
        shares = self._shares
        for client, kind, category, n in conn.execute(_SHARES[which], (*since, start, end)):
            k = (str(client), cast(Kind, kind), str(category))
            shares[k] = shares.get(k, 0) + int(n)
        hours = self._hours
        for slot, n in conn.execute(_HOURS[which], (start, *since, start, end)):
            hours[int(slot)] = hours.get(int(slot), 0) + int(n)
        self._last_id = top


def _file_identity(conn: sqlite3.Connection) -> tuple[int, int, float]:
    """(device, inode, first run's start) of the block log: a file deleted and made again
    starts its ids over, which the ids alone would not always show, and may get the same inode
    number; its first run (the writer's ``runs`` row) started later."""
    path = next(row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main")
    try:
        st = os.stat(path)
        device, inode = st.st_dev, st.st_ino
    except OSError:
        device = inode = 0
    first = conn.execute("SELECT started FROM runs ORDER BY id LIMIT 1").fetchone()
    return (device, inode, float(first[0]) if first else 0.0)
