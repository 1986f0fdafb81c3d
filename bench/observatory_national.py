"""Observatory at national scale (issue 17, part 4): one day of 35,000 communes' boxes.

The département's figures come from bench/observatory_load.py. This measures what changes at
national scale on one PostgreSQL: one day of 35,000 communes x 50 blocked queries (1.75 M
events) inserted through the store, then the queries behind the page and the API timed on that
day. Bounded: one day, a few rounds per query.

Usage: .venv/bin/python bench/observatory_national.py [--communes 35000] [--per-commune 50]
Needs Debian's postgresql package; starts and removes its own cluster on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from observatory.domains import campaign_domain
from observatory.pgcluster import temp_cluster
from observatory.store import Event
from observatory.store_pg import PgStore

DAY = dt.date.today() - dt.timedelta(days=1)
CATEGORIES = ("malware", "phishing", "c2", "exfiltration", "ads")


def insee(i: int) -> str:
    return f"{1 + i // 1000:02d}{i % 1000:03d}"


async def fill(store: PgStore, communes: int, per_commune: int) -> float:
    """Insert one day for every commune (one 50-event batch each); events per second."""
    rng = random.Random(3)
    names = [f"{('www', 'login', 'cdn')[i % 3]}.threat-{i // 3}.test" for i in range(60_000)]
    domains = {n: campaign_domain(n) for n in names}
    start = dt.datetime.combine(DAY, dt.time(), dt.UTC).timestamp()
    sem = asyncio.Semaphore(8)

    async def one(i: int) -> None:
        events = []
        for _ in range(per_commune):
            q = names[min(int(rng.paretovariate(1.1)) - 1, len(names) - 1)]
            ts = start + rng.uniform(0, 86_000) // 60 * 60
            events.append(
                Event(
                    ts,
                    DAY,
                    rng.choice(CATEGORIES),
                    "feed:x",
                    "blocked",
                    q,
                    1,
                    f"{rng.getrandbits(64):016x}",
                    1,
                    domains[q],
                )
            )
        async with sem:
            await store.insert_batch(
                batch_id=str(uuid.uuid4()), insee=insee(i), received=start, events=events
            )

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(communes)))
    return communes * per_commune / (time.perf_counter() - t0)


async def timed(label: str, rounds: int, call: object) -> None:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        await call()  # type: ignore[operator]
        times.append(1000 * (time.perf_counter() - t))
    print(f"{label:48} p50 {statistics.median(times):8.1f} ms  max {max(times):8.1f} ms")


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--communes", type=int, default=35_000)
    parser.add_argument("--per-commune", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with temp_cluster(durable=True) as cluster:
        conn = await asyncpg.connect(cluster.dsn())
        await conn.execute("CREATE DATABASE observatory")
        await conn.close()
        store = PgStore(cluster.dsn("observatory"), pool_size=10)
        await store.open()
        try:
            rate = await fill(store, args.communes, args.per_commune)
            n = args.communes * args.per_commune
            print(f"inserted {n} events for {args.communes} communes: {rate:,.0f} events/s")
            await store.pool.execute("ANALYZE")
            size = await store.pool.fetchval("SELECT pg_database_size('observatory')")
            print(f"database: {size / 1e6:.0f} MB ({size / n:.0f} B per event)")
            first = DAY - dt.timedelta(days=29)
            r = args.rounds
            await timed("campaigns of the day (2 levels + names)", r,
                        lambda: store.campaigns(DAY, 2, 20))  # fmt: skip
            await timed("counts by commune (daily_counts)", r, lambda: store.counts_by_commune(DAY))
            await timed("month totals by commune (daily_counts)", r,
                        lambda: store.commune_totals(DAY.replace(day=1), DAY))  # fmt: skip
            await timed("30-day strips (daily_counts)", r, lambda: store.commune_days(first, DAY))
            await timed("département totals (daily_counts)", r, lambda: store.totals(DAY, DAY))
        finally:
            await store.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
