"""The départemental observatory end to end, on 127.0.0.1 only.

Three local "boxes" (real block logs written by BlockLogWriter, real pushers with their outboxes)
report to a local observatory backed by a real PostgreSQL started by this module (and by SQLite,
the trial engine and the fast path where PostgreSQL is absent). A box whose link is down catches up
with nothing lost and nothing doubled; a pusher restarted in the middle resumes from its cursor;
a forged token is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import math
import re
import sqlite3
import time
import uuid
import zoneinfo
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, ClientTimeout, web

from observatory.app import CONTEXT
from observatory.config import ObservatoryServerConfig, hash_token
from observatory.pgcluster import Cluster, pg_bin_dir, temp_cluster
from observatory.server import RunningObservatory, start_observatory
from resolver.blocklog.writer import BlockEvent, BlockLogWriter
from resolver.config.loader import load_text
from resolver.observatory_push import ObservatoryPushConfig, run_pusher

TZ = "Europe/Paris"
# Noon today in Paris: every event of the test falls on "today" whatever the hour the test runs.
NOW = dt.datetime.combine(
    dt.datetime.now(zoneinfo.ZoneInfo(TZ)).date(), dt.time(12), zoneinfo.ZoneInfo(TZ)
).timestamp()
WAIT = 20.0  # seconds; every wait below is bounded by this
BATCH = 7
HOSTILE = "<script>alert(1)</script>.evil.test"


@dataclass(frozen=True)
class Commune:
    name: str
    insee: str
    token: str
    lat: float
    lon: float


COMMUNES = (
    Commune("Montbrison", "42147", "montbrison-token-0123456789", 45.607, 4.065),
    Commune("Feurs", "42094", "feurs-token-0123456789abcdef", 45.742, 4.227),
    Commune("Roanne", "42187", "roanne-token-0123456789abcdef", 46.036, 4.068),
)
# Configured but never reports: listed as silent.
SILENT = Commune("Saint-Étienne", "42218", "silent-token-0123456789abcdef", 45.434, 4.390)


def observatory_yaml(database: str) -> str:
    boxes = "".join(
        f"""
  - name: {c.name}
    insee: '{c.insee}'
    token_sha256: {hash_token(c.token)}
    latitude: {c.lat}
    longitude: {c.lon}"""
        for c in (*COMMUNES, SILENT)
    )
    return f"""
