"""The dashboard over HTTP (aiohttp test client on 127.0.0.1) on a real SQLite block log written
by the resolver's BlockLogWriter: API paging and filters, token, allowed networks, escaping of
hostile names, security headers, /metrics.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import re
import socket
import zoneinfo
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, ClientTimeout
from aiohttp.test_utils import TestClient, TestServer

from dashboard.app import DashboardError, FeedStatusRow, create_app, start_dashboard
from dashboard.report import run_report
from dashboard.views import h
from dashboard.weather import Weather
from resolver.blocklog.writer import BlockEvent, BlockLogWriter
from resolver.config.dashboard import DashboardConfig, ThresholdsConfig
from resolver.stats import LATENCY_BUCKETS, StatsSnapshot

TZ = "Europe/Paris"
PARIS = zoneinfo.ZoneInfo(TZ)
NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=PARIS).timestamp()
TODAY = dt.date(2026, 3, 10)
TOKEN = "0123456789abcdef0123"

HOSTILE = "<script>alert(1)</script>.evil.test"
QUOTES = "\"onmouseover='alert(1)'.quotes.test"
CONTROL = "bell\x07nul\x00esc\x1b[31m.ctl.test"
LONG = ".".join(["a" * 63] * 3 + ["b" * 61 + ".test"])[:255]
UNICODE = "écoles-mairie.café.fr"
BIDI = "gpj\u202eexe.bidi.test"
HOSTILE_NAMES = (HOSTILE, QUOTES, CONTROL, LONG, UNICODE, BIDI)


def paris(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> float:
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=PARIS).timestamp()


def event(ts: float, client: str, qname: str, reason: str, category: str) -> BlockEvent:
    verdict = "exfiltration" if reason.startswith("exfil:") else "blocked"
    return BlockEvent(ts, client, qname, 1, verdict, reason, category)


def fill(db: Path, events: Sequence[BlockEvent], *, queue_size: int = 10_000) -> None:
    """Write ``events`` through the real writer; with a small queue some are dropped (counted)."""
    writer = BlockLogWriter(db, queue_size=queue_size, clock=lambda: NOW)
    for e in events:  # offered before start: a full queue drops, as on a busy day
        writer.offer(e)
    writer.start()
    try:
        assert writer.flush(timeout=10)
    finally:
        writer.close()


def standard_events() -> list[BlockEvent]:
    events = []
    # Today: 120 phishing attempts from one machine (paging), a few others, hostile names.
    for i in range(120):
        events.append(
            event(paris(2026, 3, 10, 9, 0) + i * 30, "192.168.1.23", f"p{i}.phish.test",
                  "feed:openphish", "phishing")
        )  # fmt: skip
    events.append(
        event(paris(2026, 3, 10, 8, 0), "192.168.1.40", "m.malware.test", "feed:urlhaus", "malware")
    )
    events.append(
        event(
            paris(2026, 3, 10, 8, 1),
            "192.168.1.55",
            "x.tunnel.test",
            "exfil:entropy",
            "exfiltration",
        )
    )
    events.append(
        event(paris(2026, 3, 10, 8, 2), "192.168.1.7", "casino.test", "list:local", "scam")
    )
    # 00:30 Paris is still 9 March in UTC: it belongs to the local 10 March.
    events.append(
        event(paris(2026, 3, 10, 0, 30), "192.168.1.8", "early.test", "feed:urlhaus", "malware")
    )
    for i, name in enumerate(HOSTILE_NAMES):
        events.append(
            event(paris(2026, 3, 10, 14, i), "192.168.1.200", name, "feed:urlhaus", "malware")
        )
    # Yesterday (local) and the day before.
    events.append(
        event(paris(2026, 3, 9, 23, 59), "192.168.1.9", "late.test", "feed:urlhaus", "malware")
    )
    for i in range(45):
        events.append(
            event(
                paris(2026, 3, 8, 10, 0) + i, "192.168.1.9", "storm.test", "feed:urlhaus", "malware"
            )
        )
    return events


TODAY_TOTAL = 120 + 3 + 1 + len(HOSTILE_NAMES)


def feeds() -> list[FeedStatusRow]:
    return [
        FeedStatusRow("urlhaus", "malware", 2000, NOW - 3600, ""),
        FeedStatusRow("old", "phishing", 10, NOW - 72 * 3600, ""),
        FeedStatusRow("broken", "c2", 5, NOW - 600, "HTTP 503", "http"),
        FeedStatusRow("new", "scam", 0, None, ""),
    ]


def stats() -> StatsSnapshot:
    per_bucket = (5, 10, 20, 5, 0, 0, 0, 0, 0, 0, 1)
    assert len(per_bucket) == len(LATENCY_BUCKETS) + 1
    return StatsSnapshot(
        started_at=NOW - 3 * 3600,
        queries_by_verdict={"forwarded": 41, "cached": 300, "blocked": 12},
        cache_hits=300,
        cache_misses=100,
        upstream_latency_counts=per_bucket,
        upstream_latency_sum=1.5,
        blocklog_dropped=7,
        blocklist_entries=2015,
        upstream_answering=True,
        detector_mode="block",
    )


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("blocklog") / "blocks.sqlite"
    fill(path, standard_events())
    return path


Factory = Callable[..., Any]


@pytest.fixture
async def make_client(db: Path) -> AsyncIterator[Factory]:
    clients: list[TestClient[Any, Any]] = []

    async def make(cfg: DashboardConfig | None = None, *, db_path: Path | None = None) -> Any:
        app = create_app(
            cfg or DashboardConfig(),
            db_path=db_path or db,
            stats=stats,
            feeds_status=feeds,
            version="9.8.7",
            clock=lambda: NOW,
        )
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()


async def get_json(client: Any, path: str, status: int = 200, **kw: Any) -> Any:
    resp = await client.get(path, **kw)
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    return await resp.json()


# --- API ----------------------------------------------------------------------------------------


async def test_summary(make_client: Factory) -> None:
    client = await make_client()
    s = await get_json(client, "/api/summary")
    assert s["day"] == "2026-03-10" and s["timezone"] == TZ
    assert s["total"] == TODAY_TOTAL
    # 130 blocks: from 40 (storm) up to 149; one machine calling a phishing site again and again.
    assert s["weather"] == "storm" and s["weather_label"] == "Orage"
    assert s["sentence"].startswith(f"Orage : {TODAY_TOTAL} menaces bloquées depuis minuit")
    kinds = {k["kind"]: k for k in s["kinds"]}
    assert kinds["feeds"]["total"] == 120 + 1 + 1 + len(HOSTILE_NAMES)
    assert kinds["exfiltration"]["total"] == 1 and kinds["lists"]["total"] == 1
    assert {c["category"]: c["count"] for c in kinds["feeds"]["categories"]} == {
        "phishing": 120,
        "malware": 2 + len(HOSTILE_NAMES),
    }
    assert s["highlight"]["client"] == "192.168.1.23"
    assert s["highlight_text"].startswith(
        "120 tentatives vers des sites d'hameçonnage depuis le poste 192.168.1.23"
    )
    assert s["top_clients"][0] == {
        "client": "192.168.1.23",
        "client_name": "",  # no name known: the address alone (tests/unit/test_client_names.py)
        "client_text": "192.168.1.23",
        "count": 120,
        "category": "phishing",
        "label": "hameçonnage",
    }
    assert [t["from"] for t in s["thresholds"]] == [0, 1, 10, 40, 150]
    assert s["losses"] == {"queue_dropped": 0, "write_failed": 0} and s["losses_text"] == ""
    en = await get_json(client, "/api/summary?lang=en")
    assert en["weather_label"] == "Storm" and "threats blocked" in en["sentence"]


async def test_summary_weather_follows_thresholds(make_client: Factory) -> None:
    cfg = DashboardConfig(thresholds=ThresholdsConfig(cloudy=1, rain=50, storm=100, tornado=130))
    client = await make_client(cfg)
    assert (await get_json(client, "/api/summary"))["weather"] == "tornado"


async def test_blocks_paging(make_client: Factory) -> None:
    client = await make_client(DashboardConfig(page_size=50, max_page_size=100))
    first = await get_json(client, "/api/blocks")
    assert first["total"] == TODAY_TOTAL and first["page"] == 1 and first["page_size"] == 50
    assert first["pages"] == 3 and len(first["items"]) == 50
    stamps = [i["ts"] for i in first["items"]]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    last = await get_json(client, "/api/blocks?page=3")
    assert len(last["items"]) == TODAY_TOTAL - 100
    ids = {
        i["id"]
        for p in (1, 2, 3)
        for i in (await get_json(client, f"/api/blocks?page={p}"))["items"]
    }
    assert len(ids) == TODAY_TOTAL  # pages neither overlap nor skip
    beyond = await get_json(client, "/api/blocks?page=99")
    assert beyond["items"] == [] and beyond["total"] == TODAY_TOTAL
    capped = await get_json(client, "/api/blocks?page_size=100000")
    assert capped["page_size"] == 100 and len(capped["items"]) == 100
    assert (await get_json(client, "/api/blocks?page=0"))["page"] == 1
    for bad in ("page=abc", "page=-1", "page_size=1e3", "days=x"):
        path = "/api/history?" + bad if bad.startswith("days") else "/api/blocks?" + bad
        await get_json(client, path, status=400)
    item = first["items"][0]
    assert set(item) >= {"time", "client", "qname", "category", "reason", "kind", "verdict"}


async def test_blocks_filters(make_client: Factory) -> None:
    client = await make_client()
    phishing = await get_json(client, "/api/blocks?category=phishing&page_size=500")
    assert phishing["total"] == 120
    assert {i["category"] for i in phishing["items"]} == {"phishing"}
    one = await get_json(client, "/api/blocks?client=192.168.1.55")
    assert one["total"] == 1 and one["items"][0]["kind"] == "exfiltration"
    both = await get_json(client, "/api/blocks?client=192.168.1.23&category=malware")
    assert both["total"] == 0 and both["items"] == []
    # Days are local: 00:30 Paris on the 10th is the 10th, 23:59 on the 9th is the 9th.
    early = await get_json(client, "/api/blocks?client=192.168.1.8")
    assert early["total"] == 1 and early["items"][0]["time"] == "00:30:00"
    yesterday = await get_json(client, "/api/blocks?day=2026-03-09")
    assert [i["qname"] for i in yesterday["items"]] == ["late.test"]
    assert (await get_json(client, "/api/blocks?day=2026-03-08"))["total"] == 45
    assert (await get_json(client, "/api/blocks?day=2025-01-01"))["total"] == 0
    for bad in ("2026-3-8", "2026-02-30", "yesterday", "2026-03-08T00:00"):
        await get_json(client, f"/api/blocks?day={bad}", status=400)
    await get_json(client, "/api/blocks?client=" + "x" * 300, status=400)
    # A filter value is bound as a parameter, never spliced into SQL.
    sneaky = await get_json(client, "/api/blocks?category=x' OR '1'='1")
    assert sneaky["total"] == 0


async def test_history(make_client: Factory) -> None:
    client = await make_client()
    h = await get_json(client, "/api/history?days=30")
    days = h["days"]
    assert len(days) == 30 and days[-1]["day"] == "2026-03-10" and days[0]["day"] == "2026-02-09"
    by_day = {d["day"]: d for d in days}
    assert by_day["2026-03-10"]["count"] == TODAY_TOTAL
    assert by_day["2026-03-09"] == {
        "day": "2026-03-09",
        "data": True,
        "count": 1,
        "bypass": 0,
        "weather": "cloudy",
        "icon": "cloudy",
        "weather_label": "Quelques nuages",
        "coverage": 1.0,
        "title": "2026-03-09 : Quelques nuages, 1",
        "label": "lun. 9",
        "day_of_month": "9",
    }
    assert by_day["2026-03-08"]["weather"] == "storm"
    # Before the block log's first day the box was not running: no data, never a sun.
    assert by_day["2026-03-07"]["weather"] == "nodata" and by_day["2026-03-07"]["count"] is None
    assert len((await get_json(client, "/api/history?days=100000"))["days"]) == 400
    assert len((await get_json(client, "/api/history"))["days"]) == 30


async def test_feeds(make_client: Factory) -> None:
    client = await make_client()
    f = {x["name"]: x for x in (await get_json(client, "/api/feeds"))["feeds"]}
    assert f["urlhaus"]["status"] == "ok" and f["urlhaus"]["age_seconds"] == 3600
    assert f["urlhaus"]["updated_text"] == "il y a 1 h"
    assert f["old"]["status"] == "stale"
    assert f["broken"]["status"] == "error" and f["broken"]["last_error"] == "HTTP 503"
    words = "erreur : le serveur de la liste a répondu par une erreur HTTP"
    assert f["broken"]["status_text"] == words
    assert f["new"]["status"] == "never" and f["new"]["age_seconds"] is None


async def test_feeds_without_a_feeds_module(db: Path) -> None:
    app = create_app(DashboardConfig(), db_path=db, clock=lambda: NOW)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert (await get_json(client, "/api/feeds")) == {"feeds": []}
        health = await get_json(client, "/api/health")
        assert health["ok"] is True and health["uptime_seconds"] == 0


async def test_health(make_client: Factory, tmp_path: Path) -> None:
    client = await make_client()
    health = await get_json(client, "/api/health")
    assert health["ok"] is True and health["db_readable"] is True
    assert health["version"] == "9.8.7" and health["uptime_seconds"] == 3 * 3600
    missing = await make_client(db_path=tmp_path / "absent.sqlite")
    health = await get_json(missing, "/api/health", status=503)
    assert health["ok"] is False and health["db_readable"] is False
    await get_json(missing, "/api/summary", status=503)
    await get_json(missing, "/api/blocks", status=503)
    assert not (tmp_path / "absent.sqlite").exists()  # read-only: never created
    page = await missing.get("/")
    assert page.status == 200
    text = await page.text()
    # Unreadable block log: the headline says so, under fog, and what to check.
    assert "Journal illisible : le journal des blocages ne peut pas être lu" in text
    assert 'src="/static/fog.svg"' in text and 'sunny.svg" id' not in text


async def test_losses_are_shown(make_client: Factory, tmp_path: Path) -> None:
    path = tmp_path / "lossy.sqlite"
    await asyncio.to_thread(
        fill,
        path,
        [
            event(paris(2026, 3, 10, 9, i), "10.0.0.1", "x.test", "feed:a", "malware")
            for i in range(5)
        ],
        queue_size=2,
    )
    client = await make_client(db_path=path)
    s = await get_json(client, "/api/summary")
    assert s["total"] == 2 and s["losses"] == {"queue_dropped": 3, "write_failed": 0}
    assert "3 blocages n'ont pas pu être enregistrés" in s["losses_text"]
    page = await (await client.get("/")).text()
    assert re.search(r'<p id="losses" class="losses">Attention : 3 blocages', page)


async def test_a_flood_of_identical_blocks_is_one_row_counted_in_full(
    make_client: Factory, tmp_path: Path
) -> None:
    # One machine asks the same phishing name 1,000 times within one write window: the block log
    # keeps one row with count 1,000, and every figure counts 1,000 blocks.
    path = tmp_path / "flood.sqlite"
    start = paris(2026, 3, 10, 10, 0)
    flood = [
        event(start + i / 1000, "192.168.1.66", "flood.test", "feed:openphish", "phishing")
        for i in range(1000)
    ]
    others = [
        event(start + 5, "192.168.1.66", "other.test", "feed:openphish", "phishing"),
        event(start + 6, "192.168.1.7", "flood.test", "feed:openphish", "phishing"),
        event(start + 7, "192.168.1.8", "m.test", "feed:urlhaus", "malware"),
    ]
    await asyncio.to_thread(fill, path, flood + others)
    client = await make_client(db_path=path)

    s = await get_json(client, "/api/summary")
    assert s["total"] == 1003 and s["weather"] == "tornado"
    assert s["sentence"].startswith("Tornade : 1003 menaces bloquées")
    assert {c["category"]: c["count"] for k in s["kinds"] for c in k["categories"]} == {
        "phishing": 1002,
        "malware": 1,
    }
    assert [(n["qname"], n["count"]) for n in s["top_names"]] == [
        ("flood.test", 1001),
        ("m.test", 1),
        ("other.test", 1),
    ]
    assert [(c["client"], c["count"]) for c in s["top_clients"]] == [
        ("192.168.1.66", 1001),
        ("192.168.1.7", 1),
        ("192.168.1.8", 1),
    ]
    assert s["highlight"]["client"] == "192.168.1.66" and s["highlight"]["count"] == 1001

    blocks = await get_json(client, "/api/blocks?page_size=2")
    # Pages are pages of rows; the total counts the blocks.
    assert (blocks["total"], blocks["rows"], blocks["pages"]) == (1003, 4, 2)
    assert blocks["page_text"] == "Page 1 sur 2 (1003 blocages)"
    every = (await get_json(client, "/api/blocks"))["items"]
    assert [(i["qname"], i["client"], i["count"], i["count_text"]) for i in every] == [
        ("m.test", "192.168.1.8", 1, ""),
        ("flood.test", "192.168.1.7", 1, ""),
        ("other.test", "192.168.1.66", 1, ""),
        ("flood.test", "192.168.1.66", 1000, "×1000"),
    ]
    assert every[-1]["time"] == "10:00:00"  # the first of the thousand
    only = await get_json(client, "/api/blocks?client=192.168.1.66&category=phishing")
    assert (only["total"], only["rows"]) == (1001, 2)

    history = {d["day"]: d for d in (await get_json(client, "/api/history?days=2"))["days"]}
    assert history["2026-03-10"]["count"] == 1003
    assert history["2026-03-10"]["weather"] == "tornado"

    page = await (await client.get("/")).text()
    assert (
        '<span class="qname" title="flood.test">flood.test</span> <span class="times" '
        'title="1000 requêtes identiques, comptées à partir de cette heure">×1000</span>'
    ) in page
    assert page.count('class="times"') == 1
    en = await (await client.get("/", params={"lang": "en"})).text()
    assert 'title="1000 identical queries, counted from this time">×1000</span>' in en

    metrics = await (await client.get("/metrics")).text()
    for line in (
        'parafoudre_blocks_today{category="phishing",kind="feeds"} 1002.0',
        'parafoudre_blocks_total{category="phishing"} 1002.0',
        "parafoudre_weather_level 4.0",
    ):
        assert line in metrics, line

    out = io.StringIO()
    assert run_report(path, 2026, "csv", out, DashboardConfig(), now=NOW) == 0
    march = {r[0]: r for r in csv.reader(io.StringIO(out.getvalue()))}
    header = march["month"]
    row = dict(zip(header, march["2026-03"], strict=True))
    assert (row["phishing"], row["malware"], row["total"], row["tornado"]) == (
        "1002",
        "1",
        "1003",
        "1",
    )


# --- /metrics -----------------------------------------------------------------------------------


async def test_metrics(make_client: Factory) -> None:
    client = await make_client()
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    text = await resp.text()
    expected = [
        'parafoudre_queries_total{verdict="blocked"} 12.0',
        'parafoudre_queries_total{verdict="cached"} 300.0',
        "parafoudre_cache_hit_ratio 0.75",
        'parafoudre_upstream_latency_seconds_bucket{le="0.005"} 5.0',
        'parafoudre_upstream_latency_seconds_bucket{le="0.025"} 35.0',
        'parafoudre_upstream_latency_seconds_bucket{le="5.0"} 40.0',
        'parafoudre_upstream_latency_seconds_bucket{le="+Inf"} 41.0',
        "parafoudre_upstream_latency_seconds_count 41.0",
        "parafoudre_upstream_latency_seconds_sum 1.5",
        'parafoudre_feed_age_seconds{feed="urlhaus"} 3600.0',
        'parafoudre_feed_failing{feed="broken"} 1.0',
        "parafoudre_blocklog_queue_dropped_total 7.0",
        'parafoudre_blocklog_lost_total{cause="queue_dropped"} 0.0',
        'parafoudre_blocks_today{category="phishing",kind="feeds"} 120.0',
        'parafoudre_blocks_today{category="exfiltration",kind="exfiltration"} 1.0',
        'parafoudre_blocks_total{category="malware"} ',
        "parafoudre_weather_level 3.0",
        'parafoudre_build_info{version="9.8.7"} 1.0',
        "parafoudre_uptime_seconds 10800.0",
    ]
    for line in expected:
        assert line in text, line
    assert 'parafoudre_feed_age_seconds{feed="new"}' not in text  # never downloaded: no age


async def test_metrics_without_resolver_or_block_log(tmp_path: Path) -> None:
    app = create_app(DashboardConfig(), db_path=tmp_path / "none.sqlite", clock=lambda: NOW)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        text = await (await client.get("/metrics")).text()
    assert "parafoudre_blocklog_readable 0.0" in text
    assert "parafoudre_queries_total" not in text


# --- access: token and allowed networks ------------------------------------------------------


async def test_token(make_client: Factory) -> None:
    client = await make_client(DashboardConfig(token=TOKEN))
    for path in ("/", "/api/summary", "/api/blocks", "/api/feeds", "/api/health", "/metrics"):
        resp = await client.get(path)
        assert resp.status == 401, path
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = await client.get(path, headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"})
        assert wrong.status == 401, path
        ok = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status == 200, path
        ok = await client.get(path, params={"token": TOKEN})
        assert ok.status == 200, path
    # Icons, CSS and the script hold no data.
    assert (await client.get("/static/app.js")).status == 200
    # The page's links keep the token so paging works.
    page = await (await client.get("/", params={"token": TOKEN})).text()
    assert f"token={TOKEN}" in page


async def test_allowed_networks_exclude_loopback(make_client: Factory) -> None:
    client = await make_client(DashboardConfig(allow=("192.168.0.0/16", "fd00::/8")))
    for path in ("/", "/api/summary", "/api/health", "/metrics", "/static/sunny.svg"):
        resp = await client.get(path)
        assert resp.status == 403, path
        assert "Content-Security-Policy" in resp.headers
    # Headers cannot talk the way in: the check is on the socket's address.
    spoofed = await client.get("/", headers={"X-Forwarded-For": "192.168.1.5"})
    assert spoofed.status == 403


async def test_allowed_networks_default_lets_loopback_in(make_client: Factory) -> None:
    client = await make_client()
    assert (await client.get("/")).status == 200


# --- the page: escaping, read-only, headers -------------------------------------------------


def assert_security_headers(headers: Any) -> None:
    csp = headers["Content-Security-Policy"]
    assert csp.startswith(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:"
    )
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"


async def test_page_escapes_hostile_names(make_client: Factory) -> None:
    client = await make_client(DashboardConfig(page_size=200, max_page_size=200))
    resp = await client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    assert_security_headers(resp.headers)
    page = await resp.text()
    # The only script is our own file; no inline script, style attribute or event handler.
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/app.js" defer>']
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"\son[a-z]+=", page)
    # <script>: shown as text.
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.evil.test" in page
    # Quotes cannot close an attribute (the full name is in a title="...").
    assert "onmouseover=" not in page.replace("onmouseover=&#39;", "")
    assert "&#34;onmouseover=&#39;alert(1)&#39;.quotes.test" in page
    # Control bytes made visible, none sent raw.
    assert "bell\\x07nul\\x00esc\\x1b[31m.ctl.test" in page
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", page)
    # Bidi override neutralised.
    assert "\u202e" not in page and "gpj\\u202eexe.bidi.test" in page
    # Non-ASCII shown as is, in UTF-8.
    assert UNICODE in page and resp.charset == "utf-8"
    # The 255-character name: cut to 80 in the cell, whole (escaped) in the tooltip.
    assert len(LONG) == 255
    assert f'title="{LONG}">{LONG[:79]}…</span>' in page


async def test_api_returns_hostile_names_as_json_strings(make_client: Factory) -> None:
    client = await make_client()
    resp = await client.get("/api/blocks", params={"client": "192.168.1.200"})
    assert_security_headers(resp.headers)
    raw = await resp.text()
    assert "<script>" in raw  # JSON string, not HTML: the page's script uses textContent
    assert "\x00" not in raw  # JSON escapes control characters
    items = (await resp.json())["items"]
    assert sorted(i["qname"] for i in items) == sorted(HOSTILE_NAMES)


async def test_page_in_english_and_paging_links(make_client: Factory) -> None:
    client = await make_client(DashboardConfig(page_size=50))
    page = await (await client.get("/", params={"lang": "en", "page": "2"})).text()
    assert '<html lang="en">' in page and "Storm:" in page
    assert "Page 2 of 3" in page
    assert 'href="?lang=en&amp;page=1"' in page and 'href="?lang=en&amp;page=3"' in page
    assert 'id="weather-icon"' in page and 'src="/static/storm.svg"' in page
    # Thresholds are documented on the page.
    assert "422,000" in page and "10 to 39 blocks" in page and "150 blocks or more" in page


async def test_page_is_read_only(make_client: Factory, db: Path) -> None:
    client = await make_client()
    before = (await asyncio.to_thread(db.stat)).st_mtime_ns
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/", "/api/blocks", "/metrics"):
            assert (await client.request(method, path)).status == 405
    assert (await asyncio.to_thread(db.stat)).st_mtime_ns == before


async def test_static_files(make_client: Factory) -> None:
    client = await make_client()
    for name in ("sunny", "cloudy", "rain", "storm", "tornado"):
        resp = await client.get(f"/static/{name}.svg")
        assert resp.status == 200 and resp.content_type == "image/svg+xml"
        body = await resp.text()
        assert "<script" not in body and "http://" not in body.replace(
            'xmlns="http://www.w3.org/2000/svg"', ""
        )
        assert_security_headers(resp.headers)
    css = await (await client.get("/static/app.css")).text()
    assert "@media print" in css and "@media (max-width" in css and "url(" not in css
    assert (await client.get("/static/../app.py")).status in (403, 404)


# --- start_dashboard --------------------------------------------------------------------------


async def test_start_dashboard_binds_listen(db: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = DashboardConfig(listen=f"127.0.0.1:{port}")
    runner = await start_dashboard(cfg, db_path=db, version="1", clock=lambda: NOW)
    try:
        async with (
            ClientSession(timeout=ClientTimeout(total=5)) as session,
            session.get(f"http://127.0.0.1:{port}/api/health") as resp,
        ):
            assert resp.status == 200
            assert (await resp.json())["version"] == "1"
        # The same address again: a clear error naming it.
        with pytest.raises(DashboardError, match=f"127.0.0.1:{port}"):
            await start_dashboard(cfg, db_path=db)
    finally:
        await runner.cleanup()


def test_html_escape_matches_the_page() -> None:
    assert h(HOSTILE) == "&lt;script&gt;alert(1)&lt;/script&gt;.evil.test"
    assert h(QUOTES, 255) == "&#34;onmouseover=&#39;alert(1)&#39;.quotes.test"


# --- the yearly report --------------------------------------------------------------------------


def test_report_csv(db: Path) -> None:
    out = io.StringIO()
    assert run_report(db, 2026, "csv", out, DashboardConfig(), now=NOW) == 0
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    header = rows[0]
    assert header == [
        "month",
        "exfiltration",
        "malware",
        "phishing",
        "scam",
        "total",
        "sunny",
        "cloudy",
        "rain",
        "storm",
        "tornado",
        "no_data",
    ]
    by_month = {r[0]: dict(zip(header, r, strict=True)) for r in rows[1:]}
    assert len(by_month) == 13
    jan, march, year = by_month["2026-01"], by_month["2026-03"], by_month["2026"]
    assert jan["no_data"] == "31" and jan["total"] == "0"
    # 8 March: 45 (storm); 9 March: 1 (cloudy); 10 March: 130 (storm); the rest of the month
    # has not happened yet on 10 March.
    assert march["total"] == str(45 + 1 + TODAY_TOTAL) and march["phishing"] == "120"
    assert (march["storm"], march["cloudy"], march["sunny"], march["no_data"]) == (
        "2",
        "1",
        "0",
        "7",
    )
    assert by_month["2026-04"]["total"] == "0" and by_month["2026-04"]["no_data"] == "0"
    assert year["total"] == march["total"] and year["no_data"] == str(31 + 28 + 7)


def test_report_markdown(db: Path) -> None:
    out = io.StringIO()
    assert run_report(db, 2026, "markdown", out, DashboardConfig(), now=NOW) == 0
    text = out.getvalue()
    assert text.startswith("# Parafoudre : bilan de l'année 2026")
    assert "| mois | fuite de données | logiciels malveillants | hameçonnage |" in text
    assert "| mars | 1 | " in text and "| **année** |" in text
    assert "orage dès 40" in text


def test_report_falls_back_to_daily_counts_after_retention(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    clock = [NOW]
    writer = BlockLogWriter(path, retention_days=30, clock=lambda: clock[0])
    writer.start()
    try:
        old = paris(2025, 6, 15, 12, 0)
        for i in range(12):
            writer.offer(event(old + i, "10.0.0.1", "x.test", "feed:a", "phishing"))
        assert writer.flush(timeout=10)
        clock[0] += 7200  # the next cycle runs retention: the June events go
        assert writer.flush(timeout=10)
    finally:
        writer.close()
    out = io.StringIO()
    assert run_report(path, 2025, "csv", out, DashboardConfig(), now=NOW) == 0
    rows = {r[0]: r for r in csv.reader(io.StringIO(out.getvalue()))}
    assert rows["month"] == ["month", "phishing", "total", *[w.value for w in Weather], "no_data"]
    # 12 blocks on 15 June (rain); 16-30 June sunny; 1-14 June before the log existed.
    assert rows["2025-06"][1:] == ["12", "12", "15", "0", "1", "0", "0", "14"]
    assert rows["2025-05"][-1] == "31"
    md = io.StringIO()
    assert run_report(path, 2025, "markdown", md, DashboardConfig(), now=NOW) == 0
    # Events past the retention: those days come from the daily counts, and the report says so.
    assert "200 jours comptés d'après les totaux quotidiens" in md.getvalue()


def test_report_errors(tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert run_report(tmp_path / "none.sqlite", 2026, "csv", out, DashboardConfig()) == 1
    assert "no block log at" in capsys.readouterr().err  # not SQLite's words
    assert run_report(db, 2026, "pdf", out, DashboardConfig()) == 2
    assert run_report(db, 12, "csv", out, DashboardConfig()) == 2
    assert out.getvalue() == ""


def test_report_defaults_to_the_current_year(db: Path) -> None:
    from resolver.cli import _parser

    assert _parser().parse_args(["report"]).year is None  # no argparse error without --year
    default, explicit = io.StringIO(), io.StringIO()
    assert run_report(db, None, "csv", default, DashboardConfig(), now=NOW) == 0
    assert run_report(db, 2026, "csv", explicit, DashboardConfig(), now=NOW) == 0
    assert default.getvalue() == explicit.getvalue() and "2026-03" in default.getvalue()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_report_counts_days_the_box_was_stopped_as_without_data(tmp_path: Path) -> None:
    # Installed on 2 March, stopped from the 4th to the 6th (included), running since the 7th;
    # no block at all: running days are sunny, the others have no data.
    db = tmp_path / "blocks.sqlite"
    runs = ((paris(2026, 3, 2, 9), paris(2026, 3, 3, 18)), (paris(2026, 3, 7, 8), NOW))
    for first, last in runs:
        clock = Clock(first)
        writer = BlockLogWriter(db, clock=clock)
        writer.start()
        clock.now = last
        writer.close()
    out = io.StringIO()
    assert run_report(db, 2026, "csv", out, DashboardConfig(), now=NOW) == 0
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    march = dict(zip(rows[0], rows[3], strict=True))
    # 1 March: before the install; 4, 5, 6: stopped. 2, 3 and 7 to 10: running, no block.
    assert (march["sunny"], march["no_data"]) == ("6", "4")


async def test_a_tunnel_outranks_list_blocks_and_reasons_are_words(tmp_path: Path) -> None:
    # The case: 12 malware blocks from one machine, 12 tunnel blocks from another.
    db = tmp_path / "blocks.sqlite"
    events = [
        event(paris(2026, 3, 10, 9, i), "192.168.1.30", f"m{i}.malware.test", "feed:urlhaus",
              "malware")
        for i in range(12)
    ] + [
        event(paris(2026, 3, 10, 10, i), "192.168.1.77", f"d{i}x9q.tunnel.test",
              "exfil:cooldown,names", "exfiltration")
        for i in range(12)
    ]  # fmt: skip
    events.append(BlockEvent(paris(2026, 3, 10, 11), "192.168.1.5", "ad.test", 28, "blocked",
                             "feed:urlhaus", "malware"))  # fmt: skip
    fill(db, events)
    app = create_app(DashboardConfig(), db_path=db, stats=stats, feeds_status=feeds,
                     clock=lambda: NOW)  # fmt: skip
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        s = await get_json(client, "/api/summary")
        assert s["highlight"]["client"] == "192.168.1.77"
        assert s["highlight"]["kind"] == "exfiltration"
        assert s["highlight_text"].startswith("12 tentatives de fuite de données par le DNS")
        items = (await get_json(client, "/api/blocks", params={"page_size": "100"}))["items"]
        tunnel = next(i for i in items if i["client"] == "192.168.1.77")
        assert tunnel["reason"] == "exfil:cooldown,names"
        assert tunnel["reason_text"] == (
            "fuite de données par DNS : noms trop variés (domaine mis en quarantaine)"
        )
        ad = next(i for i in items if i["client"] == "192.168.1.5")
        assert (ad["qtype"], ad["qtype_name"]) == (28, "AAAA")
        page = await (await client.get("/")).text()
        # Words in the cell, the raw signal in its tooltip; the type in its own column.
        assert (
            '<span class="reason" title="exfil:cooldown,names">fuite de données par DNS : '
            "noms trop variés (domaine mis en quarantaine)</span>"
        ) in page
        assert "<th>Type</th>" in page and "<td>AAAA</td>" in page


async def test_forbidden_and_unauthorized_pages_speak_french_too(make_client: Factory) -> None:
    client = await make_client(DashboardConfig(allow=("10.0.0.0/8",)))
    resp = await client.get("/")
    assert resp.status == 403
    body = await resp.text()
    assert "403 : cette adresse n'a pas accès au tableau de bord Parafoudre" in body
    assert "403: this address may not see the Parafoudre dashboard" in body
    client = await make_client(DashboardConfig(token=TOKEN))
    body = await (await client.get("/")).text()
    assert "un jeton valide est nécessaire" in body and "a valid token is needed" in body


async def test_hours_the_box_was_stopped_have_no_data(tmp_path: Path) -> None:
    # Running since yesterday, stopped from 10:00 to 12:30 today, running again since; one block
    # at 09:15. Today's strip: "nodata" for 10 and 11 (not even a minute of running), 12 has data.
    db = tmp_path / "blocks.sqlite"
    for first, last in (
        (paris(2026, 3, 9, 8), paris(2026, 3, 10, 10)),
        (paris(2026, 3, 10, 12, 30), NOW),
    ):
        clock = Clock(first)
        writer = BlockLogWriter(db, clock=clock)
        writer.start()
        if first < paris(2026, 3, 10, 10):
            writer.offer(
                event(paris(2026, 3, 10, 9, 15), "192.168.1.9", "x.test", "feed:u", "malware")
            )
            assert writer.flush(timeout=10)
        clock.now = last
        writer.close()
    app = create_app(DashboardConfig(), db_path=db, stats=stats, feeds_status=feeds,
                     clock=lambda: NOW)  # fmt: skip
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        s = await get_json(client, "/api/summary")
    hours = {h["hour"]: h for h in s["hours"]}
    assert len(hours) == 24
    assert [h for h, x in hours.items() if x["state"] == "nodata"] == ["10", "11"]
    assert hours["10"]["count"] is None and hours["10"]["title"].startswith("10 h : pas de donn")
    assert hours["09"]["count"] == 1 and hours["09"]["title"] == "09 h : 1 blocage"
    assert hours["12"]["state"] == "data" and hours["14"]["state"] == "data"
    # NOW is 15:00:00: the hours from 15 on have not begun.
    future = [h for h, x in hours.items() if x["state"] == "future"]
    assert future == [f"{h}" for h in range(15, 24)]
    assert s["running_since_text"] == "en service depuis 12:30"
