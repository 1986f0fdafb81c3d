"""The JSON API: /api/summary, /api/blocks, /api/history, /api/feeds, /api/health.

Values that came from the network (names, clients, reasons) are returned as JSON strings, as
stored; never as HTML. Fields ending in ``_text`` or ``label`` are display text in the language
asked with ``?lang=`` (default: the configured one). The page renders the same dictionaries.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import zoneinfo
from collections.abc import Callable, Sequence
from typing import Any, Final

from aiohttp import web

from dashboard import i18n, queries
from dashboard.context import CONTEXT, Context, FeedStatusRow, add_domains, read_db
from dashboard.coverage import FULL
from dashboard.i18n import Lang
from dashboard.protection import Protection, ProtectionInput, protection
from dashboard.queries import ClientCount
from dashboard.summary import (
    HISTORY_MAX_DAYS,
    BlocksPage,
    DayWeather,
    GroupCount,
    HourCell,
    Summary,
    load_blocks,
    load_history,
    load_summary,
)
from dashboard.weather import Weather, local_date
from resolver.blocklog.schema import QUEUE_DROPPED, WRITE_FAILED, BlockLogError
from resolver.config.dashboard import DashboardConfig
from resolver.config.groups import DEFAULT_GROUP
from resolver.stats import StaleList

log = logging.getLogger(__name__)

JSON = dict[str, Any]

MAX_PAGE: Final = 1_000_000  # bounds OFFSET; a day never holds that many pages
MAX_FILTER: Final = 255  # longest category or client filter accepted (a name is at most 255)
_DAY_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


class BadRequest(web.HTTPBadRequest):
    """A query parameter is invalid; the body says which, as JSON."""

    def __init__(self, message: str) -> None:
        super().__init__(text=_dumps({"error": message}), content_type="application/json")


def _dumps(value: JSON) -> str:
    return json.dumps(value)


# --- parameters -----------------------------------------------------------------------------


def lang_of(request: web.Request) -> Lang:
    return i18n.pick_lang(request.query.get("lang"), request.app[CONTEXT].cfg.language)


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter, clamped to [low, high]; 400 if it is not a number."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise BadRequest(f"{name} must be a positive integer")
    return max(low, min(int(raw), high))


def day_param(request: web.Request, today: dt.date) -> dt.date:
    raw = request.query.get("day")
    if not raw:
        return today
    if not _DAY_RE.fullmatch(raw):
        raise BadRequest("day must be YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise BadRequest("day must be a real date, YYYY-MM-DD") from None


def text_param(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    if not raw:
        return None
    if len(raw) > MAX_FILTER:
        raise BadRequest(f"{name} is too long")
    return raw


# --- JSON shapes (the page renders the same) ------------------------------------------------


def local_time(ts: float, tz: str) -> str:
    return dt.datetime.fromtimestamp(ts, zoneinfo.ZoneInfo(tz)).strftime("%H:%M:%S")


def thresholds_json(cfg: DashboardConfig, lang: Lang) -> list[JSON]:
    """Each weather with the counts that give it, for the legend."""
    t = cfg.thresholds
    lows = [0, t.cloudy, t.rain, t.storm, t.tornado]
    result = []
    for i, weather in enumerate(Weather):
        low = lows[i]
        high = lows[i + 1] - 1 if i + 1 < len(lows) else None
        if weather is Weather.SUNNY:
            label = i18n.text(lang, "threshold.sunny")
        elif high is None:
            label = i18n.text(lang, "threshold.from", low=low)
        else:
            label = i18n.text(lang, "threshold.range", low=low, high=high)
        result.append(
            {
                "weather": weather.value,
                "weather_label": i18n.weather_label(lang, weather),
                "from": low,
                "to": high,
                "range_text": label,
            }
        )
    return result


def protection_json(p: Protection, lang: Lang) -> JSON:
    """The protection state: each check, the problems in words (most urgent first)."""
    problems = []
    for pr in p.problems:
        values: dict[str, object] = {}
        if pr.age is not None:
            values["age"] = i18n.duration(lang, pr.age)
        main = i18n.text(lang, f"problem.{pr.code}", **values)
        detail = ""
        if pr.error_class:
            diagnosis = i18n.netfail_text(lang, pr.error_class)
            detail = i18n.text(lang, "last_attempt", diagnosis=diagnosis)
        problems.append(
            {
                "code": pr.code,
                "error_class": pr.error_class,
                "text": f"{main} {detail}".strip(),  # commands between backquotes
                "main": main,
                "detail": detail,
            }
        )
    return {
        "protected": p.protected,
        "checks": [
            {
                "check": name,
                "state": state,
                "label": i18n.text(lang, f"check.{name}"),
                "state_text": i18n.text(lang, f"state.{state}"),
            }
            for name, state in p.checks.items()
        ],
        "problems": problems,
        "text": problems[0]["text"] if problems else i18n.text(lang, "protection.ok"),
        "headline": problems[0]["main"] if problems else i18n.text(lang, "protection.ok"),
        "detail": problems[0]["detail"] if problems else "",
    }


Names = Callable[[str], str | None]


def _no_names(address: str) -> str | None:
    return None


def client_label(address: str, name: str | None) -> str:
    """ "accueil-pc (192.168.1.23)": the machine's name with its address, or the address."""
    return f"{name} ({address})" if name else address


