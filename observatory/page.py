"""The observatory's HTML page: server-rendered, every value escaped, no script at all.

The map is inline SVG drawn from the communes' coordinates (no tiles: the observatory may run
offline), with the box's own weather icons as markers. The page refreshes itself with a meta
refresh, which the Content-Security-Policy allows (it is not a script).
"""

from __future__ import annotations

import datetime as dt
import html
import math
from typing import TYPE_CHECKING, Final

from dashboard.weather import Weather
from observatory.config import ObservatoryServerConfig

if TYPE_CHECKING:
    from observatory.app import CommuneRow, Overview

WEATHER_FR: Final = {
    Weather.SUNNY: "Grand soleil",
    Weather.CLOUDY: "Nuageux",
    Weather.RAIN: "Pluie",
    Weather.STORM: "Orage",
    Weather.TORNADO: "Tornade",
}
PERIOD_FR: Final = {"day": "Aujourd'hui", "month": "Ce mois-ci", "year": "Cette année"}
MAP_W: Final = 640
MAP_H: Final = 480
MARGIN: Final = 24
ICON: Final = 28


def e(value: object) -> str:
    """Escaped text, control characters shown as U+FFFD: names come from the network."""
    text = "".join(ch if ch.isprintable() else "\ufffd" for ch in str(value))
    return html.escape(text, quote=True)


def number(n: int) -> str:
    """French grouping with a narrow no-break space: 422 000."""
    return f"{n:,}".replace(",", "\u202f")


def when(ts: float | None, tz: str) -> str:
    if ts is None:
        return "jamais"
    from zoneinfo import ZoneInfo

    return dt.datetime.fromtimestamp(ts, ZoneInfo(tz)).strftime("%d/%m/%Y %H:%M")


def project(rows: tuple[CommuneRow, ...]) -> list[tuple[CommuneRow, float, float]]:
    """Map x, y of each commune with coordinates: equirectangular at the mean latitude."""
    placed = [r for r in rows if r.latitude is not None and r.longitude is not None]
    if not placed:
        return []
    lats = [r.latitude for r in placed if r.latitude is not None]
    lons = [r.longitude for r in placed if r.longitude is not None]
    k = math.cos(math.radians(sum(lats) / len(lats)))
    min_x, max_x = min(lons) * k, max(lons) * k
    min_y, max_y = min(lats), max(lats)
    dx, dy = max_x - min_x, max_y - min_y
    # One commune, or all at one place: drawn in the middle.
    scale = min(
        (MAP_W - 2 * MARGIN) / dx if dx > 1e-9 else math.inf,
        (MAP_H - 2 * MARGIN) / dy if dy > 1e-9 else math.inf,
    )
    if math.isinf(scale):
        scale = 0.0
    cx = (min_x + max_x) / 2
    cy = (min_y + max_y) / 2
    out = []
    for r in placed:
        assert r.latitude is not None and r.longitude is not None
        x = MAP_W / 2 + (r.longitude * k - cx) * scale
        y = MAP_H / 2 - (r.latitude - cy) * scale
        out.append((r, x, y))
    return out


