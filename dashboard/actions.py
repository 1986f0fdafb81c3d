"""What the page can change: log in and out, allow a blocked name or its domain, undo it.

Every POST here must come from the page's own origin (dashboard/auth.py ``same_origin``); the
changes also need a session and its CSRF token. A change answers 303 back to the page, whose
operator section then shows the new state and a line saying what was done (no script needed).
The change itself is the resolver's (``Context.allowing``): a file every worker watches.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
import urllib.parse
import zoneinfo
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal, TypeVar

import aiohttp_jinja2
from aiohttp import web

from dashboard import i18n
from dashboard.api import lang_of
from dashboard.auth import COOKIE, Session, csrf_ok, same_origin, verify_password
from dashboard.context import CONTEXT, EXECUTOR, Action, AllowedName, Allowing, Context
from dashboard.i18n import Lang
from resolver.config.dashboard import DashboardConfig
from resolver.errors import ParafoudreError

log = logging.getLogger(__name__)

T = TypeVar("T")
JSON = dict[str, Any]
MAX_FIELD: Final = 1024  # characters kept of any form field
# Checked when no operator has the login given, so a wrong login costs what a wrong password
# does and the timing does not tell which logins exist.
_DUMMY_HASH: Final = (
    "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)

_FORBIDDEN: Final = (
    "403 : cette action doit venir de la page du tableau de bord elle-même "
    "(rechargez la page et recommencez).\n"
    "403: this action must come from the dashboard page itself (reload the page and retry).\n"
)
_LOGIN_FIRST: Final = (
    "403 : connectez-vous d'abord (lien « Se connecter » en bas de la page).\n"
    "403: log in first (the 'Log in' link at the bottom of the page).\n"
)


def current_session(request: web.Request) -> Session | None:
    ctx = request.app[CONTEXT]
    return ctx.sessions.get(request.cookies.get(COOKIE), ctx.clock())


def can_login(ctx: Context) -> bool:
    """Whether anyone can log in at all: an allowlist to change, and a password or a token."""
    return ctx.allowing is not None and bool(ctx.cfg.operators or ctx.cfg.token)


async def _blocking(request: web.Request, fn: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(request.app[EXECUTOR], fn)


def _field(form: object, name: str) -> str:
    assert hasattr(form, "get")
    value = form.get(name, "")
    return value[:MAX_FIELD] if isinstance(value, str) else ""


def _back(lang: str, **params: str) -> web.HTTPSeeOther:
    query = urllib.parse.urlencode({"lang": lang, **params})
    return web.HTTPSeeOther(f"/?{query}#operator")


def _check_origin(request: web.Request) -> None:
    if not same_origin(request.headers, request.scheme, request.host):
        raise web.HTTPForbidden(text=_FORBIDDEN)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def check_login(cfg: DashboardConfig, user: str, password: str) -> str | None:
    """The login that ``user``/``password`` opens, or None. Slow (scrypt): run off the loop."""
    token = cfg.token
    if token is not None and user in ("", "token") and _same(password, token):
        return "token"
    found = next((op for op in cfg.operators if op.name == user), None)
    ok = verify_password(password, found.password_hash if found else _DUMMY_HASH)
    return found.name if found is not None and ok else None


async def login_page(request: web.Request) -> web.Response:
    """GET /login: the login form (or why there is none)."""
    return _render_login(request, error="")


def _render_login(request: web.Request, error: str, status: int = 200) -> web.Response:
    ctx = request.app[CONTEXT]
    lang = lang_of(request)

    def t(key: str, **values: object) -> str:
        return i18n.text(lang, key, **values)

    context = {
        "t": t,
        "lang": lang,
        "can_login": can_login(ctx),
        "token_only": not ctx.cfg.operators,
        "error": error,
    }
    response = aiohttp_jinja2.render_template("login.html", request, context, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


async def login(request: web.Request) -> web.StreamResponse:
    """POST /login: open a session for an operator's password or the dashboard token."""
    _check_origin(request)
    ctx = request.app[CONTEXT]
    lang = lang_of(request)
    if not can_login(ctx):
        raise web.HTTPNotFound()
    form = await request.post()
    user, password = _field(form, "user").strip(), _field(form, "password")
    remote, now = request.remote or "", ctx.clock()
    if ctx.sessions.locked(remote, now):
        return _render_login(request, i18n.text(lang, "login.wait"), status=429)
    who = await _blocking(request, lambda: check_login(ctx.cfg, user, password))
    if who is None:
        ctx.sessions.failed(remote, now)
        log.warning("dashboard: failed login from %s", remote)
        return _render_login(request, i18n.text(lang, "login.wrong"), status=403)
    ctx.sessions.succeeded(remote)
    session = ctx.sessions.open(who, now)
    log.info("dashboard: %s logged in from %s", who, remote)
    response = web.HTTPSeeOther(f"/?{urllib.parse.urlencode({'lang': lang})}")
    response.set_cookie(
        COOKIE,
        session.id,
        max_age=int(ctx.sessions.lifetime),
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
    )
    raise response