listen: 127.0.0.1:0
database: {database}
timezone: {TZ}
allow: [127.0.0.0/8]
ingest_allow: [127.0.0.0/8]
silent_hours: 6
boxes:{boxes}
"""


# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[Cluster]:
    if pg_bin_dir() is None:
        pytest.skip(
            "PostgreSQL binaries absent: apt-get install postgresql (see .ci/postgres-note.md)"
        )
    with temp_cluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/observatory.sqlite"
    import asyncpg

    cluster: Cluster = request.getfixturevalue("pg_cluster")
    name = f"obs_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(cluster.dsn())
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return cluster.dsn(name)


@pytest.fixture
async def observatory(database: str) -> AsyncIterator[RunningObservatory]:
    cfg = load_text(observatory_yaml(database), ObservatoryServerConfig)
    running = await start_observatory(cfg, clock=lambda: NOW)
    try:
        yield running
    finally:
        await running.stop()


# --- boxes --------------------------------------------------------------------------------------


@dataclass
class Box:
    commune: Commune
    root: Path
    writer: BlockLogWriter = field(init=False)
    task: asyncio.Task[None] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    written: int = 0

    def __post_init__(self) -> None:
        self.writer = BlockLogWriter(self.blocklog, batch_size=50, clock=lambda: NOW)
        self.writer.start()

    @property
    def blocklog(self) -> Path:
        return self.root / "blocks.sqlite"

    def cfg(self, url: str, *, token: str | None = None) -> ObservatoryPushConfig:
        return ObservatoryPushConfig(
            enabled=True,
            url=url,
            commune=self.commune.name,
            insee=self.commune.insee,
            token=token or self.commune.token,
            batch_size=BATCH,
            interval=0.05,
            timeout=2.0,
            max_backoff=0.2,
        )

    async def block(self, n: int, *, shared: int = 0) -> None:
        """``n`` new blocks with unique names, the first ``shared`` of them campaign names."""
        for i in range(n):
            k = self.written + i
            if i < shared:
                qname, reason = (HOSTILE if i == 0 else f"campaign-{i}.test"), "feed:urlhaus"
            else:
                qname, reason = (
                    f"n{k}.{self.commune.insee}.test",
                    f"feed:local-{self.commune.insee}",
                )
            category = "exfiltration" if k % 5 == 4 else "malware"
            self.writer.offer(
                BlockEvent(
                    NOW - 600 + k, f"192.168.1.{k % 7 + 2}", qname, 1, "blocked", reason, category
                )
            )
        self.written += n
        assert await asyncio.to_thread(self.writer.flush, 5.0)

    def start(self, url: str, *, token: str | None = None) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(
            run_pusher(
                self.cfg(url, token=token),
                blocklog_path=self.blocklog,
                state_dir=self.root,
                stop=self.stop,
            )
        )

    async def halt(self, *, crash: bool = False) -> None:
        """Stop the pusher: cleanly, or cancelled as a killed process would be."""
        task, self.task = self.task, None
        if task is None:
            return
        if crash:
            task.cancel()
        else:
            self.stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5.0)

    def outbox(self) -> tuple[int, int]:
        """(pending batches, cursor) read from the outbox file."""
        path = self.root / "outbox.sqlite"
        if not path.exists():
            return 0, 0
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'state'").fetchone():
                return 0, 0  # the pusher is creating it
            pending = conn.execute("SELECT count(*) FROM batches").fetchone()[0]
            cursor = conn.execute("SELECT value FROM state WHERE name = 'cursor'").fetchone()[0]
            return pending, cursor
        finally:
            conn.close()

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def boxes(tmp_path: Path) -> AsyncIterator[list[Box]]:
    made = [Box(c, tmp_path / c.insee) for c in COMMUNES]
    try:
        yield made
    finally:
        for box in made:
            await box.halt()
            box.close()


async def wait_for(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_events(running: RunningObservatory, n: int) -> None:
    async def done() -> bool:
        return await running.store.event_count() >= n

    await wait_for(done, f"{n} events at the observatory")
    await asyncio.sleep(0.3)  # and no more: nothing doubled arrives late
    assert await running.store.event_count() == n


def base(running: RunningObservatory) -> str:
    return f"http://127.0.0.1:{running.port}"


async def get_json(url: str, **kw: Any) -> Any:
    async with ClientSession(timeout=ClientTimeout(total=5)) as s, s.get(url, **kw) as r:
        assert r.status == 200, await r.text()
        return await r.json()


# --- a proxy that cuts the link -----------------------------------------------------------------


@dataclass
class Proxy:
    """Between the boxes and the observatory: passes, refuses (link down), or forwards and then
    loses the answer (the observatory stored the batch, the box never hears it)."""

    target: str
    mode: str = "pass"
    refused: int = 0
    lost: int = 0
    port: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        if self.mode == "refuse":
            self.refused += 1
            raise web.HTTPServiceUnavailable(text="link down")
        body = await request.read()
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "content-type")
        }
        try:
            async with (
                ClientSession(timeout=ClientTimeout(total=5)) as s,
                s.post(self.target + request.path, data=body, headers=headers) as r,
            ):
                text = await r.text()
                status = r.status
        except OSError:
            self.refused += 1
            raise web.HTTPBadGateway(text="observatory down") from None
        if self.mode == "lose":
            self.lost += 1
            raise web.HTTPBadGateway(text="answer lost")
        return web.Response(status=status, text=text, content_type="application/json")


@contextlib.asynccontextmanager
async def proxy_to(target: str) -> AsyncIterator[Proxy]:
    proxy = Proxy(target)
    app = web.Application()
    app.router.add_post("/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    proxy.port = runner.addresses[0][1]
    try:
        yield proxy
    finally:
        await runner.cleanup()


# --- the tests ----------------------------------------------------------------------------------


async def test_three_boxes_report_weather_totals_and_campaigns(
    observatory: RunningObservatory, boxes: list[Box]
) -> None:
    montbrison, feurs, roanne = boxes
    await montbrison.block(3, shared=2)  # cloudy
    await feurs.block(12, shared=2)  # rain
    await roanne.block(45, shared=1)  # storm
    for box in boxes:
        box.start(base(observatory))
    await wait_events(observatory, 60)
    # One batch per 7 events: 1 + 2 + 7, each stored once.
    assert await observatory.store.batch_count() == 1 + 2 + 7

    url = base(observatory)
    communes = {c["insee"]: c for c in (await get_json(url + "/api/communes"))["communes"]}
    assert {i: (c["blocks_today"], c["weather"]) for i, c in communes.items()} == {
        "42147": (3, "cloudy"),
        "42094": (12, "rain"),
        "42187": (45, "storm"),
        "42218": (0, "sunny"),
    }
    assert not any(communes[c.insee]["silent"] for c in COMMUNES)
    assert communes[SILENT.insee]["silent"]

    totals = await get_json(url + "/api/totals")
    assert totals["day"]["total"] == totals["month"]["total"] == totals["year"]["total"] == 60
    assert totals["day"]["by_category"] == {"exfiltration": 11, "malware": 49}

    campaigns = await get_json(url + "/api/campaigns")
    # By category and registered domain, communes by name; never by the list that blocked them
    # (each commune's "feed:local-<insee>" names are its own: no campaign).
    found = {
        (c["category"], c["domain"]): ([x["name"] for x in c["communes"]], c["events"], c["names"])
        for c in campaigns["campaigns"]
    }
    assert found == {
        ("malware", "evil.test"): (["Feurs", "Montbrison", "Roanne"], 3, [HOSTILE]),
        ("malware", "campaign-1.test"): (["Feurs", "Montbrison"], 2, ["campaign-1.test"]),
    }

    silent = await get_json(url + "/api/silent")
    assert [b["insee"] for b in silent["boxes"]] == [SILENT.insee]

    async with ClientSession(timeout=ClientTimeout(total=5)) as s:
        async with s.get(url + "/") as r:
            assert r.status == 200
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            page = await r.text()
        async with s.get(url + "/metrics") as r:
            metrics = await r.text()
        async with s.get(url + f"/export.csv?year={dt.date.fromtimestamp(NOW).year}") as r:
            assert r.status == 200
            report = await r.text()
        async with s.get(url + "/static/storm.svg") as r:
            assert r.status == 200
        # One page of the table here; a page number beyond it shows the last, junk is refused.
        async with s.get(url + "/?page=7") as r:
            assert r.status == 200 and await r.text() == page
        async with s.get(url + "/?page=x") as r:
            assert r.status == 400
    for c in COMMUNES:
        assert c.name in page
    assert '<svg class="map"' in page and "/static/storm.svg" in page
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'parafoudre_observatory_blocks{category="malware",period="year"} 49.0' in metrics
    assert 'parafoudre_observatory_commune_weather{commune="Roanne",insee="42187"} 3.0' in metrics
    assert "parafoudre_observatory_silent_boxes 1.0" in metrics
    assert report.splitlines()[0] == "day,insee,commune,category,count"
    assert sum(int(line.rsplit(",", 1)[1]) for line in report.splitlines()[1:]) == 60
    # The box never sends a client address, only its pseudonym.
    assert "192.168.1." not in page + metrics + report


async def test_link_down_then_restored_loses_and_doubles_nothing(
    observatory: RunningObservatory, boxes: list[Box], database: str
) -> None:
    box = boxes[0]
    async with proxy_to(base(observatory)) as proxy:
        box.start(f"http://127.0.0.1:{proxy.port}")
        await box.block(10)
        await wait_events(observatory, 10)

        proxy.mode = "refuse"  # the link is down
        await box.block(20)

        async def tried() -> bool:
            return proxy.refused >= 3

        await wait_for(tried, "retries while the link is down")
        assert await observatory.store.event_count() == 10
        assert box.outbox()[0] == math.ceil(20 / BATCH)  # held in the outbox, cursor past them

        proxy.mode = "lose"  # stored by the observatory, answer lost: the box sends them again

        async def lost() -> bool:
            return proxy.lost >= 2

        await wait_for(lost, "answers lost after the observatory stored the batch")

        # The observatory itself stops and restarts on the same database.
        await observatory.runner.cleanup()
        proxy.mode = "pass"
        refused = proxy.refused

        async def down() -> bool:
            return proxy.refused > refused + 1

        await wait_for(down, "retries while the observatory is stopped")
        await box.block(5)
        cfg = load_text(observatory_yaml(database), ObservatoryServerConfig)
        second = await start_observatory(cfg, clock=lambda: NOW)
        try:
            proxy.target = base(second)
            await wait_events(second, 35)
            assert await second.store.batch_count() == math.ceil(10 / BATCH) + math.ceil(
                20 / BATCH
            ) + math.ceil(5 / BATCH)
            totals = await get_json(base(second) + "/api/totals")
            assert totals["day"]["total"] == 35  # daily counts are not doubled either
            assert box.outbox()[0] == 0
            # The batches whose answer was lost came again and were recognised by their id.
            duplicates = (
                observatory.runner.app[CONTEXT].counters.duplicate
                + second.runner.app[CONTEXT].counters.duplicate
            )
            assert duplicates >= 2
        finally:
            await second.stop()
        await observatory.store.close()


async def test_pusher_restart_resumes_from_its_cursor(
    observatory: RunningObservatory, boxes: list[Box]
) -> None:
    box = boxes[1]
    async with proxy_to(base(observatory)) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        proxy.mode = "refuse"
        await box.block(15)
        box.start(url)

        async def batched() -> bool:
            return (await asyncio.to_thread(box.outbox))[1] == 15

        await wait_for(batched, "the rows batched into the outbox")
        await box.halt(crash=True)  # killed with batches in its outbox
        await box.block(10)  # blocks while the pusher is down
        assert box.outbox() == (math.ceil(15 / BATCH), 15)

        proxy.mode = "pass"
        box.start(url)
        await wait_events(observatory, 25)
        await box.halt()
        assert box.outbox() == (0, 25)

        # A clean restart with nothing new sends nothing again.
        box.start(url)
        await asyncio.sleep(0.3)
        assert await observatory.store.event_count() == 25
        assert await observatory.store.batch_count() == math.ceil(15 / BATCH) + math.ceil(
            10 / BATCH
        )


async def test_forged_token_is_refused(observatory: RunningObservatory, boxes: list[Box]) -> None:
    url = base(observatory) + "/ingest"
    batch = {
        "version": 1,
        "batch_id": str(uuid.uuid4()),
        "commune": "Montbrison",
        "insee": "42147",
        "events": [
            {
                "ts": NOW,
                "category": "malware",
                "reason": "feed:x",
                "verdict": "blocked",
                "qname": "forged.test",
                "qtype": 1,
                "client": "0123456789abcdef",
            }
        ],
        "daily": [{"day": "2026-01-01", "category": "malware", "count": 1}],
    }
    async with ClientSession(timeout=ClientTimeout(total=5)) as s:
        for headers, status in (
            ({}, 401),
            ({"Authorization": "Bearer forged-token-0123456789abcdef"}, 401),
            ({"Authorization": f"Bearer {hash_token(COMMUNES[0].token)}"}, 401),
            # A real box's token used for another commune.
            ({"Authorization": f"Bearer {COMMUNES[1].token}"}, 403),
        ):
            async with s.post(url, json=batch, headers=headers) as r:
                assert r.status == status
    # A box configured with a wrong token keeps its events in the outbox.
    box = boxes[0]
    await box.block(4)
    box.start(base(observatory), token="wrong-token-0123456789abcdef")
    counters = observatory.runner.app[CONTEXT].counters

    async def refused() -> bool:
        return counters.refused >= 6

    await wait_for(refused, "the wrong token refused again")
    assert await observatory.store.event_count() == 0
    assert box.outbox() == (1, 4)
    await box.halt()
    box.start(base(observatory))  # the operator fixes the token
    await wait_events(observatory, 4)


async def test_run_observatory_serves_until_sigterm(tmp_path: Path) -> None:
    """What `parafoudre observatory -c FILE` runs: config error exits 2; SIGTERM exits 0."""
    import signal
    import subprocess
    import sys

    from observatory.pgcluster import free_port

    code = "import sys, pathlib; from observatory.server import run_observatory; "
    code += "sys.exit(run_observatory(pathlib.Path(sys.argv[1])))"
    root = Path(__file__).parents[2]
    bad = tmp_path / "bad.yaml"
    bad.write_text("lissen: 127.0.0.1:1\n")
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", code, str(bad)],
        cwd=root,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 2 and b"lissen: unknown key" in done.stderr

    port = free_port()
    good = tmp_path / "observatory.yaml"
    good.write_text(
        observatory_yaml(f"sqlite:///{tmp_path}/obs.sqlite").replace(
            "127.0.0.1:0", f"127.0.0.1:{port}"
        )
    )
    log = tmp_path / "observatory.log"
    with log.open("wb") as err:
        proc = await asyncio.to_thread(
            subprocess.Popen, [sys.executable, "-c", code, str(good)], cwd=root, stderr=err
        )
    try:

        async def up() -> bool:
            try:
                await get_json(f"http://127.0.0.1:{port}/api/totals")
            except OSError:
                return False
            return True

        await wait_for(up, "the observatory process to serve")
        # A forged token: refused and logged (rate-limited), with the line's time.
        async with ClientSession(timeout=ClientTimeout(total=5)) as s:
            for _ in range(3):
                headers = {"Authorization": "Bearer forged-token-0123456789"}
                async with s.post(f"http://127.0.0.1:{port}/ingest", json={}, headers=headers) as r:
                    assert r.status == 401
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0
        lines = log.read_text().splitlines()
        stamp = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
        assert lines and all(re.match(stamp, line) for line in lines), lines
        refused = [line for line in lines if "refused a batch from 127.0.0.1" in line]
        assert len(refused) == 1 and "unknown box token" in refused[0], lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


# --- counts: a block log row stands for identical queries ---------------------------------------


async def test_coalesced_blocks_arrive_with_their_counts_and_are_summed(
    observatory: RunningObservatory, boxes: list[Box]
) -> None:
    montbrison, feurs, _ = boxes
    # Montbrison: one machine asks a campaign name 1,000 times in one write window (one row,
    # count 1,000), and another name once. Feurs: the same campaign name 3 times.
    for i in range(1000):
        montbrison.writer.offer(
            BlockEvent(NOW - 300 + i / 1000, "192.168.1.9", HOSTILE, 1, "blocked", "feed:urlhaus",
                       "malware")
        )  # fmt: skip
    montbrison.writer.offer(
        BlockEvent(NOW - 200, "192.168.1.9", "once.test", 1, "blocked", "feed:local", "malware")
    )
    for i in range(3):
        feurs.writer.offer(
            BlockEvent(NOW - 100 + i, "192.168.1.4", HOSTILE, 1, "blocked", "feed:urlhaus",
                       "malware")
        )  # fmt: skip
    for box in (montbrison, feurs):
        assert await asyncio.to_thread(box.writer.flush, 5.0)
        box.start(base(observatory))
    await wait_events(observatory, 1004)  # blocked queries, summed over the stored events
    assert await observatory.store.batch_count() == 2  # 2 rows and 1 row: one batch each

    url = base(observatory)
    communes = {c["insee"]: c for c in (await get_json(url + "/api/communes"))["communes"]}
    assert (communes["42147"]["blocks_today"], communes["42147"]["weather"]) == (1001, "tornado")
    assert (communes["42094"]["blocks_today"], communes["42094"]["weather"]) == (3, "cloudy")
    totals = await get_json(url + "/api/totals")
    assert totals["day"]["total"] == totals["year"]["total"] == 1004
    assert totals["day"]["by_category"] == {"malware": 1004}
    campaigns = await get_json(url + "/api/campaigns")
    assert [
        (c["domain"], [x["insee"] for x in c["communes"]], c["events"], c["names"])
        for c in campaigns["campaigns"]
    ] == [("evil.test", ["42094", "42147"], 1003, [HOSTILE])]
    async with ClientSession(timeout=ClientTimeout(total=5)) as s:
        async with s.get(url + "/metrics") as r:
            metrics = await r.text()
        async with s.get(url + f"/export.csv?year={dt.date.fromtimestamp(NOW).year}") as r:
            report = await r.text()
    assert 'parafoudre_observatory_blocks{category="malware",period="day"} 1004.0' in metrics
    assert "parafoudre_observatory_ingest_events_total 1004.0" in metrics
    assert sum(int(line.rsplit(",", 1)[1]) for line in report.splitlines()[1:]) == 1004


def old_box_batch(events: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    """A batch as a box before counts sent it: version 1, no count, one query per event."""
    batch: dict[str, Any] = {
        "version": 1,
        "batch_id": str(uuid.uuid4()),
        "commune": "Montbrison",
        "insee": "42147",
        "events": events,
        "daily": [{"day": "2026-01-01", "category": "malware", "count": len(events)}],
    }
    batch.update(changes)
    return batch


def old_event(qname: str, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "ts": NOW - 60,
        "category": "malware",
        "reason": "feed:urlhaus",
        "verdict": "blocked",
        "qname": qname,
        "qtype": 1,
        "client": "0123456789abcdef",
    }
    event.update(changes)
    return event


async def test_a_box_without_counts_still_reports(
    observatory: RunningObservatory, boxes: list[Box]
) -> None:
    url = base(observatory) + "/ingest"
    auth = {"Authorization": f"Bearer {COMMUNES[0].token}"}
    async with ClientSession(timeout=ClientTimeout(total=5)) as s:
        batch = old_box_batch([old_event("a.test"), old_event("b.test"), old_event("a.test")])
        async with s.post(url, json=batch, headers=auth) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["events"] == 3
        # Daily counts that do not add up are still refused, counts or not.
        bad = old_box_batch([old_event("c.test")], daily=[])
        async with s.post(url, json=bad, headers=auth) as r:
            assert r.status == 400
        for count in (0, -1, True, "2", 1.5, 10**12):
            wrong = old_box_batch([old_event("c.test", count=count)], version=2)
            async with s.post(url, json=wrong, headers=auth) as r:
                assert r.status == 400, count
                assert "count" in await r.text()
    # A current box (version 2, counts) next to the old one.
    feurs = boxes[1]
    for _ in range(4):
        feurs.writer.offer(
            BlockEvent(NOW - 30, "192.168.1.4", "a.test", 1, "blocked", "feed:urlhaus", "malware")
        )
    assert await asyncio.to_thread(feurs.writer.flush, 5.0)
    feurs.start(base(observatory))
    await wait_events(observatory, 3 + 4)
    communes = {c["insee"]: c for c in (await get_json(base(observatory) + "/api/communes"))[
        "communes"
    ]}  # fmt: skip
    assert communes["42147"]["blocks_today"] == 3 and communes["42094"]["blocks_today"] == 4
    campaigns = await get_json(base(observatory) + "/api/campaigns")
    assert [(c["domain"], c["events"]) for c in campaigns["campaigns"]] == [("a.test", 2 + 4)]


async def test_a_v1_postgresql_database_is_migrated_keeping_its_events(
    pg_cluster: Cluster,
) -> None:
    import asyncpg

    from observatory.store import Event
    from observatory.store_pg import PgStore

    name = f"obs_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_cluster.dsn())
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    today = dt.datetime.fromtimestamp(NOW, zoneinfo.ZoneInfo(TZ)).date()
    old = Event(NOW, today, "malware", "feed:x", "blocked", "old.test", 1, "c0ffee")
    store = PgStore(pg_cluster.dsn(name))
    await store.open()
    try:
        assert await store.insert_batch(
            batch_id=str(uuid.uuid4()), insee="42147", received=NOW, events=[old]
        )
        # Turn it back into what Parafoudre with schema v1 left: no count column.
        await store.pool.execute("ALTER TABLE events DROP COLUMN count")
        await store.pool.execute("UPDATE schema_version SET version = 1")
    finally:
        await store.close()

    store = PgStore(pg_cluster.dsn(name))
    await store.open()  # migrates
    try:
        assert await store.pool.fetchval("SELECT max(version) FROM schema_version") == 4
        assert await store.pool.fetchval("SELECT count FROM events WHERE qname = 'old.test'") == 1
        new = dataclasses.replace(old, qname="new.test", count=5)
        assert await store.insert_batch(
            batch_id=str(uuid.uuid4()), insee="42147", received=NOW, events=[new]
        )
        assert await store.event_count() == 6
        assert await store.counts_by_commune(today) == {"42147": 6}
        assert await store.totals(today, today) == {"malware": 6}
    finally:
        await store.close()


# --- an exfiltration block never ships its payload ----------------------------------------------


async def stored_events(database: str) -> list[tuple[str, str, str, int]]:
    """(qname, reason, category, count) of every event in the observatory's own database."""
    sql = "SELECT qname, reason, category, count FROM events ORDER BY ts"
    if database.startswith("sqlite:///"):
        conn = sqlite3.connect(database.removeprefix("sqlite:///"))
        try:
            return [tuple(r) for r in conn.execute(sql)]  # type: ignore[misc]
        finally:
            conn.close()
    import asyncpg

    pg = await asyncpg.connect(database)
    try:
        return [tuple(r) for r in await pg.fetch(sql)]  # type: ignore[misc]
    finally:
        await pg.close()


