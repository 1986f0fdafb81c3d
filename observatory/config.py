"""The observatory's configuration (``parafoudre observatory -c FILE``): listen, database, boxes.

Frozen dataclasses read by ``resolver.config.loader.load_file`` with the same rules as the box's
config: unknown keys and bad values are refused with file, line, key and fix.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from dataclasses import dataclass, field

from resolver.checks import at_least as _at_least
from resolver.checks import check as _check
from resolver.checks import networks as _networks
from resolver.config.acl import DEFAULT_ALLOWED
from resolver.config.dashboard import ThresholdsConfig
from resolver.config.observatory import check_insee
from resolver.config.values import listen_address as _listen
from resolver.config.values import page_token as _token
from resolver.config.values import timezone as _timezone

_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")


def hash_token(token: str) -> str:
    """The form a box's token takes in the observatory's config: 'sha256:<hex>'."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def _database(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme in ("postgresql", "postgres") or (
        parsed.scheme == "sqlite" and url.startswith("sqlite:///") and len(url) > len("sqlite:///")
    ):
        return url
    raise ValueError(
        f"{url!r} is not a database URL|write postgresql://user@host/dbname, or "
        "sqlite:///var/lib/parafoudre-observatory/obs.sqlite for a trial on one machine"
    )


def _token_hash(text: str) -> str:
    text = text.strip().lower()
    if not _SHA256.match(text):
        raise ValueError(
            "token_sha256 is not sha256:<64 hex digits>|"
            "compute it with: printf %s 'THE-TOKEN' | sha256sum, and write sha256:<digits>"
        )
    return text


def _insee(text: str) -> str:
    if not text:
        raise ValueError("a box needs its commune's INSEE code|e.g. insee: '42218'")
    return check_insee(text)


def _departement(text: str) -> str:
    if text and not re.fullmatch(r"\d{2}|2[AB]|97\d", text):
        raise ValueError(f"{text!r} is not a département code|e.g. '42', '2A' or '974'")
    return text


def departement_of(insee: str) -> str:
    """The département of an INSEE commune code: '42147' -> '42', '97411' -> '974'."""
    return insee[:3] if insee.startswith("97") else insee[:2]


def _latitude(v: float | None) -> float | None:
    if v is not None and not -90 <= v <= 90:
        raise ValueError(f"{v} is not a latitude|give degrees north, e.g. 45.43")
    return v


def _longitude(v: float | None) -> float | None:
    if v is not None and not -180 <= v <= 180:
        raise ValueError(f"{v} is not a longitude|give degrees east, e.g. 4.39")
    return v


@dataclass(frozen=True, slots=True)
class BoxConfig:
    """One commune's box allowed to report."""

    # The commune's name as the page shows it.
    name: str = ""
    # The commune's INSEE code (5 characters); the box sends it and it must match its token.
    insee: str = field(default="", metadata=_check(_insee))
    # SHA-256 of the box's token, "sha256:<hex>": the observatory never stores the token itself.
    token_sha256: str = field(default="", metadata=_check(_token_hash))
    # Coordinates of the town hall, in degrees, for the map (both or neither).
    latitude: float | None = field(default=None, metadata=_check(_latitude))
    longitude: float | None = field(default=None, metadata=_check(_longitude))

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a box needs its commune's name|e.g. name: Montbrison")
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude without longitude|give both coordinates, or neither")


def _boxes(boxes: tuple[BoxConfig, ...]) -> tuple[BoxConfig, ...]:
    seen_insee: set[str] = set()
    seen_hash: set[str] = set()
    for box in boxes:
        if box.insee in seen_insee:
            raise ValueError(f"INSEE code {box.insee} is given twice|one box per commune")
        if box.token_sha256 in seen_hash:
            raise ValueError(f"{box.name}: token shared with another box|give each box its own")
        seen_insee.add(box.insee)
        seen_hash.add(box.token_sha256)
    return boxes


