"""A bypass attempt is not a threat (issue 21 parts 1-2, issue 22: the weather never lies).

Every Firefox start asks its canary and the box answers it: a block of category ``bypass`` in the
block log, as are public DNS-over-HTTPS resolvers listed by a ``bypass`` feed. Those leave the
weather, the threat totals, the strips, ``/metrics`` and ``parafoudre report`` as they are, and
are still shown: their own count beside the weather, the blocks table, and the machine that keeps
trying named when no threat stands out. Real block logs written by the resolver's writer, the
dashboard over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import sqlite3
import zoneinfo
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dashboard.app import FeedStatusRow, create_app
from dashboard.report import run_report
from resolver.blocklog.schema import NON_THREAT_CATEGORIES, open_db
from resolver.blocklog.writer import BlockEvent, BlockLogWriter
from resolver.config.dashboard import DashboardConfig
from resolver.stats import StatsSnapshot

TZ = "Europe/Paris"
PARIS = zoneinfo.ZoneInfo(TZ)
NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=PARIS).timestamp()
FIREFOX = "192.168.1.30"  # a machine whose Firefox starts again and again


def paris(d: int, h: int, mi: int = 0, s: int = 0) -> float:
    return dt.datetime(2026, 3, d, h, mi, s, tzinfo=PARIS).timestamp()


def canaries() -> list[BlockEvent]:
    """Today and yesterday: 40 Firefox canaries, 5 Private Relay canaries and 3 public DoH
    resolvers from a bypass feed; nothing else."""
    events = []
    for d in (9, 10):
        for i in range(40):
            events.append(
                BlockEvent(paris(d, 8) + i * 300, FIREFOX, "use-application-dns.net", 1,
                           "blocked", "canary:firefox", "bypass")
            )  # fmt: skip
        for i in range(5):
            events.append(
                BlockEvent(paris(d, 9) + i * 60, "192.168.1.31", "mask.icloud.com", 65,
                           "blocked", "canary:private-relay", "bypass")
            )  # fmt: skip
        for name in ("dns.alekberg.net", "commons.host", "doh.dns-family.adguard.com"):
            events.append(
                BlockEvent(paris(d, 10), "192.168.1.32", name, 1, "blocked", "feed:ut1-doh",
                           "bypass")
            )  # fmt: skip
    return events


BYPASS_TODAY = 40 + 5 + 3


def malware(d: int, n: int = 1, client: str = "192.168.1.40") -> list[BlockEvent]:
    return [
        BlockEvent(paris(d, 11) + i, client, f"m{i}.malware.test", 1, "blocked", "feed:urlhaus",
                   "malware")
        for i in range(n)
    ]  # fmt: skip


def fill(db: Path, events: Sequence[BlockEvent]) -> None:
    writer = BlockLogWriter(db, queue_size=10_000, clock=lambda: NOW)
    writer.start()
    try:
        # One write window per day: identical blocks of one window share a row at the first's
        # time, so a window must not span two days.
        for day in sorted({dt.datetime.fromtimestamp(e.ts, PARIS).date() for e in events}):
            for e in events:
                if dt.datetime.fromtimestamp(e.ts, PARIS).date() == day:
                    writer.offer(e)
            assert writer.flush(timeout=10)
    finally:
        writer.close()
    # The box ran both days: no "no data" day in the strips.
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM runs")
        conn.execute("INSERT INTO runs (started, seen) VALUES (?, ?)", (paris(9, 0), NOW))
    conn.close()


def stats() -> StatsSnapshot:
    return StatsSnapshot(
        started_at=NOW - 86400,
        queries_by_verdict={"forwarded": 41, "blocked": 12},
        blocklist_entries=2015,
        upstream_answering=True,
        detector_mode="block",
    )


def feeds() -> list[FeedStatusRow]:
    return [FeedStatusRow("urlhaus", "malware", 2000, NOW - 3600, "")]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Any]:
    clients: list[TestClient[Any, Any]] = []

    async def make(events: Sequence[BlockEvent]) -> tuple[TestClient[Any, Any], Path]:
        db = tmp_path / f"blocks{len(clients)}.sqlite"
        fill(db, events)
        app = create_app(
            DashboardConfig(),
            db_path=db,
            stats=stats,
            feeds_status=feeds,
            version="1.0",
            clock=lambda: NOW,
        )
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client, db

    yield make
    for c in clients:
        await c.close()


async def get_json(client: TestClient[Any, Any], path: str) -> Any:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def report(db: Path) -> dict[str, str]:
    """The CSV report's row for March 2026, by column."""
    out = io.StringIO()
    assert run_report(db, 2026, "csv", out, DashboardConfig(), now=NOW) == 0
    rows = {r[0]: r for r in csv.reader(io.StringIO(out.getvalue()))}
    return dict(zip(rows["month"], rows["2026-03"], strict=True))


