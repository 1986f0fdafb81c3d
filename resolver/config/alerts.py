"""The ``alerts`` section: who is told, and how, when the day turns bad (see dashboard/alerts.py).

Off until an e-mail address or a webhook is given. Each event is sent at most once a day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from resolver.checks import at_least, check


def _emails(values: tuple[str, ...]) -> tuple[str, ...]:
    for v in values:
        if v.count("@") != 1 or any(c in v for c in " \r\n,;<>"):
            raise ValueError(f"{v[:60]!r} is not an e-mail address|write it as it@mairie.fr")
    return values


def _url(value: str) -> str:
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"{value[:60]!r} is not an http(s) URL|e.g. https://chat.example/hook")
    return value


@dataclass(frozen=True, slots=True)
class EmailConfig:
    # Addresses told; none: no e-mail.
    to: tuple[str, ...] = field(default=(), metadata=check(_emails))
    # The sender shown (many servers want one of their own domain); "" = parafoudre@<host name>.
    sender: str = ""
    # The mail server (the mairie's or its provider's).
    host: str = ""
    port: int = 587
    # starttls (port 587), tls (port 465, encrypted from the start) or none (a relay on the LAN).
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    # Read from this file (mode 0600) rather than written here; "" = no login.
    password_file: str = ""
    timeout: float = 20.0
    # A CA certificate file for a mail server with the mairie's own certificate authority;
    # "" = the system's.
    ca_file: str = ""


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    # A JSON POST ({"event", "text", "box", "time"}) for a chat or ticketing system; "" = none.
    url: str = field(default="", metadata=check(_url))
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    # Tell when today's weather reaches this (storm: several times an ordinary day); off: never.
    weather: Literal["rain", "storm", "tornado", "off"] = "storm"
    # Tell when the page names a machine (it keeps trying to reach threats: likely infected).
    machine: bool = True
    # Tell when the exfiltration detector blocks or detects a machine.
    exfiltration: bool = True
    # Tell when a feed has not been refreshed for this many hours; 0: never.
    feed_stale_hours: int = field(default=48, metadata=check(at_least(0)))
    # Seconds between two looks at the block log.
    interval: int = field(default=60, metadata=check(at_least(5)))
    email: EmailConfig = EmailConfig()
    webhook: WebhookConfig = WebhookConfig()

    def enabled(self) -> bool:
        return bool(self.email.to or self.webhook.url)
