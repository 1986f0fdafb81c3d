"""The ``rebinding`` section: answers that put private addresses behind public names.

A web page from the Internet that makes its own name resolve to 192.168.1.1 (or 127.0.0.1)
gets the browser to talk to the mairie's router, printer or NAS as if they were the page's
own site (DNS rebinding). dnsmasq ``--stop-dns-rebind`` and unbound ``private-address`` drop
such answers; so does the box, except for names that are local by configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from resolver.checks import check, networks
from resolver.config.values import zone_names

PRIVATE_NETWORKS: tuple[str, ...] = (
    "0.0.0.0/8",  # "this network": browsers reach the machine itself through 0.0.0.0
    "10.0.0.0/8",  # RFC 1918
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local
    "::/128",
    "::1/128",
    "fc00::/7",  # RFC 4193 unique local
    "fe80::/10",  # link-local
)


@dataclass(frozen=True, slots=True)
class RebindingConfig:
    # Drop upstream answers that give an address of `networks` for a public name (the client
    # gets NODATA with EDE 15, and the block log a "rebinding" block). The mairie's forwarded
    # zones (local_zone.forward_zones), the box's own records and the allowlist are local, so
    # never judged. IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
    enabled: bool = True
    # More names (and everything under them) that may resolve to private addresses, e.g. a
    # public name of the mairie's NAS, or a DNS blocklist a mail server asks (127.0.0.x answers).
    allow: tuple[str, ...] = field(default=(), metadata=check(zone_names))
    # The addresses no public name may have.
    networks: tuple[str, ...] = field(default=PRIVATE_NETWORKS, metadata=check(networks))
