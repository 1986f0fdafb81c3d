"""The box's side of the observatory: pseudonyms, the key file, batch building, the outbox."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from resolver.blocklog.writer import BlockEvent, BlockLogWriter
from resolver.config.errors import ConfigError
from resolver.config.loader import load_text
from resolver.config.observatory import ObservatoryPushConfig
from resolver.observatory_push.outbox import (
    Outbox,
    build_payload,
    load_or_create_key,
    pseudonym_period,
    pseudonymise,
)
from resolver.observatory_push.status import outbox_status

KEY = b"k" * 32
NOW = 1_773_000_000.0  # 2026-03-08


def test_pseudonym_is_stable_per_key_and_differs_between_keys() -> None:
    a = pseudonymise(KEY, "192.168.1.20")
    assert a == pseudonymise(KEY, "192.168.1.20")
    assert len(a) == 16 and int(a, 16) >= 0
    assert a != pseudonymise(KEY, "192.168.1.21")
    assert a != pseudonymise(b"other key" * 4, "192.168.1.20")
    assert "192" not in a or a != "192.168.1.20"


def test_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "state" / "observatory.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key


def test_payload_carries_pseudonyms_and_daily_counts() -> None:
    rows = [
        (1, NOW, "192.168.1.20", "evil.test", 1, "blocked", "feed:urlhaus", "malware", 40),
        (2, NOW + 1, "192.168.1.21", "leak.test", 16, "exfiltration", "exfil:entropy", "exfil", 1),
        (3, NOW + 86_400, "192.168.1.20", "evil.test", 1, "blocked", "feed:urlhaus", "malware", 2),
    ]
    payload = build_payload(rows, KEY, batch_id="b", commune="Feurs", insee="42094")
    body = json.dumps(payload)
    assert "192.168.1" not in body
    assert payload["version"] == 2
    assert payload["events"][0]["client"] == payload["events"][2]["client"]
    assert payload["events"][1]["reason"] == "exfil:entropy"
    assert [e["count"] for e in payload["events"]] == [40, 1, 2]
    # The daily counts add up queries, not rows: what the observatory checks a batch against.
    assert payload["daily"] == [
        {"day": "2026-03-08", "category": "exfil", "count": 1},
        {"day": "2026-03-08", "category": "malware", "count": 40},
        {"day": "2026-03-09", "category": "malware", "count": 2},
    ]


def _blocklog(path: Path, n: int, start: int = 0) -> None:
    writer = BlockLogWriter(path, clock=lambda: NOW)
    writer.start()
    for i in range(start, start + n):
        writer.offer(
            BlockEvent(NOW + i, "10.0.0.1", f"n{i}.test", 1, "blocked", "feed:x", "malware")
        )
    assert writer.flush()
    writer.close()


def _outbox(tmp_path: Path, **kw: int) -> Outbox:
    return Outbox(
        tmp_path / "outbox.sqlite",
        blocklog_path=tmp_path / "blocks.sqlite",
        key=KEY,
        commune="Feurs",
        insee="42094",
        batch_size=kw.pop("batch_size", 4),
        **kw,
    )


def test_outbox_batches_new_rows_once_and_survives_reopening(tmp_path: Path) -> None:
    outbox = _outbox(tmp_path)
    assert not outbox.fill()  # no block log yet: nothing, no error
    _blocklog(tmp_path / "blocks.sqlite", 10)
    assert not outbox.fill()
    assert outbox.cursor == 10
    batches = outbox.pending(100)
    assert [b.events for b in batches] == [4, 4, 2]
    assert len({b.batch_id for b in batches}) == 3
    assert not outbox.fill()  # nothing new: nothing added
    outbox.delete(batches[0].batch_id)
    outbox.close()

    outbox = _outbox(tmp_path)  # a restart keeps the cursor and the unsent batches, same ids
    assert outbox.cursor == 10
    assert [b.batch_id for b in outbox.pending(100)] == [b.batch_id for b in batches[1:]]
    names = [e["qname"] for b in outbox.pending(100) for e in json.loads(b.body)["events"]]
    assert names == [f"n{i}.test" for i in range(4, 10)]
    outbox.close()


def test_outbox_bounds_pending_batches_and_reports_more(tmp_path: Path) -> None:
    _blocklog(tmp_path / "blocks.sqlite", 30)
    outbox = _outbox(tmp_path, max_pending=3, batch_size=4)
    assert outbox.fill()  # room for 3 batches only: more rows wait in the block log
    assert outbox.cursor == 12 and outbox.pending_count() == 3
    assert not outbox.fill()  # no room until some are sent
    assert outbox.cursor == 12
    for b in outbox.pending(2):
        outbox.delete(b.batch_id)
    outbox.fill(max_batches=1)
    assert outbox.cursor == 16
    outbox.close()


def test_outbox_rereads_a_block_log_that_restarted(tmp_path: Path) -> None:
    _blocklog(tmp_path / "blocks.sqlite", 6)
    outbox = _outbox(tmp_path)
    outbox.fill()
    assert outbox.cursor == 6
    for f in tmp_path.glob("blocks.sqlite*"):
        f.unlink()
    _blocklog(tmp_path / "blocks.sqlite", 3, start=100)  # a new file, ids from 1
    outbox.fill()
    assert outbox.cursor == 3
    last = json.loads(outbox.pending(100)[-1].body)["events"]
    assert [e["qname"] for e in last] == ["n100.test", "n101.test", "n102.test"]
    outbox.close()


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("enabled: true\nurl: https://obs.example.fr\n", "commune, insee, token is not set"),
        ("url: http://obs.example.fr\n", "plain http is only for 127.0.0.1"),
        ("insee: '4200'\n", "is not an INSEE commune code"),
        ("token: short\n", "shorter than 16"),
    ],
)
def test_config_refuses_bad_values(yaml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_text(yaml, ObservatoryPushConfig)


def test_config_accepts_a_complete_section(tmp_path: Path) -> None:
    cfg = load_text(
        "enabled: true\nurl: https://obs.example.fr/\ncommune: Feurs\ninsee: '42094'\n"
        "token: 0123456789abcdef0123\n",
        ObservatoryPushConfig,
    )
    assert cfg.ingest_url() == "https://obs.example.fr/ingest"
    assert cfg.outbox_path(tmp_path) == tmp_path / "outbox.sqlite"
    assert cfg.key_path(tmp_path) == tmp_path / "observatory.key"
    assert load_text("url: http://127.0.0.1:8054\n", ObservatoryPushConfig).url
    assert load_text("insee: 2A004\n", ObservatoryPushConfig).insee == "2A004"


def _client_of(payload: dict[str, object], i: int) -> str:
    events = payload["events"]
    assert isinstance(events, list)
    client: str = events[i]["client"]
    return client


def test_pseudonyms_rotate_monthly_by_default() -> None:
    """Same machine, two months: two pseudonyms the observatory cannot link; same month: one."""
    dec = 1_796_000_000.0  # 2026-11-30 00:53 UTC, a Monday
    rows = [
        (1, dec, "192.168.1.20", "a.test", 1, "blocked", "feed:x", "malware", 1),
        (2, dec + 3600, "192.168.1.20", "a.test", 1, "blocked", "feed:x", "malware", 1),
        (3, dec + 5 * 86_400, "192.168.1.20", "a.test", 1, "blocked", "feed:x", "malware", 1),
    ]
    monthly = build_payload(rows, KEY, batch_id="b", commune="Feurs", insee="42094")
    assert _client_of(monthly, 0) == _client_of(monthly, 1)
    assert _client_of(monthly, 0) != _client_of(monthly, 2)  # November, then December
    daily = build_payload(rows, KEY, batch_id="b", commune="Feurs", insee="42094", rotation="daily")
    assert _client_of(daily, 0) == _client_of(daily, 1) != _client_of(daily, 2)
    assert {_client_of(daily, i) for i in range(3)}.isdisjoint(
        {_client_of(monthly, i) for i in range(3)}
    )
    assert pseudonym_period(dec, "monthly") == "2026-11"
    assert pseudonym_period(dec, "weekly") == "2026-W49"
    assert pseudonym_period(dec, "daily") == "2026-11-30"


def test_rotation_is_a_config_choice_defaulting_to_monthly() -> None:
    assert ObservatoryPushConfig().pseudonym_rotation == "monthly"
    assert load_text("pseudonym_rotation: weekly\n", ObservatoryPushConfig).pseudonym_rotation
    with pytest.raises(ConfigError, match="not a pseudonym rotation"):
        load_text("pseudonym_rotation: never\n", ObservatoryPushConfig)


@pytest.mark.parametrize(
    "url",
    [
        "https://obs.example.fr",
        "https://obs.example.fr/",
        "https://obs.example.fr/ingest",
        "https://obs.example.fr/ingest/",
    ],
)
def test_url_is_the_base_and_a_url_ending_in_ingest_is_taken_as_its_base(url: str) -> None:
    cfg = load_text(f"url: {url}\n", ObservatoryPushConfig)
    assert cfg.base_url() == "https://obs.example.fr"
    assert cfg.ingest_url() == "https://obs.example.fr/ingest"


def test_outbox_remembers_the_last_successful_send(tmp_path: Path) -> None:
    outbox = _outbox(tmp_path)
    outbox.mark_sent(NOW)
    outbox.mark_sent(NOW + 60)
    outbox.close()
    assert outbox_status(tmp_path / "outbox.sqlite") == (0, NOW + 60)