def map_svg(rows: tuple[CommuneRow, ...]) -> str:
    points = project(rows)
    if not points:
        return ""
    parts = [
        f'<svg class="map" viewBox="0 0 {MAP_W} {MAP_H}" role="img" '
        'aria-label="Carte des communes et de leur météo du jour" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<rect class="map-bg" x="0" y="0" width="{MAP_W}" height="{MAP_H}"/>',
    ]
    # Calm communes first, so a storm is drawn on top of its neighbours.
    for r, x, y in sorted(points, key=lambda p: p[0].weather.level):
        label = f"{r.name} ({r.insee}) : {WEATHER_FR[r.weather]}, {number(r.count)} blocage(s)"
        if r.silent:
            label += " ; boîtier silencieux"
        cls = "marker silent" if r.silent else "marker"
        parts.append(
            f'<g class="{cls}"><title>{e(label)}</title>'
            f'<image href="/static/{r.weather.value}.svg" x="{x - ICON / 2:.1f}" '
            f'y="{y - ICON / 2:.1f}" width="{ICON}" height="{ICON}"/></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _totals(data: Overview) -> str:
    cards = []
    for p in data.periods:
        lines = (
            "".join(
                f"<li><span>{e(cat)}</span><span>{number(n)}</span></li>"
                for cat, n in sorted(p.by_category.items(), key=lambda kv: -kv[1])
            )
            or '<li class="none">aucun blocage</li>'
        )
        cards.append(
            f'<div class="card"><h3>{e(PERIOD_FR[p.label])}</h3>'
            f'<p class="big">{number(p.total)}</p><ul>{lines}</ul></div>'
        )
    return '<div class="cards">' + "".join(cards) + "</div>"


def _communes(data: Overview, tz: str) -> str:
    rows = []
    for c in data.communes:
        silent = ' class="silent"' if c.silent else ""
        rows.append(
            f"<tr{silent}>"
            f'<td><img class="icon" src="/static/{c.weather.value}.svg" alt="" width="32"'
            f' height="32"></td>'
            f"<td>{e(c.name)}</td><td>{e(c.insee)}</td>"
            f'<td class="num">{number(c.count)}</td><td>{e(WEATHER_FR[c.weather])}</td>'
            f"<td>{e(when(c.last_seen, tz))}</td></tr>"
        )
    return (
        "<table><thead><tr><th></th><th>Commune</th><th>INSEE</th><th>Blocages</th>"
        "<th>Météo</th><th>Dernier envoi</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _campaigns(data: Overview, kind: str) -> str:
    found = [c for c in data.campaigns if c.kind == kind]
    if not found:
        return '<p class="none">aucun</p>'
    items = "".join(
        f'<tr><td><code>{e(c.value)}</code></td><td class="num">{len(c.communes)}</td>'
        f'<td class="num">{number(c.events)}</td><td>{e(", ".join(c.communes))}</td></tr>'
        for c in found
    )
    return (
        "<table><thead><tr><th>"
        + ("Nom bloqué" if kind == "name" else "Liste ou signal")
        + "</th><th>Communes</th><th>Blocages</th><th>INSEE</th></tr></thead><tbody>"
        + items
        + "</tbody></table>"
    )


def _silent(data: Overview, cfg: ObservatoryServerConfig) -> str:
    silent = data.silent
    if not silent:
        return '<p class="none">Tous les boîtiers ont envoyé leurs nouvelles.</p>'
    items = "".join(
        f"<li>{e(c.name)} ({e(c.insee)}) : dernier envoi {e(when(c.last_seen, cfg.timezone))}</li>"
        for c in silent
    )
    return f'<ul class="alert">{items}</ul>'


def render(data: Overview, cfg: ObservatoryServerConfig) -> str:
    t = cfg.thresholds
    day = data.today.strftime("%d/%m/%Y")
    return f"""<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{cfg.refresh}">
<title>Observatoire Parafoudre — {e(day)}</title>
<link rel="stylesheet" href="/static/app.css">
<link rel="stylesheet" href="/static/obs/observatory.css">
</head>
<body>
<main>
<h1>Observatoire départemental Parafoudre</h1>
<p class="date">Le {e(day)} — {len(data.communes)} commune(s) équipée(s).
Il reçoit ce que les boîtiers ont bloqué, jamais ce qu'ils ont laissé passer ;
les postes y sont pseudonymisés par une clé qui reste dans chaque mairie.</p>
<section><h2>Menaces neutralisées dans le département</h2>{_totals(data)}</section>
<section><h2>La météo des communes</h2>
<p class="note">Blocages depuis minuit : nuageux dès {t.cloudy}, pluie dès {t.rain},
orage dès {t.storm}, tornade dès {t.tornado}.</p>
<div class="obs-grid">{map_svg(data.communes)}{_communes(data, cfg.timezone)}</div>
</section>
<section><h2>Campagnes du jour</h2>
<p class="note">Bloqués dans au moins {cfg.campaign_min_communes} communes aujourd'hui.</p>
<h3>Noms</h3>{_campaigns(data, "name")}
<h3>Listes et signaux</h3>{_campaigns(data, "feed")}
</section>
<section><h2>Boîtiers silencieux</h2>
<p class="note">Sans nouvelles depuis plus de {cfg.silent_hours} h.</p>{_silent(data, cfg)}
</section>
<footer><p><a href="/export.csv?year={data.today.year}">Export CSV {data.today.year}</a>
— <a href="/api/communes">API</a> — <a href="/metrics">métriques</a></p></footer>
</main>
</body>
</html>
"""
