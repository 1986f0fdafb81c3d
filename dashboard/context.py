"""The dashboard's typed application state (``web.AppKey``s) and its access to the block log."""

from __future__ import annotations

import asyncio
import ipaddress
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from aiohttp import web

from dashboard.auth import Sessions
from dashboard.tally import DayTally
from resolver.blocklog.schema import open_db
from resolver.config.dashboard import DashboardConfig
from resolver.config.groups import Network
from resolver.stats import FeedStatusRow as FeedStatusRow  # re-exported for the handlers
from resolver.stats import StatsSnapshot

T = TypeVar("T")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AllowedName(Protocol):
    """One name on the operator's allowlist (resolver/operator_allowlist.py AllowEntry)."""

    @property
    def name(self) -> str: ...
    @property
    def at(self) -> float: ...
    @property
    def who(self) -> str: ...
    @property
    def detail(self) -> str: ...


class Action(Protocol):
    """One change the operator made (the block log's ``operator_actions``)."""

    @property
    def ts(self) -> float: ...
    @property
    def who(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def name(self) -> str: ...


class Allowing(Protocol):
    """The operator's allowlist, handed over by the server (resolver/operator_allowlist.py):
    the page changes the file through it and never touches the resolver's memory. Blocking
    calls (file, SQLite, PSL): the handlers run them on the dashboard's executor."""

    def entries(self) -> Sequence[AllowedName]: ...

    def actions(self, limit: int = 20) -> Sequence[Action]: ...

    def domain_of(self, name: str) -> str | None: ...

    def allow(
        self, raw: str, *, who: str, scope: Literal["name", "domain"] = "name", detail: str = ""
    ) -> AllowedName: ...

    def remove(self, raw: str, *, who: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Context:
    """Everything the handlers need, set once by create_app()."""

    cfg: DashboardConfig
    db_path: Path
    stats: Callable[[], StatsSnapshot] | None
    feeds_status: Callable[[], Sequence[FeedStatusRow]] | None
    version: str
    clock: Callable[[], float]
    started_at: float  # when the app was built; uptime when the resolver gives no snapshot
    networks: tuple[IPNetwork, ...]
    # The operator's allowlist; None: the page cannot change anything (read-only).
    allowing: Allowing | None = None
    # A machine's name from its address (resolver/client_names.py); None: addresses only.
    client_names: Callable[[str], str | None] | None = None
    sessions: Sessions = field(default_factory=lambda: Sessions(8 * 3600.0))
    # The config's groups, (name, networks) (resolver.config.groups.group_networks): the page
    # counts blocks per group; empty: one policy, nothing shown per group.
    groups: Sequence[tuple[str, Sequence[Network]]] = ()
    # Today's figures per machine, category and hour, kept up to date between two reads (the
    # page's refreshes, /metrics scrapes) from the rows written since.
    tally: DayTally = field(default_factory=DayTally)

    def uptime(self) -> float:
        started = self.stats().started_at if self.stats is not None else self.started_at
        return max(0.0, self.clock() - started)


CONTEXT = web.AppKey("context", Context)
# Block log reads run here, not on asyncio's default executor: at most two at once whatever
# the number of open pages, so the dashboard cannot starve the resolver's own thread work.
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
DB_WORKERS = 2


async def read_db(app: web.Application, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` with a fresh read-only connection on the dashboard's worker thread.

    A connection per call is cheap (no schema is parsed until used) and never shared between
    threads. Raises BlockLogError when the file cannot be opened.
    """
    path = app[CONTEXT].db_path

    def run() -> T:
        conn = open_db(path, readonly=True)
        try:
            return fn(conn)
        finally:
            conn.close()

    return await asyncio.get_running_loop().run_in_executor(app[EXECUTOR], run)


def remote_allowed(remote: str | None, networks: Sequence[IPNetwork]) -> bool:
    """Whether a peer address (``request.remote``) is inside one of ``networks``.

    IPv4-mapped IPv6 peers (a dual-stack socket) count as their IPv4 address; a scope id
    ("fe80::1%eth0") is ignored; anything that is not an address is refused.
    """
    if not remote:
        return False
    try:
        addr = ipaddress.ip_address(remote.partition("%")[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in net for net in networks)


def parse_networks(values: Sequence[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


async def add_domains(app: web.Application, items: list[dict[str, Any]]) -> None:
    """Each block row's registered domain (for its "allow the domain" button), off the loop."""
    allowing = app[CONTEXT].allowing
    if allowing is None or not items:
        return

    def run() -> list[str | None]:
        return [allowing.domain_of(str(item["qname"])) for item in items]

    loop = asyncio.get_running_loop()
    for item, domain in zip(items, await loop.run_in_executor(app[EXECUTOR], run), strict=True):
        item["domain"] = domain or ""
