"""Issue 22 in headless Chromium: a fresh install whose feeds could not be downloaded shows fog
and what to do, never a sun, and "pas de données" before its first day; after a feeds update
(from a loopback server) the same page shows the sun.

The feeds' state comes from a real `feeds update` (first against a refused loopback port, then
against a served list) read through resolver/feeds_status.py; the block log is written by the
resolver's writer, as a box that started 11 seconds before the page is seen.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import re
import shutil
import socket
import zoneinfo
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from aiohttp import web

from dashboard.app import create_app
from feeds.update import EXIT_NOTHING, EXIT_OK, run_update
from resolver import blocklist_file
from resolver.blocklog.writer import BlockLogWriter
from resolver.config.dashboard import DashboardConfig
from resolver.config.feeds import FeedsConfig, FeedSource
from resolver.feeds_status import feeds_status
from resolver.stats import StatsSnapshot
from tests.integration.test_dashboard_browser import CHROMIUM, chromium

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it",
)

DATA = Path(__file__).resolve().parents[1] / "data" / "feeds"
# The box started at 15:42 on a March afternoon. A fixed clock, so a run near midnight cannot
# move the install to "yesterday"; the feeds' state keeps real times (ages are floored at 0).
NOW = dt.datetime(2026, 3, 10, 15, 42, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")).timestamp()


@dataclass(slots=True)
class Box:
    """What the page reads: the feeds' configuration and the resolver's counters, changeable."""

    feeds: FeedsConfig
    artifact: Path
    snapshot: StatsSnapshot
    url: str = ""


def refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/ransomware.hosts"


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    cfg = FeedsConfig(
        catalogue=(),
        sources=(FeedSource(name="ransom", url=refused_url(), format="hosts", category="malware"),),
        state_dir=str(tmp_path / "state"),
        retries=0,
    )
    db = tmp_path / "blocks.sqlite"
    writer = BlockLogWriter(db, clock=lambda: NOW)  # the box just started: its first run
    await asyncio.to_thread(writer.start)
    snapshot = StatsSnapshot(
        started_at=0.0,
        blocklist_entries=0,  # nothing compiled yet
        upstream_answering=False,  # no internet: the upstreams do not answer either
        detector_mode="block",
    )
    b = Box(cfg, tmp_path / "blocklist.pfb", snapshot)
    app = create_app(
        DashboardConfig(),
        db_path=db,
        stats=lambda: b.snapshot,
        feeds_status=lambda: feeds_status(b.feeds),
        version="test",
        clock=lambda: NOW + 11,  # the page is seen 11 s after the start, as in the issue
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    b.url = f"http://{host}:{port}/"
    try:
        yield b
    finally:
        await runner.cleanup()
        await asyncio.to_thread(writer.close)


def element(dom: str, element_id: str) -> str:
    """The opening tag and content of the element with ``element_id`` up to its closing tag."""
    start = dom.index(f'id="{element_id}"')
    tag = dom.rfind("<", 0, start)
    name = re.match(r"<(\w+)", dom[tag:])
    assert name is not None
    return dom[tag : dom.index(f"</{name.group(1)}>", start)]


async def test_fresh_install_shows_fog_then_sun_after_a_feeds_update(
    box: Box, tmp_path: Path
) -> None:
    err = io.StringIO()
    code = await run_update(
        box.feeds, artifact_path=box.artifact, out=io.StringIO(), interactive=False, err=err
    )
    assert code == EXIT_NOTHING and "refused the connection" in err.getvalue()

    dom = await chromium(box.url, tmp_path / "profile-fog", "--dump-dom")
    assert "data-refreshed=" in dom  # the script ran and redrew from the API
    hero = element(dom, "hero")
    assert 'data-weather="fog"' in hero and 'src="/static/fog.svg"' in hero
    assert "sunny" not in hero
    # The headline says it first, in plain French, with what to do and why it failed.
    headline = element(dom, "headline")
    assert (
        "Protection incomplète : les listes de menaces n'ont jamais été téléchargées — "
        "lancez <code>parafoudre feeds update</code>."
    ) in headline
    assert "Dernière tentative : le serveur de la liste refuse la connexion" in element(
        dom, "headline-detail"
    )
    assert "Service interrompu : aucun serveur DNS amont ne répond" in element(dom, "problems")
    assert "ce calme ne prouve rien" in element(dom, "weather-line")
    # The strips: no sun anywhere; the 29 days before the install have no data, today is fog.
    strip30, strip7 = element(dom, "strip30"), element(dom, "strip7")
    assert "sunny" not in strip30 and "sunny" not in strip7
    assert strip30.count('data-weather="nodata"') == 29
    assert strip30.count('data-weather="fog"') == 1
    assert strip7.count('data-weather="nodata"') == 6
    assert "pas de données" in strip30
    # Today hour by hour: no data before the start at 15:42, hours to come blank.
    hours = element(dom, "hours")
    assert hours.count('data-state="nodata"') == 15  # 00 h to 14 h
    assert hours.count('data-state="data"') == 1 and hours.count('data-state="future"') == 8
    assert "en service depuis 15:42" in element(dom, "since")
    assert 'data-check="feeds"' in dom and "check-off" in element(dom, "checks")
    # The feeds table says the same class in French.
    assert "erreur : le serveur de la liste refuse la connexion" in element(dom, "feeds")

    target = os.environ.get("PARAFOUDRE_SCREENSHOT_FOG")  # docs/screenshot-fog.png
    if target:
        shot = tmp_path / "fog.png"
        size = "--window-size=1280,1000"
        await chromium(box.url, tmp_path / "profile-shot", f"--screenshot={shot}", size)
        shutil.copyfile(shot, target)

    en = await chromium(box.url + "?lang=en", tmp_path / "profile-en", "--dump-dom")
    assert (
        "Protection incomplete: the threat lists have never been downloaded — run "
        "<code>parafoudre feeds update</code>."
    ) in element(en, "headline")

    # The internet is back: a feeds update from a (loopback) server, the resolver loads the list
    # and its upstreams answer again.
    body = (DATA / "ransomware.hosts.txt").read_bytes()

    async def hosts(_: web.Request) -> web.Response:
        return web.Response(body=body)

    served = web.Application()
    served.router.add_get("/ransomware.hosts", hosts)
    runner = web.AppRunner(served)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        source = replace(box.feeds.sources[0], url=f"http://127.0.0.1:{port}/ransomware.hosts")
        box.feeds = replace(box.feeds, sources=(source,))
        code = await run_update(
            box.feeds, artifact_path=box.artifact, out=io.StringIO(), interactive=False
        )
    finally:
        await runner.cleanup()
    assert code == EXIT_OK
    entries = len(blocklist_file.read(box.artifact))
    box.snapshot = replace(box.snapshot, blocklist_entries=entries, upstream_answering=True)

    dom = await chromium(box.url, tmp_path / "profile-sun", "--dump-dom")
    assert "data-refreshed=" in dom
    hero = element(dom, "hero")
    assert 'data-weather="sunny"' in hero and 'src="/static/sunny.svg"' in hero
    assert "Grand soleil : aucune menace bloquée depuis minuit." in element(dom, "headline")
    assert element(dom, "weather-line").startswith('<p id="weather-line" class="weather-line" ')
    assert "hidden" in element(dom, "weather-line").split(">", 1)[0]
    strip30 = element(dom, "strip30")
    # Still no data before the install; today, protected and without blocks: the sun.
    assert strip30.count('data-weather="nodata"') == 29
    assert strip30.count('data-weather="sunny"') == 1
    assert "check-off" not in element(dom, "checks")
