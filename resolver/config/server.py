"""The ``server`` section: where the box answers, and the limits that keep it standing."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from resolver.checks import at_least, check
from resolver.config.values import parse_hostport, positive


def _listen(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        raise ValueError("no listen address|give at least one, e.g. 127.0.0.1:5353")
    for v in values:
        parse_hostport(v, 53)
    return values


@dataclass(frozen=True, slots=True)
class ServerConfig:
    # Addresses to answer on, UDP and TCP each. Port 53 in production (see deploy/); 5353 needs
    # no privilege. IPv6 as [::1]:5353.
    listen: tuple[str, ...] = field(default=("127.0.0.1:5353",), metadata=check(_listen))
    # Largest UDP answer we send (RFC 6891); 1232 avoids IP fragmentation (DNS Flag Day 2020).
    udp_payload: int = field(default=1232, metadata=check(at_least(512)))
    # Seconds a TCP connection may stay idle (RFC 7766 §6.2.3 suggests seconds, not minutes).
    tcp_idle_timeout: float = field(default=10.0, metadata=check(positive))
    # TCP connections at once, all clients; past it the oldest idle one is closed.
    tcp_max_connections: int = field(default=256, metadata=check(at_least(1)))
    # Queries of one TCP connection answered at once (RFC 7766 pipelining).
    tcp_max_pipelined: int = field(default=64, metadata=check(at_least(1)))
    # Queries waiting for an upstream at once; past it new ones are dropped (clients retry).
    max_inflight: int = field(default=2048, metadata=check(at_least(1)))
    # Worker processes sharing the listen ports (SO_REUSEPORT, each client always on the same
    # worker). 0: one per CPU core. Needs fixed ports (not port 0).
    workers: int = field(default=0, metadata=check(at_least(0)))

    def worker_count(self) -> int:
        if self.workers:
            return self.workers
        # The cores this process may run on (taskset, cgroups), not all the machine's.
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
