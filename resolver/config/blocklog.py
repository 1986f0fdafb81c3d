"""The ``blocklog`` section: the SQLite file of every block, which the weather page reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from resolver.checks import at_least, check
from resolver.config.values import positive


@dataclass(frozen=True, slots=True)
class BlockLogConfig:
    # SQLite file of every block; "" = <state_dir>/blocks.sqlite. The weather page reads it.
    path: str = ""
    # Blocks waiting to be written; if it ever fills, the loss is counted and shown.
    queue_size: int = field(default=10000, metadata=check(at_least(1)))
    # Blocks are written once every flush_interval seconds, or sooner once batch_size distinct
    # rows wait. Identical blocks (same machine, name, type, verdict, reason, category) within
    # one interval share a row with a count: a flood costs one row per name per interval.
    batch_size: int = field(default=5000, metadata=check(at_least(1)))
    flush_interval: float = field(default=1.0, metadata=check(positive))
    # Days of block events kept (400: a yearly report works); daily counts are kept for good.
    retention_days: int = field(default=400, metadata=check(at_least(1)))
