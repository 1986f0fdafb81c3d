"""What every parser takes: the feed's options, and the helpers they share."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from feeds.normalize import SELF, Entry, ParseStats


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """Per-feed choices a format does not fix."""

    # Scope mask for a bare name: SELF (exact) or SELF | BELOW (name and subdomains). The same
    # bare "example.com" means one or the other depending on the feed (FORMATS.md §2).
    # 0 = not stated: formats that need it (plain domain lists) then refuse to guess.
    mask: int = SELF
    # Let single labels through: the OISD nsfw lists block whole TLDs on purpose.
    allow_tld: bool = False
    # ThreatFox confidence_level threshold (0-100); lower IOCs are skipped.
    min_confidence: int = 0


class Parser(Protocol):
    """``parse(lines, stats, opts)``: one module per format provides it."""

    def __call__(
        self, lines: Iterable[str], stats: ParseStats, opts: ParseOptions
    ) -> Iterator[Entry]: ...
