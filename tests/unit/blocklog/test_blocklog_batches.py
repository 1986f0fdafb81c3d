"""What one write window puts in the file, whatever the events: the rows, their counts, the
bounds on hostile text and the daily totals, checked against a plain fold of the events.

The writer builds its batch a column at a time and inserts many rows to a statement; these
tests hold it to the meaning of the simple one-row-at-a-time writer. Every wait is bounded.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resolver.blocklog import BlockEvent, BlockLogWriter, open_db
from resolver.blocklog import writer as writer_module

WAIT = 10.0
MIDNIGHT = 1_700_006_400.0  # 2023-11-15 00:00:00 UTC
NOON = MIDNIGHT - 43_200.0

# Lone surrogates (the undecodable bytes surrogateescape leaves), NUL, accents, an emoji.
HOSTILE = st.text(
    alphabet=st.sampled_from(["a", ".", "-", "é", "Ü", "\udcff", "\udc80", "\x00", "\U0001f600"]),
    max_size=300,
)


def bounded(value: str, limit: int) -> str:
    """The writer's promise: at most ``limit`` characters, and encodable as UTF-8 (an
    unencodable character is written as its backslash escape)."""
    value = value[:limit]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")[:limit]
    return value


def expected_rows(events: list[BlockEvent]) -> list[tuple[Any, ...]]:
    folded: dict[tuple[Any, ...], list[Any]] = {}
    for e in events:
        key = e[1:7]
        if key in folded:
            folded[key][1] += e.count
        else:
            folded[key] = [e.ts, e.count]
    limits = (
        writer_module.MAX_CLIENT,
        writer_module.MAX_QNAME,
        None,
        writer_module.MAX_TEXT,
        writer_module.MAX_TEXT,
        writer_module.MAX_TEXT,
    )
    return [
        (
            ts,
            *(
                v if limit is None else bounded(v, limit)
                for v, limit in zip(key, limits, strict=True)
            ),
            n,
        )
        for key, (ts, n) in folded.items()
    ]


def expected_daily(rows: list[tuple[Any, ...]]) -> dict[tuple[str, str], int]:
    """Each row's queries on the UTC day of its first event (a row is not split at midnight)."""
    daily: dict[tuple[str, str], int] = {}
    for ts, *_, category, n in rows:
        key = (time.strftime("%Y-%m-%d", time.gmtime(ts)), category)
        daily[key] = daily.get(key, 0) + n
    return daily


def write_one_window(path: Path, events: list[BlockEvent]) -> BlockLogWriter:
    w = BlockLogWriter(path, batch_size=100_000, flush_interval=60.0, clock=lambda: NOON)
    w.start()
    try:
        for e in events:
            assert w.offer(e)
        assert w.flush(timeout=WAIT)
    finally:
        w.close(timeout=WAIT)
    return w


