"""The ``groups`` section: the right protection for each network of the commune.

A mairie has several networks: the administration (threats only), the médiathèque's public
Wi-Fi (threats and adult content), the school, and machines never to filter (the domain
controller). Each group names its networks; a client in none of them is in the default group,
which is the rest of the config as it is (so a config without ``groups`` works as before).
A group may also name machines of ``clients.names`` (its address there, as a /32 or /128).
Pi-hole calls these groups, Blocky client groups; AdGuard Home's per-client rules are its most
requested feature (issue #435).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from resolver.checks import check, networks

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
DEFAULT_GROUP = "default"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class KeyedError(ValueError):
    """A check across sections ("message|hint"), with the key it is about, e.g. ("groups", 1,
    "clients", 0): the loader points at that key's line."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


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
    networks: tuple[str, ...] = field(default=(), metadata=check(networks))
    # Machines named in clients.names, e.g. [accueil-pc]: their addresses there (/32, /128).
    clients: tuple[str, ...] = ()
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

    def __post_init__(self) -> None:
        if not self.networks and not self.clients:
            raise ValueError(
                f"group {self.name!r} covers no client|give it networks: [192.168.20.0/24] "
                "and/or clients: [accueil-pc] (names of clients.names)"
            )


def disjoint(groups: tuple[GroupConfig, ...]) -> tuple[GroupConfig, ...]:
    """Each client must belong to one group: no two groups' networks may overlap (their
    named clients are checked by ``check_members``, which knows clients.names)."""
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


def _addresses(names: Sequence[tuple[str, str]]) -> dict[str, list[Network]]:
    """clients.names as name (case-folded) -> the addresses it names, as /32 or /128."""
    out: dict[str, list[Network]] = {}
    for address, name in names:
        out.setdefault(name.casefold(), []).append(ipaddress.ip_network(address))
    return out


def group_networks(
    groups: Sequence[GroupConfig], names: Sequence[tuple[str, str]]
) -> list[tuple[str, list[Network]]]:
    """Each group's name and the networks it covers: its networks, then its named clients'
    addresses (``check_members`` has made sure each name is known)."""
    known = _addresses(names)
    out = []
    for g in groups:
        nets = [ipaddress.ip_network(n, strict=False) for n in g.networks]
        for client in g.clients:
            nets.extend(a for a in known.get(client.casefold(), ()) if a not in nets)
        out.append((g.name, nets))
    return out


def _unknown(i: int, j: int, client: str, known: dict[str, list[Network]]) -> KeyedError:
    close = difflib.get_close_matches(client.casefold(), list(known), 1)
    hint = (
        f"did you mean {close[0]!r}?"
        if close
        else f"name its address in clients.names, e.g. 192.168.1.23: {client[:63]}"
    )
    return KeyedError(
        ("groups", i, "clients", j), f"{client[:63]!r} is not a name of clients.names|{hint}"
    )


def _overlap(a: Network, b: Network) -> bool:
    return a.version == b.version and a.overlaps(b)


def check_members(groups: Sequence[GroupConfig], names: Sequence[tuple[str, str]]) -> None:
    """The groups' named clients exist in clients.names, and no address of one is in another
    group's networks or named clients: each client belongs to one group (KeyedError)."""
    known = _addresses(names)
    seen: list[tuple[Network, str]] = [
        (ipaddress.ip_network(n, strict=False), g.name) for g in groups for n in g.networks
    ]
    for i, g in enumerate(groups):
        for j, client in enumerate(g.clients):
            addresses = known.get(client.casefold())
            if addresses is None:
                raise _unknown(i, j, client, known)
            for addr in addresses:
                owner = next((o for n, o in seen if o != g.name and _overlap(addr, n)), None)
                if owner is not None:
                    raise KeyedError(
                        ("groups", i, "clients", j),
                        f"client {client[:63]} ({addr.network_address}) of group {g.name!r} "
                        f"is also in group {owner!r}|a client belongs to one group: name it "
                        "in one only, or take its network out of the other",
                    )
                seen.append((addr, g.name))


def group_of(address: str, groups: Sequence[tuple[str, Sequence[Network]]]) -> str:
    """The group a client address is in (as the resolver chooses it, resolver/core/groups.py:
    a dual-stack socket's ::ffff:a.b.c.d is a.b.c.d, a scope is ignored), else the default."""
    try:
        addr = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return DEFAULT_GROUP
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    for name, nets in groups:
        if any(addr in n for n in nets):
            return name
    return DEFAULT_GROUP
