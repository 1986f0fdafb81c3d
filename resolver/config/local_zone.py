"""The ``local_zone`` section: records the box answers itself, and conditional forwarding.

A record is one zone-file line (RFC 1035 §5.1) of the types a town hall's network needs. It is
checked here with the stdlib so that a bad line is refused at start with its file and line; the
stage (``resolver.stages.local_zone.parse_record``) builds its wire form from the same text.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from resolver.checks import check
from resolver.config.values import parse_hostport, zone_name

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_TXT_PART = re.compile(r'\s*(?:"([^"\\]*)"|([^\s";\\]+))')
_RECORD_HINT = "write one record per item, e.g. 'nas.mairie.local A 192.168.1.10'"
_MAX_TTL = 2**31 - 1  # RFC 2181 §8


def _fail(text: str, message: str, hint: str = _RECORD_HINT) -> ValueError:
    return ValueError(f"{text!r}: {message}|{hint}")


def _host_name(name: str, text: str) -> str:
    """A host name as zone files write it (relative or with the final dot); ASCII, no wildcard."""
    bare = name.rstrip(".").lower() if name != "." else ""
    if name.startswith("*"):
        raise _fail(text, "wildcards are not answered", "write each name in full")
    if not bare or len(bare) > 253 or not all(_LABEL.fullmatch(x) for x in bare.split(".")):
        raise _fail(text, f"{name!r} is not a host name")
    return bare


def _u16(value: str, what: str, text: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) > 65535:
        raise _fail(text, f"{what} {value!r} is not a number from 0 to 65535")
    return int(value)


def _one(parts: list[str], text: str, what: str) -> str:
    if len(parts) != 1:
        raise _fail(text, f"expected one {what}, got {len(parts)} values")
    return parts[0]


def _ipv4(rdata: str, text: str) -> None:
    address = _one(rdata.split(), text, "IPv4 address")
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise _fail(text, f"{rdata!r} is not an IPv4 address") from None


def _ipv6(rdata: str, text: str) -> None:
    address = _one(rdata.split(), text, "IPv6 address")
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        raise _fail(text, f"{rdata!r} is not an IPv6 address") from None


def _target(rdata: str, text: str) -> None:
    _host_name(_one(rdata.split(), text, "name"), text)


def _mx(rdata: str, text: str) -> None:
    parts = rdata.split()
    if len(parts) != 2:
        raise _fail(text, "MX takes a preference and a name", "e.g. 'mairie.local MX 10 mail'")
    _u16(parts[0], "preference", text)
    _host_name(parts[1], text)


def _srv(rdata: str, text: str) -> None:
    parts = rdata.split()
    if len(parts) != 4:
        raise _fail(
            text,
            "SRV takes priority, weight, port and target",
            "e.g. '_ldap._tcp.mairie.local SRV 0 100 389 dc1.mairie.local'",
        )
    for value, what in zip(parts[:3], ("priority", "weight", "port"), strict=True):
        _u16(value, what, text)
    _host_name(parts[3], text)


def _txt(rdata: str, text: str) -> None:
    """One or more strings, quoted or bare, each at most 255 bytes (RFC 1035 §3.3.14)."""
    pos, count = 0, 0
    while pos < len(rdata):
        m = _TXT_PART.match(rdata, pos)
        if m is None:
            raise _fail(
                text, "TXT text is not one or more strings", 'quote it: ... TXT "some text"'
            )
        part = m.group(1) if m.group(1) is not None else m.group(2)
        if len(part.encode()) > 255:
            raise _fail(text, "a TXT string is over 255 bytes", "split it into quoted strings")
        pos, count = m.end(), count + 1
        if not rdata[pos:].strip():
            break
    if count == 0:
        raise _fail(text, "TXT has no text", "e.g. 'mairie.local TXT \"v=spf1 -all\"'")


_RDATA: dict[str, Callable[[str, str], None]] = {
    "A": _ipv4,
    "AAAA": _ipv6,
    "CNAME": _target,
    "PTR": _target,
    "NS": _target,
    "MX": _mx,
    "SRV": _srv,
    "TXT": _txt,
}


def check_record(text: str) -> str:
    """``name [ttl] [IN] TYPE rdata``; ValueError("message|hint") when it is not one we serve."""
    head = text.split(None, 4)
    if len(head) < 3:
        raise _fail(text, "expected a name, a type and a value")
    _host_name(head[0], text)
    i = 1
    if head[i].isascii() and head[i].isdigit():
        if int(head[i]) > _MAX_TTL:
            raise _fail(text, f"TTL {head[i]} is above {_MAX_TTL}", "give seconds, e.g. 300")
        i += 1
    if i < len(head) and head[i] == "IN":
        i += 1
    if i + 1 >= len(head):
        raise _fail(text, "expected a type and a value after the name")
    rtype = head[i]
    if rtype not in _RDATA:
        supported = ", ".join(_RDATA)
        raise _fail(text, f"{rtype!r} is not a record type served here", f"use {supported}")
    rdata = text.split(None, i + 1)[i + 1]
    _RDATA[rtype](rdata, text)
    return text


def _records(values: tuple[str, ...]) -> tuple[str, ...]:
    for v in values:
        check_record(v)
    return values


def _servers(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        raise ValueError("no server|give the domain controller's address, e.g. 192.168.1.2")
    for v in values:
        if parse_hostport(v, 53)[1] == 0:
            raise ValueError(f"{v!r}: port 0 is not a server's port|use 53, or leave the port out")
    return values


@dataclass(frozen=True, slots=True)
class ForwardZone:
    # A zone answered by the mairie's own servers, e.g. the Windows domain and its reverse zone.
    zone: str = field(metadata=check(zone_name))
    servers: tuple[str, ...] = field(metadata=check(_servers))
    # Its names are judged like any other (threat lists, exfiltration detector) unless true:
    # then they skip both, as allowlisted names do. Trust only the mairie's own AD zones.
    trusted: bool = False


@dataclass(frozen=True, slots=True)
class LocalZoneConfig:
    # Records the box answers itself, one zone-file line each: "nas.mairie.local A 192.168.1.10".
    # Types: A, AAAA, CNAME, PTR, NS, MX, SRV, TXT.
    records: tuple[str, ...] = field(default=(), metadata=check(_records))
    # Conditional forwarding: these zones go to these servers, never to the public upstreams.
    # Their names still meet the threat lists and the exfiltration detector (see ``trusted``).
    forward_zones: tuple[ForwardZone, ...] = ()
    # Answer reverse lookups of private addresses (RFC 6303) locally instead of leaking them.
    private_reverse: bool = True
