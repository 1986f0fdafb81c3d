"""Never-block and bypass feeds (feeds/compiler.py): public resolvers' names (never-block lines
tagged ``resolver``) are kept from threat feeds only; a ``bypass`` feed blocks them, unless the
name is one of the box's configured upstreams, which no feed blocks (with a warning)."""

from __future__ import annotations

import logging

import pytest

from feeds.compiler import Compiler, CompileReport, FeedSet, collect
from feeds.never_block import PublicSuffixes, parse_names
from feeds.normalize import BELOW, SELF, Entry, ParseStats
from feeds.sources import Feed

PSL = PublicSuffixes(["com", "net", "fr", "gouv.fr", "google"])
NEVER_BLOCK = (
    "cloudflare-dns.com resolver",
    "dns.quad9.net\tresolver  # tabs and comments too",
    "dns.google resolver",
    "github.com",
    "impots.gouv.fr",
)
SUB = SELF | BELOW


def feed(name: str, category: str) -> Feed:
    return Feed(name, f"file:///{name}", "domains", SUB, category, True, False, 0)


def fs(*names: str, mask: int = SUB) -> FeedSet:
    return collect([Entry(n, mask) for n in names], ParseStats())


def compile_(
    sets: dict[Feed, FeedSet],
    *,
    upstreams: frozenset[str] = frozenset(),
    allowlist: tuple[str, ...] = (),
) -> tuple[dict[str, tuple[str, str]], CompileReport]:
    """{name: (sources, categories)} and the report."""
    feeds = list(sets)
    c = Compiler(
        feeds,
        PSL,
        parse_names(NEVER_BLOCK),
        allowlist,
        public_resolvers=parse_names(NEVER_BLOCK, resolvers_only=True),
        upstreams=upstreams,
    )
    for i, f in enumerate(feeds):
        c.add(i, sets[f])
    entries, provenance, report = c.finish()
    return {name: provenance[p] for name, _scope, p in entries}, report


DOH = feed("ut1-doh", "bypass")
MALWARE = feed("urlhaus", "malware")


def test_the_resolver_tag() -> None:
    assert parse_names(NEVER_BLOCK) == {
        "cloudflare-dns.com",
        "dns.quad9.net",
        "dns.google",
        "github.com",
        "impots.gouv.fr",
    }
    assert parse_names(NEVER_BLOCK, resolvers_only=True) == {
        "cloudflare-dns.com",
        "dns.quad9.net",
        "dns.google",
    }


def test_a_bypass_feed_blocks_public_resolvers_a_threat_feed_cannot() -> None:
    names = ("cloudflare-dns.com", "mozilla.cloudflare-dns.com", "dns.google", "quad9.net")
    got, report = compile_({DOH: fs(*names), MALWARE: fs(*names, "evil.test")})
    # cloudflare-dns.com covers mozilla.cloudflare-dns.com; the threat feed's claim on the same
    # names is dropped (their provenance is the bypass feed alone), nothing is refused.
    assert got == {
        "cloudflare-dns.com": ("feed:ut1-doh", "bypass"),
        "dns.google": ("feed:ut1-doh", "bypass"),
        "quad9.net": ("feed:ut1-doh", "bypass"),  # with dns.quad9.net under it
        "evil.test": ("feed:urlhaus", "malware"),
    }
    assert not report.refused


def test_a_bypass_feed_still_cannot_block_the_rest_of_the_never_block_list() -> None:
    got, report = compile_({DOH: fs("github.com", "x.impots.gouv.fr", "gouv.fr", "doh.test")})
    assert got == {"doh.test": ("feed:ut1-doh", "bypass")}
    # gouv.fr with its subtree would swallow impots.gouv.fr.
    assert report.refused == {"protected": 3}


def test_a_bypass_feed_respects_the_allowlist() -> None:
    got, report = compile_({DOH: fs("dns.google", "cloudflare-dns.com")}, allowlist=("dns.google",))
    assert got == {"cloudflare-dns.com": ("feed:ut1-doh", "bypass")}
    assert report.refused["allowlist"] == 1


def test_a_configured_upstream_is_blocked_by_no_feed(caplog: pytest.LogCaptureFixture) -> None:
    sets = {
        DOH: fs("dns.quad9.net", "quad9.net", "cloudflare-dns.com", "x.dns.quad9.net"),
        MALWARE: fs("dns.quad9.net", "my-doh.example.net"),
    }
    upstreams = frozenset({"dns.quad9.net", "my-doh.example.net"})
    with caplog.at_level(logging.WARNING, logger="feeds.compiler"):
        got, report = compile_(sets, upstreams=upstreams)
    assert got == {"cloudflare-dns.com": ("feed:ut1-doh", "bypass")}
    # The name, a name under it, its parent with everything under it: all kept unblocked.
    assert report.refused["upstream"] == 3
    assert report.refused["protected"] == 1  # my-doh.example.net, from the malware feed alone
    (warning,) = [r.getMessage() for r in caplog.records if "bypass feeds" in r.getMessage()]
    assert warning.startswith("kept 3 names of bypass feeds unblocked: the box's configured")
    assert "dns.quad9.net" in warning


def test_an_exact_bypass_entry_on_a_parent_of_an_upstream_is_fine() -> None:
    """quad9.net alone (not its subtree) does not reach dns.quad9.net."""
    got, _ = compile_({DOH: fs("quad9.net", mask=SELF)}, upstreams=frozenset({"dns.quad9.net"}))
    assert got == {"quad9.net": ("feed:ut1-doh", "bypass")}


def test_without_resolver_tags_nothing_changes() -> None:
    """An operator's never-block copy from before the tag protects its names from every feed."""
    feeds = [DOH]
    c = Compiler(feeds, PSL, parse_names(NEVER_BLOCK), ())
    c.add(0, fs("cloudflare-dns.com", "doh.test"))
    entries, _provenance, _ = c.finish()
    assert {name for name, _s, _p in entries} == {"doh.test"}
