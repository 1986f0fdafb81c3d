"""The "bypass" category of the feed catalogue (issue 21.2), from a local excerpt: no download.

The catalogue's ``ut1-doh`` feed is pointed at tests/data/feeds/ut1_doh_domains.excerpt.txt
(its URL overridden, everything else from the catalogue), compiled by the real updater and
served by a real box: public resolvers are blocked for the box's clients with category "bypass",
so the page counts and names them like the canaries. The never-block list's public resolvers
(tagged ``resolver``: cloudflare-dns.com, dns.google...) are kept from threat feeds only; a bypass
feed blocks them, unless one is a configured upstream.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sqlite3
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from feeds.never_block import load_public_resolvers, upstream_names
from feeds.sources import CATALOGUE, catalogue_by_name, resolve_sources
from feeds.update import EXIT_OK, run_update
from resolver import blocklist_file
from resolver.config import Config
from resolver.config.feeds import FeedsConfig, FeedSource
from resolver.config.loader import load_file
from resolver.config.upstream_spec import parse_upstream
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


def ut1_doh(tmp_path: Path, *, category: str = "bypass") -> FeedsConfig:
    """The catalogue's ut1-doh feed read from the excerpt (as another category if asked)."""
    return FeedsConfig(
        catalogue=() if category != "bypass" else ("ut1-doh",),
        sources=(
            FeedSource(name="ut1-doh", url=str(EXCERPT))
            if category == "bypass"
            else FeedSource(
                name="doh-as-threat", url=str(EXCERPT), format="domains", match="subtree",
                category=category,
            ),
        ),
        state_dir=str(tmp_path / "feeds"),
    )  # fmt: skip


async def compile_feeds(
    fcfg: FeedsConfig, path: Path, upstreams: frozenset[str] = frozenset()
) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = await run_update(
        fcfg, artifact_path=path, out=out, interactive=False, err=err, upstreams=upstreams
    )
    assert code == EXIT_OK, out.getvalue() + err.getvalue()


def test_the_public_resolvers_of_the_never_block_list() -> None:
    resolvers = load_public_resolvers()
    assert {"cloudflare-dns.com", "dns.google", "dns.quad9.net", "dns0.eu"} <= resolvers
    # Feed hosts and public services stay protected from every feed.
    assert not {"raw.githubusercontent.com", "impots.gouv.fr", "github.com"} & resolvers
    names = upstream_names(
        parse_upstream(s)
        for s in (
            "9.9.9.9",
            "tls://9.9.9.9#dns.quad9.net",
            "https://cloudflare-dns.com/dns-query",
            "https://dns.google/dns-query#8.8.8.8",
            "https://[2620:fe::fe]/dns-query",
        )
    )
    assert names == {"dns.quad9.net", "cloudflare-dns.com", "dns.google"}


async def test_public_resolvers_blocked_as_bypass(tmp_path: Path, upstream: FakeUpstream) -> None:
    assert catalogue_by_name()["ut1-doh"].category == "bypass"
    compiled = tmp_path / "blocklist.pfb"
    await compile_feeds(ut1_doh(tmp_path), compiled)
    upstream.add("dns.alekberg.net. 300 IN A 192.0.2.53")
    upstream.add("cloudflare-dns.com. 300 IN A 192.0.2.54")
    upstream.add("example.test. 300 IN A 192.0.2.55")
    cfg = make_config(tmp_path, upstream.port, f"blocking: {{compiled: {compiled}}}")
    async with running(cfg) as app:
        port = app.bound[0][1]

        async def ask(name: str) -> dns.message.Message:
            q = dns.message.make_query(name, "A")
            return await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=WAIT)

        # The biggest DoH providers too: the never-block list keeps public resolvers' names
        # (tagged "resolver") from threat feeds only; the box reaches its upstreams by address.
        blocked = (
            "dns.alekberg.net",
            "doh.dns-family.adguard.com",
            "commons.host",
            "cloudflare-dns.com",
            "mozilla.cloudflare-dns.com",  # Firefox's default DoH endpoint
            "dns.adguard-dns.com",  # under the feed's adguard-dns.com
        )
        for name in blocked:
            assert (await ask(name)).rcode() == dns.rcode.NXDOMAIN, name
        assert (await ask("example.test")).rcode() == dns.rcode.NOERROR
    rows: list[tuple[str, str, str]] = []
    for _ in range(int(WAIT / 0.05)):
        with sqlite3.connect(cfg.blocklog_path()) as conn:
            rows = conn.execute(
                "SELECT qname, reason, category FROM blocks ORDER BY qname"
            ).fetchall()
        if len(rows) == len(blocked):
            break
        await asyncio.sleep(0.05)
    assert rows == [(name, "feed:ut1-doh", "bypass") for name in sorted(blocked)]


async def test_a_threat_feed_still_cannot_block_them(tmp_path: Path) -> None:
    """The same list as a malware feed: the public resolvers stay protected (never-block)."""
    compiled = tmp_path / "blocklist.pfb"
    await compile_feeds(ut1_doh(tmp_path, category="malware"), compiled)
    bl = blocklist_file.read(compiled)
    for name in ("cloudflare-dns.com", "mozilla.cloudflare-dns.com", "dns.adguard-dns.com"):
        assert bl.match(name) is None, name
    assert bl.match("dns.alekberg.net") is not None


async def test_a_configured_upstream_stays_unblocked_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """upstream.servers: https://cloudflare-dns.com/dns-query: the bypass feed may not block it."""
    names = upstream_names([parse_upstream("https://cloudflare-dns.com/dns-query")])
    compiled = tmp_path / "blocklist.pfb"
    with caplog.at_level(logging.WARNING, logger="feeds.compiler"):
        await compile_feeds(ut1_doh(tmp_path), compiled, names)
    bl = blocklist_file.read(compiled)
    assert bl.match("cloudflare-dns.com") is None
    assert bl.match("mozilla.cloudflare-dns.com") is None
    # The other public resolvers are still blocked.
    assert bl.match("dns.adguard-dns.com") is not None
    assert bl.match("dns.alekberg.net") is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "kept 1 names of bypass feeds unblocked" in w and "cloudflare-dns.com" in w
        for w in warnings
    ), warnings
