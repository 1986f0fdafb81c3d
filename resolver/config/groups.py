"""The ``groups`` section: the right protection for each network of the commune.

A mairie has several networks: the administration (threats only), the médiathèque's public
Wi-Fi (threats and adult content), the school, and machines never to filter (the domain
controller). Each group names its networks; a client in none of them is in the default group,
which is the rest of the config as it is (so a config without ``groups`` works as before).
Pi-hole calls these groups, Blocky client groups; AdGuard Home's per-client rules are its most
requested feature (issue #435).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal

from resolver.checks import check, networks

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
DEFAULT_GROUP = "default"


def _group_name(name: str) -> str:
    if not _NAME.fullmatch(name) or name == DEFAULT_GROUP:
        raise ValueError(
            f"{name!r} is not a group name|use lower-case letters, digits, - and _ "
            f"(up to 32), not {DEFAULT_GROUP!r}, e.g. wifi-public"
        )
    return name


@dataclass(frozen=True, slots=True)
class GroupConfig:
    # Shown on the page, in the API and in /metrics, e.g. wifi-public.
    name: str = field(metadata=check(_group_name))
    # The group's client networks (CIDR), e.g. [192.168.20.0/24]; a single machine is a /32.
    networks: tuple[str, ...] = field(metadata=check(networks))
    # false: nothing is blocked nor detected for these clients (the domain controller, which
    # forwards for the others: they are judged on their own queries).
    filter: bool = True
    # Block only names of these list categories (malware, phishing, adult, ...); [] = all.
    categories: tuple[str, ...] = ()
    # Block only names from these lists, as the block log names them ("feed:urlhaus",
    # "list:adult.txt"); [] = all.
    sources: tuple[str, ...] = ()
    # How a blocked name is answered for this group; "" = blocking.mode (same addresses).
    block_mode: Literal["", "nxdomain", "null", "refused", "sinkhole"] = ""
    # Exfiltration detection for this group; "" = exfiltration.mode.
    exfiltration: Literal["", "off", "detect", "block"] = ""
    # Generated-domain (DGA) detection for this group; "" = dga.mode.
    dga: Literal["", "off", "detect", "block"] = ""


def disjoint(groups: tuple[GroupConfig, ...]) -> tuple[GroupConfig, ...]:
    """Each client must belong to one group: no two groups' networks may overlap."""
    seen: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = []
    names: set[str] = set()
    for g in groups:
        if g.name in names:
            raise ValueError(f"group {g.name!r} is given twice|give each group its own name")
        names.add(g.name)
        for text in g.networks:
            net = ipaddress.ip_network(text, strict=False)
            for other, owner in seen:
                if net.version == other.version and net.overlaps(other):
                    raise ValueError(
                        f"{text} of group {g.name!r} overlaps {other} of group {owner!r}|"
                        "a client belongs to one group: leave the wider network to the default "
                        "group (no entry), e.g. only the DC's /32 in a group of its own"
                    )
            seen.append((net, g.name))
    return groups
