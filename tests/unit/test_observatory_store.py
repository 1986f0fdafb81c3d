"""The observatory's pure parts: event validation, box lookup, config, campaigns on SQLite, page."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from dashboard.weather import Weather
from observatory import francemap, page
from observatory.app import BadBatch, CommuneRow, RefusalLog, find_box, parse_events
from observatory.config import ObservatoryServerConfig, hash_token
from observatory.domains import campaign_domain
from observatory.i18n import number
from observatory.retention import prune_once, retention_start
from observatory.store import Event
from observatory.store_pg import next_month, partition_ddl
from observatory.store_sqlite import SqliteStore
from resolver.config.errors import ConfigError
from resolver.config.loader import load_text

NOW = 1_773_000_000.0
DAY = dt.date(2026, 3, 8)

BOXES_YAML = f"""
database: sqlite:///tmp/x.sqlite
boxes:
  - name: Feurs
    insee: '42094'
    token_sha256: {hash_token("feurs-token-0123456789")}
  - name: Roanne
    insee: '42187'
    token_sha256: {hash_token("roanne-token-0123456789")}
    latitude: 46.03
    longitude: 4.07
"""


def ev(qname: str, reason: str = "feed:x", day: dt.date = DAY, category: str = "malware") -> Event:
    return Event(NOW, day, category, reason, "blocked", qname, 1, "c0ffee")


def test_config_loads_boxes_and_finds_them_by_token() -> None:
    cfg = load_text(BOXES_YAML, ObservatoryServerConfig)
    assert [b.insee for b in cfg.boxes] == ["42094", "42187"]
    assert find_box(cfg.boxes, "roanne-token-0123456789") is cfg.boxes[1]
    assert find_box(cfg.boxes, "roanne-token-012345678") is None
    assert find_box(cfg.boxes, "") is None


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("database: mysql://x\n", "not a database URL"),
        ("boxes:\n  - name: A\n    insee: '42094'\n    token_sha256: abc\n", "sha256:<64 hex"),
        (
            f"boxes:\n  - name: A\n    insee: '42094'\n    token_sha256: {hash_token('t' * 20)}\n"
            "    latitude: 45.0\n",
            "latitude without longitude",
        ),
        (
            f"boxes:\n  - {{name: A, insee: '42094', token_sha256: {hash_token('t' * 20)}}}\n"
            f"  - {{name: B, insee: '42094', token_sha256: {hash_token('u' * 20)}}}\n",
            "given twice",
        ),
        ("campaign_min_communes: 1\n", "below the minimum 2"),
    ],
)
def test_config_refuses_bad_values(yaml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_text(yaml, ObservatoryServerConfig)


def test_parse_events_validates_and_skips_out_of_range_times() -> None:
    good = {
        "ts": NOW,
        "category": "malware",
        "reason": "feed:x",
        "qname": "a.test",
        "qtype": 1,
        "client": "c0ffee",
        "verdict": "blocked",
    }
    old = dict(good, ts=NOW - 500 * 86_400)
    events, skipped = parse_events([good, old], now=NOW, tz="Europe/Paris", max_events=10)
    assert skipped == 1 and [e.day for e in events] == [DAY]
    for bad in ([dict(good, ts="x")], [dict(good, qname=3)], [good] * 11, {"a": 1}, [1]):
        with pytest.raises(BadBatch):
            parse_events(bad, now=NOW, tz="Europe/Paris", max_events=10)


def test_parse_events_reads_counts_and_an_old_box_means_one() -> None:
    old = {"ts": NOW, "category": "malware", "reason": "feed:x", "qname": "a.test", "client": "c"}
    new = dict(old, count=1000)
    late = dict(new, ts=NOW - 500 * 86_400, count=7)
    events, skipped = parse_events([old, new, late], now=NOW, tz="Europe/Paris", max_events=10)
    assert [e.count for e in events] == [1, 1000]
    assert skipped == 7  # queries, not events
    for bad in (0, -3, True, "2", 2.0, None, 10**10):
        with pytest.raises(BadBatch, match="count"):
            parse_events([dict(old, count=bad)], now=NOW, tz="Europe/Paris", max_events=10)


async def test_sqlite_store_sums_counts_everywhere(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "obs.sqlite")
    await store.open()
    try:
        flood = dataclasses.replace(ev("shared.test", "feed:urlhaus"), count=1000)
        assert await store.insert_batch(
            batch_id="b1", insee="42094", received=NOW, events=[flood, ev("only-feurs.test")]
        )
        assert await store.insert_batch(
            batch_id="b2",
            insee="42187",
            received=NOW,
            events=[dataclasses.replace(ev("shared.test", "feed:urlhaus"), count=2)],
        )
        assert await store.event_count() == 1003
        assert await store.counts_by_commune(DAY) == {"42094": 1001, "42187": 2}
        assert await store.totals(DAY, DAY) == {"malware": 1003}
        found = await store.campaigns(DAY, 2, 10)
        assert [(c.category, c.domain, c.communes, c.events, c.names) for c in found] == [
            ("malware", "shared.test", ("42094", "42187"), 1002, ("shared.test",)),
        ]
        assert await store.daily_rows(DAY, DAY) == [
            (DAY, "42094", "malware", 1001),
            (DAY, "42187", "malware", 2),
        ]
    finally:
        await store.close()


# The observatory's SQLite events table as schema v1 created it (before counts).
V1_EVENTS = """CREATE TABLE events (
    id INTEGER PRIMARY KEY, day TEXT NOT NULL, ts REAL NOT NULL, commune TEXT NOT NULL,
    category TEXT NOT NULL, reason TEXT NOT NULL, verdict TEXT NOT NULL, qname TEXT NOT NULL,
    qtype INTEGER NOT NULL, client TEXT NOT NULL
)"""


async def test_sqlite_store_migrates_a_v1_file_keeping_its_events(tmp_path: Path) -> None:
    path = tmp_path / "obs.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(V1_EVENTS)
    conn.execute(
        "INSERT INTO events (day, ts, commune, category, reason, verdict, qname, qtype, client)"
        " VALUES (?, ?, '42094', 'malware', 'feed:x', 'blocked', 'old.test', 1, 'c0ffee')",
        (DAY.isoformat(), NOW),
    )
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        new = dataclasses.replace(ev("new.test"), count=5)
        assert await store.insert_batch(batch_id="b", insee="42094", received=NOW, events=[new])
        assert await store.event_count() == 6  # the old event counts for one query
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (4,)
        assert conn.execute("SELECT qname, count FROM events ORDER BY id").fetchall() == [
            ("old.test", 1),
            ("new.test", 5),
        ]
        conn.execute("PRAGMA user_version = 99")
        conn.commit()
    finally:
        conn.close()
    newer = SqliteStore(path)
    with pytest.raises(RuntimeError, match="v99, newer than v4"):
        await newer.open()
    await newer.close()


async def test_sqlite_store_is_idempotent_and_detects_campaigns(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "obs.sqlite")
    await store.open()
    try:
        assert await store.insert_batch(
            batch_id="b1",
            insee="42094",
            received=NOW,
            events=[
                ev("shared.test", "feed:urlhaus"),
                ev("only-feurs.test"),
                ev("shared.test", "feed:urlhaus"),
            ],
        )
        assert not await store.insert_batch(
            batch_id="b1", insee="42094", received=NOW + 5, events=[ev("shared.test")]
        )
        assert await store.insert_batch(
            batch_id="b2",
            insee="42187",
            received=NOW,
            events=[
                ev("shared.test", "feed:urlhaus"),
                ev("other-day.test", day=DAY - dt.timedelta(days=1)),
            ],
        )
        assert await store.insert_batch(batch_id=None, insee="42147", received=NOW, events=[])
        assert await store.event_count() == 5
        assert await store.batch_count() == 2
        assert await store.counts_by_commune(DAY) == {"42094": 3, "42187": 1}
        assert await store.totals(DAY - dt.timedelta(days=1), DAY) == {"malware": 5}
        found = await store.campaigns(DAY, 2, 10)
        assert [(c.category, c.domain, c.communes, c.events) for c in found] == [
            ("malware", "shared.test", ("42094", "42187"), 3),
        ]
        assert await store.campaigns(DAY, 3, 10) == []
        assert await store.last_seen() == {"42094": NOW + 5, "42187": NOW, "42147": NOW}
        rows = await store.daily_rows(dt.date(2026, 1, 1), dt.date(2026, 12, 31))
        assert rows == [
            (DAY - dt.timedelta(days=1), "42187", "malware", 1),
            (DAY, "42094", "malware", 3),
            (DAY, "42187", "malware", 1),
        ]
    finally:
        await store.close()


def test_partitions_cover_whole_months() -> None:
    assert next_month(dt.date(2026, 12, 1)) == dt.date(2027, 1, 1)
    assert next_month(dt.date(2026, 1, 31)) == dt.date(2026, 2, 1)
    assert partition_ddl(dt.date(2026, 2, 1)).endswith(
        "events_2026_02 PARTITION OF events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')"
    )


def _row(name: str, lat: float | None, lon: float | None, count: int = 0) -> CommuneRow:
    return CommuneRow("42094", name, count, Weather.RAIN, None, True, lat, lon)


def test_map_places_communes_inside_their_departement_and_escapes_nothing_itself() -> None:
    """The Loire's outline from the npm package, and its towns inside its frame."""
    outline = francemap.load_outline("42")
    assert outline is not None and outline.name == "Loire"
    x0, y0, x1, y1 = outline.bbox
    towns = {"Roanne": (46.036, 4.068), "Saint-Étienne": (45.434, 4.390), "Feurs": (45.742, 4.227)}
    for lat, lon in towns.values():
        x, y = francemap.project(lat, lon)
        assert x0 < x < x1 and y0 < y < y1
    # North is up: Roanne is above Saint-Étienne.
    assert francemap.project(*towns["Roanne"])[1] < francemap.project(*towns["Saint-Étienne"])[1]
    # Checked on points the fit did not use: Paris and Cap Corse within a pixel.
    px, py = francemap.project(48.8566, 2.3522)
    assert 307.6 < px < 317.7 and 141.3 < py < 146.5  # the package's Ville de Paris
    assert abs(francemap.project(43.0275, 9.4)[1] - 492.34) < 1.5
    cfg = load_text(BOXES_YAML, ObservatoryServerConfig)
    rows = (
        _row("<b>A</b>", 45.6, 4.1),
        _row("B", 46.0, 4.1),
        _row("no coordinates", None, None),
    )
    view = page.map_view(rows, cfg, "fr")
    assert view.outline_d == outline.d and len(view.markers) == 2
    assert view.markers[0].title.startswith("<b>A</b> : Pluie")  # escaped by the template
    assert page.departement(cfg) == "42"
    elsewhere = dataclasses.replace(cfg, departement="69")
    assert "69" in page.map_view(rows, elsewhere, "en").note  # not vendored: said so
    assert number(422000, "fr") == "422\u202f000" and number(422000, "en") == "422,000"


