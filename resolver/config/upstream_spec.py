"""What an ``upstream.servers`` entry means: plain DNS, DNS over TLS, or DNS over HTTPS.

    9.9.9.9   9.9.9.9:53   [2620:fe::fe]:53            plain DNS (UDP, TCP when truncated)
    tls://9.9.9.9#dns.quad9.net                         DNS over TLS, port 853
    tls://[2620:fe::fe]:853#dns.quad9.net               the name after '#' is the certificate's
    https://dns.quad9.net/dns-query                     DNS over HTTPS
    https://dns.quad9.net/dns-query#9.9.9.9             ... connecting to 9.9.9.9 (no DNS lookup)

Pure: no I/O. Errors are ValueError("message|hint"), as the config loader expects.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

UpstreamKind = Literal["udp", "tls", "https"]

DEFAULT_PORTS: dict[str, int] = {"udp": 53, "tls": 853, "https": 443}

_FORMS = "use 9.9.9.9, tls://9.9.9.9#dns.quad9.net or https://dns.quad9.net/dns-query"
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


@dataclass(frozen=True, slots=True)
class UpstreamSpec:
    """One upstream server as configured.

    ``host``/``port``: where to connect (an IP address, except for https:// without an
    ``address``, where host is the URL's host name). ``server_name``: the name the TLS
    certificate must carry (tls and https). ``url``: the DoH URL without its '#' part.
    ``address``: for https, the IP address to connect to instead of looking ``host`` up.
    """

    kind: UpstreamKind
    host: str
    port: int
    server_name: str | None = None
    url: str | None = None
    address: str | None = None

    def __str__(self) -> str:
        if self.kind == "https":
            return f"{self.url}#{self.address}" if self.address else f"{self.url}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.kind == "tls":
            return f"tls://{host}:{self.port}#{self.server_name}"
        return f"{host}:{self.port}"


def parse_upstream(text: str) -> UpstreamSpec:
    """Parse one ``upstream.servers`` entry; ValueError("message|hint") when it is not one."""
    text = text.strip()
    if not text:
        raise ValueError(f"empty upstream server|{_FORMS}")
    scheme, sep, rest = text.partition("://")
    if not sep:
        host, port = _hostport(text, text, DEFAULT_PORTS["udp"])
        return UpstreamSpec("udp", host, port)
    scheme = scheme.lower()
    if scheme == "tls":
        return _tls(text, rest)
    if scheme == "https":
        return _https(text)
    if scheme == "http":
        raise ValueError(f"{text!r}: plain http would send the queries in clear|use https://")
    raise ValueError(f"{text!r}: unknown scheme {scheme + '://'!r}|{_FORMS}")


def _tls(text: str, rest: str) -> UpstreamSpec:
    where, sep, name = rest.partition("#")
    name = name.strip()
    if not sep or not name:
        raise ValueError(
            f"{text!r}: missing the certificate name after '#'"
            "|write the server's name, e.g. tls://9.9.9.9#dns.quad9.net"
        )
    if "/" in where:
        raise ValueError(f"{text!r}: DNS over TLS has no path|write tls://9.9.9.9#dns.quad9.net")
    host, port = _hostport(where, text, DEFAULT_PORTS["tls"])
    return UpstreamSpec("tls", host, port, server_name=_server_name(name, text))


def _https(text: str) -> UpstreamSpec:
    url, _, fragment = text.partition("#")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when out of range or not a number
        hostname = parts.hostname
    except ValueError:
        raise ValueError(
            f"{text!r}: not a valid URL|write https://dns.quad9.net/dns-query"
        ) from None
    if not hostname:
        raise ValueError(f"{text!r}: the URL has no host|write https://dns.quad9.net/dns-query")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{text!r}: no user or password in the URL|remove the 'user@' part")
    if not parts.path or parts.path == "/":
        raise ValueError(
            f"{text!r}: the URL has no path|DNS over HTTPS servers use a path such as /dns-query"
        )
    if port == 0:
        raise ValueError(f"{text!r}: port 0 is not a server's port|use 443, or leave it out")
    host = _host_literal(hostname)
    if host is None:
        host = _server_name(hostname, text)
    url = urlunsplit(("https", parts.netloc.lower(), parts.path, parts.query, ""))
    address: str | None = None
    fragment = fragment.strip()
    if fragment:
        bare = fragment[1:-1] if fragment.startswith("[") and fragment.endswith("]") else fragment
        address = _host_literal(bare)
        if address is None:
            raise ValueError(
                f"{text!r}: {fragment!r} after '#' is not an IP address"
                "|give the address to connect to, e.g. https://dns.quad9.net/dns-query#9.9.9.9"
            )
    elif "#" in text:
        raise ValueError(
            f"{text!r}: nothing after '#'"
            "|give the address to connect to, e.g. https://dns.quad9.net/dns-query#9.9.9.9"
        )
    return UpstreamSpec(
        "https",
        host,
        port if port is not None else DEFAULT_PORTS["https"],
        server_name=host,
        url=url,
        address=address,
    )


def _host_literal(text: str) -> str | None:
    """The normalised IP address, or None when ``text`` is not one."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _server_name(name: str, whole: str) -> str:
    """A certificate name: a DNS host name, or an IP address (certificates may carry those)."""
    literal = _host_literal(name[1:-1] if name.startswith("[") and name.endswith("]") else name)
    if literal is not None:
        return literal
    name = name.rstrip(".").lower()
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            f"{whole!r}: {name!r} is not a host name|give the name in the server's certificate,"
            " e.g. dns.quad9.net"
        )
    return name


def _hostport(text: str, whole: str, default_port: int) -> tuple[str, int]:
    """'1.2.3.4', '1.2.3.4:53', '::1', '[::1]:53' -> (host, port); the host must be an IP."""
    host, port = text, default_port
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{whole!r}: missing ']'|write IPv6 as [2001:db8::1]:{default_port}")
        host = text[1:end]
        rest = text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(
                    f"{whole!r}: expected ':port' after ']'|write [2001:db8::1]:{default_port}"
                )
            port = _port(rest[1:], whole)
    elif text.count(":") == 1:
        host, p = text.split(":")
        port = _port(p, whole)
    literal = _host_literal(host)
    if literal is None:
        what = f"{whole!r}" if host == whole else f"{whole!r}: {host!r}"
        raise ValueError(
            f"{what} is not an IP address|give an address such as 192.168.1.2 or"
            f" [2001:db8::1]:{default_port} (a resolver cannot look its upstream's name up)"
        )
    if port == 0:
        raise ValueError(f"{whole!r}: port 0 is not a server's port|leave the port out")
    return literal, port


def _port(text: str, whole: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 65535:
        raise ValueError(f"{whole!r}: bad port|use a port number from 1 to 65535")
    return int(text)
