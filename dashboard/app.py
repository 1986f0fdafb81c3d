"""The dashboard's aiohttp application: the weather page, its JSON API and /metrics.

``create_app`` wires everything from explicit arguments (no globals): typed state in
``web.AppKey``s, the block log reader's thread pool opened and closed by one ``cleanup_ctx``.
``parafoudre serve`` calls ``start_dashboard`` on its own loop; the page only reads.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from aiohttp import web

from dashboard import actions, api, metrics, views
from dashboard.auth import Sessions
from dashboard.context import (
    CONTEXT,
    DB_WORKERS,
    EXECUTOR,
    Allowing,
    Context,
    FeedStatusRow,
    parse_networks,
    remote_allowed,
)
from resolver.config.dashboard import DashboardConfig, parse_listen
from resolver.config.groups import Network
from resolver.errors import ParafoudreError
from resolver.stats import StatsSnapshot

__all__ = ["DashboardError", "FeedStatusRow", "create_app", "start_dashboard"]

log = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).parent / "static"

# Only our own files; no inline script or style anywhere on the page. The last three directives
# forbid framing (clickjacking), <base> tricks and form posts anywhere but to the page itself
# (its login and allow forms; dashboard/actions.py).
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: Final = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    # Never a referrer to another site; "same-origin" rather than "no-referrer" because under
    # the latter browsers send "Origin: null" even to the page itself, and the page's forms
    # are checked on their Origin (dashboard/auth.py same_origin).
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class DashboardError(ParafoudreError):
    """The dashboard cannot start (its listen address cannot be bound)."""


# The names the page answers to (see ``check_host``), built once by create_app.
HOSTS: Final = web.AppKey("hosts", frozenset[str])


def host_name(header: str) -> str:
    """The name or address of a Host header, without port, brackets or final dot, lower case."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def own_names(cfg: DashboardConfig) -> frozenset[str]:
    """Names the page may be reached by: its listen address, localhost, this machine's name
    (no DNS lookup: gethostname only) and ``dashboard.hosts``."""
    machine = socket.gethostname().lower()
    host, _ = parse_listen(cfg.listen)
    names = {host.lower(), "localhost", machine, machine.split(".", 1)[0], *cfg.hosts}
    return frozenset(names)


@web.middleware
async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
    """403 for a Host header naming something else than the box (DNS rebinding).

    A page from the Internet can make its own name resolve to the box's address; the browser
    then sends the page's name as Host. An address as Host is always fine: an attacker's page
    cannot have an address for its origin that is the box's. A request without Host (HTTP/1.0,
    scripts) is no browser's.
    """
    header = request.headers.get("Host")
    if header is not None:
        name = host_name(header)
        if name not in request.app[HOSTS] and not _is_address(name):
            raise web.HTTPForbidden(
                text=(
                    "403 : ce nom n'est pas celui du tableau de bord Parafoudre "
                    "(réglage dashboard.hosts).\n"
                    "403: this name is not the Parafoudre dashboard's (dashboard.hosts).\n"
                )
            )
    return await handler(request)


