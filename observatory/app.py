"""The observatory's aiohttp application: /ingest for the boxes, the page, the JSON API, /metrics
and the yearly CSV export.

Same security as the box's weather page: every response carries the dashboard's CSP (no inline
script or style), everything shown is escaped, the page and API answer only the allowed networks
(and the token when one is set). /ingest answers the boxes' networks and authenticates each box
by its own token, whose SHA-256 is compared in constant time with every configured box's.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import hashlib
import hmac
import io
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp_jinja2
import jinja2
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dashboard.app import SECURITY_HEADERS
from dashboard.app import STATIC_DIR as ICONS_DIR
from dashboard.context import IPNetwork, parse_networks, remote_allowed
from dashboard.weather import Weather, local_date, weather_for
from observatory import page
from observatory.config import BoxConfig, ObservatoryServerConfig
from observatory.domains import campaign_domain
from observatory.i18n import Lang
from observatory.pagecache import PageCache
from observatory.retention import retention_start
from observatory.store import MAX_CLIENT, MAX_QNAME, MAX_TEXT, Campaign, Event, Store

log = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).parent / "static"
TEMPLATES_DIR: Final = Path(__file__).parent / "templates"
# A box sends 500 events of ~250 bytes by default; 5,000 events fit well within this.
MAX_BODY: Final = 4 * 1024 * 1024
# Events older than this (a box's block log keeps 400 days) or in the future beyond a day of
# clock skew are skipped and counted, not stored: they would create partitions for nothing.
MAX_AGE: Final = 400 * 86_400
MAX_SKEW: Final = 86_400
# Payload versions /ingest reads: 1 (one query per event), 2 (each event has a count).
PAYLOAD_VERSIONS: Final = (1, 2)
# Event times are kept to the minute: no figure needs more, and a machine's exact query times
# would say more about the person using it than the observatory needs (RGPD, minimisation).
TIME_STEP: Final = 60
# Refused tokens: at most one log line per this many seconds (a forged-token flood must not
# flood the log); the line says how many refusals were not logged.
REFUSAL_LOG_EVERY: Final = 60.0
# Most identical queries one event may stand for: a box coalesces one write window (1 s by
# default), so even a long flood stays far below; the bound keeps sums in PostgreSQL's bigint.
MAX_COUNT: Final = 1_000_000_000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class IngestCounters:
    """Since the process started; read by /metrics."""

    stored: int = 0
    duplicate: int = 0
    heartbeat: int = 0
    refused: int = 0  # bad token or INSEE code
    invalid: int = 0  # malformed batch
    events: int = 0  # blocked queries stored (an event counts for its count)
    skipped: int = 0  # blocked queries outside the accepted time range


@dataclass
class RefusalLog:
    """Log refused tokens, rate-limited: the first at once, then one line a minute at most."""

    every: float = REFUSAL_LOG_EVERY
    last: float = -math.inf
    hidden: int = 0

    def refused(self, remote: str | None, why: str, *, now: float | None = None) -> None:
        when = time.monotonic() if now is None else now
        if when - self.last < self.every:
            self.hidden += 1
            return
        more = f" ({self.hidden} more refused since the last line)" if self.hidden else ""
        log.warning("observatory: refused a batch from %s: %s%s", remote, why, more)
        self.last = when
        self.hidden = 0


@dataclass(frozen=True, slots=True)
class Context:
    cfg: ObservatoryServerConfig
    store: Store
    clock: Callable[[], float]
    networks: tuple[IPNetwork, ...]
    ingest_networks: tuple[IPNetwork, ...]
    boxes: tuple[BoxConfig, ...]
    counters: IngestCounters
    refusals: RefusalLog = dataclasses.field(default_factory=RefusalLog)
    # The rendered page by language and page number, and the figures behind it (shared by
    # both languages, every page of the table and /metrics): cfg.page_cache seconds each.
    pages: PageCache[str] = dataclasses.field(default_factory=lambda: PageCache(0))
    figures: PageCache[Overview] = dataclasses.field(default_factory=lambda: PageCache(0))


CONTEXT: Final = web.AppKey("observatory", Context)


# --- access -------------------------------------------------------------------------------------


def find_box(boxes: tuple[BoxConfig, ...], token: str) -> BoxConfig | None:
    """The box whose token hash matches; every hash is compared, in constant time each."""
    given = ("sha256:" + hashlib.sha256(token.encode()).hexdigest()).encode()
    found: BoxConfig | None = None
    for box in boxes:
        if hmac.compare_digest(given, box.token_sha256.encode()):
            found = box
    return found


def _bearer(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else ""


@web.middleware
async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    if request.path == "/ingest":
        if not remote_allowed(request.remote, ctx.ingest_networks):
            raise web.HTTPForbidden(text="403: this address may not report to the observatory\n")
        return await handler(request)
    if not remote_allowed(request.remote, ctx.networks):
        raise web.HTTPForbidden(text="403: this address may not see the observatory\n")
    token = ctx.cfg.token
    if token is not None and not request.path.startswith("/static/"):
        given = _bearer(request) or request.query.get("token", "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise web.HTTPUnauthorized(
                text="401: a valid token is needed (Authorization: Bearer or ?token=)\n",
                headers={"WWW-Authenticate": 'Bearer realm="parafoudre-observatory"'},
            )
    return await handler(request)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS:
        response.headers[name] = value


# --- ingest -------------------------------------------------------------------------------------


class BadBatch(ValueError):
    """A batch that does not follow the payload format."""


def _text(value: Any, limit: int, what: str) -> str:
    if not isinstance(value, str):
        raise BadBatch(f"{what} is not a string")
    return value[:limit]


def parse_events(
    raw: Any, *, now: float, tz: str, max_events: int, first_day: dt.date = dt.date.min
) -> tuple[list[Event], int]:
    """Validated events of a payload's "events" list and how many queries were skipped (out of
    range, or dated before ``first_day``, the retention's start). An event without "count" (a
    box before payload version 2) stands for one query. Times are cut to the minute.

    Raises BadBatch for anything malformed: the box built it, so it is a bug to report, not data
    to guess at.
    """
    if not isinstance(raw, list):
        raise BadBatch("events is not a list")
    if len(raw) > max_events:
        raise BadBatch(f"{len(raw)} events in one batch, more than {max_events}")
    events: list[Event] = []
    skipped = 0
    domains: dict[str, str] = {}  # a batch repeats names: one Public Suffix List lookup each
    for item in raw:
        if not isinstance(item, dict):
            raise BadBatch("an event is not an object")
        ts = item.get("ts")
        qtype = item.get("qtype", 0)
        count = item.get("count", 1)
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            raise BadBatch("an event's ts is not a number")
        if isinstance(qtype, bool) or not isinstance(qtype, int) or not 0 <= qtype <= 65535:
            raise BadBatch("an event's qtype is not a record type number")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
            raise BadBatch(f"an event's count is not a whole number from 1 to {MAX_COUNT}")
        event = Event(
            ts=float(ts),
            day=dt.date.min,
            category=_text(item.get("category"), MAX_TEXT, "category"),
            reason=_text(item.get("reason"), MAX_TEXT, "reason"),
            verdict=_text(item.get("verdict", "blocked"), MAX_TEXT, "verdict"),
            qname=_text(item.get("qname"), MAX_QNAME, "qname"),
            qtype=qtype,
            client=_text(item.get("client"), MAX_CLIENT, "client"),
            count=count,
        )
        if not now - MAX_AGE <= ts <= now + MAX_SKEW:
            skipped += count
            continue
        minute = float(math.floor(ts / TIME_STEP) * TIME_STEP)
        day = local_date(minute, tz)
        if day < first_day:
            skipped += count
            continue
        domain = domains.get(event.qname)
        if domain is None:
            domain = domains[event.qname] = campaign_domain(event.qname)
        events.append(dataclasses.replace(event, ts=minute, day=day, domain=domain))
    return events, skipped


def parse_batch_id(raw: Any) -> str | None:
    """The batch's id in canonical form; None for a heartbeat. Raises BadBatch."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise BadBatch("batch_id is not a string")
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise BadBatch("batch_id is not a UUID") from None


