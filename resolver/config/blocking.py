"""The ``blocking`` section: how a blocked name is answered, and the operator's own list files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from resolver.checks import at_least, check
from resolver.config.values import ipv4, ipv6


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
    sinkhole_ipv4: str | None = field(default=None, metadata=check(ipv4))
    sinkhole_ipv6: str | None = field(default=None, metadata=check(ipv6))
    # TTL of blocked answers in null/sinkhole mode: short, so an unblocked name comes back fast.
    ttl: int = field(default=60, metadata=check(at_least(0)))
    # Extra list files (the compiled feeds artifact is loaded as well, see feeds:).
    lists: tuple[ListFile, ...] = ()
    # The compiled blocklist written by `parafoudre feeds update`; "" = <state_dir>/blocklist.pfb
    compiled: str = ""

    def __post_init__(self) -> None:
        if self.mode == "sinkhole" and not (self.sinkhole_ipv4 or self.sinkhole_ipv6):
            raise ValueError(
                "mode sinkhole needs an address|set blocking.sinkhole_ipv4 (and/or sinkhole_ipv6)"
            )