def test_campaign_domains_group_names_whatever_list_blocked_them() -> None:
    assert campaign_domain("a.b.evil-bank.fr") == "evil-bank.fr"
    assert campaign_domain("login.evil.co.uk.") == "evil.co.uk"
    assert campaign_domain("x.campaign.test") == "campaign.test"  # unknown TLD: two labels
    raw = [
        {"ts": NOW, "category": "phishing", "reason": "list:malware.txt", "qname": q,
         "client": "c0ffee"}
        for q in ("a.evil-bank.fr", "b.evil-bank.fr", "a.evil-bank.fr")
    ]  # fmt: skip
    events, _ = parse_events(raw, now=NOW, tz="Europe/Paris", max_events=10)
    assert {e.domain for e in events} == {"evil-bank.fr"}


def test_readme_config_examples_load() -> None:
    """observatory/README.md's YAML examples are valid configs (docs are tested)."""
    import re
    import textwrap

    from resolver.config.observatory import ObservatoryPushConfig

    text = (Path(__file__).parents[2] / "observatory" / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    box, server = blocks
    assert box.startswith("observatory:\n")
    push = load_text(textwrap.dedent(box.split("\n", 1)[1]), ObservatoryPushConfig)
    assert push.enabled and push.insee == "42147"
    cfg = load_text(server, ObservatoryServerConfig)
    assert cfg.boxes[0].latitude == 45.607 and cfg.database.startswith("postgresql://")


# --- privacy: times to the minute, retention ------------------------------------------------------


def test_event_times_are_cut_to_the_minute_and_old_ones_skipped() -> None:
    raw = [
        {"ts": NOW + 59.999, "category": "malware", "reason": "feed:x", "qname": "a.test",
         "client": "c0ffee"},
        {"ts": NOW - 40 * 86_400, "category": "malware", "reason": "feed:x", "qname": "b.test",
         "client": "c0ffee", "count": 3},
    ]  # fmt: skip
    events, skipped = parse_events(raw, now=NOW, tz="Europe/Paris", max_events=10)
    assert [e.ts for e in events] == [NOW, NOW - 40 * 86_400]
    assert skipped == 0
    # Before the retention's first day: skipped, counted.
    events, skipped = parse_events(
        raw, now=NOW, tz="Europe/Paris", max_events=10, first_day=dt.date(2026, 3, 1)
    )
    assert [e.qname for e in events] == ["a.test"] and skipped == 3


def test_retention_starts_on_the_first_of_a_month() -> None:
    assert retention_start(dt.date(2026, 12, 6), 13) == dt.date(2025, 11, 1)
    assert retention_start(dt.date(2026, 1, 31), 1) == dt.date(2025, 12, 1)
    assert retention_start(dt.date(2026, 3, 1), 12) == dt.date(2025, 3, 1)
    assert ObservatoryServerConfig().retention_months == 13


async def test_sqlite_store_prunes_old_events_and_batches_keeping_daily_counts(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "obs.sqlite")
    await store.open()
    old_day = dt.date(2024, 10, 31)
    old_ts = dt.datetime(2024, 10, 31, 12, tzinfo=dt.UTC).timestamp()
    try:
        old = dataclasses.replace(ev("old.test", day=old_day), ts=old_ts, count=4)
        assert await store.insert_batch(batch_id="b-old", insee="42094", received=old_ts,
                                        events=[old])  # fmt: skip
        assert await store.insert_batch(batch_id="b-new", insee="42094", received=NOW,
                                        events=[ev("new.test")])  # fmt: skip
        pruned = await prune_once(store, now=NOW, tz="Europe/Paris", months=13)
        assert (pruned.events, pruned.batches) == (1, 1)
        assert await store.event_count() == 1
        assert await store.batch_count() == 1
        # The daily counts (no name, no machine) stay for the yearly figures.
        assert await store.totals(old_day, old_day) == {"malware": 4}
        again = await prune_once(store, now=NOW, tz="Europe/Paris", months=13)
        assert (again.events, again.batches) == (0, 0)
    finally:
        await store.close()


async def test_sqlite_store_migrates_a_v2_file_cutting_times_to_the_minute(
    tmp_path: Path,
) -> None:
    path = tmp_path / "obs.sqlite"
    store = SqliteStore(path)
    await store.open()
    assert store.found_version is None
    await store.insert_batch(batch_id="b", insee="42094", received=NOW, events=[ev("a.test")])
    await store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE events SET ts = ts + 17.123456")  # as a v2 observatory stored them
    conn.execute("ALTER TABLE events DROP COLUMN domain")  # v4 added it
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    store = SqliteStore(path)
    await store.open()
    await store.close()
    assert (store.found_version, store.schema_version) == (2, 4)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT ts FROM events").fetchall() == [(NOW,)]
    finally:
        conn.close()


def test_refused_tokens_are_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    refusals = RefusalLog(every=60.0)
    with caplog.at_level("WARNING", logger="observatory.app"):
        for i in range(5):
            refusals.refused("203.0.113.7", "unknown box token", now=1000.0 + i)
        refusals.refused("203.0.113.8", "unknown box token", now=1061.0)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "observatory: refused a batch from 203.0.113.7: unknown box token",
        "observatory: refused a batch from 203.0.113.8: unknown box token"
        " (4 more refused since the last line)",
    ]


def test_vendor_map_extracts_one_departement_path_with_its_credit() -> None:
    from observatory.vendor_map import extract

    svg = (
        '<svg viewBox="0 0 613 585">\n\t<path\n\t\tid="01"\n\t\taria-label="Ain"\n'
        '\t\td="m 1,2 3,4 z"\n\t/>\n\t<path\n\t\tid="2A"\n\t\taria-label="Corse-du-Sud"\n'
        '\t\td="m 5,6 7,8 z"\n\t/>\n</svg>'
    )
    found = extract(svg, "2A")
    assert (found["name"], found["d"]) == ("Corse-du-Sud", "m 5,6 7,8 z")
    assert "CC BY 4.0" in found["source"] and "Victor Cazanave" in found["source"]
    with pytest.raises(KeyError):
        extract(svg, "974")
    # The vendored Loire is the package's path, with the same credit.
    vendored = francemap.MAPS_DIR / "42.json"
    assert "CC BY 4.0" in vendored.read_text()
    assert francemap.path_points("m 1,2 3,4 z m 10,10 1,1 z") == [
        (1, 2),
        (4, 6),
        (11, 12),
        (12, 13),
    ]