def metric(text: str, name: str) -> float:
    (line,) = [x for x in text.splitlines() if x.startswith(name + " ")]
    return float(line.split()[1])


def test_bypass_is_the_one_non_threat_category() -> None:
    assert frozenset({"bypass"}) == NON_THREAT_CATEGORIES
    # What the canaries write, from the same constant.
    from resolver.stages.canaries import CATEGORY

    assert CATEGORY in NON_THREAT_CATEGORIES


async def test_only_canaries_is_full_sun_with_the_attempts_shown(serve: Any) -> None:
    client, db = await serve(canaries())

    s = await get_json(client, "/api/summary")
    assert (s["total"], s["weather"], s["icon"], s["bypass"]) == (0, "sunny", "sunny", 48)
    assert s["headline"] == (
        "Grand soleil : aucune menace bloquée depuis minuit. "
        "48 tentatives de contourner le filtre, arrêtées."
    )
    kinds = {k["kind"]: k for k in s["kinds"]}
    assert [k["kind"] for k in s["kinds"]] == ["feeds", "exfiltration", "lists", "bypass"]
    assert kinds["bypass"]["total"] == BYPASS_TODAY
    assert kinds["bypass"]["label"] == "Contournements du filtre"
    assert kinds["feeds"]["total"] == kinds["lists"]["total"] == 0
    # The machine that keeps trying is still named (once a day: today's highlight).
    assert s["highlight"]["client"] == FIREFOX
    assert s["highlight_text"] == (
        "40 tentatives pour contourner le filtre (DNS chiffré extérieur, VPN, relais) depuis le "
        f"poste {FIREFOX} : faites-le vérifier."
    )
    # The hours of today carry no threat.
    assert {h["count"] for h in s["hours"] if h["state"] == "data"} == {0}

    days = {d["day"]: d for d in (await get_json(client, "/api/history?days=7"))["days"]}
    for day in ("2026-03-09", "2026-03-10"):
        assert (days[day]["weather"], days[day]["count"], days[day]["bypass"]) == (
            "sunny",
            0,
            BYPASS_TODAY,
        )
    assert days["2026-03-09"]["title"] == (
        "2026-03-09 : Grand soleil, 0 · 48 tentatives de contourner le filtre, arrêtées"
    )

    # The blocks table still lists them, as "getting around the filter".
    blocks = await get_json(client, "/api/blocks?page_size=100")
    assert blocks["total"] == BYPASS_TODAY
    assert {(b["category"], b["kind"]) for b in blocks["items"]} == {("bypass", "bypass")}
    reasons = {b["reason"]: b["reason_text"] for b in blocks["items"]}
    assert reasons["canary:firefox"] == "témoin de Firefox (son DNS chiffré reste éteint)"
    assert reasons["feed:ut1-doh"] == "liste de menaces ut1-doh"

    page = await (await client.get("/")).text()
    assert "48 tentatives de contourner le filtre, arrêtées." in page
    assert 'data-weather="sunny"' in page and 'data-kind="bypass"' in page

    text = await (await client.get("/metrics")).text()
    assert metric(text, "parafoudre_weather_level") == 0
    assert metric(text, "parafoudre_threats_today") == 0
    assert metric(text, "parafoudre_bypass_attempts_today") == BYPASS_TODAY
    assert 'parafoudre_blocks_today{category="bypass",kind="bypass"} 48.0' in text

    row = report(db)
    assert (row["total"], row["bypass"], row["sunny"], row["cloudy"]) == ("0", "96", "2", "0")