def read(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = open_db(path, readonly=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@st.composite
def windows(draw: st.DrawFn) -> list[BlockEvent]:
    """Hostile and ordinary events, repeated or not, some windows across midnight UTC; enough
    distinct rows at times for several multi-row statements and a remainder."""
    base = draw(st.sampled_from([NOON, MIDNIGHT - 2.0]))
    stamps = st.floats(min_value=base, max_value=base + 4.0)
    hostile = st.builds(
        BlockEvent,
        ts=stamps,
        client=st.one_of(st.sampled_from(["192.0.2.7", "2001:db8::1"]), HOSTILE),
        qname=st.one_of(st.sampled_from(["bad.example", "x" * 300]), HOSTILE),
        qtype=st.sampled_from([1, 28]),
        verdict=st.sampled_from(["blocked", "exfiltration"]),
        reason=st.one_of(st.just("feed:urlhaus"), HOSTILE),
        category=st.one_of(st.sampled_from(["malware", "bypass"]), HOSTILE),
        count=st.integers(min_value=1, max_value=5),
    )
    events = draw(st.lists(hostile, max_size=40))
    distinct = draw(st.integers(min_value=0, max_value=3 * writer_module.CHUNK_ROWS + 7))
    events += [
        BlockEvent(draw(stamps), "192.0.2.9", f"n{i}.example", 1, "blocked", "feed:x", "malware")
        for i in range(distinct)
    ]
    if events:
        # Repeats, and near repeats: an event again with one field changed, a row of its own
        # unless the field already had that value.
        events += draw(st.lists(st.sampled_from(events), max_size=20))
        near = st.tuples(
            st.sampled_from(events),
            st.sampled_from(["client", "qname", "verdict", "reason", "category"]),
            st.sampled_from(["192.0.2.7", "other", "malware", "blocked"]),
        )
        events += [
            BlockEvent(**{**e._asdict(), field: value})
            for e, field, value in draw(st.lists(near, max_size=20))
        ]
        events += [
            e._replace(qtype=e.qtype + 1)
            for e in draw(st.lists(st.sampled_from(events), max_size=5))
        ]
    random.Random(draw(st.integers())).shuffle(events)
    return events


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(windows())
def test_one_window_stores_the_fold_of_its_events(events: list[BlockEvent]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "blocks.db"
        w = write_one_window(path, events)
        found = read(
            path,
            "SELECT ts, client, qname, qtype, verdict, reason, category, count"
            " FROM blocks ORDER BY id",
        )
        assert found == expected_rows(events)  # in the order each row's first event came
        daily = {(d, c): n for d, c, n in read(path, "SELECT * FROM daily_counts")}
        assert daily == expected_daily(found)
        assert w.written == sum(e.count for e in events)
        assert w.write_failed == 0


def test_a_row_sqlite_refuses_loses_its_whole_batch_not_part_of_it(tmp_path: Path) -> None:
    # A NaN time is stored as NULL, which the table refuses. The rows before it, inserted by
    # the same multi-row statement, must go too: the batch is one transaction.
    path = tmp_path / "blocks.db"
    events = [
        BlockEvent(NOON + i, "192.0.2.7", f"n{i}.example", 1, "blocked", "feed:x", "malware")
        for i in range(2 * writer_module.CHUNK_ROWS + 3)
    ]
    events[writer_module.CHUNK_ROWS + 50] = events[0]._replace(ts=float("nan"), qname="nan.x")
    w = BlockLogWriter(path, batch_size=100_000, flush_interval=60.0, clock=lambda: NOON)
    w.start()
    try:
        for e in events:
            assert w.offer(e)
        assert not w.flush(timeout=WAIT)
        assert (w.written, w.write_failed) == (0, len(events))
        assert w.offer(events[1]._replace(qname="after.example"))
        assert w.flush(timeout=WAIT)
    finally:
        w.close(timeout=WAIT)
    assert read(path, "SELECT qname FROM blocks") == [("after.example",)]
    assert read(path, "SELECT sum(count) FROM daily_counts") == [(1,)]
    assert read(path, "SELECT value FROM counters WHERE name = 'write_failed'") == [(len(events),)]


def test_rows_from_an_older_writer_are_kept_and_new_ones_follow(tmp_path: Path) -> None:
    # The multi-row INSERT appends after rows already there, ids in order.
    path = tmp_path / "blocks.db"
    conn = open_db(path)
    try:
        conn.execute(
            "INSERT INTO blocks (ts, client, qname, qtype, verdict, reason, category, count)"
            " VALUES (?, '192.0.2.1', 'old.example', 1, 'blocked', 'feed:x', 'malware', 3)",
            (NOON,),
        )
    finally:
        conn.close()
    events = [
        BlockEvent(NOON + 1, "192.0.2.7", f"n{i}.example", 1, "blocked", "feed:x", "malware")
        for i in range(writer_module.CHUNK_ROWS + 1)
    ]
    write_one_window(path, events)
    names = [q for (q,) in read(path, "SELECT qname FROM blocks ORDER BY id")]
    assert names == ["old.example", *(e.qname for e in events)]


def test_chunks_of_one_machine_and_mixed_chunks_keep_every_field_and_the_order(
    tmp_path: Path,
) -> None:
    # A chunk of rows sharing client, verdict, reason and category binds those once; the
    # chunks around it do not. Every field of every row still lands, in arrival order.
    size = writer_module.CHUNK_ROWS
    path = tmp_path / "blocks.db"

    def burst(n: int, client: str, category: str, first: int) -> list[BlockEvent]:
        return [
            BlockEvent(
                NOON + i / 7,
                client,
                f"n{i}.example",
                1 + i % 3,
                "blocked",
                "feed:x",
                category,
                1 + i % 2,
            )
            for i in range(first, first + n)
        ]

    events = burst(size, "192.0.2.1", "malware", 0)  # one machine
    # Then a chunk for each shared column where one row differs in that column alone.
    for k, field in enumerate(("client", "verdict", "reason", "category"), start=1):
        chunk = burst(size, "192.0.2.1", "malware", k * size)
        chunk[size // 2] = BlockEvent(**{**chunk[size // 2]._asdict(), field: "other"})
        events += chunk
    events += burst(size, "2001:db8::1", "phishing", 5 * size)  # another machine
    events += burst(size // 3, "192.0.2.1", "malware", 6 * size)  # a remainder
    w = write_one_window(path, events)
    found = read(
        path,
        "SELECT ts, client, qname, qtype, verdict, reason, category, count FROM blocks ORDER BY id",
    )
    assert found == [tuple(e) for e in events]
    assert w.written == sum(e.count for e in events)
