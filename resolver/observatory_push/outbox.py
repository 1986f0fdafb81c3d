"""The box's side of the observatory: a durable SQLite outbox and the task that empties it.

The pusher reads the block log's NEW rows (``blocks.id`` above a persisted cursor), turns them into
events (client addresses replaced by a keyed hash), groups them into batches with a uuid4 batch id,
and stores the batches and the new cursor in the outbox in one transaction. Only then does it send
them, oldest first, and it deletes a batch only after a 2xx answer. So:

* nothing is lost across restarts: a row is either still above the cursor or in a stored batch;
* nothing is doubled: a batch resent after a lost answer keeps its id, and the observatory stores
  each batch id once;
* nothing blocks the resolver: SQLite work runs on one worker thread, HTTP on the event loop.

Blocks of a non-threat category (``bypass``: a machine getting around the filter, e.g. every
Firefox start asking its canary) are not sent: the observatory counts every event it gets as
weather, and those are not threats. The cursor moves past them all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import math
import os
import random
import secrets
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

from resolver.blocklog.schema import NON_THREAT_CATEGORIES, BlockLogError, open_db
from resolver.config.observatory import ObservatoryPushConfig
from resolver.exfil.redact import default_redactor, is_exfiltration

log = logging.getLogger(__name__)

# 2: each event carries ``count``, the identical queries its block log row stands for. The
# observatory reads version 1 (no count: one query per event) and 2.
PAYLOAD_VERSION: Final = 2
KEY_BYTES: Final = 32
# 16 hex digits = 64 bits: enough to tell a commune's machines apart (no collision among a few
# thousand), too short to be useful as a dictionary key against all of IPv4 from another box.
PSEUDONYM_HEX: Final = 16
# At most this many batches wait in the outbox; beyond that, new events stay in the block log
# (which keeps them 400 days) until the link is back, so the outbox cannot fill the disk.
MAX_PENDING: Final = 2000
# Batches built per look at the block log, and sent per cycle before looking again.
BATCHES_PER_FILL: Final = 20
FIRST_BACKOFF: Final = 5.0

OUTBOX_VERSION: Final = 1
_OUTBOX_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS state (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS batches (
        seq INTEGER PRIMARY KEY,        -- sending order
        batch_id TEXT NOT NULL UNIQUE,  -- uuid4, kept across retries: the observatory dedupes it
        created REAL NOT NULL,
        events INTEGER NOT NULL,
        body BLOB NOT NULL              -- the JSON payload, exactly as it will be sent
    )""",
    "INSERT OR IGNORE INTO state (name, value) VALUES ('cursor', 0)",
)
_SELECT_ROWS: Final = (
    "SELECT id, ts, client, qname, qtype, verdict, reason, category, count FROM blocks"
    " WHERE id > ? ORDER BY id LIMIT ?"
)

# id, ts, client, qname, qtype, verdict, reason, category, count
BlockRow = tuple[int, float, str, str, int, str, str, str, int]


class OutboxError(BlockLogError):
    """The observatory outbox cannot be opened."""


# --- pure parts -------------------------------------------------------------------------------


def pseudonym_period(ts: float, rotation: str) -> str:
    """The UTC period of ``ts`` whose pseudonyms are alike: '2026-12', '2026-W49', '2026-12-06'."""
    t = time.gmtime(ts)
    if rotation == "daily":
        return time.strftime("%Y-%m-%d", t)
    if rotation == "weekly":
        year, week, _ = dt.date(t.tm_year, t.tm_mon, t.tm_mday).isocalendar()
        return f"{year}-W{week:02d}"
    return time.strftime("%Y-%m", t)


def period_key(key: bytes, period: str) -> bytes:
    """The key of one period, derived from the box's key (HMAC as a PRF, RFC 2104): pseudonyms
    of two periods cannot be linked without the box's key, which never leaves the box.
    """
    return hmac.new(key, b"parafoudre-pseudonym-period:" + period.encode(), hashlib.sha256).digest()


def pseudonymise(key: bytes, client: str) -> str:
    """The client address as HMAC-SHA256 under ``key``, truncated: stable per key (the box
    passes a period's key, so a machine's pseudonym changes with the period).
    """
    return hmac.new(key, client.encode("utf-8", "backslashreplace"), hashlib.sha256).hexdigest()[
        :PSEUDONYM_HEX
    ]


