"""The day's weather: a pure function of a block count and thresholds, and local-day windows.

No I/O and no hidden clock: ``now`` and the time zone come in as arguments, so tests can place
"now" on either side of midnight and of both DST changes.
"""

from __future__ import annotations

import datetime as dt
import enum
import zoneinfo
from collections.abc import Iterable

from resolver.config.dashboard import ThresholdsConfig


class Weather(enum.StrEnum):
    """The weather of a day, from calm to alarming; the value names the icon file."""

    SUNNY = "sunny"
    CLOUDY = "cloudy"
    RAIN = "rain"
    STORM = "storm"
    TORNADO = "tornado"

    @property
    def level(self) -> int:
        """0 (sunny) to 4 (tornado), for metrics and comparisons."""
        return _LEVELS[self]


_LEVELS = {w: i for i, w in enumerate(Weather)}


def weather_for(count: int, thresholds: ThresholdsConfig) -> Weather:
    """The weather of a day with ``count`` blocks; a threshold is the first count of its level."""
    if count >= thresholds.tornado:
        return Weather.TORNADO
    if count >= thresholds.storm:
        return Weather.STORM
    if count >= thresholds.rain:
        return Weather.RAIN
    if count >= thresholds.cloudy:
        return Weather.CLOUDY
    return Weather.SUNNY


def local_date(ts: float, tz: str) -> dt.date:
    """The calendar date in ``tz`` at unix time ``ts``."""
    return dt.datetime.fromtimestamp(ts, zoneinfo.ZoneInfo(tz)).date()


def day_bounds(day: dt.date, tz: str) -> tuple[float, float]:
    """Unix seconds [start, end) of the local ``day``: 23 or 25 hours long on DST change days.

    Each bound is local midnight. Where a DST jump skips midnight itself, fold=0 picks the
    offset before the jump, which is the instant of the jump: the day starts when it resumes.
    """
    zone = zoneinfo.ZoneInfo(tz)
    start = dt.datetime.combine(day, dt.time(0), zone).timestamp()
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), zone).timestamp()
    return start, end


def since_midnight(now: float, tz: str) -> tuple[float, float]:
    """Unix seconds [local midnight, end of today) for the day containing ``now`` in ``tz``."""
    return day_bounds(local_date(now, tz), tz)


def count_today(timestamps: Iterable[float], now: float, tz: str) -> int:
    """How many of ``timestamps`` fall between local midnight and ``now`` (both included)."""
    start, _ = since_midnight(now, tz)
    return sum(1 for ts in timestamps if start <= ts <= now)


def weather_today(
    timestamps: Iterable[float], now: float, tz: str, thresholds: ThresholdsConfig
) -> Weather:
    """The weather since local midnight, given the timestamps of blocks."""
    return weather_for(count_today(timestamps, now, tz), thresholds)


def last_days(now: float, tz: str, days: int) -> list[dt.date]:
    """The ``days`` local dates ending with today, oldest first."""
    today = local_date(now, tz)
    return [today - dt.timedelta(days=n) for n in range(days - 1, -1, -1)]