def _refuse_token(request: web.Request, ctx: Context) -> web.HTTPUnauthorized:
    ctx.counters.refused += 1
    why = "unknown box token" if _bearer(request) else "no box token"
    ctx.refusals.refused(request.remote, why)
    return web.HTTPUnauthorized(
        text="401: unknown box token\n",
        headers={"WWW-Authenticate": 'Bearer realm="parafoudre-observatory"'},
    )


async def ingest(request: web.Request) -> web.Response:
    """POST /ingest: one batch from one box."""
    ctx = request.app[CONTEXT]
    box = find_box(ctx.boxes, _bearer(request))
    if box is None:
        raise _refuse_token(request, ctx)
    try:
        payload = await request.json()
    except ValueError:
        ctx.counters.invalid += 1
        raise web.HTTPBadRequest(text="400: the body is not JSON\n") from None
    try:
        if not isinstance(payload, dict) or payload.get("version") not in PAYLOAD_VERSIONS:
            raise BadBatch("not a version 1 or 2 batch")
        if payload.get("insee") != box.insee:
            ctx.counters.refused += 1
            log.warning(
                "observatory: box %s (%s) sent INSEE code %r; refused",
                box.name,
                box.insee,
                payload.get("insee"),
            )
            raise web.HTTPForbidden(text="403: this token is not the box of that commune\n")
        batch_id = parse_batch_id(payload.get("batch_id"))
        now = ctx.clock()
        events, skipped = parse_events(
            payload.get("events"),
            now=now,
            tz=ctx.cfg.timezone,
            max_events=ctx.cfg.max_batch_events,
            first_day=retention_start(local_date(now, ctx.cfg.timezone), ctx.cfg.retention_months),
        )
        queries = sum(e.count for e in events)
        daily = payload.get("daily", [])
        declared = sum(d.get("count", 0) for d in daily if isinstance(d, dict))
        if declared != queries + skipped:
            raise BadBatch(f"daily counts add up to {declared}, not {queries + skipped}")
        if batch_id is None and events:
            raise BadBatch("events without a batch_id")
    except BadBatch as exc:
        ctx.counters.invalid += 1
        log.warning("observatory: box %s sent a malformed batch: %s", box.name, exc)
        raise web.HTTPBadRequest(text=f"400: {exc}\n") from None
    stored = await ctx.store.insert_batch(
        batch_id=batch_id, insee=box.insee, received=now, events=events
    )
    return web.json_response(_answer(ctx.counters, batch_id, stored, queries, skipped))


