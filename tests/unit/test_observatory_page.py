"""The observatory page at 1,000 communes: the table in pages, the map whole, the rendered page
kept a few seconds for the next viewers and rendered once for viewers arriving together."""

from __future__ import annotations

import asyncio
import datetime as dt

import jinja2
import pytest

from dashboard.weather import Weather
from observatory import page
from observatory.app import TEMPLATES_DIR, CommuneRow, Overview
from observatory.config import BoxConfig, ObservatoryServerConfig, hash_token
from observatory.pagecache import PageCache
from resolver.config.errors import ConfigError
from resolver.config.loader import load_text

TODAY = dt.date(2026, 12, 6)


def overview(n: int) -> tuple[Overview, ObservatoryServerConfig]:
    boxes = tuple(
        BoxConfig(
            name=f"Commune {i}",
            insee=f"42{i:03d}",
            token_sha256=hash_token(f"token-{i:04d}-0123456789"),
            latitude=45.2 + (i % 20) * 0.04,
            longitude=3.9 + (i // 20) * 0.01,
        )
        for i in range(n)
    )
    rows = tuple(
        CommuneRow(
            b.insee,
            b.name,
            n - i,  # already in the page's order: most blocks first
            Weather.STORM if i < 10 else Weather.SUNNY,
            None,
            False,
            b.latitude,
            b.longitude,
            month=100 + i,
            year=1000 + i,
            days=(1,) * 30,
        )
        for i, b in enumerate(boxes)
    )
    cfg = ObservatoryServerConfig(boxes=boxes, departement="42")
    return Overview(0.0, TODAY, rows, (), ()), cfg


def render(ctx: dict[str, object]) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("page.html.j2").render(ctx)


def test_table_in_pages_map_whole() -> None:
    data, cfg = overview(250)
    ctx = page.context(data, cfg, "en", 3)
    # The table's third page: communes 201 to 250, each with its month, year and strip.
    assert [c["name"] for c in ctx["communes"]] == [f"Commune {i}" for i in range(200, 250)]
    assert ctx["communes"][0]["year"] == "1,200" and ctx["communes"][0]["strip"][0]
    assert ctx["shown"].startswith("Communes 201 to 250 of 250")
    assert [(p["href"], p["current"]) for p in ctx["page_links"]] == [
        ("/en/", False),
        ("/en/?page=2", False),
        ("/en/?page=3", True),
    ]
    # The map: every commune, the storms drawn last (on top), each colour said once.
    groups = ctx["map"].groups
    assert [(g.weather, len(g.markers)) for g in groups] == [("sunny", 240), ("storm", 10)]
    html = render(ctx)
    assert html.count("</title></circle>") == 250
    storm = page.COLOURS[Weather.STORM]
    assert f'<g class="storm" fill="{storm}">' in html
    assert html.count(f'fill="{storm}"') == 2  # its group and the legend, not each dot
    assert html.count('<svg class="strip"') == 50
    assert '<a href="/en/?page=2#weather">2</a>' in html
    # A page beyond the last shows the last; French links go to /.
    assert page.context(data, cfg, "fr", 9)["communes"][-1]["name"] == "Commune 249"
    assert page.context(data, cfg, "fr", 1)["page_links"][1]["href"] == "/?page=2"


def test_a_departement_fits_one_page_without_links() -> None:
    data, cfg = overview(92)
    ctx = page.context(data, cfg, "fr")
    assert len(ctx["communes"]) == 92 and ctx["page_links"] == [] and ctx["shown"] == ""
    assert '<nav class="pages"' not in render(ctx)


def test_page_size_and_cache_are_checked() -> None:
    for bad in ("page_size: 5", "page_cache: -1"):
        with pytest.raises(ConfigError):
            load_text(bad + "\n", ObservatoryServerConfig)
    cfg = ObservatoryServerConfig()
    assert (cfg.page_size, cfg.page_cache) == (100, 5)


async def test_page_kept_for_its_seconds_then_rendered_again() -> None:
    now = [100.0]
    cache: PageCache[str] = PageCache(5, clock=lambda: now[0])
    calls = 0

    async def build() -> str:
        nonlocal calls
        calls += 1
        return f"page {calls}"

    assert await cache.get("fr", build) == "page 1"
    now[0] += 4.9
    assert await cache.get("fr", build) == "page 1"
    assert await cache.get("en", build) == "page 2"  # by language
    now[0] += 0.2  # 5.1 s after the first rendering started
    assert await cache.get("fr", build) == "page 3"
    now[0] += 4.85  # the English page's time is over, not yet the new French one's
    assert await cache.get(("fr", 2), build) == "page 4"
    assert set(cache._entries) == {"fr", ("fr", 2)}  # the stale English page is not held


async def test_viewers_arriving_together_share_one_rendering() -> None:
    cache: PageCache[str] = PageCache(0)  # even with nothing kept
    started = 0
    release = asyncio.Event()

    async def build() -> str:
        nonlocal started
        started += 1
        await release.wait()
        return "page"

    viewers = [asyncio.ensure_future(cache.get("fr", build)) for _ in range(10)]
    await asyncio.sleep(0)
    viewers[0].cancel()  # one goes away: the others still get the page
    release.set()
    done = await asyncio.gather(*viewers, return_exceptions=True)
    assert started == 1
    assert done[1:] == ["page"] * 9 and isinstance(done[0], asyncio.CancelledError)
    # Nothing kept with 0 seconds: the next viewer gets a new rendering.
    assert await cache.get("fr", build) == "page" and started == 2
