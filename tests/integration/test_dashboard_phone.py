"""The page on a phone (issue 16.5): in headless Chromium at phone widths, nothing but the
tables' own scroll boxes is wider than the screen; the 30-day strip and the hours fit whole."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import web

from dashboard.app import create_app
from resolver.config.dashboard import DashboardConfig
from tests.integration.cdp import CHROMIUM, chromium_page
from tests.integration.test_dashboard_browser import NOW, feeds, fill, realistic_events, stats

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")

MEASURE = """JSON.stringify({
  page: document.documentElement.scrollWidth,
  screen: window.innerWidth,
  strips: ["strip30", "strip7", "hours"].map(id => {
    const e = document.getElementById(id);
    return [id, e.scrollWidth, e.clientWidth, e.getBoundingClientRect().right];
  }),
  cells: document.querySelectorAll("#strip30 li").length,
})"""


async def test_the_month_strip_fits_a_phone_screen(tmp_path: Path) -> None:
    db = tmp_path / "blocks.sqlite"
    await asyncio.to_thread(fill, db, realistic_events())
    app = create_app(
        DashboardConfig(), db_path=db, stats=stats, feeds_status=feeds, clock=lambda: NOW
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    try:
        async with chromium_page(tmp_path / "profile") as page:
            for width in (320, 360, 390):
                await page.send(
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=800,
                    deviceScaleFactor=2,
                    mobile=True,
                )
                await page.goto(url)
                await page.wait_for("document.body.dataset.refreshed")
                m = json.loads(await page.evaluate(MEASURE))
                assert m["page"] <= m["screen"] == width, m  # no sideways scroll of the page
                assert m["cells"] == 30
                for name, scroll, client, right in m["strips"]:
                    assert scroll <= client and right <= width, (width, name, m)
    finally:
        await runner.cleanup()
