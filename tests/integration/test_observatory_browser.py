"""The observatory's map in a real browser: headless Chromium draws the Loire's outline with three
communes, each dot in its weather's colour where its coordinates put it, named on hover; the
page has no script, escapes a hostile name, and exists in French and English.

Set PARAFOUDRE_SCREENSHOT_OBSERVATORY=docs/screenshot-observatory.png to keep a screenshot.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import struct
import uuid
import zlib
import zoneinfo
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dashboard.weather import Weather
from observatory import francemap, page
from observatory.app import CommuneRow
from observatory.config import ObservatoryServerConfig, hash_token
from observatory.server import RunningObservatory, start_observatory
from observatory.store import Event
from resolver.config.loader import load_text
from tests.chromium import CHROMIUM, run_headless

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it",
)
TZ = "Europe/Paris"
NOW = dt.datetime.combine(
    dt.datetime.now(zoneinfo.ZoneInfo(TZ)).date(), dt.time(12), zoneinfo.ZoneInfo(TZ)
).timestamp()
TODAY = dt.datetime.fromtimestamp(NOW, zoneinfo.ZoneInfo(TZ)).date()
HOSTILE = "Saint-<b>Just</b>"
# name, INSEE code, latitude, longitude, blocks today -> weather (default thresholds)
COMMUNES = (
    ("Roanne", "42187", 46.036, 4.068, 3, Weather.CLOUDY),
    (HOSTILE, "42279", 45.498, 4.241, 12, Weather.RAIN),
    ("Saint-Étienne", "42218", 45.434, 4.390, 45, Weather.STORM),
)


def config(tmp_path: Path) -> ObservatoryServerConfig:
    boxes = "".join(
        f"  - name: '{name}'\n    insee: '{insee}'\n"
        f"    token_sha256: {hash_token(f'token-{insee}-0123456789')}\n"
        f"    latitude: {lat}\n    longitude: {lon}\n"
        for name, insee, lat, lon, _n, _w in COMMUNES
    )
    return load_text(
        f"listen: 127.0.0.1:0\ndatabase: sqlite:///{tmp_path}/obs.sqlite\ntimezone: {TZ}\n"
        f"allow: [127.0.0.0/8]\ncontroller: Département de la Loire\nboxes:\n{boxes}",
        ObservatoryServerConfig,
    )


@pytest.fixture
async def observatory(tmp_path: Path) -> AsyncIterator[RunningObservatory]:
    running = await start_observatory(config(tmp_path), clock=lambda: NOW)
    try:
        for _name, insee, _lat, _lon, n, _w in COMMUNES:
            event = Event(NOW, TODAY, "malware", "feed:x", "blocked", "evil.test", 1, "c0", n)
            await running.store.insert_batch(
                batch_id=str(uuid.uuid4()), insee=insee, received=NOW, events=[event]
            )
        yield running
    finally:
        await running.stop()


async def chromium(url: str, profile: Path, *args: str) -> bytes:
    """Headless Chromium on ``url``; its stdout (tests/chromium.py)."""
    return await run_headless(url, profile, "--force-device-scale-factor=1", *args, budget_ms=2000)


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGBA or RGB bytes) of an 8-bit, non-interlaced PNG (RFC 2083)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0
    bpp = 4 if colour == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return width, bpp, rows


def colour_at(png: tuple[int, int, list[bytes]], x: int, y: int) -> tuple[int, int, int]:
    _width, bpp, rows = png
    px = rows[y][x * bpp : x * bpp + 3]
    return px[0], px[1], px[2]


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)


async def test_map_shows_three_communes_coloured_by_weather(
    observatory: RunningObservatory, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{observatory.port}"
    cfg = config(tmp_path)

    # The page as the browser builds it: the outline, three dots named on hover, no script.
    dom = (await chromium(base + "/", tmp_path / "p1", "--dump-dom")).decode()
    assert dom.count('<path class="departement"') == 1
    assert dom.count("</title></circle>") == 3  # three dots, each named on hover
    for _name, _insee, _lat, _lon, n, _weather in COMMUNES:
        assert f"{n} blocage(s) aujourd'hui" in dom
    assert "<title>Saint-Étienne : Orage, 45 blocage(s) aujourd'hui</title>" in dom
    assert "Saint-&lt;b&gt;Just&lt;/b&gt; : Pluie" in dom and "<b>Just</b>" not in dom
    assert "<script" not in dom
    assert "Vie privée" in dom and "Département de la Loire" in dom
    assert "CC BY 4.0" in dom
    english = (await chromium(base + "/en/", tmp_path / "p2", "--dump-dom")).decode()
    assert '<html lang="en">' in english
    assert "<title>Saint-Étienne: Storm, 45 block(s) today</title>" in english
    assert "Privacy" in english and "Last 30 days" in english

    # The map as the browser draws it: each commune's dot in its weather's colour, where its
    # coordinates put it on the Loire's outline.
    # The frame depends on the outline and the coordinates only: the server's, computed here.
    rows = tuple(
        CommuneRow(insee, name, n, weather, NOW, False, lat, lon)
        for name, insee, lat, lon, n, weather in COMMUNES
    )
    view = page.map_view(rows, cfg, "fr")
    shot = tmp_path / "map.png"
    await chromium(
        base + "/map.svg",
        tmp_path / "p3",
        f"--screenshot={shot}",
        f"--window-size={view.width},{view.height}",
    )
    png = read_png(shot)
    vx, vy, vw, _vh = (float(v) for v in view.view_box.split())
    scale = view.width / vw
    for _name, _insee, lat, lon, _n, weather in COMMUNES:
        x, y = francemap.project(lat, lon)
        px, py = round((x - vx) * scale), round((y - vy) * scale)
        got = colour_at(png, px, py)
        want = rgb(page.COLOURS[weather])
        assert all(abs(g - w) <= 8 for g, w in zip(got, want, strict=True)), (weather, got)
    # Between the dots, inside the département: the outline's fill, not the page's white.
    inside = francemap.project(45.75, 4.0)
    got = colour_at(png, round((inside[0] - vx) * scale), round((inside[1] - vy) * scale))
    assert all(abs(g - w) <= 8 for g, w in zip(got, rgb("#eef3f7"), strict=True)), got

    full = tmp_path / "observatory.png"
    await chromium(base + "/", tmp_path / "p4", f"--screenshot={full}", "--window-size=1300,1500")
    assert full.stat().st_size > 20_000
    target = os.environ.get("PARAFOUDRE_SCREENSHOT_OBSERVATORY")
    if target:
        shutil.copyfile(full, target)
