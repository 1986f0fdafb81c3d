"""Several workers opening a new block log at the same moment (a fresh install started with
`--workers N`) all open it: none may fail with "database is locked"."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from resolver.blocklog.schema import SCHEMA_VERSION, open_db

WORKERS = 6
ROUNDS = 8


def _open(path: str, barrier: Any, errors: Any) -> None:
    barrier.wait(10)
    try:
        conn = open_db(Path(path))
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.close()
        errors.put("" if version == SCHEMA_VERSION else f"version {version}")
    except Exception as exc:  # reported to the test, which fails with it
        errors.put(repr(exc))


def test_workers_opening_a_new_block_log_at_once_all_open_it(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for r in range(ROUNDS):  # bounded: the race is not hit every time
        path = tmp_path / f"r{r}" / "blocks.sqlite"
        barrier = ctx.Barrier(WORKERS)
        errors: Any = ctx.Queue()
        procs = [
            ctx.Process(target=_open, args=(str(path), barrier, errors)) for _ in range(WORKERS)
        ]
        for p in procs:
            p.start()
        got = [errors.get(timeout=30) for _ in procs]
        for p in procs:
            p.join(30)
        assert got == [""] * WORKERS, (r, got)