def summary_json(
    s: Summary,
    cfg: DashboardConfig,
    lang: Lang,
    now: float,
    prot: Protection | None = None,
    names: Names = _no_names,
) -> JSON:
    """Today's figures; with ``prot``, the protection state and the headline it makes;
    ``names`` gives a machine's name from its address (resolver/client_names.py)."""
    highlight = _highlight_json(s.highlight, lang, names) if s.highlight is not None else None
    dropped, failed = s.losses[QUEUE_DROPPED], s.losses[WRITE_FAILED]
    protected = prot is None or prot.protected
    sentence, bypass_text = _weather_sentence(s, lang, protected)
    prot_json = protection_json(prot, lang) if prot is not None else None
    return {
        "day": s.day.isoformat(),
        "timezone": cfg.timezone,
        "now": now,
        "updated_text": i18n.text(lang, "updated", time=local_time(now, cfg.timezone)),
        "since": s.start,
        "total": s.total,  # threats: what makes the weather
        "bypass": s.bypass,  # attempts to get around the filter, not in ``total``
        "bypass_text": bypass_text,
        "weather": s.weather.value,
        "weather_level": s.weather.level,
        "weather_label": i18n.weather_label(lang, s.weather),
        "sentence": sentence,
        **_headline_json(s, lang, protected, sentence, prot_json),
        "coverage": s.covered / s.elapsed if s.elapsed else 1.0,
        "hours": [_hour_json(h, cfg, lang) for h in s.hours],
        "running_since_text": _running_since_text(s, cfg, lang),
        "kinds": _kinds_json(s, lang),
        "top_names": [
            {"qname": n.qname, "count": n.count, "category": n.category}
            | {"label": i18n.category_label(lang, n.category)}
            for n in s.top_names
        ],
        "top_clients": [_client_json(c, lang, names) for c in s.top_clients],
        # Per policy group (config ``groups``); empty with one policy for everyone.
        "groups": [_group_json(g, lang) for g in s.groups],
        "highlight": highlight,
        "highlight_text": highlight["text"] if highlight else i18n.text(lang, "highlight_none"),
        "losses": {"queue_dropped": dropped, "write_failed": failed},
        "losses_text": (
            i18n.text(lang, "losses", dropped=dropped, failed=failed) if dropped or failed else ""
        ),
        "thresholds": thresholds_json(cfg, lang),
    }


def _weather_sentence(s: Summary, lang: Lang, protected: bool) -> tuple[str, str]:
    """(the day's sentence, the bypass attempts' sentence, also at its end or "")."""
    sentence = i18n.weather_sentence(lang, s.weather, s.total)
    if not protected and s.total == 0:
        sentence = i18n.text(lang, "calm_unprotected")  # no sun while nothing protects
    # Attempts to get around the filter are said beside the weather, never counted in it.
    bypass_text = i18n.bypass_sentence(lang, s.bypass) if s.bypass else ""
    if bypass_text:
        sentence = f"{sentence} {bypass_text}"
    return sentence, bypass_text


def _headline_json(
    s: Summary, lang: Lang, protected: bool, sentence: str, prot_json: JSON | None
) -> JSON:
    """What the page shows first: fog and the first problem while the box does not protect."""
    return {
        "protected": protected,
        "protection": prot_json,
        "headline": prot_json["headline"] if prot_json and not protected else sentence,
        "headline_detail": prot_json["detail"] if prot_json and not protected else "",
        "icon": s.weather.value if protected else "fog",
        "icon_label": i18n.weather_label(lang, s.weather)
        if protected
        else i18n.text(lang, "weather.fog"),
        # Beside the weather sentence: no sun either while nothing protects.
        "day_icon": "fog" if not protected and s.total == 0 else s.weather.value,
    }


