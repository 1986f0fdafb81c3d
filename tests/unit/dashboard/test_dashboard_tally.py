"""The page's running tally of today (dashboard/tally.py) gives the figures a whole read of the
day gives, after any number of writes between two reads, on a real block log written by the
real writer; and its reads after the first touch only the new rows."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from dashboard import queries
from dashboard.queries import CategoryCount, Kind
from dashboard.tally import _HOURS, _SHARES, DayFigures, DayTally
from resolver.blocklog.schema import open_db
from resolver.blocklog.writer import BlockEvent
from tests.blocklog import Clock as BlockClock
from tests.blocklog import write_events

DAY = 86_400.0
START = 1_796_083_200.0  # a midnight (UTC), the window's start
CLIENTS = ("192.0.2.1", "192.0.2.2", "2001:db8::7", "198.51.100.9")
# (verdict, reason, category): feeds, exfiltration, the operator's list, a bypass attempt.
KINDS_OF_BLOCKS = (
    ("blocked", "feed:urlhaus", "malware"),
    ("blocked", "feed:openphish", "phishing"),
    ("exfiltration", "exfil:info", "exfiltration"),
    ("blocked", "list:operator", "custom"),
    ("blocked", "canary:firefox", "bypass"),
)


def write(db: Path, events: Sequence[BlockEvent], now: float = START + DAY / 2) -> None:
    write_events(db, events, BlockClock(now))


def events(rng: random.Random, n: int, start: float = START - 3600, span: float = DAY + 7200):
    """n blocks from an hour before the window to two hours after it; a few repeated names."""
    out = []
    for _ in range(n):
        verdict, reason, category = rng.choice(KINDS_OF_BLOCKS)
        name = f"n{rng.randrange(n // 3 + 1)}.example.test"
        ts = start + rng.random() * span
        out.append(BlockEvent(ts, rng.choice(CLIENTS), name, 1, verdict, reason, category))
    return out


def whole_read(db: Path, start: float, end: float) -> DayFigures:
    """The figures from every row of the window, summed here row by row (the family by
    queries.kind_of, the rule the page states): a reference the tally's SQL does not share."""
    conn = open_db(db, readonly=True)
    try:
        rows = conn.execute(
            "SELECT ts, client, verdict, reason, category, count FROM blocks"
            " WHERE ts >= ? AND ts < ?",
            (start, end),
        ).fetchall()
    finally:
        conn.close()
    shares: dict[tuple[str, Kind, str], int] = {}
    hours: dict[int, int] = {}
    for ts, client, verdict, reason, category, n in rows:
        kind = queries.kind_of(verdict, reason, category)
        shares[client, kind, category] = shares.get((client, kind, category), 0) + n
        if kind != "bypass":
            slot = int((ts - start) // 3600)
            hours[slot] = hours.get(slot, 0) + n
    ordered = sorted(shares.items(), key=lambda kv: -kv[1])
    return DayFigures(tuple((c, CategoryCount(k, cat, n)) for (c, k, cat), n in ordered), hours)


def tally_read(tally: DayTally, db: Path, start: float, end: float) -> DayFigures:
    conn = open_db(db, readonly=True)
    try:
        return tally.read(conn, start, end)
    finally:
        conn.close()


def same(a: DayFigures, b: DayFigures) -> None:
    # Equal counts may come in either order: compare as sets of (machine, family, category, n).
    key = lambda f: {(c, s.kind, s.category, s.count) for c, s in f.shares}  # noqa: E731
    assert key(a) == key(b)
    assert [s.count for _, s in a.shares] == sorted((s.count for _, s in a.shares), reverse=True)
    assert {k: v for k, v in a.hours.items() if v} == {k: v for k, v in b.hours.items() if v}


def test_the_tally_matches_a_whole_read_after_writes_between_reads(tmp_path: Path) -> None:
    db = tmp_path / "blocks.sqlite"
    rng = random.Random(19)
    tally = DayTally()
    write(db, events(rng, 50))  # the log exists before the page's first read
    for batch in (300, 1, 0, 1200, 57):
        write(db, events(rng, batch))
        figures = tally_read(tally, db, START, START + DAY)
        same(figures, whole_read(db, START, START + DAY))
    assert sum(s.count for _, s in figures.shares) > 1000


def test_a_new_day_or_a_new_file_starts_from_a_whole_read(tmp_path: Path) -> None:
    db = tmp_path / "blocks.sqlite"
    rng = random.Random(20)
    tally = DayTally()
    write(db, events(rng, 400))
    tally_read(tally, db, START, START + DAY)
    write(db, events(rng, 200, start=START + DAY, span=DAY))
    # The next day: yesterday's figures are not carried over.
    same(
        tally_read(tally, db, START + DAY, START + 2 * DAY),
        whole_read(db, START + DAY, START + 2 * DAY),
    )
    # The block log deleted and made again (its ids start over), then written past the ids the
    # tally had read: the new file's figures, not the old ones plus the new rows.
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"blocks.sqlite{suffix}").unlink(missing_ok=True)
    write(db, events(rng, 900, start=START + DAY, span=DAY), now=START + DAY + 3600)
    same(
        tally_read(tally, db, START + DAY, START + 2 * DAY),
        whole_read(db, START + DAY, START + 2 * DAY),
    )


