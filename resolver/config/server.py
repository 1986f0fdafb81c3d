"""The ``server`` section: where the box answers, and the limits that keep it standing."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from resolver.checks import at_least, check
from resolver.config.values import parse_hostport, positive

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _encrypted(default_port: int) -> Callable[[tuple[str, ...]], tuple[str, ...]]:
    def check_encrypted(values: tuple[str, ...]) -> tuple[str, ...]:
        for v in values:
            parse_hostport(v, default_port)
        return values

    return check_encrypted


def _tls_name(v: str) -> str:
    if v and (len(v) > 253 or not all(_LABEL.fullmatch(x) for x in v.lower().split("."))):
        raise ValueError(f"{v!r} is not a host name|e.g. parafoudre.mairie.local")
    return v.lower()


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
    # Encrypted DNS for the commune's own machines, through the same policy, ACL and rate limit
    # as plain DNS. DNS over TLS (RFC 7858) on these addresses (port 853 if none is given):
    tls_listen: tuple[str, ...] = field(default=(), metadata=check(_encrypted(853)))
    # DNS over HTTPS (RFC 8484, path /dns-query, GET and POST, HTTP/1.1), port 443 by default:
    https_listen: tuple[str, ...] = field(default=(), metadata=check(_encrypted(443)))
    # PEM files for both: the certificate chain and its private key. "" for both: a self-signed
    # pair made at first start in <state_dir>/tls/ (its fingerprint: `parafoudre doctor`).
    certificate: str = ""
    private_key: str = ""
    # The name clients check in the certificate and find in the DDR answer; "" = host name.
    tls_name: str = field(default="", metadata=check(_tls_name))
    # Advertise the encrypted endpoints to clients that ask (DDR, RFC 9462: Windows 11,
    # Android): _dns.resolver.arpa SVCB. Without tls_listen/https_listen there is nothing to say.
    ddr: bool = True
    # Seconds an idle TLS or HTTPS connection stays open, and how many at once (each kind).
    encrypted_idle_timeout: float = field(default=30.0, metadata=check(positive))
    encrypted_max_connections: int = field(default=256, metadata=check(at_least(1)))

    def __post_init__(self) -> None:
        if bool(self.certificate) != bool(self.private_key):
            raise ValueError(
                "certificate and private_key go together|set both, or neither for a "
                "self-signed pair"
            )

    def worker_count(self) -> int:
        if self.workers:
            return self.workers
        # The cores this process may run on (taskset, cgroups), not all the machine's.
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
