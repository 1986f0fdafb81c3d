"""URLhaus CSV dumps: the host of column ``url`` (index 2), EXACT (FORMATS.md §7.2).

The header is a ``#`` comment, so fixed positions are used. URLhaus lists URLs, not hosts:
github.com appears because of one file; the never-block list must stop such hosts.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from feeds.normalize import SELF, Entry, ParseStats
from feeds.parsers.base import ParseOptions
from feeds.parsers.urls import host_of_url

URL_COLUMN = 2


def parse(lines: Iterable[str], stats: ParseStats, opts: ParseOptions) -> Iterator[Entry]:
    """Yield EXACT(host) for each row; IP hosts and malformed rows are counted."""
    for line in lines:
        line = line.strip()
        if not line or line[0] == "#":
            stats.skipped += 1
            continue
        # One line at a time: an unbalanced quote cannot swallow the rest of the file.
        try:
            row = next(csv.reader((line,)))
        except (csv.Error, StopIteration):
            stats.reject("malformed", line)
            continue
        if len(row) <= URL_COLUMN:
            stats.reject("malformed", line)
            continue
        name = host_of_url(row[URL_COLUMN].strip(), stats, opts)
        if name is not None:
            stats.accepted += 1
            yield Entry(name, SELF)
