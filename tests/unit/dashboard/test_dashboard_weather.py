"""The weather function at every threshold, and "since local midnight" across midnight and DST."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import itertools
import zoneinfo

import pytest

from dashboard.context import parse_networks, remote_allowed
from dashboard.i18n import duration, highlight_sentence, weather_sentence
from dashboard.metrics import latency_buckets
from dashboard.queries import kind_of
from dashboard.views import display, h
from dashboard.weather import (
    Weather,
    count_today,
    day_bounds,
    last_days,
    local_date,
    since_midnight,
    weather_for,
    weather_today,
)
from resolver.config.dashboard import DashboardConfig, ThresholdsConfig, parse_listen
from resolver.stats import LATENCY_BUCKETS

PARIS = "Europe/Paris"
T = ThresholdsConfig()  # cloudy 1, rain 10, storm 40, tornado 150


def paris(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> float:
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=zoneinfo.ZoneInfo(PARIS)).timestamp()


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> float:
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=dt.UTC).timestamp()


# --- the pure weather function -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, Weather.SUNNY),
        (1, Weather.CLOUDY),  # = cloudy
        (9, Weather.CLOUDY),  # rain - 1
        (10, Weather.RAIN),  # = rain
        (39, Weather.RAIN),
        (40, Weather.STORM),  # = storm
        (149, Weather.STORM),
        (150, Weather.TORNADO),  # = tornado
        (10_000, Weather.TORNADO),
    ],
)
def test_weather_at_default_thresholds(count: int, expected: Weather) -> None:
    assert weather_for(count, T) is expected


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, Weather.SUNNY),
        (2, Weather.SUNNY),
        (3, Weather.CLOUDY),
        (4, Weather.CLOUDY),
        (5, Weather.RAIN),
        (6, Weather.STORM),
        (6, Weather.STORM),
        (7, Weather.TORNADO),
    ],
)
def test_weather_at_custom_thresholds(count: int, expected: Weather) -> None:
    t = ThresholdsConfig(cloudy=3, rain=5, storm=6, tornado=7)
    assert weather_for(count, t) is expected


def test_equal_thresholds_skip_a_level() -> None:
    t = ThresholdsConfig(cloudy=1, rain=5, storm=5, tornado=5)
    assert weather_for(4, t) is Weather.CLOUDY
    assert weather_for(5, t) is Weather.TORNADO


def test_an_ordinary_loire_day_is_a_little_rain_at_most() -> None:
    # 422,000 attacks / 365 days / 92 communes ~ 12.6 a day, by a box filtering more than DNS.
    loire_daily = 422_000 / 365 / 92
    assert round(loire_daily) == 13
    assert weather_for(round(loire_daily), T) is Weather.RAIN
    assert weather_for(round(loire_daily) // 2, T) is Weather.CLOUDY  # a DNS-only share


def test_weather_levels_are_ordered() -> None:
    assert [w.level for w in Weather] == [0, 1, 2, 3, 4]
    assert [w.value for w in Weather] == ["sunny", "cloudy", "rain", "storm", "tornado"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cloudy": 5, "rain": 4},
        {"storm": 200},
        {"tornado": 39},
    ],
)
def test_thresholds_out_of_order_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="not in order"):
        ThresholdsConfig(**kwargs)


# --- the local day ------------------------------------------------------------------------------


def test_since_midnight_on_an_ordinary_winter_day() -> None:
    now = paris(2026, 1, 15, 10, 0)
    start, end = since_midnight(now, PARIS)
    assert start == utc(2026, 1, 14, 23, 0)  # CET = UTC+1
    assert end - start == 24 * 3600


def test_across_midnight() -> None:
    before = paris(2026, 1, 15, 23, 59, 59)
    after = paris(2026, 1, 16, 0, 0, 1)
    stamps = [paris(2026, 1, 15, 12, 0), before]
    # Just before midnight the day's blocks count; one second after, a new sunny day begins.
    assert count_today(stamps, before, PARIS) == 2
    assert weather_today(stamps, before, PARIS, T) is Weather.CLOUDY
    assert count_today(stamps, after, PARIS) == 0
    assert weather_today(stamps, after, PARIS, T) is Weather.SUNNY
    assert count_today([*stamps, paris(2026, 1, 16, 0, 0)], after, PARIS) == 1
    assert local_date(before, PARIS) == dt.date(2026, 1, 15)
    assert local_date(after, PARIS) == dt.date(2026, 1, 16)


def test_a_block_after_now_is_not_counted() -> None:
    now = paris(2026, 1, 15, 10, 0)
    assert count_today([now, now + 1], now, PARIS) == 1


def test_spring_forward_day_is_23_hours() -> None:
    # 29 March 2026: 02:00 CET becomes 03:00 CEST.
    start, end = day_bounds(dt.date(2026, 3, 29), PARIS)
    assert start == utc(2026, 3, 28, 23, 0)  # midnight still CET
    assert end == utc(2026, 3, 29, 22, 0)  # next midnight CEST
    assert end - start == 23 * 3600
    now = paris(2026, 3, 29, 12, 0)
    stamps = [
        utc(2026, 3, 28, 22, 59),  # 23:59 CET on the 28th: yesterday
        utc(2026, 3, 28, 23, 0),  # 00:00 CET: today
        utc(2026, 3, 29, 0, 59),  # 01:59 CET, just before the jump
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST, just after
    ]
    assert count_today(stamps, now, PARIS) == 3
    # Late evening, after the jump: midnight is still 23:00 UTC the day before.
    assert since_midnight(paris(2026, 3, 29, 23, 30), PARIS)[0] == start


def test_fall_back_day_is_25_hours() -> None:
    # 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    start, end = day_bounds(dt.date(2026, 10, 25), PARIS)
    assert start == utc(2026, 10, 24, 22, 0)  # midnight CEST
    assert end == utc(2026, 10, 25, 23, 0)  # next midnight CET
    assert end - start == 25 * 3600
    first_0230 = utc(2026, 10, 25, 0, 30)
    second_0230 = utc(2026, 10, 25, 1, 30)
    now = paris(2026, 10, 25, 23, 59)
    stamps = [utc(2026, 10, 24, 21, 59), first_0230, second_0230, utc(2026, 10, 25, 22, 59)]
    assert count_today(stamps, now, PARIS) == 3
    # Just after the next midnight (CET), all of them are yesterday's.
    assert count_today(stamps, utc(2026, 10, 25, 23, 0), PARIS) == 0


def test_a_dst_jump_over_midnight_starts_the_day_at_the_jump() -> None:
    # Santiago: on 6 September 2026, 24:00 (-04) jumps to 01:00 (-03); local midnight never exists.
    start, end = day_bounds(dt.date(2026, 9, 6), "America/Santiago")
    assert start == utc(2026, 9, 6, 4, 0)
    assert end - start == 23 * 3600


def test_last_days_cross_dst_without_gaps() -> None:
    days = last_days(paris(2026, 4, 2, 9, 0), PARIS, 7)
    assert days == [dt.date(2026, 3, 27) + dt.timedelta(n) for n in range(7)]
    bounds = [day_bounds(d, PARIS) for d in days]
    # Consecutive days touch: no block falls between two days or into two.
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))


def test_other_time_zone() -> None:
    now = utc(2026, 6, 1, 3, 0)  # 05:00 in Paris, 23:00 the day before in New York
    assert local_date(now, PARIS) == dt.date(2026, 6, 1)
    assert local_date(now, "America/New_York") == dt.date(2026, 5, 31)


# --- the allow list is a function of request.remote ----------------------------------------------


NETS = parse_networks(DashboardConfig().allow)


@pytest.mark.parametrize(
    ("remote", "allowed"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("192.168.1.23", True),
        ("10.1.2.3", True),
        ("172.31.255.1", True),
        ("172.32.0.1", False),
        ("fd12:3456::1", True),
        ("fe80::1%eth0", True),  # scope id ignored
        ("::ffff:192.168.1.5", True),  # dual-stack socket
        ("::ffff:8.8.8.8", False),
        ("8.8.8.8", False),
        ("2001:db8::1", False),
        (None, False),
        ("", False),
        ("not-an-address", False),
    ],
)
def test_remote_allowed(remote: str | None, allowed: bool) -> None:
    assert remote_allowed(remote, NETS) is allowed


def test_remote_allowed_with_a_narrow_list() -> None:
    nets = (ipaddress.ip_network("192.168.1.0/24"),)
    assert remote_allowed("192.168.1.9", nets)
    assert not remote_allowed("127.0.0.1", nets)


# --- config checks and small helpers -----------------------------------------------------------


def test_config_defaults_and_checks() -> None:
    cfg = DashboardConfig()
    assert cfg.listen == "127.0.0.1:8053" and cfg.language == "fr" and cfg.token is None
    assert parse_listen("[::1]:8053") == ("::1", 8053)
    for bad in ("127.0.0.1", "localhost:80", "1.2.3.4:99999"):
        with pytest.raises(ValueError):
            parse_listen(bad)
    with pytest.raises(ValueError, match="page_size"):
        DashboardConfig(page_size=600)
    checks = {f.name: f.metadata.get("check") for f in dataclasses.fields(DashboardConfig)}
    with pytest.raises(ValueError, match="time zone"):
        checks["timezone"]("Europe/Pariss")  # type: ignore[misc]
    with pytest.raises(ValueError, match="16"):
        checks["token"]("short")  # type: ignore[misc]
    with pytest.raises(ValueError, match="network"):
        checks["allow"](("192.168.1.0/33",))  # type: ignore[misc]


@pytest.mark.parametrize(
    ("verdict", "reason", "kind"),
    [
        ("blocked", "feed:urlhaus", "feeds"),
        ("exfiltration", "exfil:entropy", "exfiltration"),
        ("blocked", "exfil:labels", "exfiltration"),
        ("blocked", "list:local", "lists"),
        ("blocked", "cname:feed:x", "lists"),
    ],
)
def test_kind_of(verdict: str, reason: str, kind: str) -> None:
    assert kind_of(verdict, reason) == kind


def test_display_makes_hidden_characters_visible_and_bounds_length() -> None:
    assert display("a\x00b\x1b[31m\u202eevil") == "a\\x00b\\x1b[31m\\u202eevil"
    assert display("x" * 300, 80) == "x" * 79 + "…"
    assert display("écoles-mairie.fr") == "écoles-mairie.fr"
    assert h("<script>\"'&") == "&lt;script&gt;&#34;&#39;&amp;"
    assert display("\udcff") == "\\udcff"


def test_sentences() -> None:
    assert weather_sentence("fr", Weather.SUNNY, 0).startswith("Grand soleil")
    assert "1 menace bloquée " in weather_sentence("fr", Weather.CLOUDY, 1)
    assert "12 threats blocked" in weather_sentence("en", Weather.RAIN, 12)
    assert highlight_sentence("fr", 3, "phishing", "feeds", "192.168.1.23").startswith(
        "3 tentatives vers des sites d'hameçonnage depuis le poste 192.168.1.23"
    )
    assert "fuite de données" in highlight_sentence("fr", 5, "x", "exfiltration", "10.0.0.2")
    assert duration("fr", 3 * 86400 + 4 * 3600 + 60) == "3 j 4 h"
    assert duration("en", 42) == "42 s"


def test_latency_buckets_are_made_cumulative() -> None:
    per_bucket = tuple(range(1, len(LATENCY_BUCKETS) + 2))
    buckets = latency_buckets(per_bucket)
    assert buckets[0] == ("0.005", 1.0)
    assert buckets[-1] == ("+Inf", float(sum(per_bucket)))
    assert [b[1] for b in latency_buckets(())] == [0.0] * (len(LATENCY_BUCKETS) + 1)