def utc_day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def build_payload(
    rows: Sequence[BlockRow],
    key: bytes,
    *,
    batch_id: str,
    commune: str,
    insee: str,
    rotation: str = "monthly",
) -> dict[str, Any]:
    """The JSON document of one batch: its events and their counts per UTC day and category.

    Only what was blocked is in the block log, so only that is sent; the client address is
    replaced by its pseudonym under the key of the event's period (``rotation``) here, and the
    key stays on the box. An event is one block log row:
    ``count`` identical queries, the first at ``ts``; the daily counts add up the queries.
    """
    events: list[dict[str, Any]] = []
    daily: dict[tuple[str, str], int] = {}
    keys: dict[str, bytes] = {}  # period -> its key: a batch spans one or two periods
    for _id, ts, client, qname, qtype, verdict, reason, category, count in rows:
        if is_exfiltration(verdict, reason):
            # The name is the stolen data itself: only its registered domain leaves the box,
            # beside the signals (``reason``) and the count (resolver/exfil/redact.py).
            qname = default_redactor().registered(qname)
        period = pseudonym_period(ts, rotation)
        pkey = keys.get(period)
        if pkey is None:
            pkey = keys[period] = period_key(key, period)
        events.append(
            {
                "ts": ts,
                "category": category,
                "reason": reason,
                "verdict": verdict,
                "qname": qname,
                "qtype": qtype,
                "client": pseudonymise(pkey, client),
                "count": count,
            }
        )
        k = (utc_day(ts), category)
        daily[k] = daily.get(k, 0) + count
    return {
        "version": PAYLOAD_VERSION,
        "batch_id": batch_id,
        "commune": commune,
        "insee": insee,
        "events": events,
        "daily": [{"day": d, "category": c, "count": n} for (d, c), n in sorted(daily.items())],
    }


