"""One runaway machine must not starve the others: a token bucket per client address."""

from __future__ import annotations

from collections import OrderedDict
from typing import ClassVar

from resolver.core.query import Query
from resolver.core.steps import CONTINUE, Drop, Step

_DROP = Drop("rate_limit")


class RateLimitStage:
    name: ClassVar[str] = "rate_limit"
    policy: ClassVar[bool] = False

    def __init__(self, rate: float, burst: int, max_clients: int = 65536) -> None:
        self.rate = rate  # tokens (queries) per second
        self.burst = float(burst)
        self.max_clients = max_clients  # buckets kept; the least recently seen go first
        # client -> [tokens, last refill time]; a list so the hot path updates in place.
        self.buckets: OrderedDict[str, list[float]] = OrderedDict()
        self.limited = 0

    def describe(self) -> str:
        return f"{self.rate:g} queries/s per client, bursts of {self.burst:g}"

    def meter(self, client: str, now: float) -> Drop | None:
        """Take a token for this query (cached ones too: the pipeline's fast lane calls this)."""
        b = self.buckets.get(client)
        if b is None:
            if len(self.buckets) >= self.max_clients:
                self.buckets.popitem(last=False)
            self.buckets[client] = [self.burst - 1.0, now]
            return None
        tokens = b[0]
        elapsed = now - b[1]
        if elapsed > 0:  # a clock stepped back refills nothing, and takes nothing away
            tokens += elapsed * self.rate
            if tokens > self.burst:
                tokens = self.burst
            b[1] = now
        if tokens < 1.0:
            b[0] = tokens
            self.limited += 1
            return _DROP
        b[0] = tokens - 1.0
        self.buckets.move_to_end(client)
        return None

    def allow(self, client: str, now: float) -> bool:
        return self.meter(client, now) is None

    def decide(self, query: Query, now: float) -> Step:
        drop = self.meter(query.client, now)
        return CONTINUE if drop is None else drop
