"""One parser per format, on real excerpts (tests/data/feeds/ORIGIN.md) and synthetic edges."""

from __future__ import annotations

from pathlib import Path

import pytest

from feeds.errors import FeedFormatError
from feeds.normalize import BELOW, SELF, Entry, ParseStats
from feeds.parsers import ParseOptions, detect, parse_file

DATA = Path(__file__).resolve().parents[2] / "data" / "feeds"
SUBTREE = SELF | BELOW


def parse(
    name: str, fmt: str, mask: int = SELF, **opts: int | bool
) -> tuple[list[Entry], ParseStats]:
    stats = ParseStats()
    entries = list(parse_file(DATA / name, fmt, ParseOptions(mask=mask, **opts), stats))  # type: ignore[arg-type]
    return entries, stats


def blocks(entries: list[Entry]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in entries:
        if not e.allow and not e.badfilter:
            out[e.name] = out.get(e.name, 0) | e.mask
    return out


# --- hosts --------------------------------------------------------------------------------------


def test_hosts_stevenblack_preamble_junk_and_inline_comments() -> None:
    entries, stats = parse("stevenblack_hosts.excerpt.txt", "hosts")
    names = blocks(entries)
    assert all(m == SELF for m in names.values())
    # localhost preamble skipped silently, junk rejected by reason
    assert "localhost" not in names and "0.0.0.0" not in names
    assert stats.rejected["single_label"] == 4  # inf, www, fe, ff
    assert stats.rejected["bad_hyphen"] == 3
    assert "malformed" not in stats.rejected  # fe80::1%lo0 and ff02::1 are valid addresses
    assert "docs.pipenv.org" in names  # "0.0.0.0 docs.pipenv.org  # https://..."
    assert "prebid_stats.mars.media" in names
    assert stats.notes["underscore"] == 5


def test_hosts_urlhaus_tabs_upper_case_and_no_final_newline() -> None:
    raw = (DATA / "urlhaus_hostfile.excerpt.txt").read_bytes()
    assert not raw.endswith(b"\n")
    entries, stats = parse("urlhaus_hostfile.excerpt.txt", "hosts")
    names = blocks(entries)
    assert "www.tradeinsights.net" in names
    assert stats.lines == raw.count(b"\n") + 1  # the unterminated last line is read too
    assert stats.notes["upper_case"] == 1


def test_hosts_redirect_address_is_a_block_and_counted(tmp_path: Path) -> None:
    f = tmp_path / "h.txt"
    f.write_text("1.2.3.4 redirect.example\nnot-an-ip bad.example\n0.0.0.0 a.example b.example\n")
    stats = ParseStats()
    entries = list(parse_file(f, "hosts", ParseOptions(), stats))
    assert [e.name for e in entries] == ["redirect.example", "a.example", "b.example"]
    assert stats.notes["nonsink_address"] == 1
    assert stats.rejected["malformed"] == 1


# --- plain domains, wildcard ------------------------------------------------------------------


def test_domains_phishing_database_trailing_dots_blanks_ips_junk() -> None:
    entries, stats = parse("phishing-domains-ACTIVE.excerpt.txt", "domains")
    names = blocks(entries)
    assert "bit.ly" in names and "akarllc.com" not in stats.examples.get("bad_char", [])
    assert stats.notes["trailing_dot"] >= 4
    assert stats.rejected["ip"] >= 20
    assert stats.rejected["bad_char"] >= 4
    assert "%20mandrillapp.com" in stats.examples["bad_char"]
    assert all(" " not in n and "\t" not in n for n in names)


def test_domains_invalid_file_yields_nothing() -> None:
    entries, stats = parse("phishing-domains-INVALID.txt", "domains")
    assert entries == []
    assert stats.rejected["bad_char"] == 5


def test_domains_scope_comes_from_the_feed_not_the_syntax() -> None:
    exact, _ = parse("ut1_malware_domains.excerpt.txt", "domains", SELF)
    subtree, stats = parse("ut1_malware_domains.excerpt.txt", "domains", SUBTREE)
    assert set(blocks(exact)) == set(blocks(subtree))
    assert set(blocks(exact).values()) == {SELF}
    assert set(blocks(subtree).values()) == {SUBTREE}
    assert stats.rejected["ip"] >= 20
    # names under shared platforms are kept as they are, never reduced to the platform
    assert any(n.endswith(".github.io") for n in blocks(subtree))
    assert "github.io" not in blocks(subtree)


def test_domains_without_match_mode_refuse_to_guess() -> None:
    with pytest.raises(FeedFormatError, match="match"):
        parse("ransomware-nl.domains.txt", "domains", 0)


def test_domains_ip_like_octal_trap() -> None:
    _, stats = parse("romainmarcoux_ab.excerpt.txt", "domains")
    assert stats.rejected["ip_like"] == 1
    assert stats.examples["ip_like"] == ["0000153.0000255.0000011.0000125"]


def test_wildcard_ip_lines_rejected(tmp_path: Path) -> None:
    _entries, stats = parse("urlhaus-filter-wildcard.txt", "wildcard")
    assert stats.rejected["ip"] == 40
    f = tmp_path / "w.txt"
    f.write_text("*.a.example\nb.example\nx*.example\n")
    stats = ParseStats()
    got = blocks(list(parse_file(f, "wildcard", ParseOptions(), stats)))
    assert got == {"a.example": SUBTREE, "b.example": SUBTREE}
    assert stats.notes["no_wildcard_prefix"] == 2
    assert stats.rejected["wildcard_inside"] == 1


# --- adblock ----------------------------------------------------------------------------------


def test_adblock_edge_cases() -> None:
    entries, stats = parse("synthetic_abp_edge.txt", "adblock")
    got = {(e.name, e.mask, e.allow, e.important, e.badfilter) for e in entries}
    assert ("blocked.example", SUBTREE, False, False, False) in got
    assert ("caret-pipe.example", SUBTREE, False, False, False) in got
    assert ("no-caret.example", SUBTREE, False, False, False) in got
    assert ("good.allowed-parent.example", SUBTREE, True, False, False) in got
    assert ("important.example", SUBTREE, False, True, False) in got
    assert ("bad.example", SUBTREE, False, False, True) in got
    assert ("all.example", SUBTREE, False, False, False) in got
    assert ("doc.example", SUBTREE, False, False, False) in got
    assert ("bare-host.example", SELF, False, False, False) in got
    assert ("upper.example", SUBTREE, False, False, False) in got
    assert ("xn--ruqumz1h0h.com", SUBTREE, False, False, False) in got
    names = {e.name for e in entries}
    assert "github.com" not in names  # a path rule never blocks its host
    assert "host.example" not in names
    assert stats.notes["abp_missing_caret"] == 1
    assert stats.rejected["abp_browser_modifier"] == 2
    assert stats.rejected["abp_unsupported_modifier"] == 2
    assert stats.rejected["abp_regex"] == 1
    assert stats.rejected["abp_cosmetic"] == 3
    assert stats.rejected["abp_path_rule"] == 2
    assert stats.rejected["abp_unsupported"] == 1
    assert stats.rejected["ip"] == 1
    assert stats.rejected["wildcard_inside"] == 1


def test_adblock_ubo_list_path_rules_never_block_hosts() -> None:
    entries, stats = parse("urlhaus-filter.txt", "adblock")
    hosts, _ = parse("urlhaus-filter-hosts.txt", "hosts")
    names = set(blocks(entries))
    assert set(blocks(hosts)) <= names
    assert stats.rejected["abp_path_rule"] == 40
    assert stats.rejected["ip"] == 40
    extra = names - set(blocks(hosts))
    assert extra == {"bedoueroom.top", "extranet-listing.com", "wegrowcoaching.com"}  # $all


# --- rpz --------------------------------------------------------------------------------------


def test_rpz_edge_cases() -> None:
    entries, stats = parse("synthetic_rpz_edge.zone", "rpz")
    got = {(e.name, e.mask, e.allow) for e in entries}
    assert ("exact.example", SELF, False) in got
    assert ("both.example", SELF, False) in got and ("both.example", BELOW, False) in got
    assert ("wild-only.example", BELOW, False) in got
    assert ("nodata.example", SELF, False) in got
    assert ("drop.example", SELF, False) in got
    assert ("passthru.example", SELF, True) in got
    assert ("redirect.example", SELF, False) in got
    assert ("local.example", SELF, False) in got
    assert ("ttl.example", SELF, False) in got and ("class.example", SELF, False) in got
    assert ("absolute.example", SELF, False) in got
    assert ("outside.example", SELF, False) in got
    assert ("comment.example", SELF, False) in got
    names = {e.name for e in entries}
    assert not any("rpz" in n or n.startswith(("32.", "24.")) for n in names)
    assert "tcp.example" not in names
    assert stats.rejected["rpz_nonqname_trigger"] == 3
    assert stats.rejected["rpz_include"] == 1
    assert stats.rejected["rpz_tcp_only"] == 1
    assert stats.notes["rpz_local_data"] == 2
    assert stats.notes["rpz_absolute_owner"] == 1
    assert "malformed" not in stats.rejected  # the multi-line SOA is skipped whole


def test_rpz_pairs_make_a_subtree() -> None:
    entries, _ = parse("twitone_urlhaus.excerpt.rpz", "rpz")
    names = blocks(entries)
    assert names and set(names.values()) == {SUBTREE}


# --- dnsmasq / unbound --------------------------------------------------------------------------


def test_dnsmasq_edge_cases() -> None:
    entries, stats = parse("synthetic_dnsmasq_edge.conf", "dnsmasq")
    assert blocks(entries) == {
        n: SUBTREE
        for n in (
            "a.example",
            "b.example",
            "hash.example",
            "empty.example",
            "local.example",
            "x.example",
            "zone.example",
            "nx.example",
        )
    }
    assert stats.rejected["dnsmasq_forward"] == 2
    assert stats.rejected["unbound_not_block"] == 1
    assert stats.rejected["unbound_local_data"] == 1
    assert stats.rejected["bad_char"] == 0 or "#" not in blocks(entries)
    assert stats.rejected["malformed"] == 1  # domain=lan


# --- CSV and URL lists ------------------------------------------------------------------------


def test_urlhaus_csv_hosts_exact_ips_dropped() -> None:
    entries, stats = parse("urlhaus_csv_online.excerpt.csv", "urlhaus-csv")
    names = blocks(entries)
    assert stats.rejected["ip"] == 14
    assert set(names.values()) == {SELF}
    # the hosts are taken as they are: github.com shows up here and must be stopped by the
    # never-block list at compile time, not reduced or widened by the parser
    assert "github.com" in names or "raw.githubusercontent.com" in names
    assert all(":" not in n and "/" not in n for n in names)


def test_threatfox_native_csv() -> None:
    entries, stats = parse("synthetic_threatfox_native.csv", "threatfox-csv", min_confidence=50)
    assert [e.name for e in entries] == [
        "fukimo.workers.dev",
        "c2.evil.example",
        "payload.evil.example",
    ]
    assert stats.rejected["not_a_name"] == 2
    assert stats.rejected["low_confidence"] == 1
    assert stats.notes["compromised"] == 1


def test_threatfox_derived_csv_duplicates_and_junk() -> None:
    entries, stats = parse("threatfox_defender.excerpt.csv", "threatfox-csv")
    assert len(entries) > len(set(blocks(entries)))  # duplicates are real; the compiler dedups
    for why in ("single_label", "ip", "ip_like", "bad_char", "bad_hyphen"):
        assert stats.rejected[why] > 0, why
    assert "winvohost@ddns.net" in stats.examples["bad_char"]


def test_url_list_takes_the_host_only() -> None:
    entries, stats = parse("synthetic_urls.txt", "urls")
    assert [e.name for e in entries] == [
        "api.msuto.example",
        "send-usdt-9999.netlify.app",
        "dau-ug-korea.vercel.app",
        "login.phish.example",
        "login.phish.example",
        "www.no-scheme.example",
    ]
    assert stats.rejected["ip"] == 2
    assert stats.rejected["bad_char"] == 1


def test_phishing_links_invalid() -> None:
    entries, stats = parse("phishing-links-INVALID.txt", "urls")
    assert stats.rejected["idna_error"] == 3  # ".xn--kr" does not decode
    assert len(entries) == 2


# --- the common layer -------------------------------------------------------------------------


def test_gzip_feed_parses_like_the_plain_one() -> None:
    plain, _ = parse("urlhaus-filter-domains.txt", "domains")
    gz, _ = parse("urlhaus-filter-domains.txt.gz", "domains")
    assert plain == gz


def test_crlf_and_bom_converted_file_parses_the_same(tmp_path: Path) -> None:
    raw = (DATA / "ransomware.hosts.txt").read_bytes()
    f = tmp_path / "crlf.txt"
    f.write_bytes(b"\xef\xbb\xbf" + raw.replace(b"\n", b"\r\n"))
    a, _ = parse("ransomware.hosts.txt", "hosts")
    stats = ParseStats()
    b = list(parse_file(f, "hosts", ParseOptions(), stats))
    assert a == b
    assert not stats.rejected


@pytest.mark.parametrize(
    "body", [b"", b"\n\n  \n", b"<!DOCTYPE html><html><body>Rate limited</body></html>"]
)
def test_empty_or_html_feed_is_refused(tmp_path: Path, body: bytes) -> None:
    f = tmp_path / "f.txt"
    f.write_bytes(body)
    with pytest.raises(FeedFormatError):
        list(parse_file(f, "hosts", ParseOptions(), ParseStats()))


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("stevenblack_hosts.excerpt.txt", "hosts"),
        ("urlhaus_hostfile.excerpt.txt", "hosts"),
        ("urlhaus-filter-agh.txt", "adblock"),
        ("ransomware-ags.adblock.txt", "adblock"),
        ("urlhaus-filter-rpz.conf", "rpz"),
        ("synthetic_rpz_edge.zone", "rpz"),
        ("urlhaus-filter-dnsmasq.conf", "dnsmasq"),
        ("ransomware-dnsmasq.txt", "dnsmasq"),
        ("synthetic_dnsmasq_edge.conf", "dnsmasq"),
        ("urlhaus-filter-wildcard.txt", "wildcard"),
        ("urlhaus-filter-domains.txt", "domains"),
        ("urlhaus_csv_online.excerpt.csv", "urlhaus-csv"),
        ("synthetic_threatfox_native.csv", "threatfox-csv"),
        ("synthetic_urls.txt", "urls"),
    ],
)
def test_auto_detection(name: str, fmt: str) -> None:
    from feeds.normalize import iter_lines

    with (DATA / name).open("rb") as f:
        assert detect(iter_lines(f, ParseStats())) == fmt