def _answer(
    counters: IngestCounters, batch_id: str | None, stored: bool, queries: int, skipped: int
) -> dict[str, Any]:
    """Count the batch's outcome; /ingest's JSON answer."""
    if batch_id is None:
        counters.heartbeat += 1
    elif stored:
        counters.stored += 1
        counters.events += queries
        counters.skipped += skipped
    else:
        counters.duplicate += 1
    return {
        "batch_id": batch_id,
        "stored": stored and batch_id is not None,
        "duplicate": not stored,
        "events": queries if stored else 0,
        "skipped": skipped if stored else 0,
    }


# --- what the page and the API show -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommuneRow:
    insee: str
    name: str
    count: int
    weather: Weather
    last_seen: float | None
    silent: bool
    latitude: float | None
    longitude: float | None
    month: int = 0  # blocked queries this month, today included
    year: int = 0
    days: tuple[int, ...] = ()  # blocked queries of each of the last STRIP_DAYS days, today last


# Days in each commune's strip on the page.
STRIP_DAYS: Final = 30


@dataclass(frozen=True, slots=True)
class Period:
    label: str  # "day", "month", "year"
    first: dt.date
    last: dt.date
    by_category: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_category.values())


@dataclass(frozen=True, slots=True)
class Overview:
    now: float
    today: dt.date
    communes: tuple[CommuneRow, ...]
    periods: tuple[Period, ...]
    campaigns: tuple[Campaign, ...]

    @property
    def silent(self) -> tuple[CommuneRow, ...]:
        return tuple(c for c in self.communes if c.silent)


