"""Value checks shared by several config sections: addresses, ports, names, time zones.

Each returns the value (possibly normalised) or raises ValueError("message|hint"), which the
loader turns into a one-line error with the file and line. Stdlib only, like every module of
``resolver.config``: loading the config must not load the resolver, the page or the feeds.
"""

from __future__ import annotations

import ipaddress
import zoneinfo


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
    if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 65535:
        raise ValueError(f"{whole!r}: bad port|use a port number from 1 to 65535")
    return int(text)


def parse_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:8053' or '[::1]:8053' -> (host, port): a web listener, the port is required."""
    hint = "write it as 192.168.1.10:8053 or [fd00::10]:8053"
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: expected address:port|{hint}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address|{hint}") from None
    return host, int(port)


def listen_address(text: str) -> str:
    """Check for a web listener's address:port; the text is kept as written."""
    parse_listen(text)
    return text


def positive(v: float) -> float:
    if v <= 0:
        raise ValueError(f"{v} must be greater than 0|give a positive value")
    return v


def ipv4(v: str | None) -> str | None:
    if v is not None:
        try:
            ipaddress.IPv4Address(v)
        except ValueError:
            raise ValueError(f"{v!r} is not an IPv4 address|e.g. 192.168.1.250") from None
    return v


def ipv6(v: str | None) -> str | None:
    if v is not None:
        try:
            ipaddress.IPv6Address(v)
        except ValueError:
            raise ValueError(f"{v!r} is not an IPv6 address|e.g. fd00::250") from None
    return v


def zone_name(v: str) -> str:
    """A domain name as the operator writes it, lower-cased without the trailing dot."""
    v = v.strip().rstrip(".").lower()
    if not v or " " in v:
        raise ValueError(f"{v!r} is not a domain name|e.g. mairie.local or 1.168.192.in-addr.arpa")
    return v


def zone_names(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(zone_name(v) for v in values)


def timezone(name: str) -> str:
    """An IANA time zone name known to this machine."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not a known time zone|use an IANA name such as Europe/Paris"
        ) from None
    return name


def page_token(value: str | None) -> str | None:
    """A web page's access token: None (the allowed networks suffice), or 16+ characters."""
    if value is not None and len(value) < 16:
        raise ValueError("token is shorter than 16 characters|use e.g. `openssl rand -hex 16`")
    return value
