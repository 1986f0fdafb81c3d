"""The block log writer: events in from the event loop, coalesced commits to SQLite from one thread.

``offer()`` runs on the DNS hot path, so it is a length check and a deque append: it takes no
lock it could wait on, logs nothing and never touches the disk. A single daemon thread drains the
deque as it fills and folds identical events (same client, name, type, verdict, reason, category)
into one pending row with a count; it commits the pending rows once per ``flush_interval``, or
sooner when ``batch_size`` distinct rows wait, a flush() asks or close() drains. So a flood of the
same few names costs one dict update per query, not one SQLite row. When SQLite fails (disk full,
read-only file, lock held too long) the queries are counted as lost, a warning is logged at most
once a minute, and serving goes on.

The writer also records when the box runs: a ``runs`` row added at start whose ``seen`` moves
forward every ``heartbeat`` seconds and at close, so the page can show "no data" for the hours
the box was stopped instead of a sunny day.
"""

from __future__ import annotations

import collections
import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, NamedTuple, final

from resolver.blocklog.schema import (
    HEARTBEAT,
    QUEUE_DROPPED,
    WRITE_FAILED,
    BlockLogError,
    open_db,
)

log = logging.getLogger(__name__)

# Bounds on text that came from the network, so a hostile client cannot bloat the file.
MAX_QNAME: Final = 255  # RFC 1035 §2.3.4 limits a name to 255 octets
MAX_CLIENT: Final = 64  # the longest IPv6 text with a zone id fits
MAX_TEXT: Final = 200  # verdict, reason, category

# The worker wakes to drain the queue once this many events wait (or batch_size, if smaller), so
# the queue stays short under a flood even though commits come only once per flush_interval.
DRAIN_EVERY: Final = 500
PRUNE_EVERY: Final = 3600.0  # seconds between two retention passes
# Rows deleted per statement: after a long stop, one huge DELETE would hold the write lock (and
# the worker) for seconds; chunks let readers and checkpoints interleave.
PRUNE_CHUNK: Final = 10_000
WARN_EVERY: Final = 60.0  # seconds between two warnings about write failures
DAY: Final = 86_400