def _running_since_text(s: Summary, cfg: DashboardConfig, lang: Lang) -> str:
    """ "running since 08:02" when the resolver started today and missed part of the day."""
    if s.running_since is None or s.covered >= FULL * s.elapsed:
        return ""
    started = local_time(s.running_since, cfg.timezone)[:5]  # 08:02, not 08:02:17
    return i18n.text(lang, "running_since", time=started)


def _highlight_json(h: ClientCount, lang: Lang, names: Names) -> JSON:
    """The machine the page names today, by name when one is known."""
    who = client_label(h.client, names(h.client))
    return {
        "client": h.client,
        "client_name": names(h.client) or "",
        "count": h.category_count,
        "category": h.category,
        "kind": h.kind,
        "text": i18n.highlight_sentence(lang, h.category_count, h.category, h.kind, who),
    }


def _client_json(c: ClientCount, lang: Lang, names: Names) -> JSON:
    return {
        "client": c.client,
        "client_name": names(c.client) or "",
        "client_text": client_label(c.client, names(c.client)),
        "count": c.count,
        "category": c.category,
        "label": i18n.category_label(lang, c.category),
    }


def _group_json(g: GroupCount, lang: Lang) -> JSON:
    label = i18n.text(lang, "group.default") if g.group == DEFAULT_GROUP else g.group
    return {
        "group": g.group,
        "label": label,
        "count": g.count,
        "bypass": g.bypass,
        "clients": g.clients,
    }


def _kinds_json(s: Summary, lang: Lang) -> list[JSON]:
    """Today's blocks by family (feeds, exfiltration, lists...), each with its categories."""
    return [
        {
            "kind": kind,
            "label": i18n.text(lang, f"kind.{kind}"),
            "total": s.kind_totals[kind],
            "categories": [
                {
                    "category": c.category,
                    "label": i18n.category_label(lang, c.category),
                    "count": c.count,
                }
                for c in s.by_category
                if c.kind == kind
            ],
        }
        for kind in s.kind_totals
    ]


def blocks_json(p: BlocksPage, cfg: DashboardConfig, lang: Lang, names: Names = _no_names) -> JSON:
    return {
        "day": p.day.isoformat(),
        "timezone": cfg.timezone,
        "total": p.total,
        "rows": p.rows,
        "page": p.page,
        "pages": p.pages,
        "page_size": p.page_size,
        "page_text": i18n.text(lang, "page", page=p.page, pages=p.pages, total=p.total),
        "items": [
            {
                "id": b.id,
                "ts": b.ts,
                "time": local_time(b.ts, cfg.timezone),
                "client": b.client,
                "client_name": names(b.client) or "",
                "client_text": client_label(b.client, names(b.client)),
                "qname": b.qname,
                "qtype": b.qtype,
                "qtype_name": i18n.qtype_name(b.qtype),
                "verdict": b.verdict,
                "reason": b.reason,
                "reason_text": i18n.reason_text(lang, b.reason),
                "kind": b.kind,
                "category": b.category,
                "category_label": i18n.category_label(lang, b.category),
                "count": b.count,
                # "×3" beside the name when the row stands for several identical queries.
                "count_text": i18n.text(lang, "times", count=b.count) if b.count > 1 else "",
                "count_title": (
                    i18n.text(lang, "times_title", count=b.count) if b.count > 1 else ""
                ),
            }
            for b in p.items
        ],
    }


def _hour_json(h: HourCell, cfg: DashboardConfig, lang: Lang) -> JSON:
    label = local_time(h.start, cfg.timezone)[:2]
    span = f"{label} h"
    if h.future:
        state, title = "future", span
    elif not h.data:
        state, title = "nodata", f"{span} : {i18n.text(lang, 'nodata_title')}"
    else:
        state, title = "data", f"{span} : {i18n.blocks_count(lang, h.count)}"
    return {
        "start": h.start,
        "hour": label,
        "state": state,
        "count": h.count if h.data else None,
        "title": title,
    }


