"""End to end in headless Chromium: the page served by a real aiohttp server on 127.0.0.1, its
script run, the right weather icon shown, a hostile name shown as text, and a screenshot saved.

Set PARAFOUDRE_SCREENSHOT=docs/screenshot-weather.png to refresh the README's screenshot.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import os
import shutil
import zoneinfo
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from aiohttp import web

from dashboard.app import FeedStatusRow, create_app
from resolver.blocklog.writer import BlockEvent
from resolver.config.dashboard import DashboardConfig
from resolver.stats import StatsSnapshot
from tests.blocklog import Clock, write_events
from tests.chromium import CHROMIUM, run_headless

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it",
)

TZ = "Europe/Paris"
# A Tuesday afternoon in March, the day's weather a little rain.
NOW = dt.datetime(2026, 3, 10, 15, 42, tzinfo=zoneinfo.ZoneInfo(TZ)).timestamp()
HOSTILE = "<script>alert(1)</script>.evil.test"


def at(days_ago: int, hour: int, minute: int) -> float:
    day = dt.datetime.fromtimestamp(NOW, zoneinfo.ZoneInfo(TZ)).date() - dt.timedelta(days_ago)
    return dt.datetime(
        day.year, day.month, day.day, hour, minute, tzinfo=zoneinfo.ZoneInfo(TZ)
    ).timestamp()


def realistic_events() -> list[BlockEvent]:
    """A commune's month: mostly quiet days, one stormy one; today an infected-looking machine."""
    events: list[BlockEvent] = []

    def add(ts: float, client: str, qname: str, reason: str, category: str, qtype: int = 1) -> None:
        verdict = "exfiltration" if reason.startswith("exfil:") else "blocked"
        events.append(BlockEvent(ts, client, qname, qtype, verdict, reason, category))

    # Today: the accounting PC clicked a phishing mail, a few malware ads elsewhere.
    for minute in (2, 3, 5, 9, 14):
        add(
            at(0, 9, minute),
            "192.168.1.23",
            "ameli-remboursement.fr-secure.info",
            "feed:openphish",
            "phishing",
        )
    add(at(0, 10, 31), "192.168.1.23", "connexion-impots-gouv.com", "feed:openphish", "phishing")
    add(at(0, 8, 47), "192.168.1.40", "cdn.malvertising.example", "feed:urlhaus", "malware")
    add(at(0, 11, 5), "192.168.1.12", "update-flashplayer.win", "feed:urlhaus", "malware")
    add(at(0, 13, 58), "192.168.1.31", "dl.fake-invoice.biz", "feed:urlhaus", "malware")
    add(at(0, 14, 20), "192.168.1.31", "beacon.c2-panel.net", "feed:threatfox", "c2")
    add(at(0, 12, 12), "192.168.1.7", "casino-bonus.example", "list:local", "scam")
    add(
        at(0, 15, 1),
        "192.168.1.55",
        "a9f3c0e1b2d4.x7k2q.tunnel.example",
        "exfil:entropy",
        "exfiltration",
        16,
    )
    add(at(0, 15, 30), "192.168.1.200", HOSTILE, "feed:urlhaus", "malware")
    # The last 29 days: a pattern of sunny, cloudy and rainy days, one storm last week.
    pattern = [
        0,
        2,
        1,
        4,
        0,
        0,
        3,
        12,
        2,
        1,
        0,
        5,
        45,
        8,
        3,
        0,
        0,
        2,
        6,
        1,
        0,
        11,
        3,
        2,
        0,
        0,
        4,
        1,
        2,
    ]
    for days_ago, count in enumerate(pattern, start=1):
        for i in range(count):
            client = f"192.168.1.{20 + i % 7}"
            add(
                at(days_ago, 8 + i % 10, (7 * i) % 60),
                client,
                f"site{i}.bad.example",
                "feed:urlhaus",
                "malware",
            )
    return events


def fill(db: Path, events: Sequence[BlockEvent]) -> None:
    """The block log of a box installed 35 days ago and running since (its run recorded)."""
    write_events(db, events, Clock(NOW - 35 * 86400), then=NOW)


def feeds() -> list[FeedStatusRow]:
    return [
        FeedStatusRow("urlhaus", "malware", 2_341, NOW - 2 * 3600, ""),
        FeedStatusRow("openphish", "phishing", 1_187, NOW - 3 * 3600, ""),
        FeedStatusRow("threatfox", "c2", 12_904, NOW - 80 * 3600, "HTTP 503"),
    ]


def stats() -> StatsSnapshot:
    return StatsSnapshot(
        started_at=NOW - 12 * 86400 - 5 * 3600,
        blocklist_entries=16_432,
        upstream_answering=True,
        detector_mode="block",
    )


@pytest.fixture
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    db = tmp_path / "blocks.sqlite"
    await asyncio.to_thread(fill, db, realistic_events())
    app = create_app(
        DashboardConfig(),
        db_path=db,
        stats=stats,
        feeds_status=feeds,
        version="0.1.0",
        clock=lambda: NOW,
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/"
    finally:
        await runner.cleanup()


async def chromium(url: str, profile: Path, *args: str) -> str:
    """Run headless Chromium on ``url``; its stdout (tests/chromium.py)."""
    return (await run_headless(url, profile, *args)).decode()


async def test_page_in_chromium(base_url: str, tmp_path: Path) -> None:
    dom = await chromium(base_url, tmp_path / "profile-dom", "--dump-dom")
    # The script ran (it stamps the body after its first refresh from the API).
    assert "data-refreshed=" in dom
    # 13 blocks today with default thresholds (rain from 10): the rain icon, large, at the top.
    assert 'id="weather-icon"' in dom
    icon_tag = dom[dom.index("<img", dom.index('id="hero"')) :].split(">", 1)[0]
    assert 'src="/static/rain.svg"' in icon_tag
    assert "13 menaces bloquées depuis minuit" in dom
    assert "6 tentatives vers des sites d'hameçonnage depuis le poste 192.168.1.23" in dom
    # The five identical phishing blocks are one row, "×5" after the name (drawn by the script
    # at its refresh, as by the server).
    assert (
        '<span class="times" title="5 requêtes identiques, comptées à partir de cette heure">'
        "×5</span>"
    ) in dom
    # The hostile name is text: escaped in the DOM, never an element.
    assert html.escape(HOSTILE, quote=False) in dom
    assert "<script>alert(1)</script>" not in dom
    assert dom.count("<script") == 1  # only our app.js

    shot = tmp_path / "screenshot-weather.png"
    await chromium(
        base_url, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1200,1800"
    )
    assert shot.stat().st_size > 10_000
    target = os.environ.get("PARAFOUDRE_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)


async def test_phone_width_in_chromium(base_url: str, tmp_path: Path) -> None:
    shot = tmp_path / "phone.png"
    await chromium(
        base_url, tmp_path / "profile-phone", f"--screenshot={shot}", "--window-size=390,1400"
    )
    assert shot.stat().st_size > 5_000
    target = os.environ.get("PARAFOUDRE_SCREENSHOT_PHONE")
    if target:
        shutil.copyfile(shot, target)