# OR FAIL: a row SQLite refuses stops the statement keeping the rows before it, where the
# default (ABORT) undoes them, which costs a statement journal of every page the statement
# changes: 0.2 us of CPU per row. Either way the write fails and _write rolls back the batch.
_INSERT_BLOCK: Final = (
    "INSERT OR FAIL INTO blocks (ts, client, qname, qtype, verdict, reason, category, count)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# A block row's columns, BlockEvent's order; the text ones with their bound, and whether a
# batch holds few distinct values of it (clients, verdicts, reasons, categories; not names).
WIDTH: Final = 8
TEXT_COLUMNS: Final = (
    (1, MAX_CLIENT, True),
    (2, MAX_QNAME, False),
    (4, MAX_TEXT, True),
    (5, MAX_TEXT, True),
    (6, MAX_TEXT, True),
)
# Categories past which a batch's daily totals are counted in one pass rather than one
# list.count() a category (each a C-level pass, cheaper while they are few).
FEW_CATEGORIES: Final = 16
# Rows to one INSERT statement: 800 parameters, under 999, the lowest limit SQLite builds have had.
CHUNK_ROWS: Final = 100
_INSERT_CHUNK: Final = _INSERT_BLOCK + ", (?, ?, ?, ?, ?, ?, ?, ?)" * (CHUNK_ROWS - 1)
# The same for a chunk whose rows share these columns: bound once (?1 to ?4), the others per
# row; four strings fewer to bind and copy a row (2.15 -> 1.95 us a distinct row, one client).
_SHARED: Final = (1, 4, 5, 6)  # client, verdict, reason, category
_OWN: Final = (0, 2, 3, 7)  # ts, qname, qtype, count
_INSERT_SHARED: Final = (
    _INSERT_BLOCK.split(" VALUES ")[0]
    + " VALUES "
    + ", ".join(
        f"(?{n}, ?1, ?{n + 1}, ?{n + 2}, ?2, ?3, ?4, ?{n + 3})"
        for n in range(len(_SHARED) + 1, len(_SHARED) + 1 + len(_OWN) * CHUNK_ROWS, len(_OWN))
    )
)
_ADD_DAILY: Final = (
    "INSERT INTO daily_counts (day, category, count) VALUES (?, ?, ?)"
    " ON CONFLICT (day, category) DO UPDATE SET count = count + excluded.count"
)
_ADD_COUNTER: Final = (
    "INSERT INTO counters (name, value) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"
)
_PRUNE: Final = "DELETE FROM blocks WHERE id IN (SELECT id FROM blocks WHERE ts < ? LIMIT ?)"
_PRUNE_RUNS: Final = "DELETE FROM runs WHERE seen < ?"
_BEGIN_RUN: Final = "INSERT INTO runs (started, seen) VALUES (?, ?)"
_BEAT: Final = "UPDATE runs SET seen = ? WHERE id = ?"

# What makes two events identical: client, qname, qtype, verdict, reason, category.
_Key = tuple[str, str, int, str, str, str]


class BlockEvent(NamedTuple):
    """One blocked query (or ``count`` identical ones), as the block log stores it.

    A NamedTuple, not a frozen dataclass: it is built on the hot path for every block, and a
    frozen dataclass costs 1.3 µs to build here against 0.5 µs (both immutable). The worker reads
    it by index (``event[1:7]`` is the coalescing key, ``event[7]`` the count) and inserts a first
    event as it is, as a row of the blocks table in this column order: keep the order.
    """

    ts: float  # unix seconds
    client: str  # client address as text
    qname: str  # lower case, no trailing dot
    qtype: int
    verdict: str  # "blocked", "exfiltration"
    reason: str  # "feed:urlhaus", "exfil:entropy"
    category: str  # "malware", "phishing", ...
    # Identical queries this event stands for. It hides tuple.count(), which nothing calls on
    # an event; the name is the block log's column.
    count: int = 1  # type: ignore[assignment]


# A row of the write window: the first event as it came, or once repeated a list of its
# columns whose count adds the repeats'.
_Slot = BlockEvent | list[Any]


@final  # so ``type(item) is _Flush`` tells the types apart, cheaper than isinstance per event
class _Flush:
    """A marker flush() puts in the queue; the worker sets it once everything before is handled."""

    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False


class BlockLogWriter:
    """Writes block events to the SQLite block log from one worker thread.

    Identical events (same client, qname, qtype, verdict, reason, category) offered within one
    write window become one row whose ``count`` says how many queries it stands for and whose
    ``ts`` is the first one's. A window ends after ``flush_interval`` seconds, when ``batch_size``
    distinct rows wait, at a flush() or at close().

    ``clock`` gives wall-clock unix seconds; it schedules retention and the warning throttle, so
    tests can move time. Event timestamps come from the events themselves; the write window runs
    on the monotonic clock.
    """

    __slots__ = (
        "_batch_size",
        "_clock",
        "_closed",
        "_drain_at",
        "_dropped",
        "_failed_since_flush",
        "_failing",
        "_flush_interval",
        "_flush_lock",
        "_heartbeat",
        "_last_beat",
        "_last_prune",
        "_last_warning",
        "_limit",
        "_markers",
        "_path",
        "_queue",
        "_retention",
        "_run_id",
        "_saved_dropped",
        "_saved_failed",
        "_stop",
        "_wake",
        "_wake_at",
        "_write_failed",
        "_writer_thread",
        "_written",
    )

    def __init__(
        self,
        path: Path,
        *,
        queue_size: int = 10000,
        batch_size: int = 5000,
        flush_interval: float = 1.0,
        retention_days: int = 400,
        heartbeat: float = HEARTBEAT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if queue_size < 1 or batch_size < 1 or retention_days < 1:
            raise ValueError("queue_size, batch_size and retention_days must be at least 1")
        if not flush_interval > 0 or not heartbeat > 0:
            raise ValueError("flush_interval and heartbeat must be positive")
        self._path = path
        self._queue: collections.deque[BlockEvent | _Flush] = collections.deque()
        self._limit = queue_size  # close() sets it to 0 so later offers drop at no extra cost
        self._drain_at = min(batch_size, DRAIN_EVERY)
        self._wake_at = self._drain_at - 1  # queue length before the append that wakes the worker
        self._batch_size = batch_size  # distinct rows pending before a commit
        self._flush_interval = flush_interval
        self._retention = retention_days * DAY
        self._clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Flush markers in the queue. The worker must not sleep while one waits behind a full
        # batch, and a wake-up alone cannot tell it so (it may be consumed by an earlier cycle).
        self._markers = 0
        self._flush_lock = threading.Lock()
        self._writer_thread: threading.Thread | None = None
        self._closed = False
        # Each counter has one writing thread, so no lock: _dropped the offer() thread, the
        # rest the worker.
        self._dropped = 0
        self._written = 0
        self._write_failed = 0
        self._saved_dropped = 0  # part of the counters already added to the database
        self._saved_failed = 0
        self._failed_since_flush = False
        self._last_prune: float | None = None
        self._last_warning: float | None = None
        self._heartbeat = heartbeat
        self._last_beat: float | None = None
        self._run_id: int | None = None
        self._failing = False  # the last write, prune or heartbeat failed

    @property
    def dropped(self) -> int:
        """Queries refused by offer() because the queue was full, since this writer was made."""
        return self._dropped

    @property
    def written(self) -> int:
        """Queries committed to the database (a row counts for its ``count``)."""
        return self._written

    @property
    def queued(self) -> int:
        """Events waiting in the queue, not yet folded into the current write window."""
        return len(self._queue)

    @property
    def write_failed(self) -> int:
        """Queries lost because SQLite refused the batch that held them."""
        return self._write_failed

    @property
    def failing(self) -> bool:
        """True while the block log cannot be written: the last write or heartbeat failed, or
        the worker thread is gone."""
        thread = self._writer_thread
        stopped = thread is not None and not thread.is_alive() and not self._closed
        return self._failing or stopped

    def start(self) -> None:
        """Open (create, migrate) the database, record this run and start the worker thread.

        Raises BlockLogError or SchemaError, naming the file, if the database cannot be used.
        """
        if self._writer_thread is not None or self._closed:
            raise RuntimeError("a BlockLogWriter can be started only once")
        conn = open_db(self._path)
        now = self._clock()
        try:
            self._run_id = conn.execute(_BEGIN_RUN, (now, now)).lastrowid
        except sqlite3.Error as exc:
            conn.close()
            raise BlockLogError(f"cannot write block log {self._path}: {exc}") from exc
        self._last_beat = now
        self._writer_thread = threading.Thread(
            target=self._run, args=(conn,), name="parafoudre-blocklog", daemon=True
        )
        self._writer_thread.start()

    def offer(self, event: BlockEvent) -> bool:
        """Queue ``event`` for writing; never blocks. False (and counted) if the queue is full."""
        queue = self._queue
        n = len(queue)
        if n >= self._limit:
            self._dropped += event[7]  # its count: usually 1
            return False
        queue.append(event)
        if n == self._wake_at:
            # Enough waits: wake the worker to drain them now rather than at the next interval.
            # Only one offer in DRAIN_EVERY pays for this, and the event's lock is never held long.
            self._wake.set()
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until every event offered before this call is handled; True if all committed.

        False if ``timeout`` expired, the worker is not running, or an event since the previous
        flush failed to be written (see ``write_failed``). From the event loop, call it through
        ``asyncio.to_thread``.
        """
        thread = self._writer_thread
        if thread is None or not thread.is_alive():
            return not self._queue
        marker = _Flush()
        with self._flush_lock:
            self._queue.append(marker)
            self._markers += 1
        self._wake.set()
        return marker.done.wait(timeout) and marker.ok

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, persist the counters and stop the worker; idempotent.

        Later offers are dropped and counted. Blocks up to ``timeout`` seconds.
        """
        if self._closed:
            return
        self._closed = True
        self._limit = 0
        thread = self._writer_thread
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():
            log.warning(
                "block log %s: writer still busy after %.1f s; %d queued events may be lost",
                self._path,
                timeout,
                len(self._queue),
            )

    # The worker thread.

    def _run(self, conn: sqlite3.Connection) -> None:
        # The current write window: first ts and count per distinct event, in arrival order.
        pending: dict[_Key, _Slot] = {}
        markers: list[_Flush] = []
        try:
            self._prune(conn)
            due: float | None = None  # monotonic time the window ends
            while True:
                stopping = self._stop.is_set()
                self._drain(pending, markers)
                now = time.monotonic()
                if due is None and (pending or self._counters_dirty()):
                    due = now + self._flush_interval
                if (
                    stopping
                    or markers
                    or len(pending) >= self._batch_size
                    or (due is not None and now >= due)
                ):
                    self._commit(conn, pending, markers)
                    due = None
                    if stopping and not self._queue:
                        break
                elif len(self._queue) < self._drain_at and not self._markers:
                    # Woken early by a filling queue, a flush or close; else when the window ends.
                    self._wake.wait(self._flush_interval if due is None else due - now)
                    self._wake.clear()
                    if due is None:
                        self._maybe_prune(conn)  # idle: retention still runs
                self._maybe_beat(conn)
        finally:
            # After the last commit: losses counted since (offers after close). After a bug
            # broke the loop: keep what can be kept, and release the flush() callers.
            if pending or self._counters_dirty():
                self._write(conn, pending)
            self._beat(conn)  # the stop time: the page shows "no data" from here
            for marker in markers:
                marker.done.set()
            conn.close()

    def _drain(self, pending: dict[_Key, _Slot], markers: list[_Flush]) -> None:
        """Fold queued events into ``pending`` until the queue is empty, ``pending`` holds
        batch_size rows, or a flush marker comes (everything before it must be committed first).

        Runs for every blocked query under a flood: a slice, a dict lookup, an add. A first
        event is kept as it came (already a row in column order: nothing allocated but its
        key); only a repeat turns it into a list that counts.
        """
        queue = self._queue
        popleft = queue.popleft
        get = pending.get
        limit = self._batch_size
        while queue:
            item = popleft()
            if type(item) is _Flush:
                markers.append(item)
                with self._flush_lock:
                    self._markers -= 1
                return
            key = item[1:7]  # client, qname, qtype, verdict, reason, category
            slot = get(key)
            if slot is None:
                pending[key] = item
                if len(pending) >= limit:
                    return
            elif type(slot) is list:
                slot[7] += item[7]
            else:
                row = pending[key] = list(slot)  # the first's ts, the sum of the counts
                row[7] += item[7]

    def _commit(
        self, conn: sqlite3.Connection, pending: dict[_Key, _Slot], markers: list[_Flush]
    ) -> None:
        try:
            if pending or self._counters_dirty():
                self._write(conn, pending)
            pending.clear()
            self._maybe_prune(conn)
        finally:
            # Resolved whatever happened, so no flush() waits for its whole timeout.
            if markers:
                ok = not self._failed_since_flush
                self._failed_since_flush = False
                for marker in markers:
                    marker.ok = ok
                    marker.done.set()
                markers.clear()

    def _maybe_prune(self, conn: sqlite3.Connection) -> None:
        now = self._clock()
        # "now < last" also prunes after the wall clock was set back.
        if self._last_prune is None or not 0 <= now - self._last_prune < PRUNE_EVERY:
            self._prune(conn)

    def _maybe_beat(self, conn: sqlite3.Connection) -> None:
        now = self._clock()
        last = self._last_beat
        if last is None or not 0 <= now - last < self._heartbeat:
            self._beat(conn)

    def _beat(self, conn: sqlite3.Connection) -> None:
        """Move this run's ``seen`` to now: the box was running until then."""
        now = self._clock()
        self._last_beat = now
        if self._run_id is None:
            return
        try:
            conn.execute(_BEAT, (now, self._run_id))
        except Exception as exc:
            _rollback(conn)
            self._failing = True
            self._warn("heartbeat", exc)
        else:
            self._failing = False

    def _counters_dirty(self) -> bool:
        return self._dropped != self._saved_dropped or self._write_failed != self._saved_failed

    def _write(self, conn: sqlite3.Connection, pending: dict[_Key, _Slot]) -> None:
        """Insert the ``pending`` rows, their daily counts and the counters in one transaction."""
        dropped, failed = self._dropped, self._write_failed
        # Every row's columns end to end: what the multi-row INSERT binds, and each column a
        # slice (flat[offset::WIDTH]) that C-level loops check and sum without a Python loop.
        flat: list[Any] = list(itertools.chain.from_iterable(pending.values()))
        queries = sum(flat[7::WIDTH])
        try:
            _bound_texts(flat)
            daily = _daily_counts(flat)
            counters = [
                (name, delta)
                for name, delta in (
                    (QUEUE_DROPPED, dropped - self._saved_dropped),
                    (WRITE_FAILED, failed - self._saved_failed),
                )
                if delta
            ]
            conn.execute("BEGIN IMMEDIATE")
            _insert_rows(conn, flat)
            conn.executemany(_ADD_DAILY, daily)
            conn.executemany(_ADD_COUNTER, counters)
            conn.execute("COMMIT")
        except Exception as exc:
            _rollback(conn)
            self._failing = True
            if pending:
                self._write_failed += queries
                self._failed_since_flush = True
            self._warn("write", exc)
            return
        self._failing = False
        self._written += queries
        self._saved_dropped, self._saved_failed = dropped, failed

    def _prune(self, conn: sqlite3.Connection) -> None:
        """Delete events older than the retention; daily counts are kept forever."""
        now = self._clock()
        self._last_prune = now
        cutoff = now - self._retention
        removed = 0
        try:
            while True:
                # Autocommit: each chunk is its own short transaction.
                count = conn.execute(_PRUNE, (cutoff, PRUNE_CHUNK)).rowcount
                removed += count
                if count < PRUNE_CHUNK:
                    break
            conn.execute(_PRUNE_RUNS, (cutoff,))
        except Exception as exc:
            _rollback(conn)
            self._warn("retention", exc)
        if removed:
            log.debug("block log %s: retention removed %d rows", self._path, removed)

    def _warn(self, action: str, exc: Exception) -> None:
        """Log a failure, at most once every WARN_EVERY seconds: the disk will not heal faster."""
        now = self._clock()
        if self._last_warning is not None and 0 <= now - self._last_warning < WARN_EVERY:
            return
        self._last_warning = now
        if isinstance(exc, sqlite3.Error):
            log.warning(
                "block log %s: %s failed: %s; %d blocks lost so far, serving goes on",
                self._path,
                action,
                exc,
                self._write_failed,
            )
        else:  # a bug, not the disk: keep the traceback
            log.error(
                "block log %s: %s failed; %d blocks lost so far, serving goes on",
                self._path,
                action,
                self._write_failed,
                exc_info=exc,
            )


def _text(value: str, limit: int) -> str:
    """Cut ``value`` to ``limit`` characters, and make it encodable as UTF-8."""
    value = value[:limit]
    if not value.isascii():
        # Lone surrogates (undecodable bytes) cannot be encoded: SQLite would refuse the batch.
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")[:limit]
    return value


def _bound_texts(flat: list[Any]) -> None:
    """Bound the text columns of the rows in ``flat`` (see _text), in place.

    Checked a column at a time in C (the longest value, and one join's ASCII flag, which
    CPython keeps for every string): the values of a column are short and ASCII nearly always,
    and a per-value Python call cost more than the insert's Python side for each row. A column
    of few values (all but the names) is checked on its set: cheaper to build than to measure.
    """
    for offset, limit, few in TEXT_COLUMNS:
        column = flat[offset::WIDTH]
        values = set(column) if few else column
        if values and (max(map(len, values)) > limit or not "".join(values).isascii()):
            flat[offset::WIDTH] = [_text(value, limit) for value in column]


def _daily_counts(flat: list[Any]) -> list[tuple[str, str, int]]:
    """The (day, category, queries) totals of the rows in ``flat``, day in UTC.

    A batch nearly always lies within one UTC day (it spans at most a flush interval): then
    only the categories are counted, in C when every row stands for one query.
    """
    stamps = flat[0::WIDTH]
    if not stamps:
        return []
    categories = flat[6::WIDTH]
    counts = flat[7::WIDTH]
    first = min(stamps)
    if first // DAY != max(stamps) // DAY:
        return _daily_counts_by_row(stamps, categories, counts)
    per_category: dict[str, int]
    if counts.count(1) == len(counts):
        distinct = set(categories)
        if len(distinct) <= FEW_CATEGORIES:
            per_category = {category: categories.count(category) for category in distinct}
        else:
            per_category = collections.Counter(categories)
    else:
        per_category = {}
        for category, n in zip(categories, counts, strict=True):
            per_category[category] = per_category.get(category, 0) + n
    day = _utc_day(first)
    return [(day, category, n) for category, n in per_category.items()]


def _daily_counts_by_row(
    stamps: list[float], categories: list[str], counts: list[int]
) -> list[tuple[str, str, int]]:
    """_daily_counts for a batch across midnight UTC: each row's own day."""
    daily: dict[tuple[str, str], int] = {}
    days: dict[float, str] = {}
    for ts, category, n in zip(stamps, categories, counts, strict=True):
        day_number = ts // DAY
        day = days.get(day_number)
        if day is None:
            day = days[day_number] = _utc_day(ts)
        daily[day, category] = daily.get((day, category), 0) + n
    return [(day, category, n) for (day, category), n in daily.items()]


def _utc_day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _insert_rows(conn: sqlite3.Connection, flat: list[Any]) -> None:
    """Insert the rows of ``flat``, CHUNK_ROWS to a statement, in their order.

    A statement step has a fixed cost (binding, the VDBE's start and end, the connection's
    mutex) that one multi-row INSERT pays once for CHUNK_ROWS rows: inserting batches of 5,000
    distinct rows costs 1.4 us of CPU a row this way, 2.8 one row to a step. A chunk whose rows
    share client, verdict, reason and category (a burst from one machine) binds those once.
    """
    size = CHUNK_ROWS * WIDTH
    whole = len(flat) - len(flat) % size
    runs: list[tuple[str, list[list[Any]]]] = []  # consecutive chunks of one statement
    for start in range(0, whole, size):
        chunk = flat[start : start + size]
        if all(chunk[i::WIDTH].count(chunk[i]) == CHUNK_ROWS for i in _SHARED):
            sql, params = _INSERT_SHARED, _shared_params(chunk)
        else:
            sql, params = _INSERT_CHUNK, chunk
        if runs and runs[-1][0] is sql:
            runs[-1][1].append(params)
        else:
            runs.append((sql, [params]))
    for sql, chunks in runs:
        conn.executemany(sql, chunks)
    if whole < len(flat):
        rest = flat[whole:]
        conn.executemany(_INSERT_BLOCK, [rest[i : i + WIDTH] for i in range(0, len(rest), WIDTH)])


def _shared_params(chunk: list[Any]) -> list[Any]:
    """_INSERT_SHARED's parameters for ``chunk``: the shared columns, then each row's own."""
    own = len(_OWN)
    params: list[Any] = [chunk[i] for i in _SHARED]
    params += [None] * (own * CHUNK_ROWS)
    for k, i in enumerate(_OWN):
        params[len(_SHARED) + k :: own] = chunk[i::WIDTH]
    return params


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite rolls back by itself after some errors (disk full); only roll back what is open.
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # the next BEGIN fails and is counted; nothing more to do here