def _day_icon(d: DayWeather, today: bool, protected: bool) -> str:
    if not d.data:
        return "nodata"
    if today and not protected and d.count == 0:
        return "fog"  # no block because nothing could be blocked: never a sun
    return d.weather.value


def _day_title(d: DayWeather, lang: Lang, icon: str) -> str:
    if icon == "nodata":
        return f"{d.day.isoformat()} : {i18n.text(lang, 'nodata_title')}"
    if icon == "fog":
        return f"{d.day.isoformat()} : {i18n.text(lang, 'fog_title')}"
    title = f"{d.day.isoformat()} : {i18n.weather_label(lang, d.weather)}, {d.count}"
    if d.bypass:
        title += " · " + i18n.bypass_sentence(lang, d.bypass).rstrip(".")
    if d.span and d.covered < FULL * d.span:
        covered, span = i18n.duration(lang, d.covered), i18n.duration(lang, d.span)
        title += " (" + i18n.text(lang, "coverage", covered=covered, span=span) + ")"
    return title


def history_json(days: Sequence[DayWeather], lang: Lang, protected: bool = True) -> JSON:
    """Per day: its weather, or "nodata" when the box was not running (never a sun)."""
    items = []
    for i, d in enumerate(days):
        icon = _day_icon(d, i == len(days) - 1, protected)
        items.append(
            {
                "day": d.day.isoformat(),
                "data": d.data,
                "count": d.count if d.data else None,  # threats: what makes the weather
                "bypass": d.bypass if d.data else None,
                "weather": d.weather.value if d.data else "nodata",
                "icon": icon,
                "weather_label": i18n.text(lang, f"weather.{icon}"),
                "coverage": d.covered / d.span if d.span else 0.0,
                "title": _day_title(d, lang, icon),
                "label": i18n.short_date(lang, d.day),
                "day_of_month": str(d.day.day),
            }
        )
    return {"days": items}


def feeds_json(
    rows: Sequence[FeedStatusRow],
    cfg: DashboardConfig,
    lang: Lang,
    now: float,
    stale: Sequence[StaleList] = (),
) -> JSON:
    feeds = []
    for r in rows:
        age = None if r.last_success is None else max(0.0, now - r.last_success)
        if r.last_error:
            # The class in the page's language; the raw error (English) in the tooltip.
            status = "error"
            status_text = i18n.text(
                lang, "feed.error", error=i18n.netfail_text(lang, r.error_class or "other")
            )
        elif age is None:
            status, status_text = "never", i18n.text(lang, "feed.never")
        elif age > cfg.feed_stale_hours * 3600:
            status, status_text = "stale", i18n.text(lang, "feed.stale")
        else:
            status, status_text = "ok", i18n.text(lang, "feed.ok")
        feeds.append(
            {
                "name": r.name,
                "category": r.category,
                "label": i18n.category_label(lang, r.category),
                "entries": r.entries,
                "last_success": r.last_success,
                "age_seconds": age,
                "updated_text": (
                    "—"
                    if age is None
                    else i18n.text(lang, "ago", duration=i18n.duration(lang, age))
                ),
                "last_error": r.last_error,
                "error_class": r.error_class,
                "status": status,
                "status_text": status_text,
            }
        )
    feeds.extend(stale_list_row(s, lang, now) for s in stale)
    return {"feeds": feeds}


def stale_lists(ctx: Context) -> Sequence[StaleList]:
    """The operator's list files the resolver cannot read (it keeps their last good copy)."""
    return ctx.stats().stale_lists if ctx.stats is not None else ()


def stale_list_row(s: StaleList, lang: Lang, now: float) -> JSON:
    """One such file as a row of the feeds table: stale, the reason in the tooltip."""
    age = max(0.0, now - s.loaded_at) if s.loaded_at else None
    return {
        "name": s.name,
        "category": "",
        "label": i18n.text(lang, f"list.{s.kind}"),
        "entries": s.entries,
        "last_success": s.loaded_at or None,
        "age_seconds": age,
        "updated_text": (
            "—" if age is None else i18n.text(lang, "ago", duration=i18n.duration(lang, age))
        ),
        "last_error": f"{s.path}: {s.error}",
        "error_class": "",
        "status": "stale",
        "status_text": i18n.text(lang, "list.stale"),
    }


