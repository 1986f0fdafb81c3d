"""One parser per feed format, and the sniffing behind ``format: auto``.

Every parser is ``parse(lines, stats, opts) -> Iterator[Entry]``: lines are hostile, every
rejection is counted in ``stats`` by reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final, get_args

from feeds.errors import FeedFormatError
from feeds.normalize import Entry, ParseStats, is_ip_literal, iter_lines
from feeds.parsers import adblock, dnsmasq, domains, hosts, rpz, threatfox_csv, urlhaus_csv, urls
from feeds.parsers import wildcard as wildcard_list
from feeds.parsers.base import ParseOptions, Parser
from resolver.config.feeds import Format

# Format: the config's vocabulary (resolver.config.feeds), the formats parsed here.
FORMATS: Final[tuple[str, ...]] = get_args(Format)

PARSERS: Final[dict[str, Parser]] = {
    "hosts": hosts.parse,
    "domains": domains.parse,
    "wildcard": wildcard_list.parse,
    "adblock": adblock.parse,
    "rpz": rpz.parse,
    "dnsmasq": dnsmasq.parse,
    "urlhaus-csv": urlhaus_csv.parse,
    "threatfox-csv": threatfox_csv.parse,
    "urls": urls.parse,
}

# Formats whose bare lines take the feed's match mode: it must be stated, never guessed.
NEEDS_MATCH: Final = frozenset({"domains"})

# Lines that vote on the format: enough to get past any banner; the rest of the file is only
# searched for adblock rules.
_SNIFF_LINES = 200


def detect(lines: Iterable[str]) -> str:
    """The format from the whole file's rule shapes; ``domains`` when nothing more specific
    shows.

    The first lines vote (a header line decides at once); then the rest of the file is only
    looked at for adblock rules, because a list can open with hundreds of bare names and hold
    its ``||host^$all`` rules further down (uBlock's urlhaus-filter): adblock syntax beats bare
    names when both appear, for the adblock parser reads bare names too.
    """
    votes: dict[str, int] = {}
    seen = 0
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if seen >= _SNIFF_LINES:
            if line.startswith(("||", "@@")) and set(votes) <= {"domains"}:
                return "adblock"
            continue
        low = line.lower()
        if low.startswith("[adblock"):
            return "adblock"
        if low.startswith("# id,dateadded,url"):
            return "urlhaus-csv"
        if low.startswith("#") and "ioc_value" in low:
            return "threatfox-csv"
        if low.startswith(("$ttl", "$origin")) or " soa " in f" {low} ":
            return "rpz"
        if line[0] in "#;!":
            continue
        seen += 1
        kind = _classify(low)
        votes[kind] = votes.get(kind, 0) + 1
    if not votes:
        return "domains"
    if "adblock" in votes and set(votes) <= {"adblock", "domains"}:
        return "adblock"
    return max(votes.items(), key=lambda kv: kv[1])[0]


def _classify(low: str) -> str:
    if low.startswith(("||", "@@")) or low.endswith("^"):
        return "adblock"
    if low.startswith(("address=/", "server=/", "local=/", "local-zone:", "server:")):
        return "dnsmasq"
    if " cname " in f" {low} ":
        return "rpz"
    if low.startswith(("http://", "https://")):
        return "urls"
    if low.startswith("*."):
        return "wildcard"
    first = low.split(None, 1)
    if len(first) == 2 and is_ip_literal(first[0]):
        return "hosts"
    return "domains"


def parse_file(
    path: Path, fmt: str, opts: ParseOptions, stats: ParseStats, *, max_bytes: int = 0
) -> Iterator[Entry]:
    """Parse a saved feed (gzip or not); ``fmt`` may be ``auto``.

    Raises FeedFormatError before yielding anything when the file is empty, is an HTML page, or
    is a format that needs a ``match`` mode the feed does not state (``opts.mask == 0``).
    """
    with path.open("rb") as stream:
        head = list(itertools.islice(iter_lines(stream, ParseStats(), max_bytes=max_bytes), 400))
        first = next((line.strip().lower() for line in head if line.strip()), "")
        if not first:
            raise FeedFormatError("the feed is empty")
        if first.startswith(("<!doctype", "<html", "<?xml", "<head", "<body")):
            raise FeedFormatError("the feed is an HTML page, not a list (an error page?)")
        if fmt == "auto":
            stream.seek(0)
            fmt = detect(iter_lines(stream, ParseStats(), max_bytes=max_bytes))
            stats.format = f"{fmt} (detected)"
        else:
            stats.format = fmt
        parser = PARSERS.get(fmt)
        if parser is None:
            raise FeedFormatError(f"unknown format {fmt!r}")
        if fmt in NEEDS_MATCH and not opts.mask:
            raise FeedFormatError(
                f"format {fmt!r} does not say whether a name covers its subdomains:"
                " set match: exact or match: subtree for this feed"
            )
        stream.seek(0)
        yield from parser(iter_lines(stream, stats, max_bytes=max_bytes), stats, opts)


__all__ = [
    "FORMATS",
    "NEEDS_MATCH",
    "PARSERS",
    "Format",
    "ParseOptions",
    "Parser",
    "detect",
    "parse_file",
]