# --- cross-format equivalence (FORMATS.md §10) --------------------------------------------------


def test_urlhaus_filter_same_names_in_every_format() -> None:
    hosts = blocks(parse("urlhaus-filter-hosts.txt", "hosts")[0])
    assert len(hosts) > 100
    expected = {
        "urlhaus-filter-dnsmasq.conf": ("dnsmasq", SUBTREE),
        "urlhaus-filter-rpz.conf": ("rpz", SELF),
        "urlhaus-filter-domains.txt": ("domains", SELF),
        "urlhaus-filter-domains.txt.gz": ("domains", SELF),
        "urlhaus-filter-agh.txt": ("adblock", SUBTREE),
        "urlhaus-filter-wildcard.txt": ("wildcard", SUBTREE),
    }
    for name, (fmt, mask) in expected.items():
        got = blocks(parse(name, fmt)[0])
        assert set(got) == set(hosts), name
        assert set(got.values()) == {mask}, name


def test_blocklistproject_same_names_exact_vs_subtree() -> None:
    hosts = blocks(parse("ransomware.hosts.txt", "hosts")[0])
    nl = blocks(parse("ransomware-nl.domains.txt", "domains", SELF)[0])
    ags = blocks(parse("ransomware-ags.adblock.txt", "adblock")[0])
    dnsmasq = blocks(parse("ransomware-dnsmasq.txt", "dnsmasq")[0])
    assert len(hosts) == 150
    assert set(hosts) == set(nl) == set(ags) == set(dnsmasq)
    assert set(hosts.values()) == set(nl.values()) == {SELF}
    assert set(ags.values()) == set(dnsmasq.values()) == {SUBTREE}
