"""How long the observatory keeps what it receives, and the task that deletes the rest.

Events (a blocked name, its time to the minute, a machine's pseudonym) are kept
``retention_months`` months besides the current one, then deleted: on PostgreSQL a whole monthly
partition at once. Batch ids go with them (a box never resends a batch that old: its events
would be refused as too old). Daily counts per commune and category carry no name and no
machine, and are kept for the yearly figures.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Final

from dashboard.weather import local_date
from observatory.store import Pruned, Store

log = logging.getLogger(__name__)

# Hours between two pruning passes: a month's partition goes within a quarter of a day.
EVERY: Final = 6 * 3600.0


def retention_start(today: dt.date, months: int) -> dt.date:
    """The first day whose events are kept: the first of the month ``months`` months before
    today's (13 months on 2026-12-06: 2025-11-01).
    """
    index = today.year * 12 + today.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)


async def prune_once(store: Store, *, now: float, tz: str, months: int) -> Pruned:
    """Delete what is older than the retention; log what went."""
    before = retention_start(local_date(now, tz), months)
    pruned = await store.prune(before)
    if pruned.events or pruned.batches:
        log.info(
            "observatory: retention (%d months): deleted %d events and %d batch ids before %s",
            months,
            pruned.events,
            pruned.batches,
            before.isoformat(),
        )
    return pruned


async def prune_forever(
    store: Store, *, clock: Callable[[], float], tz: str, months: int, every: float = EVERY
) -> None:
    """Prune at start, then every ``every`` seconds, until cancelled; a failure is logged and
    retried at the next pass (the page and /ingest keep working meanwhile).
    """
    while True:
        try:
            await prune_once(store, now=clock(), tz=tz, months=months)
        except Exception as exc:  # the database may be restarting: try again later
            log.warning("observatory: retention pass failed: %s", exc)
        await asyncio.sleep(every)
