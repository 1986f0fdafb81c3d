"""The block log records when the box runs (schema v4 ``runs``): a row at start, a heartbeat, the
stop time; a v3 file migrates keeping its rows; ``failing`` says when writes fail."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resolver.blocklog import SCHEMA_VERSION, BlockEvent, BlockLogWriter, open_db
from resolver.blocklog import writer as writer_module
from resolver.blocklog.schema import MIGRATIONS

T0 = 1_700_000_000.0
WAIT = 5.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = open_db(path, readonly=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def wait_until(predicate: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_a_run_is_recorded_at_start_moved_by_heartbeats_and_closed_at_stop(
    tmp_path: Path,
) -> None:
    db = tmp_path / "blocks.db"
    clock = FakeClock()
    w = BlockLogWriter(db, flush_interval=0.02, heartbeat=60.0, clock=clock)
    w.start()
    try:
        assert rows(db, "SELECT started, seen FROM runs") == [(T0, T0)]
        clock.now = T0 + 30  # before the next heartbeat: nothing written
        time.sleep(0.1)
        assert rows(db, "SELECT seen FROM runs") == [(T0,)]
        clock.now = T0 + 61  # the idle worker wakes every flush_interval and beats
        assert wait_until(lambda: rows(db, "SELECT seen FROM runs") == [(T0 + 61,)])
        assert not w.failing
        clock.now = T0 + 75
    finally:
        w.close(timeout=WAIT)
    assert rows(db, "SELECT started, seen FROM runs") == [(T0, T0 + 75)]
    # A second start is a second run: the gap between them is time the box was stopped.
    clock.now = T0 + 3600
    w2 = BlockLogWriter(db, clock=clock)
    w2.start()
    w2.close(timeout=WAIT)
    assert rows(db, "SELECT started, seen FROM runs ORDER BY id") == [
        (T0, T0 + 75),
        (T0 + 3600, T0 + 3600),
    ]


def test_a_v3_block_log_migrates_keeping_its_rows_and_records_runs(tmp_path: Path) -> None:
    db = tmp_path / "blocks.db"
    conn = sqlite3.connect(db, isolation_level=None)
    for step in MIGRATIONS[:3]:  # the block log as Parafoudre with schema v3 left it
        for statement in step:
            conn.execute(statement)
    conn.execute(
        "INSERT INTO blocks (ts, client, qname, qtype, verdict, reason, category, count)"
        " VALUES (?, '192.0.2.7', 'bad.example', 1, 'blocked', 'feed:urlhaus', 'malware', 3)",
        (T0 - 60,),
    )
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    w = BlockLogWriter(db, clock=FakeClock())
    w.start()
    w.close(timeout=WAIT)
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(db, "SELECT qname, count FROM blocks") == [("bad.example", 3)]
    assert rows(db, "SELECT started, seen FROM runs") == [(T0, T0)]


def test_failing_while_sqlite_refuses_writes(tmp_path: Path, monkeypatch: Any) -> None:
    db = tmp_path / "blocks.db"
    opened: list[sqlite3.Connection] = []

    def spy_open_db(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
        conn = open_db(path, readonly=readonly)
        opened.append(conn)
        return conn

    monkeypatch.setattr(writer_module, "open_db", spy_open_db)
    w = BlockLogWriter(db, flush_interval=60.0, clock=FakeClock())
    w.start()
    try:
        assert w.flush(timeout=WAIT) and not w.failing
        opened[0].execute("PRAGMA query_only = ON")  # every write now fails
        w.offer(BlockEvent(T0, "192.0.2.7", "bad.example", 1, "blocked", "feed:x", "malware"))
        assert not w.flush(timeout=WAIT)
        assert w.failing
        opened[0].execute("PRAGMA query_only = OFF")
        w.offer(BlockEvent(T0, "192.0.2.7", "ok.example", 1, "blocked", "feed:x", "malware"))
        assert w.flush(timeout=WAIT) and not w.failing
    finally:
        w.close(timeout=WAIT)


def test_old_runs_are_pruned_with_the_blocks(tmp_path: Path) -> None:
    db = tmp_path / "blocks.db"
    clock = FakeClock()
    w = BlockLogWriter(db, clock=clock, retention_days=1)
    w.start()
    w.close(timeout=WAIT)
    clock.now = T0 + 2 * 86_400
    w2 = BlockLogWriter(db, clock=clock, retention_days=1)
    w2.start()
    assert w2.flush(timeout=WAIT)
    w2.close(timeout=WAIT)
    assert rows(db, "SELECT started FROM runs") == [(T0 + 2 * 86_400,)]
