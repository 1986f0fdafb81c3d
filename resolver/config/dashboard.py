"""The ``dashboard`` section: where the weather page listens, who may see it, its thresholds.

Loaded by ``resolver.config.loader`` like every other section; the page (``dashboard/``) imports
it from here. The observatory reuses ``ThresholdsConfig`` so both pages share one weather scale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from resolver.checks import at_least as _at_least
from resolver.checks import check as _check
from resolver.checks import networks as _networks
from resolver.config.acl import DEFAULT_ALLOWED
from resolver.config.values import listen_address, page_token, parse_listen
from resolver.config.values import timezone as _timezone
from resolver.config.values import zone_names as _zone_names

__all__ = [
    "DEFAULT_ALLOWED",
    "DashboardConfig",
    "OperatorLogin",
    "ThresholdsConfig",
    "parse_listen",
]


@dataclass(frozen=True, slots=True)
class ThresholdsConfig:
    """Blocks since local midnight from which the day turns to each weather (sunny below cloudy).

    Calibrated on the Loire programme: 422,000 attacks neutralised in a year across 92 communes,
    about 12 a day per commune, by a box that filters much more than DNS (firewall, mail, web).
    A DNS-only box sees fewer, so an ordinary day is cloudy, a busy one a little rain; storm and
    tornado mean several times a whole box's average: usually one machine calling home again
    and again.
    """

    # From 1 block: a few clouds, the box did its job on a quiet day.
    cloudy: int = field(default=1, metadata=_check(_at_least(1)))
    # From 10: rain, close to the Loire box's whole daily average; still an ordinary day.
    rain: int = field(default=10, metadata=_check(_at_least(1)))
    # From 40: storm, over 3 times that average; look at the top clients.
    storm: int = field(default=40, metadata=_check(_at_least(1)))
    # From 150: tornado, over 12 times that average; a machine is very likely infected.
    tornado: int = field(default=150, metadata=_check(_at_least(1)))

    def __post_init__(self) -> None:
        if not self.cloudy <= self.rain <= self.storm <= self.tornado:
            raise ValueError("thresholds are not in order|make cloudy <= rain <= storm <= tornado")


_HASH = re.compile(r"^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$")
_LOGIN = re.compile(r"^[A-Za-z0-9._@-]{1,32}$")


def _password_hash(value: str) -> str:
    if not _HASH.match(value):
        raise ValueError(
            "not a password hash made by Parafoudre"
            "|run `parafoudre hash-password` and paste the line it prints (never the password)"
        )
    return value


def _login(value: str) -> str:
    if not _LOGIN.match(value):
        raise ValueError(
            f"{value[:40]!r} is not a login name|use 1 to 32 letters, digits, '.', '_', '@', '-'"
        )
    return value


@dataclass(frozen=True, slots=True)
class OperatorLogin:
    """Someone who may change things from the page (allow a name, undo it)."""

    # The login, shown in the block log beside each change (e.g. "marie").
    name: str = field(metadata=_check(_login))
    # The password's scrypt hash from `parafoudre hash-password`; never the password itself.
    password_hash: str = field(metadata=_check(_password_hash))


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """The weather page, its JSON API and /metrics."""

    # Serve the page from `parafoudre serve`.
    enabled: bool = True
    # Address:port of the page. Loopback by default; on the LAN give the box's address, e.g.
    # 192.168.1.10:8053, and keep `allow` to the mairie's networks.
    listen: str = field(default="127.0.0.1:8053", metadata=_check(listen_address))
    # Networks whose machines may see the page; others get 403 (default: private networks only).
    allow: tuple[str, ...] = field(default=DEFAULT_ALLOWED, metadata=_check(_networks))
    # Optional access token (16+ characters) for the page, /api/* and /metrics: send it as
    # "Authorization: Bearer <token>" or ?token=<token>. None: the allowed networks suffice.
    token: str | None = field(default=None, metadata=_check(page_token))
    # Who may allow a name from the page (the page stays readable by all without a login).
    # Logging in with the token above also works, recorded as "token". Neither: the page is
    # read-only and names are allowed with `parafoudre allow NAME`.
    operators: tuple[OperatorLogin, ...] = ()
    # Hours a login stays valid.
    session_hours: int = field(default=8, metadata=_check(_at_least(1)))
    # Time zone of "today" (the weather counts blocks since local midnight).
    timezone: str = field(default="Europe/Paris", metadata=_check(_timezone))
    # Language of the page: fr or en (?lang=en overrides it per request).
    language: Literal["fr", "en"] = "fr"
    # Blocks per day from which the weather changes; documented on the page.
    thresholds: ThresholdsConfig = ThresholdsConfig()
    # Rows of the blocks table per page; the API caps page_size at max_page_size.
    page_size: int = field(default=50, metadata=_check(_at_least(1)))
    max_page_size: int = field(default=500, metadata=_check(_at_least(1)))
    # Seconds between two refreshes of the open page (no full reload).
    refresh: int = field(default=30, metadata=_check(_at_least(5)))
    # Entries in the top names and top clients lists.
    top: int = field(default=10, metadata=_check(_at_least(1)))
    # Blocks of one client today from which the page names it as a machine to look at.
    highlight_min: int = field(default=3, metadata=_check(_at_least(1)))
    # A feed not refreshed for this many hours is shown as stale.
    feed_stale_hours: int = field(default=48, metadata=_check(_at_least(1)))
    # Names the page is reached by (the Host header), besides its addresses, localhost and the
    # machine's name; other names get 403, so a site cannot point its name at the box and read
    # the page through the visitor's browser (DNS rebinding).
    hosts: tuple[str, ...] = field(default=(), metadata=_check(_zone_names))

    def __post_init__(self) -> None:
        if self.page_size > self.max_page_size:
            raise ValueError("page_size is above max_page_size|make page_size <= max_page_size")
