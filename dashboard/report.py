"""`parafoudre report --year 2026`: the year's figures for the département, as CSV or Markdown.

Per month: blocks per category and the number of days of each weather. The total and the weather
count threats only: attempts to get around the filter (category ``bypass``) have their own
column after the total. Days are local days in
the configured time zone, counted from the block events while they are kept (retention, 400 days
by default); older days fall back to the daily counts, which are kept for good but per UTC day.
"""

from __future__ import annotations

import csv
import datetime as dt
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from dashboard import i18n, queries
from dashboard.coverage import covered
from dashboard.weather import Weather, day_bounds, local_date, weather_for
from resolver.blocklog.schema import NON_THREAT_CATEGORIES, BlockLogError, open_db
from resolver.config.dashboard import DashboardConfig

FORMATS = ("csv", "markdown")


@dataclass(slots=True)
class MonthFigures:
    blocks: dict[str, int] = field(default_factory=dict)  # category -> blocks
    weather_days: dict[Weather, int] = field(default_factory=dict)
    no_data: int = 0  # days before the block log existed
    from_daily: int = 0  # days counted from the UTC daily counts (events already pruned)

    def add(self, other: MonthFigures) -> None:
        for c, n in other.blocks.items():
            self.blocks[c] = self.blocks.get(c, 0) + n
        for w, n in other.weather_days.items():
            self.weather_days[w] = self.weather_days.get(w, 0) + n
        self.no_data += other.no_data
        self.from_daily += other.from_daily


def year_figures(
    conn: sqlite3.Connection, year: int, cfg: DashboardConfig, now: float
) -> dict[int, MonthFigures]:
    """Figures of each month of ``year`` up to today (local), {1: ..., 12: ...}."""
    tz = cfg.timezone
    today = local_date(now, tz)
    oldest = queries.oldest_event(conn)
    first_day = queries.first_counted_day(conn)
    daily = queries.utc_day_counts(conn, f"{year:04d}-01-01", f"{year:04d}-12-31")
    first_run = queries.first_run(conn)
    runs = queries.runs_between(conn, *_year_bounds(year, tz))
    months = {m: MonthFigures() for m in range(1, 13)}
    day = dt.date(year, 1, 1)
    while day.year == year and day <= today:
        start, end = day_bounds(day, tz)
        month = months[day.month]
        recorded = first_run is not None and end > first_run  # the block log knows its runs
        # Not running that day: no data, unless blocks say otherwise (a clock jump).
        down = recorded and not covered(runs, start, end, now)
        if down and not queries.count_between(conn, start, end):
            month.no_data += 1
            day += dt.timedelta(days=1)
            continue
        if recorded or (oldest is not None and end > oldest):
            counts = queries.categories_between(conn, start, end)
        elif first_day is not None and day.isoformat() >= first_day:
            counts = daily.get(day.isoformat(), {})
            month.from_daily += 1
        else:
            month.no_data += 1
            day += dt.timedelta(days=1)
            continue
        for category, n in counts.items():
            month.blocks[category] = month.blocks.get(category, 0) + n
        weather = weather_for(_threats(counts), cfg.thresholds)
        month.weather_days[weather] = month.weather_days.get(weather, 0) + 1
        day += dt.timedelta(days=1)
    return months


def _threats(blocks: dict[str, int]) -> int:
    """What makes the weather: every category but NON_THREAT_CATEGORIES."""
    return sum(n for c, n in blocks.items() if c not in NON_THREAT_CATEGORIES)


def _year_bounds(year: int, tz: str) -> tuple[float, float]:
    return day_bounds(dt.date(year, 1, 1), tz)[0], day_bounds(dt.date(year, 12, 31), tz)[1]


def _rows(
    months: dict[int, MonthFigures], year: int, lang: i18n.Lang, *, names: bool
) -> tuple[list[str], list[list[str]]]:
    found = {c for m in months.values() for c in m.blocks}
    threats = sorted(found - NON_THREAT_CATEGORIES)
    apart = sorted(found & NON_THREAT_CATEGORIES)
    fr = lang == "fr"
    header = [
        ("mois" if fr else "month") if names else "month",
        *(i18n.category_label(lang, c) if names else c for c in threats),
        ("total des menaces" if fr else "threats") if names else "total",
        *(i18n.category_label(lang, c) if names else c for c in apart),
        *(i18n.weather_label(lang, w) if names else w.value for w in Weather),
        ("sans données" if fr else "no data") if names else "no_data",
    ]
    total = MonthFigures()
    rows = []
    for number, m in months.items():
        total.add(m)
        label = i18n.month_name(lang, number) if names else f"{year:04d}-{number:02d}"
        rows.append(_row(label, m, threats, apart))
    rows.append(_row(("année" if fr else "year") if names else str(year), total, threats, apart))
    return header, rows


def _row(label: str, m: MonthFigures, threats: list[str], apart: list[str]) -> list[str]:
    return [
        label,
        *(str(m.blocks.get(c, 0)) for c in threats),
        str(_threats(m.blocks)),
        *(str(m.blocks.get(c, 0)) for c in apart),
        *(str(m.weather_days.get(w, 0)) for w in Weather),
        str(m.no_data),
    ]


