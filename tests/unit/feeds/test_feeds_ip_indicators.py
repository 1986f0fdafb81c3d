"""IP and CIDR lines of the feeds are kept as indicators (issue 20.3), never as names."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from feeds.compiler import Compiler, CompileReport, collect
from feeds.never_block import PublicSuffixes
from feeds.normalize import SELF, ParseStats, normalize_name, rpz_ip_network
from feeds.parsers import parse_file
from feeds.parsers.base import ParseOptions
from feeds.sources import Feed
from resolver import blocklist_file

DATA = Path(__file__).resolve().parents[2] / "data" / "feeds"


def test_addresses_and_blocks_are_kept_not_named() -> None:
    stats = ParseStats()
    for raw in ("1.2.3.4", "2001:db8::1", "[2001:db8::2]", "203.0.113.0/24", "01.2.3.4"):
        assert normalize_name(raw, stats) is None
    assert stats.ips == {"1.2.3.4/32", "2001:db8::1/128", "2001:db8::2/128", "203.0.113.0/24"}
    assert stats.rejected["ip"] == 4 and stats.rejected["ip_like"] == 1


def test_rpz_ip_trigger_owners() -> None:
    assert rpz_ip_network("32.1.2.0.192") == "192.0.2.1/32"
    assert rpz_ip_network("24.0.2.0.192") == "192.0.2.0/24"
    assert rpz_ip_network("48.zz.db8.2001") == "2001:db8::/48"
    assert rpz_ip_network("128.1.zz.db8.2001") == "2001:db8::1/128"
    assert rpz_ip_network("not.a.trigger") is None


def test_the_real_ublock_excerpt_gives_its_40_addresses() -> None:
    stats = ParseStats()
    fs = collect(parse_file(DATA / "urlhaus-filter.txt", "adblock", ParseOptions(), stats), stats)
    assert len(fs.ips) == 40 and "1.0.209.238/32" in fs.ips


def test_private_and_huge_blocks_are_refused(tmp_path: Path) -> None:
    stats = ParseStats()
    for raw in ("127.0.0.1", "0.0.0.0", "10.0.0.0/8", "192.168.1.1", "1.0.0.0/4", "1.0.209.238"):
        normalize_name(raw, stats)
    feed = Feed("x", "file:///x", "domains", SELF, "malware", True, False, 0)
    compiler = Compiler([feed], PublicSuffixes.bundled(), ())
    compiler.add(0, collect(iter(()), stats))
    entries, provenance, report = compiler.finish()
    nets = compiler.networks(provenance, report)
    assert [str(n) for n, _ in nets] == ["1.0.209.238/32"]
    assert report.refused["ip_not_global"] >= 3 and report.refused["ip_too_wide"] == 1
    path = tmp_path / "b.pfb"
    blocklist_file.write_atomic(path, entries, provenance, networks=nets)
    art = blocklist_file.read(path)
    assert art.match_ip(ipaddress.ip_address("1.0.209.238").packed) is not None
    assert art.match_ip(ipaddress.ip_address("127.0.0.1").packed) is None
    assert isinstance(report, CompileReport)


def test_csv_iocs_give_their_addresses() -> None:
    stats = ParseStats()
    list(parse_file(DATA / "urlhaus_csv_online.excerpt.csv", "urlhaus-csv", ParseOptions(), stats))
    assert len(stats.ips) == 11  # 14 URLs served from 11 addresses (real URLhaus excerpt)
    stats = ParseStats()
    list(
        parse_file(DATA / "synthetic_threatfox_native.csv", "threatfox-csv", ParseOptions(), stats)
    )
    assert len(stats.ips) == 1