@web.middleware
async def allow_networks(request: web.Request, handler: Handler) -> web.StreamResponse:
    """403 for any peer outside cfg.allow, judged on the socket's address (request.remote)."""
    if not remote_allowed(request.remote, request.app[CONTEXT].networks):
        # Both languages: the page's language is not known before the peer is let in.
        raise web.HTTPForbidden(
            text=(
                "403 : cette adresse n'a pas accès au tableau de bord Parafoudre "
                "(réglage dashboard.allow).\n"
                "403: this address may not see the Parafoudre dashboard (dashboard.allow).\n"
            )
        )
    return await handler(request)


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 without the configured token; static files (icons, CSS, JS) hold no data. A browser
    logged in (with the token or an operator's password: /login checks them itself) has its
    session cookie instead."""
    token = request.app[CONTEXT].cfg.token
    free = request.path.startswith("/static/") or request.path == "/login"
    if token is not None and not free and actions.current_session(request) is None:
        auth = request.headers.get("Authorization", "")
        given = auth[7:] if auth[:7].lower() == "bearer " else request.query.get("token", "")
        # Constant time: the comparison must not tell how much of a guess was right.
        # surrogateescape: a header's bytes that are not UTF-8 come as surrogates, which a
        # plain encode() refused with a 500 and a traceback before anyone was authenticated.
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode()):
            raise web.HTTPUnauthorized(
                text=(
                    "401 : un jeton valide est nécessaire (Authorization: Bearer ou ?token=).\n"
                    "401: a valid token is needed (Authorization: Bearer or ?token=).\n"
                ),
                headers={"WWW-Authenticate": 'Bearer realm="parafoudre"'},
            )
    return await handler(request)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    # on_response_prepare sees every response: pages, API, static files, 403s and 404s.
    for name, value in SECURITY_HEADERS:
        response.headers[name] = value


@contextlib.asynccontextmanager
async def _executor_ctx(app: web.Application) -> AsyncIterator[None]:
    executor = ThreadPoolExecutor(max_workers=DB_WORKERS, thread_name_prefix="parafoudre-dash")
    app[EXECUTOR] = executor
    yield
    # A read in progress finishes on its own; queued ones are dropped with the app.
    executor.shutdown(wait=False, cancel_futures=True)


def create_app(
    cfg: DashboardConfig,
    *,
    db_path: Path,
    stats: Callable[[], StatsSnapshot] | None = None,
    feeds_status: Callable[[], Sequence[FeedStatusRow]] | None = None,
    version: str = "",
    clock: Callable[[], float] = time.time,
    allowing: Allowing | None = None,
    client_names: Callable[[str], str | None] | None = None,
    groups: Sequence[tuple[str, Sequence[Network]]] = (),
) -> web.Application:
    """The dashboard application; ``stats`` and ``feeds_status`` are called at request time;
    ``allowing`` (the operator's allowlist) lets logged-in operators allow names; ``groups``
    (the config's policy groups and their networks) shows blocks per group."""
    app = web.Application(middlewares=[check_host, allow_networks, require_token])
    app[HOSTS] = own_names(cfg)
    app[CONTEXT] = Context(
        cfg=cfg,
        db_path=db_path,
        stats=stats,
        feeds_status=feeds_status,
        version=version,
        clock=clock,
        started_at=clock(),
        networks=parse_networks(cfg.allow),
        allowing=allowing,
        client_names=client_names,
        sessions=Sessions(cfg.session_hours * 3600.0),
        groups=groups,
    )
    views.setup_templates(app)
    app.cleanup_ctx.append(_executor_ctx)
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/", views.page)
    app.router.add_routes(api.ROUTES)
    app.router.add_routes(actions.ROUTES)
    app.router.add_get("/metrics", metrics.metrics)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    return app


async def start_dashboard(
    cfg: DashboardConfig,
    *,
    db_path: Path,
    stats: Callable[[], StatsSnapshot] | None = None,
    feeds_status: Callable[[], Sequence[FeedStatusRow]] | None = None,
    version: str = "",
    clock: Callable[[], float] = time.time,
    allowing: Allowing | None = None,
    client_names: Callable[[str], str | None] | None = None,
    groups: Sequence[tuple[str, Sequence[Network]]] = (),
) -> web.AppRunner:
    """Serve the dashboard on ``cfg.listen`` on the running loop; ``await runner.cleanup()`` stops.

    Raises DashboardError, naming the address, if it cannot be bound.
    """
    app = create_app(
        cfg,
        db_path=db_path,
        stats=stats,
        feeds_status=feeds_status,
        version=version,
        clock=clock,
        allowing=allowing,
        client_names=client_names,
        groups=groups,
    )
    host, port = parse_listen(cfg.listen)
    # No access log: an open page polls the API every few seconds.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise DashboardError(
            f"dashboard cannot listen on {cfg.listen}: {exc.strerror or exc}"
            " (fix: choose a free address in dashboard.listen, or set dashboard.enabled: false)"
        ) from exc
    # Once, with the port actually bound (0 picks one) and IPv6 in brackets.
    bound_host, bound_port = runner.addresses[0][:2]
    where = f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}"
    log.info("weather page on http://%s/ (allowed: %s)", where, ", ".join(cfg.allow))
    return runner
