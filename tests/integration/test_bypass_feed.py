"""The "bypass" category of the feed catalogue (issue 21.2), from a local excerpt: no download.

The catalogue's ``ut1-doh`` feed is pointed at tests/data/feeds/ut1_doh_domains.excerpt.txt
(its URL overridden, everything else from the catalogue), compiled by the real updater and
served by a real box: public resolvers are blocked for the box's clients with category "bypass",
so the page counts and names them like the canaries.
"""

from __future__ import annotations

import asyncio
import io
import sqlite3
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode

from feeds.sources import CATALOGUE, catalogue_by_name, resolve_sources
from feeds.update import EXIT_OK, run_update
from resolver.config import Config
from resolver.config.feeds import FeedsConfig, FeedSource
from resolver.config.loader import load_file
from tests.conftest import FakeUpstream, make_config, running

REPO = Path(__file__).resolve().parents[2]
EXCERPT = REPO / "tests" / "data" / "feeds" / "ut1_doh_domains.excerpt.txt"
WAIT = 3.0


def test_bypass_feeds_in_the_catalogue_with_their_licence() -> None:
    bypass = {c.name: c for c in CATALOGUE if c.category == "bypass"}
    assert set(bypass) == {"ut1-doh", "ut1-vpn", "hagezi-doh", "hagezi-bypass"}
    assert bypass["ut1-doh"].licence == "CC BY-SA 4.0"
    assert bypass["hagezi-bypass"].licence == "GPL-3.0"
    # Off for the administration: the default set has none...
    assert not set(FeedsConfig().catalogue) & set(bypass)
    # ...on in the public-network example.
    public = load_file(REPO / "deploy" / "parafoudre.public-wifi.example.yaml", Config)
    assert {"ut1-doh", "ut1-vpn"} <= set(public.feeds.catalogue)
    lan = load_file(REPO / "deploy" / "parafoudre.example.yaml", Config)
    assert not set(lan.feeds.catalogue) & set(bypass)
    feeds = {f.name: f for f in resolve_sources(public.feeds)}
    assert feeds["ut1-doh"].category == "bypass" and feeds["ut1-doh"].licence == "CC BY-SA 4.0"


async def test_public_resolvers_blocked_as_bypass(tmp_path: Path, upstream: FakeUpstream) -> None:
    assert catalogue_by_name()["ut1-doh"].category == "bypass"
    compiled = tmp_path / "blocklist.pfb"
    fcfg = FeedsConfig(
        catalogue=("ut1-doh",),
        sources=(FeedSource(name="ut1-doh", url=str(EXCERPT)),),
        state_dir=str(tmp_path / "feeds"),
    )
    out, err = io.StringIO(), io.StringIO()
    code = await run_update(fcfg, artifact_path=compiled, out=out, interactive=False, err=err)
    assert code == EXIT_OK, out.getvalue() + err.getvalue()
    upstream.add("dns.alekberg.net. 300 IN A 192.0.2.53")
    upstream.add("cloudflare-dns.com. 300 IN A 192.0.2.54")
    cfg = make_config(tmp_path, upstream.port, f"blocking: {{compiled: {compiled}}}")
    async with running(cfg) as app:
        port = app.bound[0][1]

        async def ask(name: str) -> dns.message.Message:
            q = dns.message.make_query(name, "A")
            return await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=WAIT)

        for name in ("dns.alekberg.net", "doh.dns-family.adguard.com", "commons.host"):
            assert (await ask(name)).rcode() == dns.rcode.NXDOMAIN, name
        # The never-block list keeps the best-known resolver names (cloudflare-dns.com,
        # dns.google, dns.quad9.net...) out of every feed: they still resolve (README).
        assert (await ask("cloudflare-dns.com")).rcode() == dns.rcode.NOERROR
    rows: list[tuple[str, str, str]] = []
    for _ in range(int(WAIT / 0.05)):
        with sqlite3.connect(cfg.blocklog_path()) as conn:
            rows = conn.execute(
                "SELECT qname, reason, category FROM blocks ORDER BY qname"
            ).fetchall()
        if len(rows) == 3:
            break
        await asyncio.sleep(0.05)
    assert rows == [
        ("commons.host", "feed:ut1-doh", "bypass"),
        ("dns.alekberg.net", "feed:ut1-doh", "bypass"),
        ("doh.dns-family.adguard.com", "feed:ut1-doh", "bypass"),
    ]
