"""Name normalisation and the bytes-to-lines layer (FORMATS.md §0 and §8)."""

from __future__ import annotations

import gzip
import io

import pytest

from feeds.errors import FeedTooLarge
from feeds.normalize import (
    MAX_LINE_BYTES,
    ParseStats,
    iter_lines,
    normalize_name,
    strip_inline_comment,
)


def norm(raw: str, *, allow_tld: bool = False) -> tuple[str | None, ParseStats]:
    stats = ParseStats()
    return normalize_name(raw, stats, allow_tld=allow_tld), stats


def reason(raw: str) -> str:
    name, stats = norm(raw)
    assert name is None, f"{raw!r} was accepted as {name!r}"
    assert len(stats.rejected) == 1
    return next(iter(stats.rejected))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("example.com", "example.com"),
        ("ANY.aeonaj.com", "any.aeonaj.com"),  # Phishing Army upper case
        ("www.TradeInsights.net", "www.tradeinsights.net"),  # URLhaus hostfile
        ("bit.ly.", "bit.ly"),  # Phishing.Database trailing dot
        ("呼吸保健.com", "xn--ruqumz1h0h.com"),  # IDN to A-label
        ("xn--ruqumz1h0h.com", "xn--ruqumz1h0h.com"),
        ("ÉCOLE.fr", "xn--cole-9oa.fr"),  # UTS-46 maps case before encoding
        ("exemple。fr", "exemple.fr"),  # ideographic full stop is a dot under UTS-46
        ("_wildcard_.conexaosolarintelbras.com.br", "_wildcard_.conexaosolarintelbras.com.br"),
        ("prebid_stats.mars.media", "prebid_stats.mars.media"),
        ("a" * 63 + ".link", "a" * 63 + ".link"),  # 63-octet label is legal
    ],
)
def test_accepted_names_are_normalised(raw: str, expected: str) -> None:
    name, stats = norm(raw)
    assert name == expected
    assert not stats.rejected


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("1.2.3.4", "ip"),
        ("2001:db8::1", "ip"),
        ("[2001:db8::1]", "ip"),
        ("0000153.0000255.0000011.0000125", "ip_like"),  # octal trap (romainmarcoux)
        ("57.5034.214.1", "ip_like"),
        ("56565", "ip_like"),
        ("www", "single_label"),
        ("inf", "single_label"),
        ("a..b.com", "empty_label"),
        (".leading.com", "empty_label"),
        ("a" * 64 + ".link", "label_too_long"),
        ("cgi-trial-.net.zooplus.fr", "bad_hyphen"),
        ("ms-punisher.no.-ip.org", "bad_hyphen"),
        ("%20mandrillapp.com", "bad_char"),
        ("40.70.42.104?rid=8i4dr5f", "bad_char"),
        ("winvohost@ddns.net", "bad_char"),
        ("reallyweirdshowcase.duckdns.org/", "bad_char"),
        ("valentinmihai-48225.portmap.io=>7119", "bad_char"),
        ("host.example:8080", "bad_char"),
        ("a b.com", "bad_char"),
        ("aax-*.amazon.*", "wildcard_inside"),
        ("*x.com", "wildcard_inside"),
        ("eve292929.dothome.co.xn--kr", "idna_error"),
        ("", "empty"),
    ],
)
def test_rejected_names_are_counted_by_reason(raw: str, why: str) -> None:
    assert reason(raw) == why


def test_name_length_limit_253_accepted_254_rejected() -> None:
    n253 = ("a" * 62 + ".") * 3 + "b" * 60 + ".com"  # 3 x 63 + 60 + 4
    assert len(n253) == 253
    assert norm(n253)[0] == n253
    n254 = "x" + n253
    assert len(n254) == 254
    assert reason(n254) == "name_too_long"


def test_single_label_allowed_only_behind_the_tld_flag() -> None:
    assert reason("xxx") == "single_label"
    assert norm("xxx", allow_tld=True)[0] == "xxx"


def test_examples_are_bounded_per_reason() -> None:
    stats = ParseStats()
    for i in range(100):
        normalize_name(f"10.0.0.{i}", stats)
    assert stats.rejected["ip"] == 100
    assert len(stats.examples["ip"]) == 3


def test_inline_comments_only_after_whitespace() -> None:
    assert strip_inline_comment("0.0.0.0 x.com  # ads") == "0.0.0.0 x.com"
    assert strip_inline_comment("x.com\t# why") == "x.com"
    assert strip_inline_comment("address=/x.com/#") == "address=/x.com/#"


def lines_of(data: bytes, **kw: int) -> tuple[list[str], ParseStats]:
    stats = ParseStats()
    return list(iter_lines(io.BytesIO(data), stats, **kw)), stats


def test_crlf_bom_and_missing_final_newline() -> None:
    lines, stats = lines_of(b"\xef\xbb\xbfa.com\r\nb.com\r\nc.com")
    assert lines == ["a.com", "b.com", "c.com"]
    assert stats.lines == 3


def test_only_newline_splits_lines() -> None:
    # str.splitlines() would also split on \x0b, \x0c, \x1c and U+2028.
    lines, _ = lines_of("a\x0bb.com\nc\u2028d.com\n".encode())
    assert lines == ["a\x0bb.com", "c\u2028d.com"]


def test_bad_utf8_is_replaced_and_counted() -> None:
    lines, stats = lines_of(b"ok.com\n\xff\xfebad.com\n")
    assert lines[0] == "ok.com"
    assert "\ufffd" in lines[1]
    assert stats.notes["utf8_replaced"] == 1


def test_gzip_detected_by_magic_bytes() -> None:
    lines, _ = lines_of(gzip.compress(b"a.com\nb.com\n"))
    assert lines == ["a.com", "b.com"]


def test_over_long_lines_are_skipped_not_held() -> None:
    data = b"a.com\n" + b"x" * (MAX_LINE_BYTES * 3) + b"\nb.com\n"
    lines, stats = lines_of(data)
    assert lines == ["a.com", "b.com"]
    assert stats.rejected["line_too_long"] == 1


def test_size_cap_applies_to_uncompressed_text() -> None:
    bomb = gzip.compress(b"a.com\n" * 100_000)
    with pytest.raises(FeedTooLarge):
        lines_of(bomb, max_bytes=10_000)
