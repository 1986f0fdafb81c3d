"""``parafoudre observatory -c FILE``: load the observatory's config, open its store, serve."""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
from observatory.store import Store, open_store
from resolver.config.dashboard import parse_listen
from resolver.config.errors import ConfigError
from resolver.config.loader import load_file
from resolver.errors import ParafoudreError

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


class ObservatoryError(ParafoudreError):
    """The observatory cannot start."""


@dataclass(frozen=True, slots=True)
class RunningObservatory:
    runner: web.AppRunner
    store: Store
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.store.close()


async def start_observatory(
    cfg: ObservatoryServerConfig, *, clock: Callable[[], float] = time.time
) -> RunningObservatory:
    """Open the store and serve on ``cfg.listen`` (port 0: any free port, see ``.port``).

    Raises ObservatoryError, naming the database or the address, if either cannot be used.
    """
    store = open_store(cfg.database, pool_size=cfg.pool_size)
    try:
        await store.open()
    except (OSError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ObservatoryError(f"observatory cannot open its database: {exc}") from exc
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
    return RunningObservatory(runner, store, int(bound))


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


def run_observatory(config_path: Path) -> int:
    """Serve the observatory described by ``config_path`` until SIGTERM; the exit code."""
    try:
        cfg = load_file(config_path, ObservatoryServerConfig)
    except ConfigError as exc:
        print(f"parafoudre: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(_serve(cfg))
