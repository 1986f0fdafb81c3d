"""The weather page, rendered on the server by Jinja2 from the same dictionaries the JSON API
returns (``templates/page.html``).

Autoescape is on, so every value is HTML-escaped; the ``shown`` filter first makes control and
invisible characters visible and bounds the length. The page has no inline script or style
(the CSP forbids both); ``static/app.js`` refreshes it from the API.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import aiohttp_jinja2
import jinja2
import markupsafe
from aiohttp import web

from dashboard import actions, api, i18n, queries
from dashboard.context import CONTEXT, Context, add_domains, read_db
from dashboard.i18n import Lang
from dashboard.summary import load_blocks, load_history, load_summary
from dashboard.weather import local_date
from resolver.blocklog.schema import BlockLogError

JSON = dict[str, Any]

TEMPLATES_DIR: Final = Path(__file__).parent / "templates"
NAME_DISPLAY: Final = 80  # characters of a query name shown; the full name is in the tooltip
TEXT_DISPLAY: Final = 60  # clients, reasons, categories, feed errors

# C0/C1 controls, zero-width and bidirectional marks (which can reverse how a name reads), the
# BOM, and lone surrogates (which UTF-8 cannot encode).
_HIDDEN: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def display(value: object, limit: int = TEXT_DISPLAY) -> str:
    """``value`` as plain text safe to show: hidden characters escaped, at most ``limit`` long."""
    text = _HIDDEN.sub(_visible, str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def h(value: object, limit: int = TEXT_DISPLAY) -> str:
    """``value`` for HTML text or a quoted attribute: what ``{{ value | shown }}`` gives."""
    return str(markupsafe.escape(display(value, limit)))


def setup_templates(app: web.Application) -> None:
    """Jinja2 for the page: autoescape on, undefined names are errors, ``shown`` filter."""
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        filters={"shown": display},
        default_helpers=False,
    )


def _href(query: Mapping[str, str], **changes: str | int | None) -> str:
    """A link to this page keeping ``lang`` and ``token``, with ``changes`` applied."""
    params: dict[str, str] = {k: query[k] for k in ("lang", "token") if k in query}
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urllib.parse.urlencode(params) if params else "?"


def page_context(
    *,
    lang: Lang,
    refresh: int,
    query: Mapping[str, str],
    summary: JSON | None,
    blocks: JSON | None,
    history: JSON | None,
    feeds: JSON,
    health: JSON,
    protection: JSON,
    today_text: str,
    updated_text: str,
    timezone: str,
) -> JSON:
    """What the template needs; ``summary``, ``blocks``, ``history`` are None if the log is
    unreadable (the headline then says so)."""

    def t(key: str, **values: object) -> str:
        return i18n.text(lang, key, **values)

    def cols(*keys: str) -> list[str]:
        return [t(f"col.{k}") for k in keys]

    other = "en" if lang == "fr" else "fr"
    since = (summary or {}).get("running_since_text") or t("since_midnight", tz=timezone)
    return {
        "t": t,
        "lang": lang,
        "other_lang": other,
        "refresh": refresh,
        **_pager(query, blocks, other),
        "protected": protection["protected"],
        **_hero(summary, protection, t("weather.fog")),
        "problems": protection["problems"],
        "checks": protection["checks"],
        **_weather(summary),
        "days": history["days"] if history else [],
        "hours": summary["hours"] if summary else [],
        "block_items": blocks["items"] if blocks else [],
        "block_cols": cols("time", "client", "name", "type", "category", "source"),
        "top_names": summary["top_names"] if summary else [],
        "top_clients": summary["top_clients"] if summary else [],
        "groups": summary["groups"] if summary else [],
        "group_cols": cols("group", "threats", "bypass", "machines"),
        "name_cols": cols("name", "category", "count"),
        "client_cols": cols("client", "category", "count"),
        "feeds": feeds["feeds"],
        "feed_cols": cols("feed", "category", "entries", "updated", "status"),
        "thresholds": summary["thresholds"] if summary else [],
        "today_text": today_text,
        "since_text": since,
        "footer_text": health["footer_text"],
        "updated_text": updated_text,
    }


def _pager(query: Mapping[str, str], blocks: JSON | None, other_lang: str) -> JSON:
    """The block list's page number, page count and the links that keep the other parameters."""
    page = blocks["page"] if blocks else 1
    return {
        "page": page,
        "pages": blocks["pages"] if blocks else 1,
        "page_text": blocks["page_text"] if blocks else "",
        "prev_href": _href(query, page=page - 1),
        "next_href": _href(query, page=page + 1),
        "lang_href": _href(query, lang=other_lang),
    }