def chunks(rows: Sequence[BlockRow], size: int) -> Iterator[Sequence[BlockRow]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def load_or_create_key(path: Path) -> bytes:
    """The pseudonymisation key in ``path``, created (32 random bytes, mode 0600) if missing."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(KEY_BYTES)
        try:
            # O_EXCL: two workers starting at once must not each write their own key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_or_create_key(path)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        log.info("observatory: new pseudonymisation key in %s (it never leaves the box)", path)
        return key
    if len(key) < 16:
        raise OutboxError(
            f"pseudonymisation key {path} is too short ({len(key)} bytes): delete it to make one"
        )
    return key


# --- the outbox -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingBatch:
    batch_id: str
    events: int
    body: bytes


class Outbox:
    """The durable outbox file. One thread at a time; the pusher uses a single worker thread."""

    def __init__(
        self,
        path: Path,
        *,
        blocklog_path: Path,
        key: bytes,
        commune: str,
        insee: str,
        batch_size: int,
        max_pending: int = MAX_PENDING,
        rotation: str = "monthly",
    ) -> None:
        self.path = path
        self._blocklog_path = blocklog_path
        self._key = key
        self._commune = commune
        self._insee = insee
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._rotation = rotation
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"cannot open observatory outbox {path}: {exc}") from exc
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a batch the box believes stored must survive a power cut, or the block log
            # rows behind the cursor would be lost.
            conn.execute("PRAGMA synchronous = FULL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > OUTBOX_VERSION:
                raise OutboxError(
                    f"observatory outbox {path} has schema v{version}, newer than this code"
                )
            conn.execute("BEGIN IMMEDIATE")
            for statement in _OUTBOX_SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {OUTBOX_VERSION}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.close()
            raise OutboxError(f"cannot open observatory outbox {path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def close(self) -> None:
        self._conn.close()

    @property
    def cursor(self) -> int:
        """The last block log id already turned into a batch."""
        value: int = self._conn.execute("SELECT value FROM state WHERE name = 'cursor'").fetchone()[
            0
        ]
        return value

    def pending_count(self) -> int:
        count: int = self._conn.execute("SELECT count(*) FROM batches").fetchone()[0]
        return count

    def fill(self, max_batches: int = BATCHES_PER_FILL) -> bool:
        """Turn new block log rows into stored batches; True if more rows are waiting."""
        room = min(max_batches, self._max_pending - self.pending_count())
        if room <= 0:
            return False
        limit = room * self._batch_size
        read = self._rows_after(self.cursor, limit)
        if read is None:
            return False
        cursor, rows = read
        if not rows:
            if cursor != self.cursor:
                self._conn.execute("UPDATE state SET value = ? WHERE name = 'cursor'", (cursor,))
            return False
        threats = [r for r in rows if r[7] not in NON_THREAT_CATEGORIES]  # r[7]: category
        self._store(self._batches(threats), rows[-1][0])
        return len(rows) == limit

    def _rows_after(self, cursor: int, limit: int) -> tuple[int, list[BlockRow]] | None:
        """(cursor, up to ``limit`` block log rows after it); the cursor goes back to 0 if the
        block log restarted below it. None while the block log cannot be read."""
        try:
            blocklog = open_db(self._blocklog_path, readonly=True)
        except BlockLogError as exc:
            # Not created yet (no block since install) or not migrated yet: try again later.
            log.debug("observatory: block log not readable yet: %s", exc)
            return None
        try:
            top = blocklog.execute("SELECT max(id) FROM blocks").fetchone()[0] or 0
            if top < cursor:
                # A new block log file, or every row pruned (ids restart): read it from the start.
                log.warning(
                    "observatory: block log %s restarted below the cursor (%d < %d); "
                    "reading it from the start",
                    self._blocklog_path,
                    top,
                    cursor,
                )
                cursor = 0
            rows: list[BlockRow] = blocklog.execute(_SELECT_ROWS, (cursor, limit)).fetchall()
        finally:
            blocklog.close()
        return cursor, rows

    def _batches(self, threats: list[BlockRow]) -> list[tuple[str, float, int, bytes]]:
        """(batch id, created, events, body) per chunk of ``batch_size`` rows, ready to store."""
        stored = []
        for chunk in chunks(threats, self._batch_size):
            batch_id = str(uuid.uuid4())
            payload = build_payload(
                chunk,
                self._key,
                batch_id=batch_id,
                commune=self._commune,
                insee=self._insee,
                rotation=self._rotation,
            )
            body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
            stored.append((batch_id, time.time(), len(chunk), body))
        return stored

    def _store(self, stored: list[tuple[str, float, int, bytes]], last_id: int) -> None:
        """Store the batches and move the cursor to ``last_id`` in one transaction."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO batches (batch_id, created, events, body) VALUES (?, ?, ?, ?)", stored
            )
            # Same transaction: the rows are in a stored batch (or not sent at all, being no
            # threat) exactly when the cursor is past them.
            conn.execute("UPDATE state SET value = ? WHERE name = 'cursor'", (last_id,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def pending(self, limit: int) -> list[PendingBatch]:
        """The oldest ``limit`` batches, in the order they were built."""
        return [
            PendingBatch(batch_id, events, bytes(body))
            for batch_id, events, body in self._conn.execute(
                "SELECT batch_id, events, body FROM batches ORDER BY seq LIMIT ?", (limit,)
            )
        ]

    def delete(self, batch_id: str) -> None:
        self._conn.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))

    def mark_sent(self, when: float) -> None:
        """Remember the last 2xx from the observatory (read by ``parafoudre doctor``)."""
        self._conn.execute(
            "INSERT INTO state (name, value) VALUES ('last_ok', ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (int(when),),
        )


# --- the pusher task --------------------------------------------------------------------------


