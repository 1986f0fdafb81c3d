"""The ``upstream`` section: the resolvers the box forwards to (plain DNS, DoT or DoH).

What one ``servers`` entry means is ``resolver.config.upstream_spec``; turning entries into the
core's ``Upstream`` values is the resolver's business (``resolver.upstreams``), not the config's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from resolver.checks import check
from resolver.config.upstream_spec import UpstreamSpec, parse_upstream
from resolver.config.values import positive


def _upstreams(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        raise ValueError("no upstream server|give at least one, e.g. 9.9.9.9")
    for v in values:
        parse_upstream(v)
    return values


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    # Resolvers we forward to, tried in order with failover. Quad9 and Cloudflare's malware-
    # filtering service: two independent operators, both filtering threats themselves too.
    # Never a resolver that the commune's machines could use to bypass the box.
    servers: tuple[str, ...] = field(default=("9.9.9.9", "1.1.1.2"), metadata=check(_upstreams))
    # Seconds to wait for one server before trying the next.
    timeout: float = field(default=1.5, metadata=check(positive))
    # Seconds for all tries together; after it the client gets SERVFAIL.
    total_timeout: float = field(default=4.0, metadata=check(positive))

    def specs(self) -> tuple[UpstreamSpec, ...]:
        """The servers, parsed (they were checked when the config was loaded)."""
        return tuple(parse_upstream(s) for s in self.servers)