async def test_canaries_and_one_malware_block_is_cloudy_for_one(serve: Any) -> None:
    client, db = await serve([*canaries(), *malware(10)])

    s = await get_json(client, "/api/summary")
    assert (s["total"], s["weather"], s["bypass"]) == (1, "cloudy", BYPASS_TODAY)
    assert s["headline"].startswith("Quelques nuages : 1 menace bloquée depuis minuit,")
    assert s["headline"].endswith(" 48 tentatives de contourner le filtre, arrêtées.")
    assert {k["kind"]: k["total"] for k in s["kinds"]} == {
        "feeds": 1,
        "exfiltration": 0,
        "lists": 0,
        "bypass": BYPASS_TODAY,
    }
    assert sum(h["count"] or 0 for h in s["hours"]) == 1

    days = {d["day"]: d for d in (await get_json(client, "/api/history?days=7"))["days"]}
    assert (days["2026-03-10"]["weather"], days["2026-03-10"]["count"]) == ("cloudy", 1)
    assert (days["2026-03-09"]["weather"], days["2026-03-09"]["count"]) == ("sunny", 0)

    text = await (await client.get("/metrics")).text()
    assert metric(text, "parafoudre_weather_level") == 1
    assert metric(text, "parafoudre_threats_today") == 1

    row = report(db)
    assert (row["malware"], row["total"], row["bypass"]) == ("1", "1", "96")
    assert (row["sunny"], row["cloudy"], row["no_data"]) == ("1", "1", "8")
    out = io.StringIO()
    assert run_report(db, 2026, "markdown", out, DashboardConfig(), now=NOW) == 0
    assert "| total des menaces | contournement du filtre |" in out.getvalue()


async def test_a_threat_machine_is_named_before_a_bypassing_one(serve: Any) -> None:
    """Three malware blocks (the page's highlight_min) outrank 40 canaries from another machine."""
    client, _ = await serve([*canaries(), *malware(10, 3, "192.168.1.41")])
    s = await get_json(client, "/api/summary")
    assert (s["highlight"]["client"], s["highlight"]["category"]) == ("192.168.1.41", "malware")
    assert s["weather"] == "cloudy" and s["total"] == 3


def test_the_block_log_counts_bypass_from_its_own_index(tmp_path: Path) -> None:
    """Per-day bypass totals read the (category, ts, count) index, never the rows."""
    db = tmp_path / "blocks.sqlite"
    fill(db, canaries())
    conn = open_db(db, readonly=True)
    try:
        from dashboard import queries

        assert queries.threats_between(conn, paris(10, 0), paris(11, 0)) == (0, BYPASS_TODAY)
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT COALESCE(SUM(count), 0) FROM blocks"
            " WHERE category IN ('bypass') AND ts >= ? AND ts < ?",
            (0, 1),
        ).fetchall()
    finally:
        conn.close()
    assert "COVERING INDEX blocks_category_ts_count" in str(plan)


async def test_no_alert_for_a_machine_that_only_bypasses(serve: Any) -> None:
    """The page names the Firefox machine; the alerts (issue 16.3) do not send it as a threat."""
    from dashboard.alerts import due
    from dashboard.summary import load_summary
    from resolver.config.alerts import AlertsConfig

    for events, expected in (
        (canaries(), []),
        ([*canaries(), *malware(10, 3, "192.168.1.41")], ["machine:192.168.1.41"]),
    ):
        _, db = await serve(events)
        conn = open_db(db, readonly=True)
        try:
            s = load_summary(conn, DashboardConfig(), NOW)
        finally:
            conn.close()
        assert s.highlight is not None
        alerts = due(s, [], [], AlertsConfig(), DashboardConfig(), NOW, lambda _c: None)
        assert [a.key for a in alerts] == expected