def period_bounds(today: dt.date) -> tuple[tuple[str, dt.date, dt.date], ...]:
    return (
        ("day", today, today),
        ("month", today.replace(day=1), today),
        ("year", today.replace(month=1, day=1), today),
    )


async def communes(ctx: Context, now: float, today: dt.date) -> tuple[CommuneRow, ...]:
    """Every configured commune: today's weather, its month, year and last 30 days."""
    first = today - dt.timedelta(days=STRIP_DAYS - 1)
    counts, seen, month, year, strip = await asyncio.gather(
        ctx.store.counts_by_commune(today),
        ctx.store.last_seen(),
        ctx.store.commune_totals(today.replace(day=1), today),
        ctx.store.commune_totals(today.replace(month=1, day=1), today),
        ctx.store.commune_days(first, today),
    )
    silent_after = ctx.cfg.silent_hours * 3600
    days = [first + dt.timedelta(days=i) for i in range(STRIP_DAYS)]
    rows = []
    for box in ctx.boxes:
        count = counts.get(box.insee, 0)
        last = seen.get(box.insee)
        by_day = strip.get(box.insee, {})
        rows.append(
            CommuneRow(
                insee=box.insee,
                name=box.name,
                count=count,
                weather=weather_for(count, ctx.cfg.thresholds),
                last_seen=last,
                silent=last is None or now - last > silent_after,
                latitude=box.latitude,
                longitude=box.longitude,
                month=month.get(box.insee, 0),
                year=year.get(box.insee, 0),
                days=tuple(by_day.get(d, 0) for d in days),
            )
        )
    rows.sort(key=lambda r: (-r.count, r.name))
    return tuple(rows)


async def overview(ctx: Context) -> Overview:
    """Everything the page shows; the queries run at once (PostgreSQL: one connection each)."""
    now = ctx.clock()
    today = local_date(now, ctx.cfg.timezone)
    bounds = period_bounds(today)
    rows, campaigns, totals = await asyncio.gather(
        communes(ctx, now, today),
        ctx.store.campaigns(today, ctx.cfg.campaign_min_communes, ctx.cfg.campaign_limit),
        asyncio.gather(*(ctx.store.totals(first, last) for _label, first, last in bounds)),
    )
    return Overview(
        now=now,
        today=today,
        communes=rows,
        periods=tuple(
            Period(label, first, last, t)
            for (label, first, last), t in zip(bounds, totals, strict=True)
        ),
        campaigns=tuple(campaigns),
    )


def commune_json(c: CommuneRow) -> dict[str, Any]:
    return {
        "insee": c.insee,
        "name": c.name,
        "blocks_today": c.count,
        "weather": c.weather.value,
        "weather_level": c.weather.level,
        "last_seen": c.last_seen,
        "silent": c.silent,
        "latitude": c.latitude,
        "longitude": c.longitude,
        "blocks_month": c.month,
        "blocks_year": c.year,
        "last_30_days": list(c.days),
    }


def period_json(p: Period) -> dict[str, Any]:
    return {
        "first": p.first.isoformat(),
        "last": p.last.isoformat(),
        "total": p.total,
        "by_category": dict(sorted(p.by_category.items())),
    }


def campaign_json(c: Campaign, names: dict[str, str]) -> dict[str, Any]:
    """A campaign with its communes by name (``names``: INSEE code -> commune)."""
    return {
        "category": c.category,
        "domain": c.domain,
        "names": list(c.names),
        "name_count": c.name_count,
        "communes": [{"insee": i, "name": names.get(i, i)} for i in c.communes],
        "events": c.events,
    }


