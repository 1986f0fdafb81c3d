"""Answer repeats from the cache; sits after the policy stages so a newly listed name is never
served from it.

When the lists change, the cache is invalidated, not emptied: an entry from before the change
is never served as fresh (the fast path skips policy, and a name may have been listed since),
but it is kept for serve-stale, so a feed update during an internet outage does not leave the
commune without answers.
"""

from __future__ import annotations

from typing import ClassVar

from cachetools import LRUCache

from resolver.core import cached_answer
from resolver.core.cached_answer import CachedAnswer
from resolver.core.query import Query
from resolver.core.steps import CONTINUE, Reply, Step, Verdict


class CacheStage:
    name: ClassVar[str] = "cache"
    policy: ClassVar[bool] = False

    def __init__(self, size: int, min_ttl: int, max_ttl: int) -> None:
        # LRU bounded by entry count; expiry is checked on read, so an expired entry can still be
        # found (serve-stale needs that) and is replaced by the next store.
        self.entries: LRUCache[bytes, tuple[int, CachedAnswer]] = LRUCache(maxsize=max(size, 1))
        self.generation = 0  # of the lists; entries of an older one are only good for stale
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.enabled = size > 0
        self.hits = 0
        self.misses = 0

    def describe(self) -> str:
        return f"{self.entries.maxsize} entries, ttl {self.min_ttl}..{self.max_ttl} s"

    def lookup(self, key: bytes, now: float) -> CachedAnswer | None:
        """The live entry for ``key``, or None (hits and misses are counted by the callers)."""
        item = self.entries.get(key)
        if item is None:
            return None
        gen, entry = item
        if gen == self.generation and now < entry.stored_at + entry.ttl:
            return entry
        return None

    def stale(self, key: bytes) -> CachedAnswer | None:
        """The entry for ``key`` whatever its age or list generation (for serve-stale)."""
        item = self.entries.get(key)
        return None if item is None else item[1]

    def store(self, key: bytes, entry: CachedAnswer) -> None:
        if self.enabled:
            self.entries[key] = (self.generation, entry)

    def clear(self) -> None:
        self.entries.clear()

    def invalidate(self) -> None:
        """The lists changed: nothing cached before is fresh any more (but may serve stale)."""
        self.generation += 1

    def decide(self, query: Query, now: float) -> Step:
        entry = self.lookup(query.cache_key, now)
        if entry is None:
            self.misses += 1
            return CONTINUE
        self.hits += 1
        out = cached_answer.render(entry, query, now)
        if entry.blocked:
            return Reply(out, Verdict.BLOCKED, entry.reason, entry.category)
        return Reply(out, Verdict.CACHED, "cache")
