"""Block logs for tests, written by the real writer (resolver/blocklog/writer.py)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from resolver.blocklog.writer import BlockEvent, BlockLogWriter


class Clock:
    """A wall clock that stays where a test puts it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def write_events(
    db: Path, events: Iterable[BlockEvent], clock: Clock, *, then: float | None = None
) -> None:
    """Start a writer on ``db`` (its run recorded at the clock's time), move the clock to
    ``then`` if given (a box started long ago), write ``events``, flush, stop."""
    writer = BlockLogWriter(db, clock=clock)
    writer.start()
    if then is not None:
        clock.now = then
    try:
        for event in events:
            assert writer.offer(event)
        assert writer.flush(timeout=10)
    finally:
        writer.close()