class _Link:
    """Backoff and one log line per change of state, not one per retry."""

    def __init__(self, cfg: ObservatoryPushConfig) -> None:
        self._cfg = cfg
        self.failures = 0
        self.down_since: float | None = None

    def failed(self, reason: str) -> float:
        """Record a failure; the seconds to wait before the next try."""
        self.failures += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning(
                "observatory: cannot send to %s (%s); events are kept in the outbox and sent later",
                self._cfg.ingest_url(),
                reason,
            )
        first = min(FIRST_BACKOFF, self._cfg.interval)
        wait = min(self._cfg.max_backoff, math.ldexp(first, min(self.failures - 1, 20)))
        return wait * random.uniform(0.8, 1.0)

    def ok(self) -> None:
        if self.down_since is not None:
            log.info(
                "observatory: %s reachable again after %.0f s",
                self._cfg.ingest_url(),
                time.monotonic() - self.down_since,
            )
        self.failures = 0
        self.down_since = None


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, batch_id: str) -> str:
    """POST one batch; "" on a 2xx, else why it failed."""
    try:
        async with session.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", "Idempotency-Key": batch_id},
        ) as resp:
            await resp.read()
            if 200 <= resp.status < 300:
                return ""
            return f"HTTP {resp.status}"
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def run_pusher(
    cfg: ObservatoryPushConfig, *, blocklog_path: Path, state_dir: Path, stop: asyncio.Event
) -> None:
    """Send the block log's new events to the observatory until ``stop`` is set.

    Runs as a task in the resolver's process (worker 0 only: one outbox per box). Raises
    OutboxError if the outbox or the key cannot be opened; after that, failures of the link or of
    the observatory are retried with backoff and never end the task.
    """
    if not cfg.enabled:
        return
    assert cfg.token is not None  # checked by the config
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parafoudre-outbox")
    try:
        key = await loop.run_in_executor(executor, load_or_create_key, cfg.key_path(state_dir))
        outbox = await loop.run_in_executor(
            executor,
            lambda: Outbox(
                cfg.outbox_path(state_dir),
                blocklog_path=blocklog_path,
                key=key,
                commune=cfg.commune,
                insee=cfg.insee,
                batch_size=cfg.batch_size,
                rotation=cfg.pseudonym_rotation,
            ),
        )
        try:
            await _push_loop(cfg, outbox, executor, stop)
        finally:
            await loop.run_in_executor(executor, outbox.close)
    finally:
        executor.shutdown(wait=False)


async def _push_loop(
    cfg: ObservatoryPushConfig,
    outbox: Outbox,
    executor: ThreadPoolExecutor,
    stop: asyncio.Event,
) -> None:
    loop = asyncio.get_running_loop()
    url = cfg.ingest_url()
    link = _Link(cfg)
    last_sent: float | None = None  # monotonic time of the last 2xx; None: announce at start
    last_ok: float | None = None  # last_sent when last written to the outbox
    timeout = aiohttp.ClientTimeout(total=cfg.timeout)
    headers = {"Authorization": f"Bearer {cfg.token}", "User-Agent": "parafoudre-box"}
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
        while not stop.is_set():
            wait = cfg.interval
            try:
                more = await loop.run_in_executor(executor, outbox.fill)
                failure = ""
                while not failure and not stop.is_set():
                    batches = await loop.run_in_executor(executor, outbox.pending, BATCHES_PER_FILL)
                    if not batches:
                        break
                    for batch in batches:
                        failure = await _post(session, url, batch.body, batch.batch_id)
                        if failure:
                            break
                        last_sent = time.monotonic()
                        await loop.run_in_executor(executor, outbox.delete, batch.batch_id)
                if not failure and (
                    last_sent is None or time.monotonic() - last_sent >= cfg.heartbeat
                ):
                    failure = await _post(session, url, _heartbeat(cfg), "")
                    if not failure:
                        last_sent = time.monotonic()
                if failure:
                    wait = link.failed(failure)
                else:
                    if link.down_since is not None or last_ok != last_sent:
                        last_ok = last_sent
                        await loop.run_in_executor(executor, outbox.mark_sent, time.time())
                    link.ok()
                    if more:
                        wait = 0.0
            except (sqlite3.Error, OSError, BlockLogError) as exc:
                log.warning("observatory: outbox error: %s; retrying", exc)
                wait = link.failed(str(exc))
            await _wait(stop, wait) if wait else await asyncio.sleep(0)


def _heartbeat(cfg: ObservatoryPushConfig) -> bytes:
    """An empty batch: tells the observatory the box is alive on a day without blocks."""
    payload: dict[str, Any] = {
        "version": PAYLOAD_VERSION,
        "batch_id": None,
        "commune": cfg.commune,
        "insee": cfg.insee,
        "events": [],
        "daily": [],
    }
    return json.dumps(payload).encode()
