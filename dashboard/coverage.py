"""When the box ran: the ``runs`` rows of the block log turned into seconds covered per window.

A day with no block is sunny only if the box was running that day: before its first start, and
while it was stopped, there is no data, and the page says so. Pure functions, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from dashboard.protection import HEARTBEAT_STALE

Run = tuple[float, float]  # (started, seen), unix seconds

# A window counts as fully covered from this share up (a restart costs a few seconds).
FULL: Final = 0.95


def covered(runs: Sequence[Run], start: float, end: float, now: float) -> float:
    """Seconds of [start, min(end, now)) during which at least one run was up.

    A run whose heartbeat is recent is still up: it counts until ``now``. Runs may overlap
    (several workers each record theirs); overlaps count once.
    """
    stop = min(end, now)
    spans = []
    for started, seen in runs:
        if now - seen <= HEARTBEAT_STALE:
            seen = now  # still running: its next heartbeat is not due yet
        a, b = max(started, start), min(seen, stop)
        if b > a:
            spans.append((a, b))
    total, reach = 0.0, start
    for a, b in sorted(spans):
        if b <= reach:
            continue
        total += b - max(a, reach)
        reach = b
    return total
