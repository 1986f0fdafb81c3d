"""The ``acl`` section: which client networks may use the box (everyone else gets REFUSED)."""

from __future__ import annotations

from dataclasses import dataclass, field

from resolver.checks import check, networks

DEFAULT_ALLOWED: tuple[str, ...] = (
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
    allow: tuple[str, ...] = field(default=DEFAULT_ALLOWED, metadata=check(networks))
