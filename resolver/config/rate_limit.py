"""The ``rate_limit`` section: a token bucket per client address."""

from __future__ import annotations

from dataclasses import dataclass, field

from resolver.checks import at_least, check, networks
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
    # Clients never limited (addresses or networks): the domain controller or router that
    # forwards for the whole mairie. A limited client is named in the log once a minute.
    exempt: tuple[str, ...] = field(default=(), metadata=check(networks))
    # Error answers over UDP (REFUSED to clients outside acl.allow, FORMERR/NOTIMP to malformed
    # queries) per source network (/24, /56) per second, with bursts of errors_burst; past
    # that, one in errors_slip is answered and the others dropped (RRL: a forged source gets
    # no flood of answers, a real client is still told). errors_rate 0: unlimited.
    errors_rate: float = field(default=10.0, metadata=check(at_least(0)))
    errors_burst: int = field(default=20, metadata=check(at_least(1)))
    errors_slip: int = field(default=4, metadata=check(at_least(0)))
