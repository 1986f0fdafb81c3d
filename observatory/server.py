"""``parafoudre observatory [migrate] -c FILE``: load the observatory's config, open its store
(creating or migrating its schema), then serve, or only migrate and say what was done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiohttp import web

from observatory.app import create_app
from observatory.config import ObservatoryServerConfig
from observatory.retention import prune_forever
from observatory.store import Store, open_store
from resolver.config.dashboard import parse_listen
from resolver.config.errors import ConfigError
from resolver.config.loader import load_file
from resolver.errors import ParafoudreError

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
# Timestamps in every line: the observatory may log to a file, not only to journald.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ObservatoryError(ParafoudreError):
    """The observatory cannot start."""


@dataclass(frozen=True, slots=True)
class RunningObservatory:
    runner: web.AppRunner
    store: Store
    port: int
    pruner: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        if self.pruner is not None:
            self.pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.pruner
        await self.runner.cleanup()
        await self.store.close()


def read_password(cfg: ObservatoryServerConfig) -> str | None:
    """The database password from ``database_password_file``, None when none is configured.

    Raises ObservatoryError if the file cannot be read or others may read it.
    """
    path = cfg.database_password_file
    if not path:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
        with os.fdopen(fd) as f:
            mode = os.fstat(f.fileno()).st_mode
            text = f.read(4096)
    except OSError as exc:
        raise ObservatoryError(
            f"cannot read database_password_file {path}: {exc.strerror or exc}"
            " (fix: the service's user must be able to read it, e.g. chmod 0640 and chgrp"
            " to its group)"
        ) from exc
    if mode & 0o007:
        raise ObservatoryError(
            f"database_password_file {path} is readable by every user (fix: chmod 0640 {path})"
        )
    password = text.strip()
    if not password:
        raise ObservatoryError(f"database_password_file {path} is empty")
    return password


async def open_database(cfg: ObservatoryServerConfig) -> Store:
    """The store, opened (schema created or migrated); ObservatoryError naming what failed."""
    store = open_store(cfg.database, pool_size=cfg.pool_size, password=read_password(cfg))
    try:
        await store.open()
    except (OSError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ObservatoryError(f"observatory cannot open its database: {exc}") from exc
    except RuntimeError as exc:  # a database newer than this code
        raise ObservatoryError(str(exc)) from exc
    return store


async def start_observatory(
    cfg: ObservatoryServerConfig, *, clock: Callable[[], float] = time.time
) -> RunningObservatory:
    """Open the store and serve on ``cfg.listen`` (port 0: any free port, see ``.port``).

    Raises ObservatoryError, naming the database or the address, if either cannot be used.
    """
    store = await open_database(cfg)
    ssl_ctx: ssl.SSLContext | None = None
    if cfg.tls_cert:
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    runner = web.AppRunner(create_app(cfg, store=store, clock=clock), access_log=None)
    await runner.setup()
    host, port = parse_listen(cfg.listen)
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_ctx)
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        await store.close()
        raise ObservatoryError(
            f"observatory cannot listen on {cfg.listen}: {exc.strerror or exc}"
            " (fix: choose a free address in listen)"
        ) from exc
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("observatory: %d boxes, serving on %s:%d", len(cfg.boxes), host, bound)
    pruner = asyncio.create_task(
        prune_forever(store, clock=clock, tz=cfg.timezone, months=cfg.retention_months)
    )
    return RunningObservatory(runner, store, int(bound), pruner)


async def _serve(cfg: ObservatoryServerConfig) -> int:
    try:
        running = await start_observatory(cfg)
    except ObservatoryError as exc:
        print(f"parafoudre: {exc}", file=sys.stderr)
        return EXIT_FAILED
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await running.stop()
    log.info("observatory: stopped")
    return EXIT_OK


async def _migrate(cfg: ObservatoryServerConfig) -> int:
    try:
        store = await open_database(cfg)
    except ObservatoryError as exc:
        print(f"parafoudre: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        found, now = store.found_version, store.schema_version
        events, batches = await store.event_count(), await store.batch_count()
    finally:
        await store.close()
    if found is None:
        what = f"created at schema v{now}"
    elif found == now:
        what = f"already at schema v{now}, nothing to do"
    else:
        what = f"migrated from schema v{found} to v{now}"
    print(f"observatory database: {what}; {events} blocked queries in {batches} batches kept")
    return EXIT_OK


def run_observatory(config_path: Path, *, action: str = "serve") -> int:
    """Serve the observatory described by ``config_path`` until SIGTERM, or with ``action``
    "migrate" only bring its database to the current schema; the exit code.
    """
    try:
        cfg = load_file(config_path, ObservatoryServerConfig)
    except ConfigError as exc:
        print(f"parafoudre: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    if action == "migrate":
        return asyncio.run(_migrate(cfg))
    return asyncio.run(_serve(cfg))