async def test_exfiltration_blocks_reach_the_observatory_without_their_names(
    observatory: RunningObservatory, boxes: list[Box], database: str
) -> None:
    """Issue 15, point 4: the observatory gets the registered domain, signals and counts."""
    box = boxes[0]
    stolen = {
        # base32 of "Jean Dupont 12 rue de la Paix", an IBAN in hex, a password, dnscat2 direct
        "kjswc3raijshk4dpnz2ca4rruzcgkidmmeqfaylj": "tun.exfil-evil.fr",
        "465237363330303036303030303131323334": "x.exfil-evil.fr",
        "motdepasse-Mairie2024": "exfil-evil.fr",
    }
    rows = [(f"{data}.{dom}", "exfil:names") for data, dom in stolen.items()]
    rows.append(("dnscat.4a65616e2044757060.6f6e74", "exfil:cooldown,nxtld"))
    for i, (qname, reason) in enumerate(rows):
        box.writer.offer(
            BlockEvent(NOW - 60 + i, "192.168.1.9", qname, 16, "exfiltration", reason,
                       "exfiltration")
        )  # fmt: skip
    box.writer.offer(
        BlockEvent(NOW - 30, "192.168.1.9", "bad.feed.test", 1, "blocked", "feed:urlhaus",
                   "malware")
    )  # fmt: skip
    assert await asyncio.to_thread(box.writer.flush, 5.0)
    box.start(base(observatory))
    await wait_events(observatory, len(rows) + 1)
    events = await stored_events(database)
    assert [e[0] for e in events] == [
        "exfil-evil.fr",
        "exfil-evil.fr",
        "exfil-evil.fr",
        "(unknown-tld)",
        "bad.feed.test",  # a feed's block keeps its name: it is the listed name, not data
    ]
    assert [e[1] for e in events[:4]] == ["exfil:names"] * 3 + ["exfil:cooldown,nxtld"]
    text = repr(events)
    for data in [*stolen, "dnscat", "4a65616e", "6f6e74"]:
        assert data not in text
    # Nor anywhere the observatory shows or exports.
    url = base(observatory)
    async with ClientSession(timeout=ClientTimeout(total=5)) as s:
        shown = ""
        for path in ("/", "/api/campaigns", "/metrics", "/api/totals"):
            async with s.get(url + path) as r:
                shown += await r.text()
    for data in stolen:
        assert data not in shown


