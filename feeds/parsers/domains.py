"""Plain domain lists, one name per line; the feed's ``match`` gives the scope (FORMATS.md §2)."""

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
    """Yield one entry per name with the feed's mask; ``*.x`` in such a list is SUBTREE(x)."""
    mask = opts.mask
    for line in lines:
        line = line.strip()
        if not line or line[0] == "#" or line[0] == "!":
            stats.skipped += 1
            continue
        if "#" in line:
            line = strip_inline_comment(line)
        entry_mask = mask
        if line.startswith("*."):
            # Not part of this format; the author plainly meant the subtree.
            stats.note("wildcard_in_domain_list", line)
            line = line[2:]
            entry_mask = SELF | BELOW
        name = normalize_name(line, stats, allow_tld=opts.allow_tld)
        if name is None:
            continue
        stats.accepted += 1
        yield new_entry(Entry, (name, entry_mask, False, False, False))
