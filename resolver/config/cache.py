"""The ``cache`` section: how many answers are kept (count and bytes), for how long, and
serve-stale."""

from __future__ import annotations

from dataclasses import dataclass, field

from resolver.checks import at_least, check
from resolver.config.values import positive


@dataclass(frozen=True, slots=True)
class CacheConfig:
    # Answers kept; 10,000 is a few MB and covers a commune's working set. 0 disables the cache.
    size: int = field(default=10000, metadata=check(at_least(0)))
    # Bounds applied to upstream TTLs, in seconds.
    min_ttl: int = field(default=0, metadata=check(at_least(0)))
    max_ttl: int = field(default=86400, metadata=check(at_least(0)))
    # When no upstream answers, serve expired answers (TTL 30 s) up to this age (RFC 8767):
    # the commune keeps working through an internet outage. 0 disables.
    stale_max_age: int = field(default=86400, metadata=check(at_least(0)))
    # With a stale answer at hand, wait this long for the upstream before using it; the
    # upstream's answer, when it comes, refreshes the cache (RFC 8767 suggests 1.8 s).
    stale_answer_after: float = field(default=1.8, metadata=check(positive))
    # Refresh a popular answer in the background when a query hits its last 10 % of TTL.
    prefetch: bool = True
    # With ``size``: at most this many bytes of answers, per worker (each has its own cache).
    # 64 MB holds 10,000 answers of ordinary size many times over, and bounds the memory a
    # client asking for huge answers (61 KB over TCP) can make the box spend.
    max_bytes: int = field(default=64 << 20, metadata=check(at_least(65536)))
    # An answer larger than this (bytes) is passed on but not kept (DNSSEC and big TXT answers
    # are a few KB; only TCP carries more than 16 KB).
    max_entry_bytes: int = field(default=16384, metadata=check(at_least(1024)))

    def __post_init__(self) -> None:
        if self.min_ttl > self.max_ttl:
            raise ValueError("min_ttl is above max_ttl|make cache.min_ttl <= cache.max_ttl")
        if self.max_entry_bytes > self.max_bytes:
            raise ValueError(
                "max_entry_bytes is above max_bytes|make cache.max_entry_bytes <= cache.max_bytes"
            )