def plan(conn: sqlite3.Connection, sql: str, params: Sequence[float]) -> str:
    return " / ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


def test_reads_after_the_first_go_by_id_and_the_first_by_time(tmp_path: Path) -> None:
    """What keeps a refresh cheap on a day of a million blocks: a later read searches the rows
    after an id (the table's own order), not the day's rows by the time index."""
    db = tmp_path / "blocks.sqlite"
    write(db, events(random.Random(21), 100))
    conn = open_db(db, readonly=True)
    try:
        for first, since in (_SHARES, _HOURS):
            params = (START,) if since is _HOURS[1] else ()
            assert "INTEGER PRIMARY KEY (rowid>?)" in plan(
                conn, since, (*params, 5, START, START + DAY)
            )
            assert "USING" in plan(conn, first, (*params, START, START + DAY))
            assert "rowid>?" not in plan(conn, first, (*params, START, START + DAY))
    finally:
        conn.close()


class Clock:
    """A monotonic clock that moves only when told, and by ``step`` at each reading."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def names(tally: DayTally, db: Path) -> list[str]:
    conn = open_db(db, readonly=True)
    try:
        return [n.qname for n in tally.top_names(conn, START, START + DAY, 3)]
    finally:
        conn.close()


def test_top_names_are_read_again_unless_the_last_read_was_slow(tmp_path: Path) -> None:
    db = tmp_path / "blocks.sqlite"
    burst = [
        BlockEvent(START + 60 + i, CLIENTS[0], "a.example.test", 1, *KINDS_OF_BLOCKS[0])
        for i in range(5)
    ]
    write(db, burst)
    # A quick read (the clock moves 1 ms a reading): a read a second later sees a new name.
    quick_clock = Clock(0.001)
    quick = DayTally(clock=quick_clock)
    assert names(quick, db) == ["a.example.test"]
    later = [
        BlockEvent(START + 120 + i, CLIENTS[1], "b.example.test", 1, *KINDS_OF_BLOCKS[1])
        for i in range(9)
    ]
    write(db, later)
    quick_clock.now += 1.0
    assert names(quick, db) == ["b.example.test", "a.example.test"]
    # A read that took 2 s is kept for 100 s (NAMES_REUSE = 50 times as long), then read again.
    slow_clock = Clock(2.0)
    slow = DayTally(clock=slow_clock)
    assert names(slow, db) == ["b.example.test", "a.example.test"]
    write(
        db,
        [
            BlockEvent(START + 200 + i, CLIENTS[2], "c.example.test", 1, *KINDS_OF_BLOCKS[0])
            for i in range(20)
        ],
    )
    slow_clock.now += 90
    assert names(slow, db) == ["b.example.test", "a.example.test"]
    slow_clock.now += 20
    assert names(slow, db) == ["c.example.test", "b.example.test", "a.example.test"]


class FailingHours:
    """A connection whose per-hour read fails once (a locked or damaged file, say)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        if "AS slot" in sql:
            raise sqlite3.OperationalError("disk I/O error")
        return self.conn.execute(sql, params)


def test_a_read_that_fails_halfway_is_not_counted_twice(tmp_path: Path) -> None:
    db = tmp_path / "blocks.sqlite"
    rng = random.Random(22)
    write(db, events(rng, 300))
    tally = DayTally()
    tally_read(tally, db, START, START + DAY)
    write(db, events(rng, 300))
    conn = open_db(db, readonly=True)
    try:
        with pytest.raises(sqlite3.OperationalError):
            tally.read(FailingHours(conn), START, START + DAY)  # type: ignore[arg-type]
    finally:
        conn.close()
    same(tally_read(tally, db, START, START + DAY), whole_read(db, START, START + DAY))
