"""The ``canaries`` section: names by which devices ask the network whether they may walk around it.

The box answers them itself, never forwards them; ``resolver.arpa`` (RFC 9462) is always
answered locally and has no switch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CanariesConfig:
    # use-application-dns.net answered NXDOMAIN: Firefox then keeps using the box instead of
    # sending all its DNS over HTTPS to its own provider, past the filter. As Pi-hole and
    # AdGuard Home do. Off: Firefox may turn its own DNS over HTTPS on by itself.
    firefox: bool = True
    # mask.icloud.com and mask-h2.icloud.com answered NXDOMAIN: iPhones and Macs then turn
    # iCloud Private Relay off on this network (Safari says "Private Relay is turned off for
    # this network"), so Safari's names go through the filter. Off: Private Relay users'
    # Safari browsing bypasses the box.
    icloud_private_relay: bool = True