def health_json(
    ctx: Context, lang: Lang, db_readable: bool, prot: Protection | None = None
) -> JSON:
    uptime = ctx.uptime()
    return {
        "ok": db_readable,
        "protected": None if prot is None else prot.protected,
        "version": ctx.version,
        "uptime_seconds": uptime,
        "db_readable": db_readable,
        "footer_text": i18n.text(
            lang, "version", version=ctx.version, uptime=i18n.duration(lang, uptime)
        ),
    }


# --- handlers -------------------------------------------------------------------------------


def _json(value: JSON, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, headers={"Cache-Control": "no-store"})


def _unavailable(exc: BlockLogError) -> web.Response:
    # Logged at debug: an open page polls every few seconds while the resolver is not started.
    log.debug("dashboard: block log unreadable: %s", exc)
    return _json({"error": "block log not readable"}, status=503)


def names_of(ctx: Context) -> Names:
    return ctx.client_names if ctx.client_names is not None else _no_names


def feed_rows(ctx: Context) -> Sequence[FeedStatusRow]:
    return ctx.feeds_status() if ctx.feeds_status is not None else ()


def protection_now(
    ctx: Context, now: float, *, readable: bool, last_heartbeat: float | None
) -> Protection:
    """The protection state from the resolver's counters (read here, on the loop), the feeds'
    state and what the block log said."""
    return protection(
        ProtectionInput(
            now=now,
            snapshot=ctx.stats() if ctx.stats is not None else None,
            feeds=ctx.feeds_status() if ctx.feeds_status is not None else None,
            feed_stale_seconds=ctx.cfg.feed_stale_hours * 3600.0,
            blocklog_readable=readable,
            last_heartbeat=last_heartbeat,
        )
    )


async def summary(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    lang, now = lang_of(request), ctx.clock()
    try:
        s = await read_db(
            request.app, lambda conn: load_summary(conn, ctx.cfg, now, ctx.groups, ctx.tally)
        )
    except BlockLogError as exc:
        return _unavailable(exc)
    prot = protection_now(ctx, now, readable=True, last_heartbeat=s.last_heartbeat)
    return _json(summary_json(s, ctx.cfg, lang, now, prot, names_of(ctx)))


async def blocks(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    cfg, lang = ctx.cfg, lang_of(request)
    day = day_param(request, local_date(ctx.clock(), cfg.timezone))
    category, client = text_param(request, "category"), text_param(request, "client")
    page = int_param(request, "page", 1, 1, MAX_PAGE)
    size = int_param(request, "page_size", cfg.page_size, 1, cfg.max_page_size)
    try:
        p = await read_db(
            request.app,
            lambda conn: load_blocks(
                conn, cfg, day, category=category, client=client, page=page, page_size=size
            ),
        )
    except BlockLogError as exc:
        return _unavailable(exc)
    body = blocks_json(p, cfg, lang, names_of(ctx))
    if ctx.allowing is not None:  # the "allow the domain" buttons of a logged-in page
        await add_domains(request.app, body["items"])
    return _json(body)


async def history(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    lang, now = lang_of(request), ctx.clock()
    days = int_param(request, "days", 30, 1, HISTORY_MAX_DAYS)
    try:
        result, beat = await read_db(
            request.app,
            lambda conn: (load_history(conn, ctx.cfg, now, days), queries.last_heartbeat(conn)),
        )
    except BlockLogError as exc:
        return _unavailable(exc)
    prot = protection_now(ctx, now, readable=True, last_heartbeat=beat)
    return _json(history_json(result, lang, prot.protected))


async def feeds(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    lang, now = lang_of(request), ctx.clock()
    return _json(feeds_json(feed_rows(ctx), ctx.cfg, lang, now, stale_lists(ctx)))


async def health(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    beat = None
    try:
        beat = await read_db(request.app, queries.last_heartbeat)
        readable = True
    except BlockLogError:
        readable = False
    except Exception:
        # Opened but unusable (corrupt file): still an answer, not a 500.
        log.debug("dashboard: block log query failed", exc_info=True)
        readable = False
    prot = protection_now(ctx, ctx.clock(), readable=readable, last_heartbeat=beat)
    body = health_json(ctx, lang_of(request), readable, prot)
    return _json(body, status=200 if readable else 503)


ROUTES: Final = (
    web.get("/api/summary", summary),
    web.get("/api/blocks", blocks),
    web.get("/api/history", history),
    web.get("/api/feeds", feeds),
    web.get("/api/health", health),
)
