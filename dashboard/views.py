"""The weather page, rendered on the server from the same dictionaries the JSON API returns.

Every value is passed through ``h()``: control and invisible characters made visible, length
bounded, then ``html.escape(quote=True)``. The page has no inline script or style (the CSP
forbids both); ``static/app.js`` refreshes it from the API.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aiohttp import web

from dashboard import api, i18n
from dashboard.context import CONTEXT, read_db
from dashboard.i18n import Lang
from dashboard.summary import load_blocks, load_history, load_summary
from dashboard.weather import local_date
from resolver.blocklog.schema import BlockLogError

JSON = dict[str, Any]

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
    """``value`` for HTML text or a quoted attribute."""
    return html.escape(display(value, limit), quote=True)


def _href(query: Mapping[str, str], **changes: str | int | None) -> str:
    """A link to this page keeping ``lang`` and ``token``, with ``changes`` applied."""
    params: dict[str, str] = {k: query[k] for k in ("lang", "token") if k in query}
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urllib.parse.urlencode(params) if params else "?"


def _icon(weather: str, label: str, size: int, css: str, extra: str = "") -> str:
    return (
        f'<img class="{css}" src="/static/{h(weather)}.svg" alt="{h(label)}" '
        f'width="{size}" height="{size}"{extra}>'
    )


def _table(
    cols: Sequence[str], rows: Sequence[Sequence[str]], tbody_id: str, empty: str, css: str = ""
) -> str:
    head = "".join(f"<th>{h(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not rows:
        body = f'<tr class="empty"><td colspan="{len(cols)}">{h(empty)}</td></tr>'
    return (
        f'<table class="{css}"><thead><tr>{head}</tr></thead>'
        f'<tbody id="{tbody_id}" data-empty="{h(empty)}">{body}</tbody></table>'
    )


def _name_cell(qname: str, times: str = "", times_title: str = "") -> str:
    # The tooltip holds the whole name (escaped too); the cell a bounded one. ``times`` ("×3")
    # follows the name when the row stands for several identical queries.
    cell = f'<span class="qname" title="{h(qname, 255)}">{h(qname, NAME_DISPLAY)}</span>'
    if times:
        cell += f' <span class="times" title="{h(times_title, 120)}">{h(times)}</span>'
    return cell


def render_counts(summary: JSON, lang: Lang) -> str:
    cards = []
    for kind in summary["kinds"]:
        items = (
            "".join(
                f'<li><span class="cat">{h(c["label"])}</span> <b>{h(c["count"])}</b></li>'
                for c in kind["categories"]
            )
            or f'<li class="none">{h(i18n.text(lang, "no_blocks"))}</li>'
        )
        cards.append(
            f'<div class="card kind-{h(kind["kind"])}" data-kind="{h(kind["kind"])}">'
            f'<h3>{h(kind["label"])}</h3><p class="big">{h(kind["total"])}</p>'
            f"<ul>{items}</ul></div>"
        )
    return "".join(cards)


def render_strip(days: Sequence[JSON], lang: Lang) -> str:
    items = []
    for d in days:
        title = f"{d['day']} : {d['weather_label']}, {d['count']}"
        items.append(
            f'<li title="{h(title)}" data-weather="{h(d["weather"])}">'
            + _icon(d["weather"], d["weather_label"], 40, "day-icon")
            + f'<span class="lbl">{h(d["label"])}</span><span class="n">{h(d["count"])}</span></li>'
        )
    return "".join(items)


def render_page(
    *,
    lang: Lang,
    refresh: int,
    query: Mapping[str, str],
    summary: JSON | None,
    blocks: JSON | None,
    history: JSON | None,
    feeds: JSON,
    health: JSON,
    today_text: str,
    updated_text: str,
) -> str:
    """The whole page; ``summary``, ``blocks`` and ``history`` are None if the log is unreadable."""
    t = i18n.text
    weather = summary["weather"] if summary else "sunny"
    weather_label = summary["weather_label"] if summary else ""
    sentence = summary["sentence"] if summary else t(lang, "db_error")
    highlight = summary["highlight_text"] if summary else ""
    losses = summary["losses_text"] if summary else ""
    hl_class = "highlight alert" if summary and summary["highlight"] else "highlight"

    counts = render_counts(summary, lang) if summary else ""
    days = history["days"] if history else []
    strip7, strip30 = render_strip(days[-7:], lang), render_strip(days, lang)

    block_rows = [
        [
            h(b["time"]),
            h(b["client"]),
            _name_cell(b["qname"], b["count_text"], b["count_title"]),
            h(b["category_label"]),
            h(b["reason"]),
        ]
        for b in (blocks["items"] if blocks else [])
    ]
    page = blocks["page"] if blocks else 1
    pages = blocks["pages"] if blocks else 1
    prev_hidden = "" if page > 1 else " hidden"
    next_hidden = "" if page < pages else " hidden"
    names = [
        [_name_cell(n["qname"]), h(n["label"]), h(n["count"])]
        for n in (summary["top_names"] if summary else [])
    ]
    clients = [
        [h(c["client"]), h(c["label"]), h(c["count"])]
        for c in (summary["top_clients"] if summary else [])
    ]
    feed_rows = [
        [
            h(f["name"]),
            h(f["label"]),
            h(f["entries"]),
            h(f["updated_text"]),
            f'<span class="status status-{h(f["status"])}">{h(f["status_text"])}</span>',
        ]
        for f in feeds["feeds"]
    ]
    legend = "".join(
        f'<li data-weather="{h(x["weather"])}">'
        + _icon(x["weather"], x["weather_label"], 32, "legend-icon")
        + f"<b>{h(x['weather_label'])}</b> <span>{h(x['range_text'])}</span></li>"
        for x in (summary["thresholds"] if summary else [])
    )
    other = "en" if lang == "fr" else "fr"
    since = t(lang, "since_midnight", tz=health.get("timezone", ""))
    date_line = f'<span id="today">{h(today_text, 120)}</span>, {h(since, 120)}'
    lang_link = (
        f'<a class="lang" href="{h(_href(query, lang=other), 400)}" hreflang="{other}">'
        f"{h(t(lang, 'language'))}</a>"
    )
    pager = (
        f'<a id="prev" href="{h(_href(query, page=page - 1), 400)}"{prev_hidden}>'
        f"{h(t(lang, 'prev'))}</a>"
        f'<span id="page-text">{h(blocks["page_text"] if blocks else "", 120)}</span>'
        f'<a id="next" href="{h(_href(query, page=page + 1), 400)}"{next_hidden}>'
        f"{h(t(lang, 'next'))}</a>"
    )
    no_blocks = t(lang, "no_blocks")

    def cols(*keys: str) -> list[str]:
        return [t(lang, f"col.{k}") for k in keys]

    blocks_table = _table(
        cols("time", "client", "name", "category", "source"),
        block_rows,
        "blocks",
        no_blocks,
        "blocks",
    )
    names_table = _table(cols("name", "category", "count"), names, "top-names", no_blocks)
    clients_table = _table(cols("client", "category", "count"), clients, "top-clients", no_blocks)
    feeds_table = _table(
        cols("feed", "category", "entries", "updated", "status"),
        feed_rows,
        "feeds",
        t(lang, "feeds_none"),
    )
    hero_icon = _icon(weather, weather_label, 160, "weather-icon", ' id="weather-icon"')
    losses_hidden = "" if losses else " hidden"

    return f"""<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{h(t(lang, "title"))}</title>
