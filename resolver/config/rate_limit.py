"""The ``rate_limit`` section: a token bucket per client address."""

from __future__ import annotations

from dataclasses import dataclass, field

from resolver.checks import at_least, check
from resolver.config.values import positive


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    # A token bucket per client address; queries over it are dropped (the client retries).
    # Generous by default: a busy PC sends a few queries a second, a runaway one thousands.
    # A domain controller that forwards to the box speaks for every machine: keep it roomy.
    enabled: bool = True
    rate: float = field(default=1000.0, metadata=check(positive))  # queries per second
    burst: int = field(default=5000, metadata=check(at_least(1)))  # queries at once
    max_clients: int = field(default=65536, metadata=check(at_least(16)))  # buckets kept
