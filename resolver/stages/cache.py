"""Answer repeats from the cache; sits after the policy stages so a newly listed name is never
served from it.

When a stage's judgement changes (the lists swap, a cool-down starts: Pipeline.changed), the
cache is invalidated, not emptied: an entry from before the change is never served by the fast
lane (which skips policy, and a name may have been listed since).
The full path, whose policy stages have just judged the name against the new lists, takes such
an entry back (``_taken_back``) and has the answer judges check it again (``Recheck``: CNAME
targets and addresses listed since) instead of asking upstream again; and every entry is kept
for serve-stale, so a feed update during an internet outage does not leave the commune
without answers.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import ClassVar, Final

from resolver.core import cached_answer
from resolver.core.cached_answer import CachedAnswer
from resolver.core.query import Query
from resolver.core.stage import Rendered
from resolver.core.steps import CONTINUE, Forward, Recheck, Reply, Step, Verdict

RENDERED_MAX: Final = 16384  # distinct query messages remembered; reset when full
# What one entry costs beyond its answer's bytes, measured with tracemalloc (2,000 entries):
# the tuple and its fields, the key, the LRU's order and size bookkeeping; and per record, its
# TTL offset and TTL (int objects past 256, each in a tuple slot).
ENTRY_OVERHEAD: Final = 600
RECORD_OVERHEAD: Final = 72


def footprint(entry: CachedAnswer) -> int:
    """An entry's memory in bytes, near enough to bound the cache by (issue 14)."""
    return ENTRY_OVERHEAD + len(entry.body) + len(entry.ede) + RECORD_OVERHEAD * len(entry.ttls)


class AnswerLru:
    """An LRU bounded twice: by the bytes its answers take and by how many it holds.

    Bytes, because one client asking for names whose answers are 61 KB (over TCP) took a worker
    from 89 MB to 871 MB with a bound of 10,000 entries only. Sizes are only computed when an
    answer is stored (a cache miss). On an OrderedDict, whose reordering is C: cachetools'
    LRUCache did the same in Python, and a store that evicts cost a miss 4 us in its methods.
    """

    __slots__ = ("_d", "currsize", "max_entries", "maxsize")

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._d: OrderedDict[bytes, CachedAnswer] = OrderedDict()
        self.max_entries = max_entries
        self.maxsize = max_bytes
        self.currsize = 0  # bytes, as ``footprint`` counts them

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key: bytes) -> bool:
        return key in self._d

    def get(self, key: bytes) -> CachedAnswer | None:
        """The entry for ``key``, made the most recently used; None if there is none."""
        d = self._d
        entry = d.get(key)
        if entry is not None:
            d.move_to_end(key)
        return entry

    def __setitem__(self, key: bytes, value: CachedAnswer) -> None:
        size = footprint(value)
        if size > self.maxsize:
            raise ValueError("value too large")  # as cachetools: the caller checks first
        d = self._d
        old = d.pop(key, None)
        if old is not None:
            self.currsize -= footprint(old)
        d[key] = value
        self.currsize += size
        while self.currsize > self.maxsize or len(d) > self.max_entries:
            self.currsize -= footprint(d.popitem(last=False)[1])

    def clear(self) -> None:
        self._d.clear()
        self.currsize = 0


