"""Wildcard lists: ``*.example.com`` is SUBTREE(example.com), as OISD and HaGeZi mean it.

Unlike RPZ, ``*.x`` here covers ``x`` too (FORMATS.md §3).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from feeds.normalize import (
    BELOW,
    SELF,
    Entry,
    ParseStats,
    new_entry,
    normalize_name,
    strip_inline_comment,
)
from feeds.parsers.base import ParseOptions


def parse(lines: Iterable[str], stats: ParseStats, opts: ParseOptions) -> Iterator[Entry]:
    """Yield SUBTREE entries; a line without ``*.`` is SUBTREE too, and counted."""
    for line in lines:
        line = line.strip()
        if not line or line[0] == "#" or line[0] == "!":
            stats.skipped += 1
            continue
        if "#" in line:
            line = strip_inline_comment(line)
        if line.startswith("*."):
            line = line[2:]
        else:
            stats.note("no_wildcard_prefix")
        name = normalize_name(line, stats, allow_tld=opts.allow_tld)
        if name is None:
            continue
        stats.accepted += 1
        yield new_entry(Entry, (name, SELF | BELOW, False, False, False))
