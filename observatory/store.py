"""What the observatory stores, behind one small async protocol with two engines.

PostgreSQL (``store_pg``) is the engine for a département: one server it already runs, backs up
and can replicate. SQLite (``store_sqlite``) is for a trial on one machine and for fast tests.
Both store a batch and its events in one transaction with the batch id, so a batch sent twice
is stored once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# Bounds on text that came from a box (the box applies the same ones to its own log).
MAX_QNAME = 255
MAX_TEXT = 200
MAX_CLIENT = 64

DailyRow = tuple[dt.date, str, str, int]  # day, INSEE code, category, count


@dataclass(frozen=True, slots=True)
class Event:
    """``count`` identical blocked queries as a box reported them, the first at ``ts``; ``day``
    is its local date at the observatory. Every figure of blocks sums ``count``.
    """

    ts: float
    day: dt.date
    category: str
    reason: str  # the feed or the signal: "feed:urlhaus", "exfil:entropy"
    verdict: str
    qname: str
    qtype: int
    client: str  # pseudonym made on the box; the observatory cannot reverse it
    count: int = 1  # a box before payload version 2 sends one query per event
    domain: str = ""  # the name's registered domain: what campaigns are grouped by


@dataclass(frozen=True, slots=True)
class Campaign:
    """Names of one registered domain and one category blocked in several communes on the same
    day. Grouped by what was blocked, never by the list that blocked it: two communes' lists
    called "malware.txt" have nothing in common but their file name.
    """

    category: str
    domain: str
    communes: tuple[str, ...]  # INSEE codes, sorted
    events: int  # blocked queries
    names: tuple[str, ...] = ()  # the most blocked names of the domain, at most CAMPAIGN_NAMES
    name_count: int = 0  # distinct names of the domain blocked that day


# Names shown per campaign.
CAMPAIGN_NAMES = 3


def group_names(
    rows: Sequence[tuple[str, str, str, int]],
) -> dict[tuple[str, str], tuple[tuple[str, ...], int]]:
    """(category, domain, qname, queries) rows, most blocked first -> the first names and the
    number of names per (category, domain).
    """
    out: dict[tuple[str, str], tuple[tuple[str, ...], int]] = {}
    for category, domain, qname, _n in rows:
        names, count = out.get((category, domain), ((), 0))
        if len(names) < CAMPAIGN_NAMES:
            names = (*names, qname)
        out[category, domain] = (names, count + 1)
    return out


@dataclass(frozen=True, slots=True)
class Pruned:
    """What a retention pass removed."""

    events: int  # stored events (rows), not queries
    batches: int


class Store(Protocol):
    # The schema version found when the store was opened (None: a new database), and the one
    # it has now; set by open().
    found_version: int | None
    schema_version: int

    async def open(self) -> None:
        """Connect and create or migrate the schema."""

    async def close(self) -> None: ...

    async def insert_batch(
        self, *, batch_id: str | None, insee: str, received: float, events: Sequence[Event]
    ) -> bool:
        """Store a batch once: False if ``batch_id`` was already stored (nothing written).

        ``batch_id`` None is a heartbeat: only the box's last report time is updated.
        """

    async def counts_by_commune(self, day: dt.date) -> dict[str, int]:
        """Blocked queries per INSEE code on ``day``."""

    async def totals(self, first: dt.date, last: dt.date) -> dict[str, int]:
        """Blocked queries per category from ``first`` to ``last`` included, all communes."""

    async def campaigns(self, day: dt.date, min_communes: int, limit: int) -> list[Campaign]:
        """(category, registered domain) blocked in at least ``min_communes`` communes on
        ``day``, most widespread first.
        """

    async def commune_totals(self, first: dt.date, last: dt.date) -> dict[str, int]:
        """Blocked queries per INSEE code from ``first`` to ``last`` included."""

    async def commune_days(self, first: dt.date, last: dt.date) -> dict[str, dict[dt.date, int]]:
        """Blocked queries per INSEE code and day from ``first`` to ``last`` (days without any
        are absent).
        """

    async def last_seen(self) -> dict[str, float]:
        """Unix time of each box's last report (batch or heartbeat), by INSEE code."""

    async def daily_rows(self, first: dt.date, last: dt.date) -> list[DailyRow]:
        """(day, INSEE code, category, count) from ``first`` to ``last``, for the yearly report."""

    async def event_count(self) -> int:
        """Blocked queries stored, all time (the sum of the events' counts)."""

    async def batch_count(self) -> int:
        """Batches stored, all time."""

    async def prune(self, before: dt.date) -> Pruned:
        """Delete the events of days before ``before`` (the first of a month) and the batch ids
        received before it; daily counts and box status stay.
        """


def open_store(url: str, *, pool_size: int = 10, password: str | None = None) -> Store:
    """The store for a ``postgresql://`` or ``sqlite:///`` URL (not yet opened); ``password``
    is PostgreSQL's (kept out of the URL, so out of the config file).
    """
    if url.startswith("sqlite:///"):
        from pathlib import Path

        from observatory.store_sqlite import SqliteStore

        return SqliteStore(Path(url[len("sqlite://") :]))
    from observatory.store_pg import PgStore

    return PgStore(url, pool_size=pool_size, password=password)