async def test_bypass_attempts_never_reach_the_observatory(
    observatory: RunningObservatory, boxes: list[Box], database: str
) -> None:
    """A bypass attempt is not a threat: Firefox's canary at every start, a public DoH resolver
    from a bypass feed. The box does not send them, so the observatory's weather of that
    commune is cloudy for its one malware block, not a storm of canaries."""
    box = boxes[0]
    for i in range(40):
        box.writer.offer(
            BlockEvent(NOW - 300 + i, f"192.168.1.{i % 4 + 2}", "use-application-dns.net", 1,
                       "blocked", "canary:firefox", "bypass")
        )  # fmt: skip
    box.writer.offer(
        BlockEvent(NOW - 200, "192.168.1.2", "mask.icloud.com", 65, "blocked",
                   "canary:private-relay", "bypass")
    )  # fmt: skip
    box.writer.offer(
        BlockEvent(NOW - 100, "192.168.1.2", "dns.alekberg.net", 1, "blocked", "feed:ut1-doh",
                   "bypass")
    )  # fmt: skip
    box.writer.offer(
        BlockEvent(NOW - 50, "192.168.1.3", "bad.feed.test", 1, "blocked", "feed:urlhaus",
                   "malware")
    )  # fmt: skip
    assert await asyncio.to_thread(box.writer.flush, 5.0)
    box.start(base(observatory))
    await wait_events(observatory, 1)
    assert [(e[0], e[2]) for e in await stored_events(database)] == [("bad.feed.test", "malware")]
    url = base(observatory)
    communes = {c["insee"]: c for c in (await get_json(url + "/api/communes"))["communes"]}
    assert (
        communes[box.commune.insee]["blocks_today"],
        communes[box.commune.insee]["weather"],
    ) == (
        1,
        "cloudy",
    )
    totals = await get_json(url + "/api/totals")
    assert totals["day"]["by_category"] == {"malware": 1}

    # The cursor went past every row, the bypass ones included: nothing waits to be sent.
    with sqlite3.connect(box.blocklog) as conn:
        (top,) = conn.execute("SELECT max(id) FROM blocks").fetchone()

    async def drained() -> bool:
        return box.outbox() == (0, top)

    await wait_for(drained, "the outbox cursor past the bypass rows")
