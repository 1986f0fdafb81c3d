"""Bounded state: sliding-window counters, per client+domain tracks, an LRU map.

Every structure has a fixed size or a fixed maximum count, whatever the traffic: a flood of
random names or client addresses only evicts the least recently seen entries.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from typing import Final, Generic, TypeVar

from resolver.exfil.features import capacity

K = TypeVar("K")
V = TypeVar("V")

# Counter slots of a window.
NAMES: Final = 0  # distinct data-like names (weighted by record type)
VOLUME: Final = 1  # characters of distinct data-like names
ODD: Final = 2  # distinct names holding bytes no host name has
STRONG: Final = 3  # distinct names asked with NULL/KEY/private types
DISTINCT: Final = 4  # distinct names of any shape
INFO: Final = 5  # compressed octets of distinct names (the information bound, see ``Info``)
ANSWER: Final = 6  # octets of answers to TXT/NULL/CNAME/MX/KEY/private-type questions
REPLIES: Final = 7  # answers seen (``on_answer``)
NXD: Final = 8  # of which NXDOMAIN
SLOTS: Final = 9
_ZEROS: Final = (0,) * SLOTS
_SYNC_FLUSH: Final = zlib.Z_SYNC_FLUSH


class Window:
    """Counters over the last ``span`` seconds, kept in ``buckets`` slices of equal width.

    A slice leaves the sum as a whole, so the window covers between span - width and span
    seconds: with 6 slices of a 60 s window, 50 to 60 s.
    """

    __slots__ = ("_base", "_counts", "_ids", "_last", "_n", "_width", "totals")

    def __init__(self, span: float, buckets: int) -> None:
        self._n = buckets
        self._width = span / buckets
        self._ids = [-1] * buckets
        self._counts = [0] * (buckets * SLOTS)
        self._last = -1
        # Where the counts of bucket ``_last`` start in ``_counts`` (bucket -1 in the last slot).
        self._base = (buckets - 1) * SLOTS
        self.totals = [0] * SLOTS

    def _expire(self, b: int) -> None:
        n = self._n
        ids, counts, totals = self._ids, self._counts, self.totals
        last = self._last
        if last < 0:
            pass  # a new window: no bucket held yet
        elif b - n >= last:
            # Every bucket held is at most ``last``, so older than the window (a pair quiet
            # for a whole span, the usual case of a sparse pair): all of it goes at once.
            # (Times are Unix times: no bucket is negative, every count is in a held bucket.)
            ids = self._ids = [-1] * n
            self._counts = [0] * (n * SLOTS)
            totals[:] = _ZEROS
        else:
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
        # Bucket b's slot is claimed here, once per bucket: the counting methods below only add
        # to it while the clock stays in that bucket.
        slot = b % n
        ids[slot] = b
        self._base = slot * SLOTS

    def add(self, now: float, values: tuple[int, ...]) -> list[int]:
        """Count ``values`` (one per slot) at ``now``; return the totals of the window."""
        b = int(now // self._width)
        if b != self._last:
            self._expire(b)
        base = self._base
        counts, totals = self._counts, self.totals
        for k in range(SLOTS):
            v = values[k]
            if v:
                counts[base + k] += v
                totals[k] += v
        return totals

    def count_name(
        self, now: float, names: int, volume: int, odd: int, strong: int, info: int
    ) -> None:
        """``add`` of a new name (NAMES, VOLUME, ODD, STRONG, INFO, and 1 to DISTINCT), unrolled:
        the per-query path, where ``add``'s loop over every slot cost ~1 µs a window."""
        b = int(now // self._width)
        if b != self._last:
            self._expire(b)
        base = self._base
        counts, totals = self._counts, self.totals
        if names:
            counts[base] += names
            totals[0] += names
        if volume:
            counts[base + 1] += volume
            totals[1] += volume
        if odd:
            counts[base + 2] += odd
            totals[2] += odd
        if strong:
            counts[base + 3] += strong
            totals[3] += strong
        counts[base + 4] += 1
        totals[4] += 1
        if info:
            counts[base + 5] += info
            totals[5] += info

    def count_answer(self, now: float, down: int, carried: int, nxdomain: int) -> None:
        """``add`` of an answer (INFO, ANSWER, NXD, and 1 to REPLIES), unrolled."""
        b = int(now // self._width)
        if b != self._last:
            self._expire(b)
        base = self._base
        counts, totals = self._counts, self.totals
        if down:
            counts[base + 5] += down
            totals[5] += down
        if carried:
            counts[base + 6] += carried
            totals[6] += carried
        counts[base + 7] += 1
        totals[7] += 1
        if nxdomain:
            counts[base + 8] += nxdomain
            totals[8] += nxdomain


class Info:
    """An upper bound of the information in a stream of names: their deflate output size.

    After Paxson et al., "Practical Comprehensive Bounds on Surreptitious Communication Over
    DNS" (USENIX Security 2013): what a client can smuggle to one registered domain is bounded
    by the compressed size of the distinct names it sends there. Each name is compressed with
    the previous ones as context (a 512-octet deflate window, ~3 KB of state), so repeated
    structure (a tenant name, a tool's fixed labels) costs nearly nothing and fresh data costs
    about its entropy. The 4-octet marker of each sync flush and the block header are not data.
    """

    __slots__ = ("_z",)

    FLUSH_OVERHEAD: Final = 5

    def __init__(self) -> None:
        # raw deflate, level 1, window 2**9, memLevel 1: the smallest state zlib offers
        self._z = zlib.compressobj(1, zlib.DEFLATED, -9, 1)

    def add(self, text: str) -> int:
        """Octets of information ``text`` adds to what was sent before."""
        z = self._z
        n = len(z.compress(text.encode("utf-8", "surrogateescape")))
        n += len(z.flush(_SYNC_FLUSH)) - self.FLUSH_OVERHEAD
        return n if n > 1 else 1


class Track:
    """What one client asked of one registered domain lately."""

    __slots__ = (
        "addresses",
        "awaited",
        "first_strike",
        "gaps",
        "info",
        "last_at",
        "last_labels",
        "last_prefix",
        "long",
        "persist_last",
        "persist_mask",
        "plain",
        "recent",
        "short",
        "strikes",
    )

    # Names remembered to recognise a repeat: a repeat says nothing new (a client retrying, a
    # record with TTL 0), and tunnels never repeat a name on purpose.
    RECENT: Final = 32
    # Plain (not data-like) names remembered apart, so that a burst of data names does not
    # push a beacon's fixed check-in name out of memory (see ``keep_plain``).
    PLAIN: Final = 8
    # Gaps between queries remembered to recognise a beacon's period.
    GAPS: Final = 8
    # Addresses of the last A/AAAA answers remembered (see ``varied``, ``scattered``).
    ADDRESSES: Final = 16

    def __init__(self, window: float, long_window: float) -> None:
        self.short = Window(window, 6)
        self.long = Window(long_window, 12)
        # Ordered sets (dicts, oldest first): a new name is looked up in both on every query,
        # a scan of 40 integers in lists, one hash lookup each in dicts.
        self.recent: dict[int, None] = {}
        self.plain: dict[int, None] = {}
        self.info: Info | None = None  # made at the second long name only: most tracks see one
        self.last_prefix = ""
        self.last_labels: list[str] = []
        self.last_at = -1.0
        self.gaps: list[float] = []
        self.strikes = 0  # detections on this track so far (escalation)
        self.first_strike = 0.0  # when the first of them came
        self.awaited: list[int] = []  # new names whose first answer has not come yet
        self.addresses: list[int] = []  # fingerprints of the last A/AAAA answers
        self.persist_mask = 0  # bit i: a new data-like name came i slots ago (``persist``)
        self.persist_last = -1  # the slot of bit 0

    def seen(self, key: int) -> bool:
        """True if ``key`` (a name's hash) was among the last RECENT names, or the last PLAIN
        plain ones; remember it."""
        recent = self.recent
        if key in recent or key in self.plain:
            return True
        recent[key] = None
        if len(recent) > self.RECENT:
            del recent[next(iter(recent))]
        return False

    def keep_plain(self, key: int) -> None:
        """The name just remembered (``seen``) is plain: keep it also apart from the data names."""
        plain = self.plain
        plain[key] = None  # never there yet: ``seen`` just looked
        if len(plain) > self.PLAIN:
            del plain[next(iter(plain))]

    def expect(self, key: int, data: bool = False) -> None:
        """A new name was passed on: its first answer will count (``fresh``), as information
        too if it looks like ``data`` (``mark_data`` at once)."""
        awaited = self.awaited
        awaited.append(~key if data else key)
        if len(awaited) > 8:
            del awaited[0]

    def mark_data(self, key: int) -> None:
        """The name just expected looks like data: its answer counts as information too."""
        awaited = self.awaited
        if awaited and awaited[-1] == key:
            awaited[-1] = ~key

    def fresh(self, key: int) -> int:
        """Once for a name passed on as new (its first answer): 2 if it looked like data
        (``mark_data``), else 1; 0 for any other answer."""
        awaited = self.awaited
        if key in awaited:
            awaited.remove(key)
            return 1
        if ~key in awaited:
            awaited.remove(~key)
            return 2
        return 0

    def address(self, fingerprint: int) -> None:
        """Note the address an A/AAAA answer gave (the last ADDRESSES are kept)."""
        addresses = self.addresses
        addresses.append(fingerprint)
        if len(addresses) > self.ADDRESSES:
            del addresses[0]

    def varied(self) -> bool:
        """Whether the answers carry data: a wildcard zone gives every name one address, a
        tunnel's A records differ each time. True until enough answers came to tell."""
        addresses = self.addresses
        return len(addresses) < 4 or len(set(addresses)) >= 4

    def scattered(self, count: int) -> bool:
        """Whether the last ``count`` answers are all different and scattered over the address
        space (as many first octets, but two): 4 octets of data each, as a channel's A records
        carry down. A zone's own hosts, a CDN's pool or a wildcard sit in a few networks."""
        last = self.addresses[-count:]
        if len(last) < count or len(set(last)) < count:
            return False
        return len({a >> 24 for a in last}) >= count - 2

    def tick(self, now: float, min_gap: float) -> float:
        """Note a query at ``now``; gaps under ``min_gap`` (one burst) are not remembered.
        Returns the gap since the previous query to this domain (-1 for the first)."""
        last = self.last_at
        self.last_at = now
        if last < 0:
            return -1.0
        gap = now - last
        if gap >= min_gap:
            gaps = self.gaps
            gaps.append(gap)
            if len(gaps) > self.GAPS:
                del gaps[0]
        return gap

    def persist(self, now: float, width: float, span: int) -> int:
        """Note a new data-like name at ``now``; return in how many of the last ``span`` slots
        of ``width`` seconds one came (temporal persistence, Giroire et al., RAID 2009)."""
        slot = int(now // width)
        shift = slot - self.persist_last
        if shift < 0:  # a clock set back: start again
            self.persist_mask, shift = 0, 0
        self.persist_last = slot
        self.persist_mask = ((self.persist_mask << shift) | 1) & ((1 << span) - 1)
        return self.persist_mask.bit_count()

    def periodic(self, count: int, max_cv: float) -> bool:
        """Whether the last ``count`` gaps are regular: coefficient of variation <= max_cv."""
        gaps = self.gaps
        if len(gaps) < count:
            return False
        last = gaps[-count:]
        mean = sum(last) / count
        var = sum((g - mean) ** 2 for g in last) / count
        return var <= (max_cv * mean) ** 2

    def information(self, prefix: str, octets: int, min_chars: int, data: bool) -> int:
        """Octets of information the name part ``prefix`` adds: the least of its capacity
        (``features.capacity``) and its compressed size after the names before (``Info``).
        Only names that look like ``data`` and have ``min_chars`` octets are compressed: the
        ~9 KB of a compressor go to the tracks that need it, ~4 µs are saved on the rest."""
        labels = prefix.split(".")
        cap = capacity(labels, self.last_labels)
        self.last_labels = labels
        if octets < min_chars or not data:
            return cap
        info = self.info
        if info is None:
            if not self.last_prefix:
                self.last_prefix = prefix
                return cap  # the first long name: nothing to compress it against
            info = self.info = Info()
            info.add(self.last_prefix)
        return min(info.add(prefix), cap)


class LruMap(Generic[K, V]):
    """A dict holding at most ``maxsize`` entries; the least recently used goes first."""

    __slots__ = ("_d", "entries", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._d: OrderedDict[K, V] = OrderedDict()
        # The same dict, for readers on the per-query path (a length, a peek, a get followed by
        # move_to_end: what ``get`` does) without a method call; writes go through ``put``.
        self.entries = self._d

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

    def put(self, key: K, value: V) -> bool:
        """Store ``value``; True if the least recently used entry had to go for it."""
        d = self._d
        d[key] = value
        d.move_to_end(key)
        if len(d) > self.maxsize:
            d.popitem(last=False)
            return True
        return False

    def key_list(self) -> list[K]:
        return list(self._d)

    def pop(self, key: K) -> None:
        self._d.pop(key, None)

    def clear(self) -> None:
        self._d.clear()
