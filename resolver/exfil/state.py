"""Bounded state: sliding-window counters, per client+domain tracks, an LRU map.

Every structure has a fixed size or a fixed maximum count, whatever the traffic: a flood of
random names or client addresses only evicts the least recently seen entries.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

# Counter slots of a window.
NAMES: Final = 0  # distinct data-like names (weighted by record type)
VOLUME: Final = 1  # characters of distinct data-like names
ODD: Final = 2  # distinct names holding bytes no host name has
STRONG: Final = 3  # distinct names asked with NULL/KEY/private types
DISTINCT: Final = 4  # distinct names of any shape
SLOTS: Final = 5


class Window:
    """Counters over the last ``span`` seconds, kept in ``buckets`` slices of equal width.

    A slice leaves the sum as a whole, so the window covers between span - width and span
    seconds: with 6 slices of a 60 s window, 50 to 60 s.
    """

    __slots__ = ("_counts", "_ids", "_last", "_n", "_width", "totals")

    def __init__(self, span: float, buckets: int) -> None:
        self._n = buckets
        self._width = span / buckets
        self._ids = [-1] * buckets
        self._counts = [0] * (buckets * SLOTS)
        self._last = -1
        self.totals = [0] * SLOTS

    def _expire(self, b: int) -> None:
        n = self._n
        ids, counts, totals = self._ids, self._counts, self.totals
        for slot in range(n):
            old = ids[slot]
            # Older than the window, or from the future (a clock set back): drop it.
            if old >= 0 and (old <= b - n or old > b):
                base = slot * SLOTS
                for k in range(SLOTS):
                    totals[k] -= counts[base + k]
                    counts[base + k] = 0
                ids[slot] = -1
        self._last = b

    def add(self, now: float, values: tuple[int, int, int, int, int]) -> list[int]:
        """Count ``values`` (one per slot) at ``now``; return the totals of the window."""
        b = int(now // self._width)
        if b != self._last:
            self._expire(b)
        slot = b % self._n
        self._ids[slot] = b
        base = slot * SLOTS
        counts, totals = self._counts, self.totals
        for k in range(SLOTS):
            v = values[k]
            if v:
                counts[base + k] += v
                totals[k] += v
        return totals


class Track:
    """What one client asked of one registered domain lately."""

    __slots__ = ("long", "recent", "short")

    # Names remembered to recognise a repeat: a repeat says nothing new (a client retrying, a
    # record with TTL 0), and tunnels never repeat a name on purpose.
    RECENT: Final = 16

    def __init__(self, window: float, long_window: float) -> None:
        self.short = Window(window, 6)
        self.long = Window(long_window, 12)
        self.recent: list[int] = []

    def seen(self, key: int) -> bool:
        """True if ``key`` (a name's hash) was among the last RECENT names; remember it."""
        recent = self.recent
        if key in recent:
            return True
        recent.append(key)
        if len(recent) > self.RECENT:
            del recent[0]
        return False


class LruMap(Generic[K, V]):
    """A dict holding at most ``maxsize`` entries; the least recently used goes first."""

    __slots__ = ("_d", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._d: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: K) -> V | None:
        """The value (now most recently used) or None."""
        d = self._d
        value = d.get(key)
        if value is not None:
            d.move_to_end(key)
        return value

    def peek(self, key: K) -> V | None:
        """The value without touching its recency."""
        return self._d.get(key)

    def put(self, key: K, value: V) -> None:
        d = self._d
        d[key] = value
        d.move_to_end(key)
        if len(d) > self.maxsize:
            d.popitem(last=False)

    def pop(self, key: K) -> None:
        self._d.pop(key, None)

    def clear(self) -> None:
        self._d.clear()
