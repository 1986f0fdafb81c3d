"""The ``clients`` section: the names of the commune's machines, shown instead of bare addresses.

Names come, in this order, from ``names`` below, from the DHCP server's lease files the box can
read, and from reverse (PTR) lookups sent to the mairie's own DNS servers (the servers of
``local_zone.forward_zones``: the domain controller knows its machines). The address is always
shown beside the name.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from resolver.checks import at_least, check


def _names(pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    out = []
    for address, name in pairs:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            raise ValueError(
                f"{address!r} is not an IP address|write one line per machine, "
                "e.g. 192.168.1.23: accueil-pc"
            ) from None
        if not name.strip() or len(name) > 63:
            raise ValueError(f"name of {address} must be 1 to 63 characters|e.g. accueil-pc")
        out.append((str(ip), name.strip()))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ClientsConfig:
    # Names given by the operator, first in line: {192.168.1.23: accueil-pc, ...}
    names: tuple[tuple[str, str], ...] = field(default=(), metadata=check(_names))
    # DHCP lease files the box can read; the format is recognised (dnsmasq, ISC dhcpd, Kea CSV),
    # e.g. [/var/lib/misc/dnsmasq.leases, /var/lib/dhcp/dhcpd.leases, /var/lib/kea/kea-leases4.csv]
    lease_files: tuple[str, ...] = ()
    # Ask the forward zones' servers (local_zone.forward_zones) the name of an unnamed machine.
    ptr: bool = True
    # Seconds a name is kept before it is read or asked again.
    refresh: int = field(default=300, metadata=check(at_least(10)))
