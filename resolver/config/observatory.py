"""The ``observatory`` section of the box's configuration: where and how it reports its blocks.

Off by default. When enabled the box sends what it blocked (never what it allowed) to the
départemental observatory, with client addresses replaced by a keyed hash whose key never leaves
the box. Loaded by ``resolver.config.loader`` like every other section.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from resolver.checks import at_least as _at_least
from resolver.checks import check as _check

# INSEE commune code: 5 characters, digits, or 2A/2B then 3 digits for Corsica.
_INSEE = re.compile(r"^(?:\d{5}|2[AB]\d{3})$")


# What the box posts to below the observatory's base URL.
INGEST_PATH = "/ingest"
# How often the pseudonyms change (see pseudonym_period in outbox.py).
ROTATIONS = ("daily", "weekly", "monthly")


def check_url(text: str) -> str:
    """An https:// URL, or http:// to a loopback address (tests, a local tunnel).

    It is the observatory's base URL; one that already ends in /ingest (an older hint said so)
    is taken as meaning its base, so the box never posts to .../ingest/ingest.
    """
    if not text:
        return text
    parts = urllib.parse.urlsplit(text)
    hint = "write the observatory's base URL, e.g. https://observatoire.example.fr"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http(s) URL|{hint}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{text!r}: no query, fragment or credentials in the URL|{hint}")
    if parts.scheme == "http":
        try:
            loopback = ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(
                f"{text!r}: plain http is only for 127.0.0.1; block events must travel "
                f"encrypted|{hint}"
            )
    return text


def check_insee(text: str) -> str:
    if text and not _INSEE.match(text):
        raise ValueError(
            f"{text!r} is not an INSEE commune code|five characters, e.g. 42218 or 2A004"
        )
    return text


def _token(value: str | None) -> str | None:
    if value is not None and len(value) < 16:
        raise ValueError("token is shorter than 16 characters|use e.g. `openssl rand -hex 24`")
    return value


def _rotation(text: str) -> str:
    if text not in ROTATIONS:
        raise ValueError(
            f"{text!r} is not a pseudonym rotation|write one of {', '.join(ROTATIONS)}"
            " (monthly: a machine's history cannot be linked from one month to the next)"
        )
    return text


def _positive(v: float) -> float:
    if not v > 0:
        raise ValueError(f"{v} is not positive|give a number of seconds above 0")
    return v


@dataclass(frozen=True, slots=True)
class ObservatoryPushConfig:
    """Reporting the box's blocks to the départemental observatory."""

    # Send block events to the observatory. Off by default: nothing leaves the box.
    enabled: bool = False
    # The observatory's base URL, https:// (http:// only to 127.0.0.1); events go to <url>/ingest
    # (a URL already ending in /ingest is taken as its base).
    url: str = field(default="", metadata=_check(check_url))
    # The commune's name as the observatory shows it, e.g. "Saint-Just-Saint-Rambert".
    commune: str = ""
    # The commune's INSEE code (5 characters, e.g. 42279); the observatory checks it with the token.
    insee: str = field(default="", metadata=_check(check_insee))
    # The box's token (16+ characters) given by the observatory's operator; sent as a Bearer token.
    token: str | None = field(default=None, metadata=_check(_token))
    # Key of the keyed hash (HMAC-SHA256) that replaces client addresses; generated on first use
    # with mode 0600 and never sent. "" = <state_dir>/observatory.key.
    pseudonym_key_file: str = ""
    # How often each machine's pseudonym changes: daily, weekly or monthly (UTC periods of the
    # event's time). The observatory cannot link a machine's blocks across two periods.
    pseudonym_rotation: str = field(default="monthly", metadata=_check(_rotation))
    # Events per batch sent to the observatory.
    batch_size: int = field(default=500, metadata=_check(_at_least(1)))
    # Seconds between two looks at the block log for new events.
    interval: float = field(default=60.0, metadata=_check(_positive))
    # Seconds to wait for the observatory's answer to one batch.
    timeout: float = field(default=15.0, metadata=_check(_positive))
    # Longest wait between two retries while the link or the observatory is down.
    max_backoff: float = field(default=600.0, metadata=_check(_positive))
    # Seconds without any batch after which the box sends an empty one, so a quiet commune is
    # not shown as a box that stopped reporting.
    heartbeat: float = field(default=3600.0, metadata=_check(_positive))
    # The durable outbox (SQLite). "" = <state_dir>/outbox.sqlite.
    outbox: str = ""

    def __post_init__(self) -> None:
        if not self.enabled:
            return
        missing = [
            name
            for name, value in (
                ("url", self.url),
                ("commune", self.commune),
                ("insee", self.insee),
                ("token", self.token),
            )
            if not value
        ]
        if missing:
            raise ValueError(
                f"observatory is enabled but {', '.join(missing)} is not set"
                "|set url, commune, insee and token, or enabled: false"
            )

    def key_path(self, state_dir: Path) -> Path:
        if self.pseudonym_key_file:
            return Path(self.pseudonym_key_file).expanduser()
        return state_dir / "observatory.key"

    def outbox_path(self, state_dir: Path) -> Path:
        return Path(self.outbox).expanduser() if self.outbox else state_dir / "outbox.sqlite"

    def base_url(self) -> str:
        """The observatory's base URL, without a trailing / or /ingest."""
        base = self.url.rstrip("/")
        return base[: -len(INGEST_PATH)] if base.endswith(INGEST_PATH) else base

    def ingest_url(self) -> str:
        return self.base_url() + INGEST_PATH
