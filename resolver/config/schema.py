"""The configuration tree: one section per key, each defined in its own module of this package.

Defaults are safe as they are: loopback only on an unprivileged port, two independent upstreams,
private networks only, blocked names answered NXDOMAIN. Every section module uses only the
stdlib and ``resolver.checks``: loading the config loads neither the resolver, nor the page,
nor the feeds (``tests/test_conventions.py`` checks it). The names below are re-exported for
``from resolver.config.schema import ...``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from resolver.checks import check
from resolver.config.acl import DEFAULT_ALLOWED, AclConfig
from resolver.config.alerts import AlertsConfig
from resolver.config.allowlist import AllowlistConfig
from resolver.config.blocking import BlockingConfig, ListFile
from resolver.config.blocklog import BlockLogConfig
from resolver.config.cache import CacheConfig
from resolver.config.canaries import CanariesConfig
from resolver.config.clients import ClientsConfig
from resolver.config.dashboard import DashboardConfig, ThresholdsConfig
from resolver.config.dga import DgaConfig
from resolver.config.exfiltration import ExfilThresholds, ExfiltrationConfig
from resolver.config.feeds import FeedsConfig, FeedSource
from resolver.config.groups import GroupConfig, check_members, disjoint
from resolver.config.local_zone import ForwardZone, LocalZoneConfig
from resolver.config.logs import LoggingConfig
from resolver.config.observatory import ObservatoryPushConfig
from resolver.config.rate_limit import RateLimitConfig
from resolver.config.rebinding import RebindingConfig
from resolver.config.server import ServerConfig
from resolver.config.upstream import UpstreamConfig
from resolver.config.values import parse_hostport

__all__ = [
    "DEFAULT_ALLOWED",
    "AclConfig",
    "AlertsConfig",
    "AllowlistConfig",
    "BlockLogConfig",
    "BlockingConfig",
    "CacheConfig",
    "CanariesConfig",
    "ClientsConfig",
    "Config",
    "DashboardConfig",
    "DgaConfig",
    "ExfilThresholds",
    "ExfiltrationConfig",
    "FeedSource",
    "FeedsConfig",
    "ForwardZone",
    "GroupConfig",
    "ListFile",
    "LocalZoneConfig",
    "LoggingConfig",
    "ObservatoryPushConfig",
    "RateLimitConfig",
    "RebindingConfig",
    "ServerConfig",
    "ThresholdsConfig",
    "UpstreamConfig",
    "parse_hostport",
]


@dataclass(frozen=True, slots=True)
class Config:
    # Sections are built per tree (default_factory): each is frozen, so sharing one would be
    # safe too, but a factory needs no lint exception for a call in a default.

    # Where the box keeps its data (block log, compiled lists). "" = $STATE_DIRECTORY (systemd)
    # or ~/.local/state/parafoudre.
    state_dir: str = ""
    server: ServerConfig = field(default_factory=ServerConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    acl: AclConfig = field(default_factory=AclConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    local_zone: LocalZoneConfig = field(default_factory=LocalZoneConfig)
    # Bypass canaries (Firefox, iCloud Private Relay) answered by the box (see README).
    canaries: CanariesConfig = field(default_factory=CanariesConfig)
    allowlist: AllowlistConfig = field(default_factory=AllowlistConfig)
    blocking: BlockingConfig = field(default_factory=BlockingConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    blocklog: BlockLogConfig = field(default_factory=BlockLogConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    # DNS exfiltration and tunnel detection (see resolver/stages/exfiltration.py).
    exfiltration: ExfiltrationConfig = field(default_factory=ExfiltrationConfig)
    # Private addresses behind public names dropped (DNS rebinding; resolver/stages/rebinding.py).
    rebinding: RebindingConfig = field(default_factory=RebindingConfig)
    # Machines that look up generated domains (DGA malware; see resolver/stages/dga.py).
    dga: DgaConfig = field(default_factory=DgaConfig)
    # Networks of the commune with their own protection (see resolver/config/groups.py).
    groups: tuple[GroupConfig, ...] = field(default=(), metadata=check(disjoint))
    # Threat feeds fetched by `parafoudre feeds update` (see feeds/README.md).
    feeds: FeedsConfig = field(default_factory=FeedsConfig)
    # Reporting blocks to the département's observatory (see observatory/README.md). Off by default.
    observatory: ObservatoryPushConfig = field(default_factory=ObservatoryPushConfig)
    # Names of the commune's machines, shown beside their addresses (see resolver/client_names.py).
    clients: ClientsConfig = field(default_factory=ClientsConfig)
    # E-mails and webhooks when it storms, a machine is named... (see dashboard/alerts.py).
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    # The weather page, its JSON API and /metrics (see dashboard/README.md).
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)

    def __post_init__(self) -> None:
        # Across sections: a group's named clients are machines of clients.names.
        check_members(self.groups, self.clients.names)

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