@dataclass(frozen=True, slots=True)
class ObservatoryServerConfig:
    """The départemental observatory: its page, its API, and the boxes that report to it."""

    # Address:port of the observatory (page, API, /metrics and the boxes' /ingest).
    listen: str = field(default="127.0.0.1:8054", metadata=_check(_listen))
    # TLS certificate and key (PEM) to serve HTTPS directly; "" = plain HTTP behind a reverse
    # proxy that terminates TLS (boxes only send over HTTPS).
    tls_cert: str = ""
    tls_key: str = ""
    # PostgreSQL (postgresql://user@host:port/dbname), or sqlite:///path for a trial.
    database: str = field(
        default="sqlite:///var/lib/parafoudre-observatory/observatory.sqlite",
        metadata=_check(_database),
    )
    # A file holding the database's password (for scram-sha-256 over TCP, Debian's default for
    # 127.0.0.1), readable by the service only (mode 0600 or 0640); "" = no password (peer
    # authentication over PostgreSQL's Unix socket, or ~/.pgpass).
    database_password_file: str = ""
    # Connections to PostgreSQL.
    pool_size: int = field(default=10, metadata=_check(_at_least(1)))
    # The boxes allowed to report, one per commune.
    boxes: tuple[BoxConfig, ...] = field(default=(), metadata=_check(_boxes))
    # Networks whose machines may see the page, /api/*, /metrics and /export.csv (others: 403).
    allow: tuple[str, ...] = field(default=DEFAULT_ALLOWED, metadata=_check(_networks))
    # Networks the boxes may report from (/ingest); each box is also checked by its token.
    ingest_allow: tuple[str, ...] = field(default=("0.0.0.0/0", "::/0"), metadata=_check(_networks))
    # Optional token (16+ characters) for the page, /api/*, /metrics and /export.csv:
    # "Authorization: Bearer <token>" or ?token=<token>.
    token: str | None = field(default=None, metadata=_check(_token))
    # Time zone of "today", of months and years.
    timezone: str = field(default="Europe/Paris", metadata=_check(_timezone))
    # Blocks per commune and day from which its weather changes (same scale as the box's page).
    thresholds: ThresholdsConfig = ThresholdsConfig()  # noqa: RUF009 (frozen, so safe to share)
    # A box with no report (not even its hourly heartbeat) for this many hours is listed as silent.
    silent_hours: int = field(default=6, metadata=_check(_at_least(1)))
    # A name or feed blocked in at least this many communes on the same day is a campaign.
    campaign_min_communes: int = field(default=2, metadata=_check(_at_least(2)))
    # Rows in the campaigns lists.
    campaign_limit: int = field(default=20, metadata=_check(_at_least(1)))
    # Events accepted in one batch; a box sends 500 by default.
    max_batch_events: int = field(default=5000, metadata=_check(_at_least(1)))
    # Seconds between two refreshes of the open page (a meta refresh, no script).
    refresh: int = field(default=60, metadata=_check(_at_least(10)))
    # Rows of the commune table per page (?page=2...); the map always shows every commune.
    page_size: int = field(default=100, metadata=_check(_at_least(10)))
    # Seconds a rendered page is shown again to the next viewers instead of being rebuilt
    # (0: rebuilt for each). Bounded in time, not cleared on ingest: with hundreds of boxes a
    # batch arrives every fraction of a second, and the figures are a push interval old anyway.
    page_cache: int = field(default=5, metadata=_check(_at_least(0)))
    # Months of events kept besides the current one; older events and batch ids are deleted
    # (whole monthly partitions on PostgreSQL). Daily counts per commune are kept for the
    # yearly figures. 13 by default: a year to compare with, and the current month.
    retention_months: int = field(default=13, metadata=_check(_at_least(1)))
    # Who runs the observatory and whom to ask about it, shown in the page's privacy note,
    # e.g. "Conseil départemental de la Loire — dpo@loire.fr".
    controller: str = ""
    # The département's code (e.g. '42', '2A', '971') whose outline the map draws; "" = the
    # département of the first box's INSEE code.
    departement: str = field(default="", metadata=_check(_departement))

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert without tls_key|give both files, or neither")
