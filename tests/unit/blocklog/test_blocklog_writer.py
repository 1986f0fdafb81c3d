"""The block log writer and schema, on real SQLite files. Every wait is bounded."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from resolver.blocklog import (
    SCHEMA_VERSION,
    BlockEvent,
    BlockLogError,
    BlockLogWriter,
    SchemaError,
    open_db,
)
from resolver.blocklog import writer as writer_module
from resolver.blocklog.schema import MIGRATIONS
from resolver.errors import ParafoudreError

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
DAY = 86_400
WAIT = 5.0  # upper bound on any wait in these tests


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(qname: str = "bad.example", ts: float = T0, **fields: Any) -> BlockEvent:
    values: dict[str, Any] = {
        "client": "192.0.2.7",
        "qtype": 1,
        "verdict": "blocked",
        "reason": "feed:urlhaus",
        "category": "malware",
    }
    values.update(fields)
    return BlockEvent(ts=ts, qname=qname, **values)


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = open_db(path, readonly=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def counters(path: Path) -> dict[str, int]:
    return dict(rows(path, "SELECT name, value FROM counters"))


def daily(path: Path) -> dict[tuple[str, str], int]:
    return {(d, c): n for d, c, n in rows(path, "SELECT day, category, count FROM daily_counts")}


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "var" / "blocks.db"


@pytest.fixture
def make_writer(db: Path) -> Iterator[Callable[..., BlockLogWriter]]:
    made: list[BlockLogWriter] = []

    def make(**kwargs: Any) -> BlockLogWriter:
        # Tests flush explicitly unless they test the interval itself.
        kwargs.setdefault("flush_interval", 60.0)
        # Events are stamped around T0: a real clock would find them past retention.
        kwargs.setdefault("clock", FakeClock())
        w = BlockLogWriter(kwargs.pop("path", db), **kwargs)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close(timeout=WAIT)


# Writing


def test_offered_events_are_in_the_file_after_flush(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    w = make_writer()
    w.start()
    assert w.offer(event("a.example", ts=T0, client="192.0.2.1", qtype=28))
    assert w.offer(
        event(
            "b.example",
            ts=T0 + 1.5,
            client="2001:db8::1",
            verdict="exfiltration",
            reason="exfil:entropy",
            category="exfiltration",
        )
    )
    assert w.flush(timeout=WAIT)
    assert w.written == 2
    assert rows(db, "SELECT ts, client, qname, qtype, verdict, reason, category FROM blocks") == [
        (T0, "192.0.2.1", "a.example", 28, "blocked", "feed:urlhaus", "malware"),
        (T0 + 1.5, "2001:db8::1", "b.example", 1, "exfiltration", "exfil:entropy", "exfiltration"),
    ]
    assert daily(db) == {(utc_day(T0), "malware"): 1, (utc_day(T0), "exfiltration"): 1}


def test_daily_counts_add_up_across_batches_and_split_by_utc_day(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    midnight = (T0 // DAY + 1) * DAY  # the next UTC midnight
    w = make_writer(batch_size=2)
    w.start()
    # Distinct names: identical events would share a row, counted on its first event's day.
    for ts in (midnight - 1, midnight - 2, midnight - 3, midnight):
        w.offer(event(f"n{ts}.example", ts=ts))
    assert w.flush(timeout=WAIT)
    assert daily(db) == {(utc_day(midnight - 1), "malware"): 3, (utc_day(midnight), "malware"): 1}


def test_commits_after_flush_interval_without_flush(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    w = make_writer(flush_interval=0.05)
    w.start()
    w.offer(event())
    assert wait_until(lambda: rows(db, "SELECT count(*) FROM blocks") == [(1,)])


def test_commits_a_full_batch_without_waiting_for_the_interval(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    w = make_writer(batch_size=10, flush_interval=60.0)
    w.start()
    for i in range(10):
        w.offer(event(f"n{i}.example"))
    assert wait_until(lambda: rows(db, "SELECT count(*) FROM blocks") == [(10,)])


def test_flush_behind_several_batches_does_not_wait_for_the_interval(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    w = make_writer(batch_size=10, flush_interval=60.0)
    w.start()
    assert w.flush(timeout=WAIT)  # the worker now sleeps for the interval
    # The batch wake-up and the flush's come together, and the marker sits behind two batches.
    for i in range(25):
        w.offer(event(f"n{i}.example"))
    started = time.monotonic()
    assert w.flush(timeout=WAIT)
    assert time.monotonic() - started < WAIT
    assert rows(db, "SELECT count(*) FROM blocks") == [(25,)]


async def test_offer_on_the_event_loop_and_flush_from_a_thread(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    w = make_writer()
    w.start()
    assert w.offer(event())
    assert await asyncio.wait_for(asyncio.to_thread(w.flush, WAIT), WAIT + 1)
    assert rows(db, "SELECT qname FROM blocks") == [("bad.example",)]


def test_full_queue_drops_counts_and_does_not_block(
    make_writer: Callable[..., BlockLogWriter],
) -> None:
    w = make_writer(queue_size=3)  # not started: nothing drains the queue
    started = time.monotonic()
    results = [w.offer(event(f"n{i}.example")) for i in range(1000)]
    assert time.monotonic() - started < 1.0
    assert results[:3] == [True, True, True]
    assert not any(results[3:])
    assert w.dropped == 997


def test_strings_from_the_network_are_bounded(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    w = make_writer()
    w.start()
    w.offer(event("a" * 1000, client="c" * 100, reason="r" * 300, category="k" * 300))
    w.offer(event("bad\udcff.example"))  # an undecodable byte, as surrogateescape leaves it
    assert w.flush(timeout=WAIT)
    (long, odd) = rows(db, "SELECT qname, client, reason, category FROM blocks ORDER BY id")
    assert [len(s) for s in long] == [255, 64, 200, 200]
    assert odd[0] == "bad\\udcff.example"


# Identical events share a row


def test_identical_events_in_one_window_become_one_row_with_their_count(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    w = make_writer()
    w.start()
    for i in range(1000):
        assert w.offer(event("flood.example", ts=T0 + i / 1000))
    assert w.flush(timeout=WAIT)
    assert rows(db, "SELECT ts, qname, count FROM blocks") == [(T0, "flood.example", 1000)]
    assert w.written == 1000  # queries, not rows
    assert daily(db) == {(utc_day(T0), "malware"): 1000}


def test_events_that_differ_in_any_field_stay_distinct_rows(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    variants = [
        event(),
        event(client="192.0.2.8"),
        event("other.example"),
        event(qtype=28),
        event(verdict="exfiltration"),
        event(reason="feed:openphish"),
        event(category="phishing"),
    ]
    w = make_writer()
    w.start()
    for e in variants:
        w.offer(e)
    for e in variants:  # each again, a little later: the time does not split rows
        w.offer(e._replace(ts=e.ts + 0.5))
    assert w.flush(timeout=WAIT)
    found = rows(
        db,
        "SELECT client, qname, qtype, verdict, reason, category, count FROM blocks ORDER BY id",
    )
    assert found == [(*e[1:7], 2) for e in variants]
    assert w.written == 14


def test_an_event_offered_with_a_count_adds_it(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    w = make_writer()
    w.start()
    w.offer(event()._replace(count=5))
    w.offer(event(ts=T0 + 0.1))
    assert w.flush(timeout=WAIT)
    assert rows(db, "SELECT ts, count FROM blocks") == [(T0, 6)]
    assert sum(daily(db).values()) == 6


def test_nothing_is_written_before_the_window_ends_and_flush_commits_it_all(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    w = make_writer(flush_interval=60.0)
    w.start()
    assert w.flush(timeout=WAIT)  # the worker now waits for the next window
    for i in range(10):
        w.offer(event(ts=T0 + i))
    time.sleep(0.1)
    assert rows(db, "SELECT count(*) FROM blocks") == [(0,)]  # one window: nothing yet
    assert w.flush(timeout=WAIT)  # everything offered before it is committed, at once
    assert rows(db, "SELECT ts, count FROM blocks") == [(T0, 10)]
    for i in range(5):
        w.offer(event(ts=T0 + 20 + i))
    assert w.flush(timeout=WAIT)  # a flush ends the window: later events start a new row
    assert rows(db, "SELECT ts, count FROM blocks ORDER BY id") == [(T0, 10), (T0 + 20, 5)]
    assert w.written == 15


def test_identical_events_of_two_windows_are_two_rows(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    w = make_writer(flush_interval=0.05)
    w.start()
    w.offer(event())
    assert wait_until(lambda: rows(db, "SELECT count FROM blocks") == [(1,)])
    w.offer(event(ts=T0 + 1))
    w.offer(event(ts=T0 + 2))
    assert wait_until(lambda: rows(db, "SELECT count FROM blocks ORDER BY id") == [(1,), (2,)])


def test_a_window_with_batch_size_distinct_rows_is_committed_at_once(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    w = make_writer(batch_size=10, flush_interval=60.0)
    w.start()
    for _ in range(3):  # identical events do not fill the window...
        w.offer(event("same.example"))
    for i in range(9):  # ...distinct ones do: the tenth row ends it
        w.offer(event(f"n{i}.example"))
    assert wait_until(lambda: rows(db, "SELECT count(*), sum(count) FROM blocks") == [(10, 12)])


def test_the_queue_is_drained_under_a_flood_while_one_window_is_open(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    # 100,000 blocks of 1,000 names, offered in bursts as a busy event loop would: the worker
    # folds them as they come, so the queue stays short and nothing is dropped, although
    # nothing is committed until the window ends.
    names = [f"n{i}.flood.example" for i in range(1000)]
    w = make_writer(queue_size=10_000, flush_interval=60.0)
    w.start()
    assert w.flush(timeout=WAIT)
    longest = 0
    for burst in range(200):
        for i in range(500):
            w.offer(event(names[(burst * 500 + i) % 1000], ts=T0 + burst))
        longest = max(longest, w.queued)
        time.sleep(0.001)  # the loop awaits I/O between bursts
    assert w.dropped == 0
    assert longest < 10_000
    assert wait_until(lambda: w.queued < writer_module.DRAIN_EVERY)
    assert rows(db, "SELECT count(*) FROM blocks") == [(0,)]
    assert w.flush(timeout=WAIT)
    assert rows(db, "SELECT count(*), min(count), max(count), sum(count) FROM blocks") == [
        (1000, 100, 100, 100_000)
    ]
    assert w.written == 100_000
    assert sum(daily(db).values()) == 100_000


def test_a_failed_write_counts_the_queries_it_lost(
    db: Path,
    make_writer: Callable[..., BlockLogWriter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[sqlite3.Connection] = []

    def spy_open_db(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
        conn = open_db(path, readonly=readonly)
        opened.append(conn)
        return conn

    monkeypatch.setattr(writer_module, "open_db", spy_open_db)
    w = make_writer()
    w.start()
    assert w.flush(timeout=WAIT)
    (conn,) = opened
    conn.execute("PRAGMA query_only = ON")  # every write now fails; the worker is idle
    for _ in range(100):
        w.offer(event())
    assert not w.flush(timeout=WAIT)
    assert (w.written, w.write_failed) == (0, 100)  # one row, a hundred queries lost
    conn.execute("PRAGMA query_only = OFF")
    w.offer(event("after.example"))
    assert w.flush(timeout=WAIT)
    assert counters(db)["write_failed"] == 100
    assert rows(db, "SELECT qname, count FROM blocks") == [("after.example", 1)]


# Closing and counters


def test_close_flushes_and_persists_counters_cumulatively(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    for run in (1, 2):
        w = make_writer(queue_size=2)
        assert w.offer(event("a.example"))
        assert w.offer(event("b.example"))
        assert not w.offer(event("lost.example"))  # queue full before the thread starts
        w.start()
        w.close(timeout=WAIT)
        assert counters(db) == {"queue_dropped": run, "write_failed": 0}
    assert rows(db, "SELECT count(*) FROM blocks") == [(4,)]


def test_close_is_idempotent_and_later_offers_are_dropped(
    make_writer: Callable[..., BlockLogWriter],
) -> None:
    w = make_writer()
    w.start()
    w.close(timeout=WAIT)
    w.close(timeout=WAIT)
    assert not w.offer(event())
    assert w.dropped == 1
    assert w.flush(timeout=WAIT)  # nothing is waiting to be written
    with pytest.raises(RuntimeError):
        w.start()


def test_close_without_start_does_nothing(make_writer: Callable[..., BlockLogWriter]) -> None:
    make_writer().close(timeout=WAIT)


# Schema


def test_migration_steps_match_the_schema_version() -> None:
    assert len(MIGRATIONS) == SCHEMA_VERSION


def test_open_creates_directory_wal_and_current_schema(db: Path) -> None:
    conn = open_db(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"blocks_client_ts", "blocks_ts_count"} <= indexes
        assert "blocks_ts" not in indexes  # a prefix of blocks_ts_count: one b-tree less
        # The dashboard's totals over a time range read the index alone.
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT COALESCE(SUM(count), 0) FROM blocks"
            " WHERE ts >= ? AND ts < ?",
            (0.0, 1.0),
        ).fetchall()
        assert "COVERING INDEX blocks_ts_count" in " ".join(str(r[-1]) for r in plan)
    finally:
        conn.close()


def test_an_empty_v0_file_is_migrated(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.touch()  # an empty file is a valid SQLite database at user_version 0
    open_db(db).close()
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert counters(db) == {"queue_dropped": 0, "write_failed": 0}


def test_reopening_an_existing_database_keeps_its_data(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    w = make_writer()
    w.start()
    w.offer(event())
    w.close(timeout=WAIT)
    open_db(db).close()
    w2 = make_writer()
    w2.start()
    w2.offer(event("second.example"))
    assert w2.flush(timeout=WAIT)
    assert rows(db, "SELECT qname FROM blocks ORDER BY id") == [
        ("bad.example",),
        ("second.example",),
    ]


def test_a_v1_block_log_migrates_to_the_current_schema_keeping_its_rows(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db, isolation_level=None)
    for statement in MIGRATIONS[0]:  # the block log as Parafoudre with schema v1 left it
        conn.execute(statement)
    conn.executemany(
        "INSERT INTO blocks (ts, client, qname, qtype, verdict, reason, category)"
        " VALUES (?, '192.0.2.7', ?, 1, 'blocked', 'feed:urlhaus', 'malware')",
        [(T0 - 60, "bad.example"), (T0 - 30, "bad.example"), (T0 - 10, "old.example")],
    )
    conn.execute("INSERT INTO daily_counts VALUES (?, 'malware', 3)", (utc_day(T0 - 60),))
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    with pytest.raises(SchemaError, match=f"v1, this code reads v{SCHEMA_VERSION}") as info:
        open_db(db, readonly=True)  # readers wait for the writer to migrate it
    assert info.value.older

    w = make_writer()
    w.start()
    for _ in range(4):
        w.offer(event())
    assert w.flush(timeout=WAIT)
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(db, "SELECT ts, qname, count FROM blocks ORDER BY id") == [
        (T0 - 60, "bad.example", 1),
        (T0 - 30, "bad.example", 1),
        (T0 - 10, "old.example", 1),
        (T0, "bad.example", 4),
    ]
    assert rows(db, "SELECT sum(count) FROM blocks") == [(7,)]
    assert sum(daily(db).values()) == 7


def test_a_newer_schema_is_refused_and_left_untouched(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE future (x)")
    conn.execute("INSERT INTO future VALUES (42)")
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    before = db.read_bytes()

    for readonly in (False, True):
        with pytest.raises(SchemaError) as info:
            open_db(db, readonly=readonly)
        message = str(info.value)
        assert str(db) in message
        assert "v99" in message
        assert f"v{SCHEMA_VERSION}" in message
    with pytest.raises(SchemaError):
        make_writer().start()

    assert issubclass(SchemaError, ParafoudreError)
    assert db.read_bytes() == before
    assert not db.with_name(db.name + "-wal").exists()  # not even switched to WAL


def test_start_fails_clearly_on_a_file_that_is_not_a_database(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"not a database, just some text " * 100)
    with pytest.raises(BlockLogError, match="cannot open block log") as info:
        make_writer().start()
    assert str(db) in str(info.value)


def test_readonly_open_of_a_missing_file_fails_and_creates_nothing(db: Path) -> None:
    with pytest.raises(BlockLogError) as info:
        open_db(db, readonly=True)
    assert str(db) in str(info.value)
    assert not db.exists()


def test_readonly_reads_while_the_writer_writes(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    w = make_writer()
    w.start()
    w.offer(event("first.example"))
    assert w.flush(timeout=WAIT)

    reader = open_db(db, readonly=True)
    try:
        reader.execute("BEGIN")  # hold a read snapshot open while the writer commits
        assert reader.execute("SELECT count(*) FROM blocks").fetchone() == (1,)
        w.offer(event("second.example"))
        assert w.flush(timeout=WAIT)  # WAL: the open reader does not block the commit
        assert reader.execute("SELECT count(*) FROM blocks").fetchone() == (1,)
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM blocks").fetchone() == (2,)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.execute("DELETE FROM blocks")
    finally:
        reader.close()


# Retention


def test_retention_at_start_deletes_old_rows_but_keeps_daily_counts(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    clock = FakeClock()
    old, recent = T0 - 11 * DAY, T0 - 9 * DAY
    w = make_writer(retention_days=10, clock=clock)
    w.start()
    assert w.flush(timeout=WAIT)  # the start-up pass is done; the next is an hour away
    w.offer(event("old.example", ts=old))
    w.offer(event("recent.example", ts=recent))
    w.close(timeout=WAIT)
    assert rows(db, "SELECT count(*) FROM blocks") == [(2,)]

    w2 = make_writer(retention_days=10, clock=clock)
    w2.start()
    assert w2.flush(timeout=WAIT)
    assert rows(db, "SELECT qname FROM blocks") == [("recent.example",)]
    assert daily(db) == {(utc_day(old), "malware"): 1, (utc_day(recent), "malware"): 1}


def test_retention_runs_again_after_an_hour(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    clock = FakeClock()
    w = make_writer(retention_days=10, clock=clock)
    w.start()
    assert w.flush(timeout=WAIT)
    w.offer(event("soon-old.example", ts=T0 - 10 * DAY + 1800))
    assert w.flush(timeout=WAIT)
    clock.now += 1800  # the event is now past retention, but the last pass is 30 min old
    assert w.flush(timeout=WAIT)
    assert rows(db, "SELECT count(*) FROM blocks") == [(1,)]
    clock.now += 1801
    assert w.flush(timeout=WAIT)
    assert rows(db, "SELECT count(*) FROM blocks") == [(0,)]
    assert sum(daily(db).values()) == 1


# Write failures


def test_disk_full_counts_failures_warns_rarely_and_recovers(
    db: Path,
    make_writer: Callable[..., BlockLogWriter],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    opened: list[sqlite3.Connection] = []

    def spy_open_db(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
        conn = open_db(path, readonly=readonly)
        opened.append(conn)
        return conn

    monkeypatch.setattr(writer_module, "open_db", spy_open_db)
    caplog.set_level(logging.WARNING, logger="resolver.blocklog.writer")
    clock = FakeClock()
    w = make_writer(clock=clock)
    w.start()
    assert w.flush(timeout=WAIT)
    (conn,) = opened
    # Simulate a full disk: the file may not grow by a page. The worker is idle between flushes.
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")

    def offer_batch(n: int = 100) -> None:
        for i in range(n):
            assert w.offer(event(f"{i}-" + "x" * 200 + ".example"))

    offer_batch()
    assert not w.flush(timeout=WAIT)  # handled, but not written
    assert (w.written, w.write_failed) == (0, 100)
    offer_batch()
    assert not w.flush(timeout=WAIT)
    assert w.write_failed == 200
    warnings = [r for r in caplog.records if r.name == "resolver.blocklog.writer"]
    assert len(warnings) == 1  # at most one a minute
    assert "database or disk is full" in warnings[0].getMessage()

    clock.now += 61
    offer_batch()
    assert not w.flush(timeout=WAIT)
    assert len([r for r in caplog.records if r.name == "resolver.blocklog.writer"]) == 2

    conn.execute("PRAGMA max_page_count = 1073741823")  # space again
    offer_batch()
    assert w.flush(timeout=WAIT)
    assert (w.written, w.write_failed) == (100, 300)
    assert rows(db, "SELECT count(*) FROM blocks") == [(100,)]
    assert counters(db)["write_failed"] == 300  # persisted once the disk took writes again


def test_a_locked_database_never_blocks_offer(
    db: Path, make_writer: Callable[..., BlockLogWriter]
) -> None:
    w = make_writer(queue_size=50)
    w.start()
    assert w.flush(timeout=WAIT)
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock; our worker waits
        w.offer(event("first.example"))
        w.flush(timeout=0.1)  # the worker is now stuck in the busy timeout, not the loop
        started = time.monotonic()
        results = [w.offer(event(f"n{i}.example")) for i in range(100)]
        assert time.monotonic() - started < 1.0
        assert results.count(False) == w.dropped > 0
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert w.flush(timeout=WAIT)  # the lock is gone: the worker catches up
    assert w.written == 1 + results.count(True)
    assert rows(db, "SELECT count(*) FROM blocks") == [(w.written,)]