def _markdown(
    months: dict[int, MonthFigures], year: int, cfg: DashboardConfig, out: TextIO
) -> None:
    lang = cfg.language
    header, rows = _rows(months, year, lang, names=True)
    t = cfg.thresholds
    daily = sum(m.from_daily for m in months.values())
    if lang == "fr":
        out.write(f"# Parafoudre : bilan de l'année {year}\n\n")
        out.write(
            f"Blocages par mois et par catégorie, et nombre de jours de chaque météo "
            f"(jours comptés de minuit à minuit, fuseau {cfg.timezone}). Seuils : nuageux dès "
            f"{t.cloudy} blocage, pluie dès {t.rain}, orage dès {t.storm}, tornade dès "
            f"{t.tornado}. Les tentatives de contourner le filtre sont comptées à part : ce ne "
            "sont pas des menaces, elles ne changent pas la météo.\n\n"
        )
    else:
        out.write(f"# Parafoudre: {year} report\n\n")
        out.write(
            f"Blocks per month and category, and days of each weather (days from midnight to "
            f"midnight, time zone {cfg.timezone}). Thresholds: cloudy from {t.cloudy} block, "
            f"rain from {t.rain}, storm from {t.storm}, tornado from {t.tornado}. Attempts to get "
            "around the filter are counted apart: they are not threats and leave the weather as "
            "it is.\n\n"
        )
    out.write("| " + " | ".join(_md(h) for h in header) + " |\n")
    out.write("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|\n")
    for i, row in enumerate(rows):
        cells = [_md(c) for c in row]
        if i == len(rows) - 1:
            cells = [f"**{c}**" for c in cells]
        out.write("| " + " | ".join(cells) + " |\n")
    if daily:
        note = (
            f"\n{daily} jours comptés d'après les totaux quotidiens (jours UTC) : le détail "
            "de ces jours a dépassé la durée de conservation.\n"
            if lang == "fr"
            else f"\n{daily} days counted from the daily totals (UTC days): their events are "
            "past the retention.\n"
        )
        out.write(note)


TOP_MACHINES = 10


def top_machines(conn: sqlite3.Connection, year: int, tz: str) -> list[tuple[str, int]]:
    """The machines with the most blocks of the year, from the events still kept."""
    start, end = _year_bounds(year, tz)
    rows = conn.execute(
        "SELECT client, SUM(count) FROM blocks WHERE ts >= ? AND ts < ?"
        " GROUP BY client ORDER BY 2 DESC, client LIMIT ?",
        (start, end, TOP_MACHINES),
    ).fetchall()
    return [(str(c), int(n)) for c, n in rows]


def _machines_markdown(
    machines: list[tuple[str, int]], names: Callable[[str], str | None], lang: str, out: TextIO
) -> None:
    """The machines most blocked, by name with their address (clients: in the config)."""
    if not machines:
        return
    fr = lang == "fr"
    out.write("\n## Postes les plus concernés\n\n" if fr else "\n## Machines most concerned\n\n")
    out.write("| poste | blocages |\n|---|---:|\n" if fr else "| machine | blocks |\n|---|---:|\n")
    for client, n in machines:
        name = names(client)
        who = f"{name} ({client})" if name else client
        out.write(f"| {_md(who)} | {n} |\n")


def _md(text: str) -> str:
    # Categories come from feed configuration; keep them from breaking the table.
    return text.replace("|", "\\|").replace("\n", " ")


def run_report(
    db_path: Path,
    year: int | None,
    fmt: str,
    out: TextIO,
    cfg: DashboardConfig,
    *,
    now: float | None = None,
    names: Callable[[str], str | None] | None = None,
) -> int:
    """Print the ``year`` report (None: the current year, local) as ``fmt`` ("csv" or
    "markdown") to ``out``; the exit code.

    0 on success, 2 for a bad format or year, 1 if the block log cannot be read (one line on
    stderr).
    """
    now = time.time() if now is None else now
    if year is None:
        year = local_date(now, cfg.timezone).year
    if fmt not in FORMATS:
        print(f"parafoudre: report: unknown format {fmt!r} (fix: csv or markdown)", file=sys.stderr)
        return 2
    if not 2000 <= year <= 9999:
        print(f"parafoudre: report: year {year} out of range (fix: e.g. 2026)", file=sys.stderr)
        return 2
    if not db_path.exists():
        print(
            f"parafoudre: report: no block log at {db_path} yet: the resolver creates it when it"
            " first starts (systemctl start parafoudre)",
            file=sys.stderr,
        )
        return 1
    try:
        conn = open_db(db_path, readonly=True)
    except BlockLogError as exc:
        print(f"parafoudre: report: {exc}", file=sys.stderr)
        return 1
    try:
        months = year_figures(conn, year, cfg, now)
        machines = top_machines(conn, year, cfg.timezone)
    except sqlite3.Error as exc:
        print(f"parafoudre: report: cannot read block log {db_path}: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    if fmt == "csv":
        # Machine-readable: category keys and ISO months, whatever the page's language.
        header, rows = _rows(months, year, cfg.language, names=False)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    else:
        _markdown(months, year, cfg, out)
        _machines_markdown(machines, names or (lambda _: None), cfg.language, out)
    return 0
