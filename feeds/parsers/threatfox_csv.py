"""ThreatFox CSV exports: ``domain`` and ``url`` IOCs become EXACT names (FORMATS.md §7.3).

Rows are quoted with a space after each comma. ``ip:port`` and hash IOCs are not names. The
derived two-column ``domain, label`` layout (Defender re-export) is read too.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from feeds.normalize import SELF, Entry, ParseStats, normalize_name
from feeds.parsers.base import ParseOptions
from feeds.parsers.urls import host_of_url

IOC_VALUE, IOC_TYPE, CONFIDENCE, IS_COMPROMISED = 2, 3, 9, 10


def parse(lines: Iterable[str], stats: ParseStats, opts: ParseOptions) -> Iterator[Entry]:
    """Yield EXACT entries for domain and URL IOCs at or above the confidence threshold."""
    for line in lines:
        line = line.strip()
        if not line or line[0] == "#":
            stats.skipped += 1
            continue
        try:
            row = next(csv.reader((line,), skipinitialspace=True))
        except (csv.Error, StopIteration):
            stats.reject("malformed", line)
            continue
        name = _row(row, line, stats, opts)
        if name is not None:
            stats.accepted += 1
            yield Entry(name, SELF)


def _row(row: list[str], line: str, stats: ParseStats, opts: ParseOptions) -> str | None:
    if len(row) == 2:
        # Derived export: "domain, IOC FOUND" with an "Address,url" header.
        if row[0].strip().lower() == "address":
            stats.skipped += 1
            return None
        return normalize_name(row[0].strip(), stats, allow_tld=opts.allow_tld)
    if len(row) <= IS_COMPROMISED:
        stats.reject("malformed", line)
        return None
    ioc_type = row[IOC_TYPE].strip().lower()
    value = row[IOC_VALUE].strip()
    if ioc_type not in ("domain", "url"):
        if ioc_type == "ip:port" and _confidence(row) >= opts.min_confidence:
            # No name, but an address indicator (resolver/stages/answer_ip.py).
            stats.keep_ip(value.rsplit(":", 1)[0].strip("[]"))
        stats.rejected["not_a_name"] += 1  # ip:port and hashes: expected, not an error
        return None
    try:
        confidence = int(row[CONFIDENCE])
    except ValueError:
        confidence = 0
    if confidence < opts.min_confidence:
        stats.rejected["low_confidence"] += 1
        return None
    if row[IS_COMPROMISED].strip().lower() == "true":
        # A hacked legitimate site: still EXACT only, counted so an operator can see it.
        stats.note("compromised", value)
    if ioc_type == "url":
        return host_of_url(value, stats, opts)
    return normalize_name(value, stats, allow_tld=opts.allow_tld)


def _confidence(row: list[str]) -> int:
    try:
        return int(row[CONFIDENCE])
    except ValueError:
        return 0
