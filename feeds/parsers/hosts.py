"""Hosts files: ``IP name [name...] [# comment]``, every name EXACT (FORMATS.md §1)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from feeds.normalize import (
    LOCALHOST_NAMES,
    SELF,
    Entry,
    ParseStats,
    is_ip_literal,
    new_entry,
    normalize_name,
    strip_inline_comment,
)
from feeds.parsers.base import ParseOptions

# Addresses that mean "block"; any other address asks for a redirect, which a threat feed
# should not do: we still block, but never answer with the feed's address.
SINK_ADDRESSES = frozenset({"0.0.0.0", "127.0.0.1", "::", "::1"})  # noqa: S104 - not a bind


def parse(lines: Iterable[str], stats: ParseStats, opts: ParseOptions) -> Iterator[Entry]:
    """Yield one EXACT entry per name; the sink address is ignored, the feed's mask too."""
    last_ip = ""  # the sink address is the same on every line: check it once
    for line in lines:
        line = line.strip()
        if not line or line[0] == "#":
            stats.skipped += 1
            continue
        fields = strip_inline_comment(line).split()
        if len(fields) < 2 or (fields[0] != last_ip and not is_ip_literal(fields[0])):
            stats.reject("malformed", line)
            continue
        last_ip = fields[0]
        redirect = last_ip.split("%", 1)[0] not in SINK_ADDRESSES
        for field in fields[1:]:
            if field.lower() in LOCALHOST_NAMES:
                stats.skipped += 1
                continue
            name = normalize_name(field, stats, allow_tld=opts.allow_tld)
            if name is None:
                continue
            if redirect:
                stats.note("nonsink_address", line)
            stats.accepted += 1
            yield new_entry(Entry, (name, SELF, False, False, False))
