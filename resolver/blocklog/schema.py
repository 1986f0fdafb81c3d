"""The block log's SQLite schema, versioned with ``PRAGMA user_version``, and how to open it.

The resolver's writer is the only process that migrates or writes; the dashboard opens the same
file read-only. WAL mode lets the dashboard read while the writer commits.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Final

from resolver.core import categories
from resolver.errors import ParafoudreError

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 7

# Blocks of these categories are not threats: the box stopped a machine getting around the filter
# (Firefox's canary, iCloud Private Relay's, a public DNS-over-HTTPS resolver listed by a
# ``bypass`` feed), nothing attacked it. Every Firefox start asks the canary, so counting them as
# threats would cloud every day. Readers count them apart: never in the weather, the threat
# totals or what the observatory receives; the page still shows them and names a machine that
# keeps trying. The set itself lives in the core (stages and feeds read it there); the page,
# which may not import the core, reads it here.
BYPASS: Final = categories.BYPASS
NON_THREAT_CATEGORIES: Final = categories.NON_THREAT_CATEGORIES
# The same as an SQL list of literals, "('bypass')": our own constant words, never input.
NON_THREAT_SQL: Final = "(" + ", ".join(f"'{c}'" for c in sorted(NON_THREAT_CATEGORIES)) + ")"

# Names of the rows of the ``counters`` table: cumulative totals across restarts, so the dashboard
# can show how many block events were lost.
QUEUE_DROPPED: Final = "queue_dropped"
WRITE_FAILED: Final = "write_failed"
# Seconds between two heartbeats of the ``runs`` row (written by writer.py). A crash loses at
# most this much of the record of when the box ran; readers (the page) take a row whose ``seen``
# is older than a few heartbeats as a writer that stopped or is stuck. Part of the file's
# contract, so the page reads it here without importing the writer.
HEARTBEAT: Final = 60.0

# A writer waits this long for a lock held by another connection (a checkpoint, a second writer
# started by mistake) before the statement fails; it waits on the writer thread, never on the
# event loop.
BUSY_TIMEOUT_MS: Final = 5000
_RETRY_PAUSE: Final = 0.02  # seconds between two tries to open a file another writer holds

# MIGRATIONS[v] takes a database from version v to v + 1, in one transaction with the version
# bump. Append new steps; never edit a step that has shipped, databases in the field ran it.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 0 -> 1: the first schema.
    (
        """CREATE TABLE blocks (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,           -- unix seconds, UTC
            client TEXT NOT NULL,       -- client address as text
            qname TEXT NOT NULL,        -- lower case, no trailing dot
            qtype INTEGER NOT NULL,     -- RR type number
            verdict TEXT NOT NULL,      -- "blocked", "exfiltration"
            reason TEXT NOT NULL,       -- "feed:urlhaus", "exfil:entropy"
            category TEXT NOT NULL      -- "malware", "phishing", ...
        )""",
        # Retention deletes by age, the dashboard reads recent rows and one client's history.
        "CREATE INDEX blocks_ts ON blocks (ts)",
        "CREATE INDEX blocks_client_ts ON blocks (client, ts)",
        """CREATE TABLE counters (
            name TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        ) WITHOUT ROWID""",
        "INSERT INTO counters (name, value) VALUES ('queue_dropped', 0), ('write_failed', 0)",
        # Kept forever (retention only prunes ``blocks``): yearly reports read this table.
        """CREATE TABLE daily_counts (
            day TEXT NOT NULL,          -- 'YYYY-MM-DD', UTC
            category TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (day, category)
        ) WITHOUT ROWID""",
    ),
    # 1 -> 2: identical blocks (same client, qname, qtype, verdict, reason, category) within one
    # write window share a row: ``count`` is how many queries it stands for, ``ts`` the first's.
    # Every reader sums ``count``; rows written before the upgrade stand for one query each.
    ("ALTER TABLE blocks ADD COLUMN count INTEGER NOT NULL DEFAULT 1",),
    # 2 -> 3: day and hour totals sum ``count`` over a time range; with the count in the index
    # they read the index alone (30 day totals of a 1,000,000-row log: 2,576 -> 108 ms).
    ("CREATE INDEX blocks_ts_count ON blocks (ts, count)",),
    # 3 -> 4: when the box ran. A writer adds a row when it starts and moves ``seen`` forward
    # at each heartbeat and at its stop, so the page can tell "no block" (sun) from "not
    # running" (no data). Older files have no runs: readers fall back to the block rows.
    (
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            started REAL NOT NULL,      -- unix seconds the writer opened the log
            seen REAL NOT NULL          -- unix seconds of its last heartbeat, or of its stop
        )""",
        "CREATE INDEX runs_seen ON runs (seen)",
    ),
    # 4 -> 5: what the operator did from the page or the command line (allow a name, undo it),
    # who and when. Kept forever (retention only prunes ``blocks``); never counted as a block.
    (
        """CREATE TABLE operator_actions (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,           -- unix seconds, UTC
            who TEXT NOT NULL,          -- "marie" (page login), "token" (page), "cli:root"
            action TEXT NOT NULL,       -- "allow", "remove"
            name TEXT NOT NULL,         -- the name allowed or removed (its subtree with it)
            detail TEXT NOT NULL        -- why: the block it answered ("feed:urlhaus ..."), or ""
        )""",
        "CREATE INDEX operator_actions_ts ON operator_actions (ts)",
    ),
    # 5 -> 6: the weather leaves out NON_THREAT_CATEGORIES; their totals per day read this index
    # alone (30 day totals of a 1,000,000-row log: 2,492 -> 8 ms), and the threats are all
    # blocks (blocks_ts_count) minus these.
    ("CREATE INDEX blocks_category_ts_count ON blocks (category, ts, count)",),
    # 6 -> 7: blocks_ts is a prefix of blocks_ts_count, which serves every query it served
    # (retention, recent rows); one b-tree less to update per row: a burst of distinct blocked
    # names cost the writer 6.5 us of CPU per row with it, 5.1 without.
    ("DROP INDEX IF EXISTS blocks_ts",),
)


