"""Observatory sizing (issue 9, part 3): a bounded load test against a local PostgreSQL.

1. 1,000 boxes each POST a day's batch (50 events) to /ingest over HTTP, 50 at a time.
2. A département's year: ~450,000 events over 92 communes (realistic category mix, a Zipf-like
   choice of names so campaigns appear), inserted in 500-event batches through the store.
3. Every page and API query timed on that year of data (must stay under 200 ms), with the
   page cache off (every request queries and renders); then the page with its cache on.
4. Table and index sizes from PostgreSQL, bytes per event.

Usage: .venv/bin/python bench/observatory_load.py [--events 450000] [--out FILE.md]
Needs Debian's postgresql package; starts and removes its own cluster on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import random
import statistics
import sys
import time
import uuid
import zoneinfo
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from aiohttp import ClientSession, ClientTimeout, TCPConnector

from observatory.config import BoxConfig, ObservatoryServerConfig, hash_token
from observatory.domains import campaign_domain
from observatory.pgcluster import temp_cluster
from observatory.server import start_observatory
from observatory.store import Event

TZ = "Europe/Paris"
PARIS = zoneinfo.ZoneInfo(TZ)
YEAR = dt.date.today().year - 1
NOW = dt.datetime(YEAR, 12, 31, 18, 0, tzinfo=PARIS).timestamp()
CATEGORIES = (("malware", 55), ("phishing", 25), ("c2", 8), ("exfiltration", 7), ("ads", 5))
FEEDS = {
    "malware": ("feed:urlhaus", "feed:threatfox"),
    "phishing": ("feed:openphish", "feed:phishing-army"),
    "c2": ("feed:threatfox", "feed:feodo"),
    "exfiltration": ("exfil:entropy", "exfil:volume"),
    "ads": ("list:local",),
}


def token(i: int) -> str:
    return f"bench-box-token-{i:05d}-0123456789"


def insee(i: int) -> str:
    return f"{42 + i // 1000}{i % 1000:03d}"


def make_event(rng: random.Random, ts: float, names: list[str]) -> dict[str, Any]:
    category = rng.choices([c for c, _ in CATEGORIES], [w for _, w in CATEGORIES])[0]
    # Zipf-like: a few names are blocked everywhere (campaigns), most are rare.
    qname = names[min(int(rng.paretovariate(1.1)) - 1, len(names) - 1)]
    return {
        "ts": ts,
        "category": category,
        "reason": rng.choice(FEEDS[category]),
        "verdict": "exfiltration" if category == "exfiltration" else "blocked",
        "qname": qname,
        "qtype": 1,
        "client": f"{rng.getrandbits(64):016x}",
    }


def payload(code: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    daily: dict[tuple[str, str], int] = {}
    for e in events:
        key = (time.strftime("%Y-%m-%d", time.gmtime(e["ts"])), e["category"])
        daily[key] = daily.get(key, 0) + 1
    return {
        "version": 1,
        "batch_id": str(uuid.uuid4()),
        "commune": code,
        "insee": code,
        "events": events,
        "daily": [{"day": d, "category": c, "count": n} for (d, c), n in daily.items()],
    }


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def boxes_day(base: str, n_boxes: int, per_box: int, names: list[str]) -> dict[str, float]:
    rng = random.Random(1)
    day_start = NOW - 18 * 3600
    bodies = [
        (
            i,
            payload(
                insee(i),
                [
                    make_event(rng, day_start + rng.uniform(0, 18 * 3600), names)
                    for _ in range(per_box)
                ],
            ),
        )
        for i in range(n_boxes)
    ]
    latencies: list[float] = []
    sem = asyncio.Semaphore(50)
    async with ClientSession(
        timeout=ClientTimeout(total=30), connector=TCPConnector(limit=50)
    ) as session:

        async def send(i: int, body: dict[str, Any]) -> None:
            async with sem:
                t = time.perf_counter()
                async with session.post(
                    base + "/ingest", json=body, headers={"Authorization": f"Bearer {token(i)}"}
                ) as r:
                    assert r.status == 200, await r.text()
                    await r.read()
                latencies.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(send(i, b) for i, b in bodies))
        wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "batches_per_s": n_boxes / wall,
        "events_per_s": n_boxes * per_box / wall,
        "p50_ms": 1000 * pct(latencies, 0.5),
        "p95_ms": 1000 * pct(latencies, 0.95),
        "max_ms": 1000 * max(latencies),
    }


async def year(store: Any, n_events: int, communes: int, names: list[str]) -> dict[str, float]:
    rng = random.Random(2)
    start = dt.datetime(YEAR, 1, 1, tzinfo=PARIS).timestamp()
    span = NOW - start
    per_batch = 500
    batches = []
    domains: dict[str, str] = {}  # as /ingest computes it on arrival
    left = n_events
    while left > 0:
        k = min(per_batch, left)
        left -= k
        code = insee(rng.randrange(communes))
        events = []
        # One box's batch covers a few hours of its day, as the pusher sends them.
        t = start + rng.uniform(0, span - 6 * 3600)
        for _ in range(k):
            raw = make_event(rng, t + rng.uniform(0, 6 * 3600), names)
            ts = raw["ts"]
            events.append(
                Event(
                    ts,
                    dt.datetime.fromtimestamp(ts, PARIS).date(),
                    raw["category"],
                    raw["reason"],
                    raw["verdict"],
                    raw["qname"],
                    1,
                    raw["client"],
                    domain=domains.get(raw["qname"])
                    or domains.setdefault(raw["qname"], campaign_domain(raw["qname"])),
                )
            )
        batches.append((code, events))
    sem = asyncio.Semaphore(8)

    async def insert(code: str, events: list[Event]) -> None:
        async with sem:
            await store.insert_batch(
                batch_id=str(uuid.uuid4()), insee=code, received=NOW, events=events
            )

    t0 = time.perf_counter()
    await asyncio.gather(*(insert(c, e) for c, e in batches))
    wall = time.perf_counter() - t0
    return {
        "events": n_events,
        "batches": len(batches),
        "wall_s": wall,
        "events_per_s": n_events / wall,
    }


async def time_queries(
    base: str, rounds: int, paths: list[str] | None = None
) -> dict[str, dict[str, float]]:
    paths = paths or [
        "/",
        "/?page=10",
        "/en/",
        "/api/communes",
        "/api/totals",
        "/api/campaigns",
        "/api/silent",
        "/metrics",
        f"/export.csv?year={YEAR}",
        f"/api/campaigns?day={YEAR}-07-14",
    ]
    out: dict[str, dict[str, float]] = {}
    async with ClientSession(timeout=ClientTimeout(total=30)) as session:
        for path in paths:
            times = []
            size = 0
            for _ in range(rounds):
                t = time.perf_counter()
                async with session.get(base + path) as r:
                    assert r.status == 200, path
                    size = len(await r.read())
                times.append(1000 * (time.perf_counter() - t))
            out[path] = {
                "p50_ms": statistics.median(times),
                "p95_ms": pct(times, 0.95),
                "max_ms": max(times),
                "bytes": size,
            }
    return out


async def sizes(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ANALYZE")
        events = await conn.fetchval("SELECT count(*) FROM events")
        heap = await conn.fetchval(
            "SELECT sum(pg_table_size(inhrelid)) FROM pg_inherits"
            " WHERE inhparent = 'events'::regclass"
        )
        idx = {}
        for name in ("events_day_commune", "events_qname_day"):
            idx[name] = await conn.fetchval(
                "SELECT sum(pg_relation_size(i.inhrelid)) FROM pg_inherits i"
                " WHERE i.inhparent = $1::regclass",
                name,
            )
        partitions = await conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"
        )
        other = {
            t: await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", t)
            for t in ("daily_counts", "batches", "box_status")
        }
        daily_rows = await conn.fetchval("SELECT count(*) FROM daily_counts")
        db = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    return {
        "events": events,
        "heap": heap,
        "indexes": idx,
        "partitions": partitions,
        "other": other,
        "daily_rows": daily_rows,
        "database": db,
    }


def show(queries: dict[str, dict[str, float]]) -> None:
    for path, q in queries.items():
        print(
            f"{path:32} p50 {q['p50_ms']:7.1f} ms  p95 {q['p95_ms']:7.1f} ms"
            f"  max {q['max_ms']:7.1f} ms  {q['bytes'] / 1000:7.1f} kB",
            flush=True,
        )


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=450_000)
    parser.add_argument("--communes", type=int, default=92)
    parser.add_argument("--boxes", type=int, default=1000)
    parser.add_argument("--per-box", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    # Three names per registered domain (www., login., cdn.): campaigns group them.
    names = [f"{('www', 'login', 'cdn')[i % 3]}.threat-{i // 3}.test" for i in range(20_000)]
    boxes = tuple(
        BoxConfig(
            name=f"Commune {i}",
            insee=insee(i),
            token_sha256=hash_token(token(i)),
            latitude=45.0 + (i % 40) * 0.03,
            longitude=3.8 + (i // 40) * 0.03,
        )
        for i in range(max(args.boxes, args.communes))
    )
    with temp_cluster(durable=True) as cluster:
        conn = await asyncpg.connect(cluster.dsn())
        await conn.execute("CREATE DATABASE observatory")
        await conn.close()
        dsn = cluster.dsn("observatory")
        cfg = ObservatoryServerConfig(
            listen="127.0.0.1:0",
            database=dsn,
            boxes=boxes,
            allow=("127.0.0.0/8",),
            timezone=TZ,
            pool_size=10,
            page_cache=0,  # the budget holds for a page rendered for each request
        )
        running = await start_observatory(cfg, clock=lambda: NOW)
        base = f"http://127.0.0.1:{running.port}"
        try:
            day = await boxes_day(base, args.boxes, args.per_box, names)
            print("1,000 boxes x one day's batch:", day, flush=True)
            yr = await year(running.store, args.events, args.communes, names)
            print("a year of events:", yr, flush=True)
            size = await sizes(dsn)
            print("sizes:", size, flush=True)
            queries = await time_queries(base, args.rounds)
            show(queries)
            # The same page with the default page cache (5 s): the first request renders it.
            cached = await start_observatory(
                dataclasses.replace(cfg, page_cache=ObservatoryServerConfig().page_cache),
                clock=lambda: NOW,
            )
            try:
                print("with the page cache on (default):", flush=True)
                show(await time_queries(f"http://127.0.0.1:{cached.port}", args.rounds, ["/"]))
            finally:
                await cached.stop()
        finally:
            await running.stop()
    worst = max(q["p95_ms"] for q in queries.values())
    print(f"worst p95: {worst:.1f} ms ({'OK' if worst < 200 else 'OVER'} the 200 ms budget)")
    return 0 if worst < 200 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