<link rel="stylesheet" href="/static/app.css">
<link rel="icon" href="/static/{h(weather)}.svg">
<script src="/static/app.js" defer></script>
</head>
<body data-lang="{lang}" data-refresh="{refresh}" data-page="{page}">
<header id="hero" class="hero weather-{h(weather)}" data-weather="{h(weather)}">
{hero_icon}
<div class="headline">
<p class="date">{date_line}</p>
<h1 id="weather-sentence">{h(sentence, 300)}</h1>
<p id="highlight" class="{hl_class}">{h(highlight, 300)}</p>
<p id="losses" class="losses"{losses_hidden}>{h(losses, 300)}</p>
</div>
</header>
<main>
<section id="counts-section">
<h2>{h(t(lang, "counts"))}</h2>
<p class="note">{h(t(lang, "counts_note"), 400)}</p>
<div id="counts" class="cards">{counts}</div>
</section>
<section id="history-section">
<h2>{h(t(lang, "history7"))}</h2>
<ol id="strip7" class="strip strip7">{strip7}</ol>
<h2>{h(t(lang, "history30"))}</h2>
<ol id="strip30" class="strip strip30">{strip30}</ol>
</section>
<section id="blocks-section">
<h2>{h(t(lang, "blocks"))}</h2>
{blocks_table}
<nav class="pager" id="pager">{pager}</nav>
</section>
<div class="two">
<section id="top-names-section">
<h2>{h(t(lang, "top_names"))}</h2>
{names_table}
</section>
<section id="top-clients-section">
<h2>{h(t(lang, "top_clients"))}</h2>
{clients_table}
</section>
</div>
<section id="feeds-section">
<h2>{h(t(lang, "feeds"))}</h2>
{feeds_table}
</section>
<section id="thresholds-section">
<h2>{h(t(lang, "thresholds"))}</h2>
<p class="note">{h(t(lang, "thresholds_intro"), 600)}</p>
<ul class="legend">{legend}</ul>
</section>
</main>
<footer>
<span id="footer-text">{h(health["footer_text"], 200)}</span> ·
<span id="updated">{h(updated_text, 120)}</span> ·
{lang_link}
</footer>
</body>
</html>
"""


async def page(request: web.Request) -> web.Response:
    """GET /: the weather page (read-only)."""
    ctx = request.app[CONTEXT]
    cfg, lang, now = ctx.cfg, api.lang_of(request), ctx.clock()
    today = local_date(now, cfg.timezone)
    page_no = api.int_param(request, "page", 1, 1, api.MAX_PAGE)

    def load(conn: Any) -> tuple[JSON, JSON, JSON]:
        return (
            api.summary_json(load_summary(conn, cfg, now), cfg, lang, now),
            api.blocks_json(load_blocks(conn, cfg, today, page=page_no), cfg, lang),
            api.history_json(load_history(conn, cfg, now, 30), lang),
        )

    summary: JSON | None
    blocks: JSON | None
    history: JSON | None
    try:
        summary, blocks, history = await read_db(request.app, load)
        readable = True
    except BlockLogError:
        summary = blocks = history = None
        readable = False
    health = api.health_json(ctx, lang, readable)
    health["timezone"] = cfg.timezone
    body = render_page(
        lang=lang,
        refresh=cfg.refresh,
        query=request.query,
        summary=summary,
        blocks=blocks,
        history=history,
        feeds=api.feeds_json(api.feed_rows(ctx), cfg, lang, now),
        health=health,
        today_text=i18n.long_date(lang, today),
        updated_text=i18n.text(lang, "updated", time=api.local_time(now, cfg.timezone)),
    )
    return web.Response(
        text=body, content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-store"}
    )