class BlockLogError(ParafoudreError):
    """The block log database cannot be opened."""


class SchemaError(BlockLogError):
    """The block log database has a schema version this code does not support."""

    def __init__(self, message: str, found: int | None = None) -> None:
        super().__init__(message)
        self.found = found  # the file's schema version

    @property
    def older(self) -> bool:
        """The file is older than this code: the writer migrates it at start, readers wait."""
        return self.found is not None and self.found < SCHEMA_VERSION


def open_db(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the block log at ``path``; writers create and migrate it, readers never write.

    The connection is in autocommit mode (transactions are explicit) and may be handed to another
    thread, but must be used by one thread at a time.

    Raises SchemaError if the file's schema is newer than this code (or, read-only, older), and
    BlockLogError if the file cannot be opened at all.
    """
    try:
        return _open_readonly(path) if readonly else _open_writer(path)
    except sqlite3.Error as exc:
        raise BlockLogError(f"cannot open block log {path}: {exc}") from exc
    except OSError as exc:
        raise BlockLogError(f"cannot create block log directory for {path}: {exc}") from exc


def _open_writer(path: Path) -> sqlite3.Connection:
    """Open, switch to WAL and migrate; again while another writer holds the file.

    Workers started together on a new file (a fresh install with ``--workers N``) race to
    switch it to WAL and migrate it. SQLite answers SQLITE_BUSY at once, without waiting out
    the busy timeout, to the connection whose lock upgrade could deadlock: one worker failed
    to start with "database is locked" and the supervisor stopped them all. So the whole
    opening is tried again, within the same bound as any lock wait.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return _try_open_writer(path)
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", None)
            busy = code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc)
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(_RETRY_PAUSE)


def _try_open_writer(path: Path) -> sqlite3.Connection:
    # check_same_thread=False: start() opens on the caller's thread, the worker thread then owns it.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # Check before anything writes to the file: a downgrade must leave newer data untouched.
        _refuse_newer(path, _user_version(conn))
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            log.warning("block log %s: journal mode is %r, not WAL; readers may block", path, mode)
        # NORMAL under WAL: a power cut may lose the last commits, never corrupts the file.
        conn.execute("PRAGMA synchronous = NORMAL")
        _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    # IMMEDIATE takes the write lock first, so two writers cannot both migrate the same version.
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = _user_version(conn)
        _refuse_newer(path, found)
        for version in range(found, SCHEMA_VERSION):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
        if found != SCHEMA_VERSION:
            # PRAGMA takes no parameters; the value is our own integer constant.
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if found != SCHEMA_VERSION:
        log.info("block log %s: schema migrated from v%d to v%d", path, found, SCHEMA_VERSION)


def _open_readonly(path: Path) -> sqlite3.Connection:
    # mode=ro: SQLite itself refuses writes and will not create a missing file.
    uri = f"{path.resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        found = _user_version(conn)
        _refuse_newer(path, found)
        if found < SCHEMA_VERSION:
            raise SchemaError(
                f"block log {path} has schema v{found}, this code reads v{SCHEMA_VERSION}: "
                "start the resolver once so it migrates the file",
                found,
            )
    except BaseException:
        conn.close()
        raise
    return conn


def _user_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def _refuse_newer(path: Path, found: int) -> None:
    if found > SCHEMA_VERSION:
        raise SchemaError(
            f"block log {path} has schema v{found}, newer than v{SCHEMA_VERSION} supported by "
            "this version of Parafoudre: upgrade Parafoudre or give the block log a new file",
            found,
        )