class CacheStage:
    name: ClassVar[str] = "cache"
    policy: ClassVar[bool] = False
    rechecks: ClassVar[bool] = True  # keeps a rechecked answer under the new judgement

    def __init__(
        self,
        size: int,
        min_ttl: int,
        max_ttl: int,
        max_bytes: int = 64 << 20,
        max_entry_bytes: int = 16384,
    ) -> None:
        # LRU bounded by entry count and bytes; expiry is checked on read, so an expired entry
        # can still be found (serve-stale needs that) and is replaced by the next store.
        self.entries = AnswerLru(max(size, 1), max(max_bytes, 1))
        # An answer bigger than this is passed on but not kept: a few huge answers would
        # otherwise push a commune's whole working set out (and it can never exceed the bound).
        self.max_entry_bytes = min(max_entry_bytes, max_bytes)
        self.too_large = 0  # answers not kept for their size
        self.generation = 0  # of the lists; entries of an older one are only good for stale
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.enabled = size > 0
        # UDP answers as rendered this second, by query message less its ID: a repeat of the
        # same bytes within the second gets the same answer, so the UDP loop serves it with only
        # the ID patched (resolver.net.udp). Cleared whenever an entry is replaced or the lists
        # change, and by the loop when the second changes (TTLs age by the second). Eviction
        # does not clear it: a memoised entry was read from the cache this second, so it is
        # among the most recently used and goes only after ``size`` others used since.
        self.rendered: dict[bytes, Rendered] = {}
        self.rendered_second = -1
        self.hits = 0
        self.misses = 0
        self.revalidated = 0  # answers taken back across a list change (see _taken_back)

    def describe(self) -> str:
        e = self.entries
        mb = int(e.maxsize) >> 20
        return f"{e.max_entries} entries, {mb} MB, ttl {self.min_ttl}..{self.max_ttl} s"

    def lookup(self, key: bytes, now: float) -> CachedAnswer | None:
        """The live entry for ``key``, or None (hits and misses are counted by the callers)."""
        entry = self.entries.get(key)
        if (
            entry is not None
            and entry.generation == self.generation
            and now < entry.stored_at + entry.ttl
        ):
            return entry
        return None

    def hit(self, key: bytes, now: float) -> CachedAnswer | None:
        """``lookup`` for the fast lane, which counts its hits here (misses: see ``decide``)."""
        entry = self.entries.get(key)
        if (
            entry is not None
            and entry.generation == self.generation
            and now < entry.stored_at + entry.ttl
        ):
            self.hits += 1
            return entry
        return None

    def tick(self, now: float) -> None:
        """A new batch at ``now``: renderings of another second have their TTLs a second off."""
        second = int(now)
        if second != self.rendered_second:
            self.rendered.clear()
            self.rendered_second = second

    def recall(self, tail: bytes) -> Rendered | None:
        """This second's rendering of the query message ``tail`` (less its ID), if any."""
        hit = self.rendered.get(tail)
        if hit is not None:
            self.hits += 1
        return hit

    def remember(
        self,
        tail: bytes,
        out: bytes,
        entry: CachedAnswer,
        question: bytes,
        now: float,
        prefetch_at: float | None,
    ) -> None:
        """Keep ``out``, the UDP answer to the message ``tail``, for repeats within this second,
        if it stays the same until then (and no prefetch is due before: ``prefetch_at``)."""
        sec = int(now)
        if sec != self.rendered_second:
            return  # rendered in another second than the memo's (or not from the UDP loop)
        until = sec + 1
        if entry.stored_at + entry.ttl < until:
            return  # expires within the second
        if prefetch_at is not None and prefetch_at < until:
            return
        memo = self.rendered
        if len(memo) >= RENDERED_MAX:
            memo.clear()
        event = None
        if entry.blocked:
            qtype = (question[-4] << 8) | question[-3]
            event = (entry.qname, qtype, Verdict.BLOCKED, entry.reason, entry.category)
        memo[tail] = (out, event)

    def stale(self, key: bytes) -> CachedAnswer | None:
        """The entry for ``key`` whatever its age or list generation (for serve-stale)."""
        return self.entries.get(key)

    def _taken_back(self, key: bytes, now: float) -> CachedAnswer | None:
        """An unexpired answer from before a change of judgement, to be judged again.

        This stage runs after the policy stages, so the query's name has just passed them; the
        pipeline then passes the answer through the stages that judge answers (CNAME targets,
        addresses on the lists, rebinding: ``Recheck``) and this stage's ``on_answer`` keeps it
        under the new judgement. A block is not taken back (its name may no longer be listed).
        Without this, every feeds update sent every popular name back upstream at once.
        """
        entry = self.entries.get(key)
        if (
            entry is None
            or entry.generation == self.generation
            or entry.blocked
            or now >= entry.stored_at + entry.ttl
        ):
            return None
        self.revalidated += 1
        return entry

    def store(self, key: bytes, entry: CachedAnswer) -> None:
        if self.enabled:
            if footprint(entry) > self.max_entry_bytes:
                self.too_large += 1
                return
            entries = self.entries
            old = entries.get(key)
            if old is not None and old is not entry:
                self.rendered.clear()  # another answer: its renderings are wrong now
            gen = self.generation
            # The entry itself carries its list generation: no (generation, entry) pair, one
            # object less for the cyclic GC to track per answer.
            entries[key] = entry if entry.generation == gen else entry._replace(generation=gen)

    def clear(self) -> None:
        self.rendered.clear()
        self.entries.clear()

    def invalidate(self) -> None:
        """A stage's judgement changed: nothing cached before is fresh any more (but may serve
        stale, and the full path may take it back: ``_taken_back``)."""
        self.generation += 1
        self.rendered.clear()

    def decide(self, query: Query, now: float) -> Step:
        entry = self.lookup(query.cache_key, now)
        if entry is None:
            old = self._taken_back(query.cache_key, now)
            if old is None:
                self.misses += 1
                return CONTINUE
            self.hits += 1
            return Recheck(old)
        self.hits += 1
        out = cached_answer.render(entry, query, now)
        if entry.blocked:
            return Reply(out, Verdict.BLOCKED, entry.reason, entry.category)
        return Reply(out, Verdict.CACHED, "cache")

    def on_answer(self, query: Query, fwd: Forward, entry: CachedAnswer, now: float) -> None:
        """Keep the upstream's answer, which the policy stages before this one let through.

        Answers from the mairie's own servers (conditional forwarding) are not kept: an
        internal zone changes without notice, and they must never be served stale.
        """
        if fwd.zone is None and entry.ttl > 0:
            self.store(query.cache_key, entry)
