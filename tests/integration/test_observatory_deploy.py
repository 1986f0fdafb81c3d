"""Deploying and running the observatory as a département would, on 127.0.0.1 only.

* observatory/README.md's database recipe, run as written against a throw-away PostgreSQL
  cluster authenticating as a fresh Debian one does (peer on the socket, scram-sha-256 on
  127.0.0.1), then ``parafoudre observatory migrate`` and a box's batch with the example config;
* ``parafoudre observatory migrate`` on a populated database of the previous schema;
* retention on PostgreSQL: old month partitions dropped, daily counts kept;
* a box's ``doctor`` against a live and a dead observatory;
* pseudonyms of one machine in two months, end to end.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import grp
import io
import os
import pwd
import re
import shutil
import sqlite3
import subprocess
import sys
import uuid
import zoneinfo
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, ClientTimeout

from observatory.config import ObservatoryServerConfig, hash_token
from observatory.pgcluster import Cluster, free_port, pg_bin_dir, temp_cluster
from observatory.server import RunningObservatory, start_observatory
from observatory.store import Event
from resolver.config.loader import load_file, load_text

ROOT = Path(__file__).parents[2]
TZ = "Europe/Paris"
NOW = dt.datetime.combine(
    dt.datetime.now(zoneinfo.ZoneInfo(TZ)).date(), dt.time(12), zoneinfo.ZoneInfo(TZ)
).timestamp()
TODAY = dt.datetime.fromtimestamp(NOW, zoneinfo.ZoneInfo(TZ)).date()
TOKEN = "montbrison-token-0123456789"


def parafoudre(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The ``parafoudre`` command, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "resolver.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def need_postgres() -> None:
    if pg_bin_dir() is None:
        pytest.skip("PostgreSQL binaries absent: apt-get install postgresql")


@pytest.fixture(scope="module")
def debian_cluster() -> Iterator[Cluster]:
    need_postgres()
    with temp_cluster(debian_auth=True) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[Cluster]:
    need_postgres()
    with temp_cluster() as cluster:
        yield cluster


def readme_recipe() -> str:
    """The README's tested shell block, as written."""
    text = (ROOT / "observatory" / "README.md").read_text()
    found = re.search(r"<!-- tested by [^>]*-->\n```sh\n(.*?)```", text, re.S)
    assert found, "observatory/README.md lost its tested database recipe"
    return found.group(1)


def example_config(etc: Path, port: int) -> str:
    """deploy/observatory.example.yaml on this test's port, paths and one real token."""
    text = (ROOT / "deploy" / "observatory.example.yaml").read_text()
    text = text.replace("/etc/parafoudre", str(etc))
    text = text.replace("@127.0.0.1/", f"@127.0.0.1:{port}/")
    text = text.replace("listen: 127.0.0.1:8054", "listen: 127.0.0.1:0")
    return text.replace(
        "sha256:0000000000000000000000000000000000000000000000000000000000000001",
        hash_token(TOKEN),
    )


def batch(qname: str = "evil.test", ts: float = NOW) -> dict[str, Any]:
    return {
        "version": 2,
        "batch_id": str(uuid.uuid4()),
        "commune": "Montbrison",
        "insee": "42147",
        "events": [
            {
                "ts": ts,
                "category": "malware",
                "reason": "feed:urlhaus",
                "verdict": "blocked",
                "qname": qname,
                "qtype": 1,
                "client": "0123456789abcdef",
                "count": 2,
            }
        ],
        "daily": [{"day": "2026-01-01", "category": "malware", "count": 2}],
    }