def _hero(summary: JSON | None, protection: JSON, fog_label: str) -> JSON:
    """The top of the page: the day's weather, or with no readable log the protection state."""
    return {
        "hero_icon": summary["icon"] if summary else "fog",
        "hero_label": summary["icon_label"] if summary else fog_label,
        "headline": summary["headline"] if summary else protection["headline"],
        "headline_detail": summary["headline_detail"] if summary else protection["detail"],
    }


def _weather(summary: JSON | None) -> JSON:
    """Today's weather lines, empty when the log is unreadable."""
    return {
        "weather": summary["day_icon"] if summary else "fog",
        "weather_label": summary["weather_label"] if summary else "",
        "sentence": summary["sentence"] if summary else "",
        "highlight": summary["highlight_text"] if summary else "",
        "highlight_alert": bool(summary and summary["highlight"]),
        "losses": summary["losses_text"] if summary else "",
        "kinds": summary["kinds"] if summary else [],
    }


async def page(request: web.Request) -> web.Response:
    """GET /: the weather page (read-only)."""
    ctx = request.app[CONTEXT]
    cfg, lang, now = ctx.cfg, api.lang_of(request), ctx.clock()
    today = local_date(now, cfg.timezone)
    page_no = api.int_param(request, "page", 1, 1, api.MAX_PAGE)

    def load(conn: Any) -> tuple[Any, Any, Any, float | None]:
        return (
            load_summary(conn, cfg, now, ctx.groups, ctx.tally),
            load_blocks(conn, cfg, today, page=page_no),
            load_history(conn, cfg, now, 30),
            queries.last_heartbeat(conn),
        )

    summary: JSON | None = None
    blocks: JSON | None = None
    history: JSON | None = None
    try:
        s, b, days, beat = await read_db(request.app, load)
        readable = True
    except BlockLogError:
        readable, beat = False, None
    prot = api.protection_now(ctx, now, readable=readable, last_heartbeat=beat)
    if readable:
        summary = api.summary_json(s, cfg, lang, now, prot, api.names_of(ctx))
        blocks = api.blocks_json(b, cfg, lang, api.names_of(ctx))
        history = api.history_json(days, lang, prot.protected)
    context = page_context(
        lang=lang,
        refresh=cfg.refresh,
        query=request.query,
        summary=summary,
        blocks=blocks,
        history=history,
        feeds=api.feeds_json(api.feed_rows(ctx), cfg, lang, now, api.stale_lists(ctx)),
        health=api.health_json(ctx, lang, readable, prot),
        protection=api.protection_json(prot, lang),
        today_text=i18n.long_date(lang, today),
        updated_text=i18n.text(lang, "updated", time=api.local_time(now, cfg.timezone)),
        timezone=cfg.timezone,
    )
    context.update(await operator_context(request, ctx, lang, context["block_items"]))
    response = aiohttp_jinja2.render_template("page.html", request, context)
    response.headers["Cache-Control"] = "no-store"
    return response


NOTICES: Final = ("allowed", "removed", "refused", "not_found")


async def operator_context(
    request: web.Request, ctx: Context, lang: Lang, block_items: list[JSON]
) -> JSON:
    """The page's operator part: who is logged in, the operator's allowlist, the last changes."""
    allowing = ctx.allowing
    session = actions.current_session(request)
    out: JSON = {
        "operator": {"who": session.who, "csrf": session.csrf} if session else None,
        "can_login": actions.can_login(ctx),
        "allowing": allowing is not None,
        "allowed": [],
        "actions": [],
        "notice": "",
    }
    if allowing is None:
        return out
    out.update(await actions.read_operator(request.app, lang))
    notice, name = request.query.get("notice", ""), request.query.get("name", "")
    if notice in NOTICES and name:
        out["notice"] = i18n.text(lang, f"notice.{notice}", name=display(name, 255))
    if session is not None:
        await add_domains(request.app, block_items)
    return out