async def api_communes(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    now = ctx.clock()
    today = local_date(now, ctx.cfg.timezone)
    rows = await communes(ctx, now, today)
    return web.json_response(
        {"day": today.isoformat(), "communes": [commune_json(c) for c in rows]}
    )


async def api_totals(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    today = local_date(ctx.clock(), ctx.cfg.timezone)
    out: dict[str, Any] = {}
    for label, first, last in period_bounds(today):
        out[label] = period_json(Period(label, first, last, await ctx.store.totals(first, last)))
    return web.json_response(out)


def _day_param(request: web.Request, today: dt.date) -> dt.date:
    text = request.query.get("day", "")
    if not text:
        return today
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise web.HTTPBadRequest(text="400: day must be YYYY-MM-DD\n") from None


async def api_campaigns(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    day = _day_param(request, local_date(ctx.clock(), ctx.cfg.timezone))
    found = await ctx.store.campaigns(day, ctx.cfg.campaign_min_communes, ctx.cfg.campaign_limit)
    names = {b.insee: b.name for b in ctx.boxes}
    return web.json_response(
        {
            "day": day.isoformat(),
            "min_communes": ctx.cfg.campaign_min_communes,
            "campaigns": [campaign_json(c, names) for c in found],
        }
    )


async def api_silent(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    now = ctx.clock()
    rows = await communes(ctx, now, local_date(now, ctx.cfg.timezone))
    return web.json_response(
        {
            "silent_hours": ctx.cfg.silent_hours,
            "boxes": [
                {"insee": c.insee, "name": c.name, "last_seen": c.last_seen}
                for c in rows
                if c.silent
            ],
        }
    )


def _lang(request: web.Request) -> Lang:
    return "en" if request.path.startswith("/en/") else "fr"


def _page_number(request: web.Request, ctx: Context) -> int:
    """?page=N of the commune table, clamped to the pages there are (so cache keys stay few)."""
    text = request.query.get("page", "1")
    if not (text.isdigit() and len(text) <= 6):
        raise web.HTTPBadRequest(text="400: page must be a page number (?page=2)\n")
    return max(1, min(int(text), page.page_count(len(ctx.boxes), ctx.cfg.page_size)))


async def index(request: web.Request) -> web.Response:
    """GET / (French) and /en/ (English), ?page=N: the page, rendered by Jinja2 (autoescape on),
    kept ``page_cache`` seconds for the next viewers."""
    ctx = request.app[CONTEXT]
    lang = _lang(request)
    number = _page_number(request, ctx)

    async def render() -> str:
        data = await ctx.figures.get(None, lambda: overview(ctx))
        return aiohttp_jinja2.render_string(
            "page.html.j2", request, page.context(data, ctx.cfg, lang, number)
        )

    body = await ctx.pages.get((lang, number), render)
    return web.Response(
        text=body, content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-store"}
    )


async def map_svg(request: web.Request) -> web.Response:
    """GET /map.svg and /en/map.svg: the map alone, as a standalone SVG document."""
    ctx = request.app[CONTEXT]
    now = ctx.clock()
    rows = await communes(ctx, now, local_date(now, ctx.cfg.timezone))
    view = page.map_view(rows, ctx.cfg, _lang(request))
    body = aiohttp_jinja2.render_string("map.svg.j2", request, {"map": view, "standalone": True})
    return web.Response(
        text=body,
        content_type="image/svg+xml",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )


def _csv_cell(value: str) -> str:
    # A cell starting with = + - @ would be a formula in a spreadsheet (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


async def export_csv(request: web.Request) -> web.Response:
    """GET /export.csv?year=YYYY: blocks per day, commune and category for the yearly report."""
    ctx = request.app[CONTEXT]
    text = request.query.get("year", "")
    if not (text.isdigit() and len(text) == 4 and 2000 <= int(text) <= 2100):
        raise web.HTTPBadRequest(text="400: give ?year=YYYY\n")
    year = int(text)
    rows = await ctx.store.daily_rows(dt.date(year, 1, 1), dt.date(year, 12, 31))
    names = {b.insee: b.name for b in ctx.boxes}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["day", "insee", "commune", "category", "count"])
    for day, insee, category, count in rows:
        writer.writerow(
            [
                day.isoformat(),
                _csv_cell(insee),
                _csv_cell(names.get(insee, "")),
                _csv_cell(category),
                count,
            ]
        )
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="parafoudre-observatoire-{year}.csv"'
        },
    )


# --- /metrics -----------------------------------------------------------------------------------


def _commune_metrics(d: Overview) -> Iterator[Metric]:
    """Per commune: blocks today, weather, age of the last report."""
    blocks = GaugeMetricFamily(
        "parafoudre_observatory_commune_blocks_today",
        "Blocks reported by the commune's box since local midnight.",
        labels=["insee", "commune"],
    )
    weather = GaugeMetricFamily(
        "parafoudre_observatory_commune_weather",
        "Today's weather of the commune, 0 (sunny) to 4 (tornado).",
        labels=["insee", "commune"],
    )
    age = GaugeMetricFamily(
        "parafoudre_observatory_box_last_report_age_seconds",
        "Seconds since the commune's box last reported (batch or heartbeat).",
        labels=["insee", "commune"],
    )
    for c in d.communes:
        blocks.add_metric([c.insee, c.name], c.count)
        weather.add_metric([c.insee, c.name], c.weather.level)
        if c.last_seen is not None:
            age.add_metric([c.insee, c.name], max(0.0, d.now - c.last_seen))
    yield blocks
    yield weather
    yield age


class _Collector(Collector):
    def __init__(self, data: Overview, counters: IngestCounters) -> None:
        self._data = data
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        d = self._data
        yield from _commune_metrics(d)
        totals = GaugeMetricFamily(
            "parafoudre_observatory_blocks",
            "Blocks in the département for the current day, month and year, by category.",
            labels=["period", "category"],
        )
        for p in d.periods:
            for category, n in sorted(p.by_category.items()):
                totals.add_metric([p.label, category], n)
        yield totals
        yield GaugeMetricFamily(
            "parafoudre_observatory_silent_boxes",
            "Boxes that stopped reporting.",
            value=len(d.silent),
        )
        yield GaugeMetricFamily(
            "parafoudre_observatory_campaigns",
            "Names and feeds blocked in several communes today.",
            value=len(d.campaigns),
        )
        counters = self._counters
        batches = CounterMetricFamily(
            "parafoudre_observatory_ingest_batches",
            "Batches received since start, by result.",
            labels=["result"],
        )
        for result in ("stored", "duplicate", "heartbeat", "refused", "invalid"):
            batches.add_metric([result], getattr(counters, result))
        yield batches
        yield CounterMetricFamily(
            "parafoudre_observatory_ingest_events",
            "Blocked queries stored since start (an event counts for its count).",
            value=counters.events,
        )
        yield CounterMetricFamily(
            "parafoudre_observatory_ingest_skipped_events",
            "Blocked queries refused since start for a time too old or in the future.",
            value=counters.skipped,
        )


async def metrics(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    registry = CollectorRegistry(auto_describe=False)
    data = await ctx.figures.get(None, lambda: overview(ctx))
    registry.register(_Collector(data, ctx.counters))
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


# --- the application ----------------------------------------------------------------------------


def create_app(
    cfg: ObservatoryServerConfig, *, store: Store, clock: Callable[[], float] = time.time
) -> web.Application:
    """The observatory application on an opened ``store`` (the caller opens and closes it)."""
    app = web.Application(middlewares=[access], client_max_size=MAX_BODY)
    app[CONTEXT] = Context(
        cfg=cfg,
        store=store,
        clock=clock,
        networks=parse_networks(cfg.allow),
        ingest_networks=parse_networks(cfg.ingest_allow),
        boxes=cfg.boxes,
        counters=IngestCounters(),
        pages=PageCache(cfg.page_cache),
        figures=PageCache(cfg.page_cache),
    )
    app.on_response_prepare.append(_security_headers)
    app.router.add_post("/ingest", ingest)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
    )
    app.router.add_get("/", index)
    app.router.add_get("/en/", index)
    app.router.add_get("/map.svg", map_svg)
    app.router.add_get("/en/map.svg", map_svg)
    app.router.add_get("/api/communes", api_communes)
    app.router.add_get("/api/totals", api_totals)
    app.router.add_get("/api/campaigns", api_campaigns)
    app.router.add_get("/api/silent", api_silent)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/export.csv", export_csv)
    app.router.add_static("/static/obs/", STATIC_DIR, append_version=False)
    app.router.add_static("/static/", ICONS_DIR, append_version=False)
    return app