async def post(url: str, body: dict[str, Any], token: str = TOKEN) -> int:
    async with (
        ClientSession(timeout=ClientTimeout(total=5)) as s,
        s.post(url + "/ingest", json=body, headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        return r.status


# --- the README's recipe ------------------------------------------------------------------------


async def test_readme_recipe_works_with_debian_default_authentication(
    debian_cluster: Cluster, tmp_path: Path
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    script = readme_recipe().replace("/etc/parafoudre", str(etc))
    # `sudo -u postgres` is the cluster's owner here; the service's group is ours.
    owner = " ".join(debian_cluster.as_superuser([])) + " "
    script = script.replace("sudo -u postgres ", owner)
    script = script.replace("parafoudre-observatory", grp.getgrgid(os.getegid()).gr_name)
    env = {
        **os.environ,
        "PGHOST": str(debian_cluster.root),
        "PGPORT": str(debian_cluster.port),
        "PGDATABASE": "postgres",  # Debian's postgres user has a database of its name
        "PATH": f"{pg_bin_dir()}:{os.environ['PATH']}",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-euo", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    password_file = etc / "observatory-db.password"
    assert password_file.stat().st_mode & 0o777 == 0o640
    assert done.stdout.strip() == ""  # nothing echoed, the password included

    config = etc / "observatory.yaml"
    config.write_text(example_config(etc, debian_cluster.port))
    migrated = await asyncio.to_thread(parafoudre, "observatory", "migrate", "-c", str(config))
    assert migrated.returncode == 0, migrated.stderr
    assert "created at schema v4" in migrated.stdout
    again = await asyncio.to_thread(parafoudre, "observatory", "migrate", "-c", str(config))
    assert "already at schema v4, nothing to do" in again.stdout

    cfg = load_file(config, ObservatoryServerConfig)
    running = await start_observatory(cfg, clock=lambda: NOW)
    try:
        url = f"http://127.0.0.1:{running.port}"
        assert await post(url, batch()) == 200
        assert await running.store.event_count() == 2
    finally:
        await running.stop()

    # Without the password (scram-sha-256 over TCP): one clear line, no traceback.
    config.write_text(example_config(etc, debian_cluster.port).replace(
        "database_password_file:", "# database_password_file:"
    ))  # fmt: skip
    refused = await asyncio.to_thread(parafoudre, "observatory", "migrate", "-c", str(config))
    assert refused.returncode == 1
    assert "cannot open its database" in refused.stderr and "Traceback" not in refused.stderr
    # A password file others may read is refused before it is used.
    config.write_text(example_config(etc, debian_cluster.port))
    password_file.chmod(0o644)
    loose = await asyncio.to_thread(parafoudre, "observatory", "migrate", "-c", str(config))
    assert loose.returncode == 1 and "chmod 0640" in loose.stderr


async def test_readme_peer_alternative_works_over_the_unix_socket(
    debian_cluster: Cluster, tmp_path: Path
) -> None:
    """No password: a role named after the system user the service runs as, peer over the
    socket (here the test's own user plays the service's).
    """
    user = pwd.getpwuid(os.geteuid()).pw_name
    bindir = pg_bin_dir()
    assert bindir is not None
    env = {
        **os.environ,
        "PGHOST": str(debian_cluster.root),
        "PGPORT": str(debian_cluster.port),
        "PGDATABASE": "postgres",
    }
    steps = [["createdb", "-O", user, "obs_peer"]]
    if user != debian_cluster.superuser:  # under root; otherwise the user owns the cluster
        steps.insert(0, ["createuser", user])
    for cmd in steps:
        done = await asyncio.to_thread(
            subprocess.run,
            debian_cluster.as_superuser([str(bindir / cmd[0]), *cmd[1:]]),
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
    dsn = f"postgresql:///obs_peer?host={debian_cluster.root}&port={debian_cluster.port}"
    migrated = await asyncio.to_thread(
        parafoudre, "observatory", "migrate", "-c", str(write_config(tmp_path, dsn))
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "created at schema v4" in migrated.stdout


# --- migrate from the previous schema -----------------------------------------------------------


async def new_database(cluster: Cluster) -> str:
    import asyncpg

    name = f"obs_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    return cluster.dsn(name)


def write_config(tmp_path: Path, database: str, **extra: str) -> Path:
    path = tmp_path / "observatory.yaml"
    more = "".join(f"{k}: {v}\n" for k, v in extra.items())
    path.write_text(
        f"listen: 127.0.0.1:0\ndatabase: {database}\ntimezone: {TZ}\n{more}boxes:\n"
        f"  - name: Montbrison\n    insee: '42147'\n    token_sha256: {hash_token(TOKEN)}\n"
    )
    return path


async def test_migrate_brings_a_populated_v2_database_forward(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    from observatory.store_pg import PgStore

    dsn = await new_database(pg_cluster)
    store = PgStore(dsn)
    await store.open()
    try:
        for i in range(3):
            event = Event(NOW + i, TODAY, "malware", "feed:x", "blocked", f"n{i}.test", 1, "c0", 5)
            await store.insert_batch(
                batch_id=str(uuid.uuid4()), insee="42147", received=NOW, events=[event]
            )
        # Back to what schema v2 stored: times to the microsecond, no domain.
        await store.pool.execute("UPDATE events SET ts = ts + interval '17.123456 seconds'")
        await store.pool.execute("ALTER TABLE events DROP COLUMN domain")
        await store.pool.execute("DELETE FROM schema_version")
        await store.pool.execute("INSERT INTO schema_version (version) VALUES (2)")
    finally:
        await store.close()

    done = await asyncio.to_thread(
        parafoudre, "observatory", "migrate", "-c", str(write_config(tmp_path, dsn))
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "observatory database: migrated from schema v2 to v4; 15 blocked queries in 3 batches kept"
    )
    store = PgStore(dsn)
    await store.open()
    try:
        seconds = await store.pool.fetch("SELECT extract(second FROM ts) FROM events")
        assert [r[0] for r in seconds] == [0, 0, 0]
        assert await store.counts_by_commune(TODAY) == {"42147": 15}
        # Events from before v4 have no domain: a campaign groups them by their name.
        await store.insert_batch(
            batch_id=str(uuid.uuid4()),
            insee="42094",
            received=NOW,
            events=[Event(NOW, TODAY, "malware", "feed:y", "blocked", "n0.test", 1, "c1", 1)],
        )
        found = await store.campaigns(TODAY, 2, 10)
        assert [(c.domain, c.communes, c.events) for c in found] == [
            ("n0.test", ("42094", "42147"), 6)
        ]
    finally:
        await store.close()


# --- retention ----------------------------------------------------------------------------------


async def test_postgresql_retention_drops_old_months_and_keeps_daily_counts(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    from observatory.retention import prune_once
    from observatory.store_pg import PgStore

    dsn = await new_database(pg_cluster)
    store = PgStore(dsn)
    await store.open()
    old_day = TODAY.replace(day=1) - dt.timedelta(days=15 * 31)  # 15 months or so ago
    old_ts = dt.datetime.combine(old_day, dt.time(12), dt.UTC).timestamp()
    try:
        old = Event(old_ts, old_day, "malware", "feed:x", "blocked", "old.test", 1, "c0", 3)
        new = Event(NOW, TODAY, "malware", "feed:x", "blocked", "new.test", 1, "c0", 1)
        await store.insert_batch(batch_id=str(uuid.uuid4()), insee="42147", received=old_ts,
                                 events=[old])  # fmt: skip
        await store.insert_batch(batch_id=str(uuid.uuid4()), insee="42147", received=NOW,
                                 events=[new])  # fmt: skip
        old_partition = f"events_{old_day:%Y_%m}"
        pruned = await prune_once(store, now=NOW, tz=TZ, months=13)
        assert (pruned.events, pruned.batches) == (1, 1)
        assert await store.pool.fetchval("SELECT to_regclass($1)", old_partition) is None
        assert await store.event_count() == 1 and await store.batch_count() == 1
        assert await store.totals(old_day, old_day) == {"malware": 3}  # daily counts kept
        # The current month's partition stays, and a second pass finds nothing.
        again = await prune_once(store, now=NOW, tz=TZ, months=13)
        assert (again.events, again.batches) == (0, 0)
    finally:
        await store.close()

    # The running observatory prunes at start, and refuses events older than the retention.
    # (12 months: its first day is 365 to 396 days back, within the 400 days a box keeps.)
    config = write_config(tmp_path, dsn, retention_months="12")
    cfg = load_text(config.read_text(), ObservatoryServerConfig)
    running = await start_observatory(cfg, clock=lambda: NOW)
    try:
        url = f"http://127.0.0.1:{running.port}"
        assert await post(url, batch("too-old.test", ts=NOW - 398 * 86_400)) == 200
        assert await running.store.event_count() == 1
    finally:
        await running.stop()


# --- the box's doctor ---------------------------------------------------------------------------


@pytest.fixture
async def sqlite_observatory(tmp_path: Path) -> AsyncIterator[RunningObservatory]:
    cfg = load_text(
        write_config(tmp_path, f"sqlite:///{tmp_path}/obs.sqlite").read_text(),
        ObservatoryServerConfig,
    )
    running = await start_observatory(cfg, clock=lambda: NOW)
    try:
        yield running
    finally:
        await running.stop()


def box_config(tmp_path: Path, url: str, token: str = TOKEN) -> Any:
    from resolver.config.schema import Config

    return load_text(
        f"state_dir: {tmp_path / 'box'}\nobservatory:\n  enabled: true\n  url: {url}\n"
        f"  commune: Montbrison\n  insee: '42147'\n  token: {token}\n",
        Config,
    )


async def observatory_lines(cfg: Any, now: float) -> list[str]:
    from resolver.doctor import _check_observatory

    results = await asyncio.to_thread(_check_observatory, cfg, 1.0, now, None)
    return [r.line() for r in results]


async def test_doctor_checks_the_observatory_link(
    sqlite_observatory: RunningObservatory, tmp_path: Path
) -> None:
    from resolver.observatory_push.outbox import Outbox

    base = f"http://127.0.0.1:{sqlite_observatory.port}"
    lines = await observatory_lines(box_config(tmp_path, base), NOW)
    assert lines[0] == f"OK   observatory {base}/ingest: reachable, token accepted"
    assert lines[1].startswith("WARN observatory: no successful send recorded yet")
    # The doctor's heartbeat counts as a report: the commune is not "silent".
    assert "42147" in await sqlite_observatory.store.last_seen()

    # A URL written with /ingest (the old hint) reaches the same place.
    lines = await observatory_lines(box_config(tmp_path, base + "/ingest"), NOW)
    assert lines[0].startswith("OK   observatory") and "/ingest/ingest" not in lines[0]

    # The pusher's last success, recent then old.
    cfg = box_config(tmp_path, base)
    outbox = Outbox(
        cfg.observatory.outbox_path(cfg.state_path()),
        blocklog_path=tmp_path / "box" / "blocks.sqlite",
        key=b"k" * 32,
        commune="Montbrison",
        insee="42147",
        batch_size=10,
    )
    outbox.mark_sent(NOW - 120)
    outbox.close()
    lines = await observatory_lines(cfg, NOW)
    assert lines[1].startswith("OK   observatory: last successful send ")
    assert "0 batch(es) waiting" in lines[1]
    lines = await observatory_lines(cfg, NOW + 3 * 86_400)
    assert lines[1].startswith("WARN observatory: last successful send ")

    # A wrong token: a FAIL that says what to fix.
    lines = await observatory_lines(box_config(tmp_path, base, "wrong-token-0123456789"), NOW)
    assert lines[0].startswith(f"FAIL observatory {base}/ingest: refused the box (HTTP 401)")
    assert "token_sha256" in lines[0]

    # A dead observatory: a warning (the box keeps the events), with what to check.
    dead = f"http://127.0.0.1:{free_port()}"
    lines = await observatory_lines(box_config(tmp_path, dead), NOW)
    assert lines[0].startswith(f"WARN observatory {dead}/ingest: unreachable (")
    assert "outbox" in lines[0]


async def test_doctor_runs_the_observatory_check_with_the_others(tmp_path: Path) -> None:
    """run_doctor prints the observatory's lines (here a dead one) among its checks."""
    from resolver.doctor import run_doctor

    out = io.StringIO()
    cfg = box_config(tmp_path, f"http://127.0.0.1:{free_port()}")
    cfg = _loopback_only(cfg)
    await asyncio.to_thread(run_doctor, cfg, None, out=out, timeout=0.3, now=NOW)
    assert any(
        line.startswith("WARN observatory") and "unreachable" in line
        for line in out.getvalue().splitlines()
    )


def _loopback_only(cfg: Any) -> Any:
    """The box config with its upstreams on a closed loopback port: no test leaves 127.0.0.1."""
    import dataclasses

    from resolver.config.loader import load_text as load

    closed = free_port()
    upstream = load(f"upstream:\n  servers: ['127.0.0.1:{closed}']\n", type(cfg)).upstream
    return dataclasses.replace(cfg, upstream=upstream)


# --- pseudonyms rotate ---------------------------------------------------------------------------


async def test_one_machine_in_two_months_has_two_pseudonyms_at_the_observatory(
    sqlite_observatory: RunningObservatory, tmp_path: Path
) -> None:
    from resolver.blocklog.writer import BlockEvent, BlockLogWriter
    from resolver.config.observatory import ObservatoryPushConfig
    from resolver.observatory_push import run_pusher

    box = tmp_path / "box2"
    writer = BlockLogWriter(box / "blocks.sqlite", clock=lambda: NOW)
    writer.start()
    last_month = NOW - 35 * 86_400  # always another month, within the retention
    for i, ts in enumerate((last_month, last_month + 60, NOW, NOW + 60)):
        # Names differ: identical blocks in one write window would share one block log row.
        qname = f"evil{i}.test"
        writer.offer(BlockEvent(ts, "192.168.1.20", qname, 1, "blocked", "feed:x", "malware"))
    assert await asyncio.to_thread(writer.flush, 5.0)
    writer.close()
    stop = asyncio.Event()
    cfg = ObservatoryPushConfig(
        enabled=True,
        url=f"http://127.0.0.1:{sqlite_observatory.port}",
        commune="Montbrison",
        insee="42147",
        token=TOKEN,
        interval=0.05,
        timeout=2.0,
    )
    task = asyncio.create_task(
        run_pusher(cfg, blocklog_path=box / "blocks.sqlite", state_dir=box, stop=stop)
    )
    try:
        for _ in range(200):
            if await sqlite_observatory.store.event_count() == 4:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5.0)
    db = sqlite3.connect(str(tmp_path / "obs.sqlite"))
    try:
        rows = db.execute("SELECT ts, client FROM events ORDER BY ts").fetchall()
    finally:
        db.close()
    assert len(rows) == 4
    assert rows[0][1] == rows[1][1] != rows[2][1] == rows[3][1]
    assert all(ts % 60 == 0 for ts, _ in rows)  # stored to the minute


# --- the service file ---------------------------------------------------------------------------


def test_service_file_is_valid_for_systemd(tmp_path: Path) -> None:
    """deploy/parafoudre-observatory.service as systemd reads it (the binary stands in)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze absent")
    text = (ROOT / "deploy" / "parafoudre-observatory.service").read_text()
    assert "ExecStart=/opt/parafoudre/venv/bin/parafoudre observatory -c " in text
    assert "User=parafoudre-observatory" in text  # the README's recipe creates this user
    unit = tmp_path / "parafoudre-observatory.service"
    unit.write_text(text.replace("/opt/parafoudre/venv/bin/parafoudre", "/bin/echo"))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