def _session_for_change(request: web.Request, form: object) -> tuple[Session, Allowing]:
    """The session of a change request with its CSRF token checked; 403 otherwise."""
    ctx = request.app[CONTEXT]
    session = current_session(request)
    if session is None or ctx.allowing is None:
        raise web.HTTPForbidden(text=_LOGIN_FIRST)
    if not csrf_ok(session, _field(form, "csrf")):
        raise web.HTTPForbidden(text=_FORBIDDEN)
    return session, ctx.allowing


async def logout(request: web.Request) -> web.StreamResponse:
    """POST /logout."""
    _check_origin(request)
    form = await request.post()
    session = current_session(request)
    if session is not None and csrf_ok(session, _field(form, "csrf")):
        request.app[CONTEXT].sessions.close(session.id)
    response = _back(lang_of(request))
    response.del_cookie(COOKIE, path="/")
    raise response


async def allow(request: web.Request) -> web.StreamResponse:
    """POST /allow: name, scope ("name" or "domain"), detail (the block it answers)."""
    _check_origin(request)
    form = await request.post()
    session, allowing = _session_for_change(request, form)
    lang = lang_of(request)
    raw = _field(form, "name")
    scope: Literal["name", "domain"] = "domain" if _field(form, "scope") == "domain" else "name"
    detail = _field(form, "detail")
    try:
        entry = await _blocking(
            request, lambda: allowing.allow(raw, who=session.who, scope=scope, detail=detail)
        )
    except ParafoudreError as exc:
        log.warning("dashboard: %s could not allow %r: %s", session.who, raw[:255], exc)
        raise _back(lang, notice="refused", name=raw[:255]) from None
    log.warning("dashboard: %s allowed %s (%s)", session.who, entry.name, detail[:200])
    raise _back(lang, notice="allowed", name=entry.name)


async def unallow(request: web.Request) -> web.StreamResponse:
    """POST /unallow: take a name off the operator's allowlist (undo)."""
    _check_origin(request)
    form = await request.post()
    session, allowing = _session_for_change(request, form)
    lang = lang_of(request)
    raw = _field(form, "name")
    try:
        removed = await _blocking(request, lambda: allowing.remove(raw, who=session.who))
    except ParafoudreError as exc:
        log.warning("dashboard: %s could not remove %r: %s", session.who, raw[:255], exc)
        removed = False
    if removed:
        log.warning("dashboard: %s removed %s from the operator allowlist", session.who, raw)
    raise _back(lang, notice="removed" if removed else "not_found", name=raw[:255])


def when_text(ts: float, tz: str, lang: str) -> str:
    """'06/12/2026 16:40' / '2026-12-06 16:40': when the operator did something."""
    t = dt.datetime.fromtimestamp(ts, zoneinfo.ZoneInfo(tz))
    return t.strftime("%d/%m/%Y %H:%M") if lang == "fr" else t.strftime("%Y-%m-%d %H:%M")


def operator_json(
    entries: Sequence[AllowedName], acts: Sequence[Action], lang: Lang, tz: str
) -> JSON:
    """The operator's allowlist and the latest changes, as the page and /api/operator show."""

    def by(e: AllowedName) -> str:
        if not e.at:
            return e.who
        return i18n.text(lang, "operator.by", when=when_text(e.at, tz, lang), who=e.who)

    return {
        "allowed": [
            {"name": e.name, "at": e.at, "who": e.who, "detail": e.detail, "by": by(e)}
            for e in entries
        ],
        "actions": [
            {"ts": a.ts, "who": a.who, "action": a.action, "name": a.name}
            | {
                "text": i18n.text(
                    lang,
                    "action.remove" if a.action == "remove" else "action.allow",
                    when=when_text(a.ts, tz, lang),
                    who=a.who,
                    name=a.name,
                )
            }
            for a in acts
        ],
    }


async def read_operator(app: web.Application, lang: Lang, limit: int = 10) -> JSON:
    """operator_json of the allowlist now (file and block log: on the executor)."""
    ctx = app[CONTEXT]
    allowing = ctx.allowing
    if allowing is None:
        return {"allowed": [], "actions": []}
    entries, acts = await asyncio.get_running_loop().run_in_executor(
        app[EXECUTOR], lambda: (allowing.entries(), allowing.actions(limit))
    )
    return operator_json(entries, acts, lang, ctx.cfg.timezone)


async def operator_api(request: web.Request) -> web.Response:
    """GET /api/operator: the names the operator allowed and the latest changes (read-only)."""
    body = await read_operator(request.app, lang_of(request), limit=50)
    body["enabled"] = request.app[CONTEXT].allowing is not None
    return web.json_response(body, headers={"Cache-Control": "no-store"})


ROUTES: Final = (
    web.get("/api/operator", operator_api),
    web.get("/login", login_page),
    web.post("/login", login),
    web.post("/logout", logout),
    web.post("/allow", allow),
    web.post("/unallow", unallow),
)
