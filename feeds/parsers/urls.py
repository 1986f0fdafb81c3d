"""URL lists (OpenPhish, URLhaus text): EXACT(host) for each URL, never its parent (§7.1)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

from feeds.normalize import SELF, Entry, ParseStats, is_ip_literal, normalize_name
from feeds.parsers.base import ParseOptions


def parse(lines: Iterable[str], stats: ParseStats, opts: ParseOptions) -> Iterator[Entry]:
    """Yield the host of each URL as EXACT; the path is dropped, the host never widened."""
    for line in lines:
        line = line.strip()
        if not line or line[0] == "#":
            stats.skipped += 1
            continue
        name = host_of_url(line, stats, opts)
        if name is not None:
            stats.accepted += 1
            yield Entry(name, SELF)


def host_of_url(url: str, stats: ParseStats, opts: ParseOptions) -> str | None:
    """The normalised host of ``url`` (scheme optional), or None with the reason counted."""
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urlsplit(url)
        host = parts.hostname  # drops userinfo and port, lower-cases
        _ = parts.port  # raises ValueError on a junk port such as ":99999"
    except ValueError:
        stats.reject("bad_url", url)
        return None
    if not host:
        stats.reject("bad_url", url)
        return None
    if is_ip_literal(host):
        stats.reject("ip", url)
        stats.keep_ip(host)  # a URL served from an address: an address indicator
        return None
    return normalize_name(host, stats, allow_tld=opts.allow_tld)
