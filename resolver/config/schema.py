"""The configuration tree: every key the operator can set, its default, and why.

Defaults are safe as they are: loopback only on an unprivileged port, two independent upstreams,
private networks only, blocked names answered NXDOMAIN.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dashboard.config import DashboardConfig
from feeds.sources import FeedsConfig
from resolver.checks import at_least as _at_least
from resolver.checks import check
from resolver.checks import networks as _networks
from resolver.core.steps import Upstream
from resolver.net.upstream_spec import parse_upstream
from resolver.observatory_push.config import ObservatoryPushConfig
from resolver.stages.exfiltration_config import ExfiltrationConfig

# --- value checks: return the normalised value or raise ValueError("message|hint") ---------------


def parse_hostport(text: str, default_port: int) -> tuple[str, int]:
    """'1.2.3.4', '1.2.3.4:53', '::1', '[::1]:53' -> (host, port)."""
    text = text.strip()
    host, port = text, default_port
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: missing ']'|write IPv6 as [2001:db8::1]:53")
        host = text[1:end]
        rest = text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected ':port' after ']'|write [2001:db8::1]:53")
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, p = text.split(":")
        port = _port(p, text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP address|give an address such as 192.168.1.2 or [2001:db8::1]:53"
        ) from None
    return host, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError(f"{whole!r}: bad port|use a port number from 1 to 65535")
    return int(text)


def _listen(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        raise ValueError("no listen address|give at least one, e.g. 127.0.0.1:5353")
    for v in values:
        parse_hostport(v, 53)
    return values


def _upstreams(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        raise ValueError("no upstream server|give at least one, e.g. 9.9.9.9")
    for v in values:
        parse_upstream(v)
    return values


def _plain_servers(values: tuple[str, ...]) -> tuple[str, ...]:
    for v in values:
        if parse_hostport(v, 53)[1] == 0:
            raise ValueError(f"{v!r}: port 0 is not a server's port|use 53, or leave the port out")
    return values


def to_upstream(text: str) -> Upstream:
    spec = parse_upstream(text)
    if spec.kind == "https":
        return Upstream(
            spec.address or "", spec.port, "https", spec.server_name or "", spec.url or ""
        )
    return Upstream(spec.host, spec.port, spec.kind, spec.server_name or "")


def _servers(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        raise ValueError("no server|give the domain controller's address, e.g. 192.168.1.2")
    return _plain_servers(values)


def _positive(v: float) -> float:
    if v <= 0:
        raise ValueError(f"{v} must be greater than 0|give a positive value")
    return v


def _ipv4(v: str | None) -> str | None:
    if v is not None:
        try:
            ipaddress.IPv4Address(v)
        except ValueError:
            raise ValueError(f"{v!r} is not an IPv4 address|e.g. 192.168.1.250") from None
    return v


def _ipv6(v: str | None) -> str | None:
    if v is not None:
        try:
            ipaddress.IPv6Address(v)
        except ValueError:
            raise ValueError(f"{v!r} is not an IPv6 address|e.g. fd00::250") from None
    return v


def _records(values: tuple[str, ...]) -> tuple[str, ...]:
    from resolver.stages.local_zone import parse_record

    for v in values:
        try:
            parse_record(v)
        except ValueError as exc:
            raise ValueError(
                f"{v!r}: {exc}|write one record per item, e.g. 'nas.mairie.local A 192.168.1.10'"
            ) from None
    return values


def _zone(v: str) -> str:
    v = v.strip().rstrip(".").lower()
    if not v or " " in v:
        raise ValueError(f"{v!r} is not a domain name|e.g. mairie.local or 1.168.192.in-addr.arpa")
    return v


def _names(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_zone(v) for v in values)


# --- sections ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerConfig:
    # Addresses to answer on, UDP and TCP each. Port 53 in production (see deploy/); 5353 needs
    # no privilege. IPv6 as [::1]:5353.
    listen: tuple[str, ...] = field(default=("127.0.0.1:5353",), metadata=check(_listen))
    # Largest UDP answer we send (RFC 6891); 1232 avoids IP fragmentation (DNS Flag Day 2020).
    udp_payload: int = field(default=1232, metadata=check(_at_least(512)))
    # Seconds a TCP connection may stay idle (RFC 7766 §6.2.3 suggests seconds, not minutes).
    tcp_idle_timeout: float = field(default=10.0, metadata=check(_positive))
    # TCP connections at once, all clients; past it the oldest idle one is closed.
    tcp_max_connections: int = field(default=256, metadata=check(_at_least(1)))
    # Queries of one TCP connection answered at once (RFC 7766 pipelining).
    tcp_max_pipelined: int = field(default=64, metadata=check(_at_least(1)))
    # Queries waiting for an upstream at once; past it new ones are dropped (clients retry).
    max_inflight: int = field(default=2048, metadata=check(_at_least(1)))
    # Worker processes sharing the listen ports (SO_REUSEPORT, each client always on the same
    # worker). 0: one per CPU core. Needs fixed ports (not port 0).
    workers: int = field(default=0, metadata=check(_at_least(0)))

    def worker_count(self) -> int:
        if self.workers:
            return self.workers
        # The cores this process may run on (taskset, cgroups), not all the machine's.
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    # Resolvers we forward to, tried in order with failover. Quad9 and Cloudflare's malware-
    # filtering service: two independent operators, both filtering threats themselves too.
    # Never a resolver that the commune's machines could use to bypass the box.
    servers: tuple[str, ...] = field(default=("9.9.9.9", "1.1.1.2"), metadata=check(_upstreams))
    # Seconds to wait for one server before trying the next.
    timeout: float = field(default=1.5, metadata=check(_positive))
    # Seconds for all tries together; after it the client gets SERVFAIL.
    total_timeout: float = field(default=4.0, metadata=check(_positive))

    def addresses(self) -> tuple[Upstream, ...]:
        return tuple(to_upstream(s) for s in self.servers)


DEFAULT_ALLOWED = (
    "127.0.0.0/8",  # loopback
    "::1/128",
    "10.0.0.0/8",  # RFC 1918
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",  # RFC 4193 unique local
    "169.254.0.0/16",  # link-local
    "fe80::/10",
)


@dataclass(frozen=True, slots=True)
class AclConfig:
    # Client networks that may use the box; everyone else gets REFUSED (never an open resolver).
    allow: tuple[str, ...] = field(default=DEFAULT_ALLOWED, metadata=check(_networks))


@dataclass(frozen=True, slots=True)
class ListFile:
    # A text file, one domain per line ('#' comments allowed); the feeds updater produces the
    # compiled list, this is for the operator's own additions.
    path: str
    # Name shown in the block log as "list:<name>"; default: the file name.
    name: str = ""
    # What the names are: malware, phishing, c2, scam, ...
    category: str = "malware"
    # subtree: the name and every name under it; exact: the name only.
    match: Literal["subtree", "exact"] = "subtree"


@dataclass(frozen=True, slots=True)
class BlockingConfig:
    # How a blocked name is answered: nxdomain (does not exist), null (0.0.0.0 and ::),
    # refused, or sinkhole (the addresses below, e.g. a page explaining the block).
    mode: Literal["nxdomain", "null", "refused", "sinkhole"] = "nxdomain"
    sinkhole_ipv4: str | None = field(default=None, metadata=check(_ipv4))
    sinkhole_ipv6: str | None = field(default=None, metadata=check(_ipv6))
    # TTL of blocked answers in null/sinkhole mode: short, so an unblocked name comes back fast.
    ttl: int = field(default=60, metadata=check(_at_least(0)))
    # Extra list files (the compiled feeds artifact is loaded as well, see feeds:).
    lists: tuple[ListFile, ...] = ()
    # The compiled blocklist written by `parafoudre feeds update`; "" = <state_dir>/blocklist.pfb
    compiled: str = ""

    def __post_init__(self) -> None:
        if self.mode == "sinkhole" and not (self.sinkhole_ipv4 or self.sinkhole_ipv6):
            raise ValueError(
                "mode sinkhole needs an address|set blocking.sinkhole_ipv4 (and/or sinkhole_ipv6)"
            )


@dataclass(frozen=True, slots=True)
class AllowlistConfig:
    # Names never blocked, with every name under them; the operator's word beats every list.
    names: tuple[str, ...] = field(default=(), metadata=check(_names))
    # Files of such names, one per line.
    files: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ForwardZone:
    # A zone answered by the mairie's own servers, e.g. the Windows domain and its reverse zone.
    zone: str = field(metadata=check(_zone))
    servers: tuple[str, ...] = field(metadata=check(_servers))


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    # A token bucket per client address; queries over it are dropped (the client retries).
    # Generous by default: a busy PC sends a few queries a second, a runaway one thousands.
    # A domain controller that forwards to the box speaks for every machine: keep it roomy.
    enabled: bool = True
    rate: float = field(default=1000.0, metadata=check(_positive))  # queries per second
    burst: int = field(default=5000, metadata=check(_at_least(1)))  # queries at once
    max_clients: int = field(default=65536, metadata=check(_at_least(16)))  # buckets kept


@dataclass(frozen=True, slots=True)
class LocalZoneConfig:
    # Records the box answers itself, one zone-file line each: "nas.mairie.local A 192.168.1.10".
    records: tuple[str, ...] = field(default=(), metadata=check(_records))
    # Conditional forwarding: these zones go to these servers, never to the public upstreams.
    forward_zones: tuple[ForwardZone, ...] = ()
    # Answer reverse lookups of private addresses (RFC 6303) locally instead of leaking them.
    private_reverse: bool = True


@dataclass(frozen=True, slots=True)
class CacheConfig:
    # Answers kept; 10,000 is a few MB and covers a commune's working set. 0 disables the cache.
    size: int = field(default=10000, metadata=check(_at_least(0)))
    # Bounds applied to upstream TTLs, in seconds.
    min_ttl: int = field(default=0, metadata=check(_at_least(0)))
    max_ttl: int = field(default=86400, metadata=check(_at_least(0)))
    # When no upstream answers, serve expired answers (TTL 30 s) up to this age (RFC 8767):
    # the commune keeps working through an internet outage. 0 disables.
    stale_max_age: int = field(default=86400, metadata=check(_at_least(0)))
    # With a stale answer at hand, wait this long for the upstream before using it; the
    # upstream's answer, when it comes, refreshes the cache (RFC 8767 suggests 1.8 s).
    stale_answer_after: float = field(default=1.8, metadata=check(_positive))
    # Refresh a popular answer in the background when a query hits its last 10 % of TTL.
    prefetch: bool = True

    def __post_init__(self) -> None:
        if self.min_ttl > self.max_ttl:
            raise ValueError("min_ttl is above max_ttl|make cache.min_ttl <= cache.max_ttl")


@dataclass(frozen=True, slots=True)
class BlockLogConfig:
    # SQLite file of every block; "" = <state_dir>/blocks.sqlite. The weather page reads it.
    path: str = ""
    # Blocks waiting to be written; if it ever fills, the loss is counted and shown.
    queue_size: int = field(default=10000, metadata=check(_at_least(1)))
    # Blocks are written once every flush_interval seconds, or sooner once batch_size distinct
    # rows wait. Identical blocks (same machine, name, type, verdict, reason, category) within
    # one interval share a row with a count: a flood costs one row per name per interval.
    batch_size: int = field(default=5000, metadata=check(_at_least(1)))
    flush_interval: float = field(default=1.0, metadata=check(_positive))
    # Days of block events kept (400: a yearly report works); daily counts are kept for good.
    retention_days: int = field(default=400, metadata=check(_at_least(1)))


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    # debug, info, warning or error. Queries are never logged one by one.
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True, slots=True)
class Config:
    # Where the box keeps its data (block log, compiled lists). "" = $STATE_DIRECTORY (systemd)
    # or ~/.local/state/parafoudre.
    state_dir: str = ""
    server: ServerConfig = ServerConfig()
    upstream: UpstreamConfig = UpstreamConfig()
    acl: AclConfig = AclConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    local_zone: LocalZoneConfig = LocalZoneConfig()
    allowlist: AllowlistConfig = AllowlistConfig()
    blocking: BlockingConfig = BlockingConfig()
    cache: CacheConfig = CacheConfig()
    blocklog: BlockLogConfig = BlockLogConfig()
    logging: LoggingConfig = LoggingConfig()
    # DNS exfiltration and tunnel detection (see resolver/stages/exfiltration.py).
    exfiltration: ExfiltrationConfig = ExfiltrationConfig()  # noqa: RUF009 (frozen)
    # Threat feeds fetched by `parafoudre feeds update` (see feeds/README.md).
    feeds: FeedsConfig = FeedsConfig()  # noqa: RUF009 (frozen, so safe to share)
    # Reporting blocks to the département's observatory (see observatory/README.md). Off by default.
    observatory: ObservatoryPushConfig = ObservatoryPushConfig()  # noqa: RUF009 (frozen)
    # The weather page, its JSON API and /metrics (see dashboard/README.md).
    dashboard: DashboardConfig = DashboardConfig()  # noqa: RUF009 (frozen, so safe to share)

    def state_path(self) -> Path:
        if self.state_dir:
            return Path(self.state_dir).expanduser()
        env = os.environ.get("STATE_DIRECTORY")
        if env:
            return Path(env.split(":")[0])
        return Path.home() / ".local" / "state" / "parafoudre"

    def blocklog_path(self) -> Path:
        return (
            Path(self.blocklog.path).expanduser()
            if self.blocklog.path
            else self.state_path() / "blocks.sqlite"
        )

    def feeds_config(self) -> FeedsConfig:
        """The feeds section with its state directory resolved under ``state_dir``."""
        if self.feeds.state_dir:
            return self.feeds
        return dataclasses.replace(self.feeds, state_dir=str(self.state_path() / "feeds"))

    def compiled_path(self) -> Path:
        c = self.blocking.compiled
        return Path(c).expanduser() if c else self.state_path() / "blocklist.pfb"
