"""Soak test (issue 7, part 6): a bounded run of mixed load while the upstream is killed and
restarted, the blocklist is swapped every 30 s, and the server is killed with SIGKILL and
restarted once. Loopback only; every phase bounded in time.

    .venv/bin/python bench/soak.py --duration 600        # the full run, ~10 minutes
    .venv/bin/python bench/soak.py --duration 40 --rate 200   # a short smoke run

Checks at the end: no query unanswered while the server was up (the killed instant aside),
the block log passes PRAGMA integrity_check, every block answered before the last flush before
the kill is in the log (and every block after the restart), and memory is flat. Writes
bench/soak_results.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from dnslib import DNSRecord

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resolver import blocklist_file  # noqa: E402
from resolver.core.blocklist import SUBTREE  # noqa: E402

BLOCKED = [f"b{i}.blocked.test" for i in range(100)]
POPULAR = [f"www{i}.soak.test" for i in range(300)]
SOURCES = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
FLUSH_INTERVAL = 0.5


def free_port() -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def write_list(path: Path, generation: int) -> None:
    rng = random.Random(generation)
    names = set(BLOCKED) | {f"r{rng.getrandbits(40):x}.gen{generation}.test" for _ in range(20000)}
    blocklist_file.write_atomic(
        path, [(n, SUBTREE, 0) for n in sorted(names)], [("feed:soak", "malware")]
    )


@dataclass
class Load:
    sent: list[tuple[float, str, bool]] = field(default_factory=list)  # (time, kind, answered)
    block_acks: list[tuple[float, str, str]] = field(default_factory=list)  # (time, client, name)
    servfail: int = 0
    servfail_at: list[tuple[float, str]] = field(default_factory=list)  # (time, kind)


class Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[bytes]] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) >= 2:
            fut = self.waiting.pop(struct.unpack("!H", data[:2])[0], None)
            if fut is not None and not fut.done():
                fut.set_result(data)


async def run_load(port: int, rate: float, until: float, load: Load) -> None:
    loop = asyncio.get_running_loop()
    clients = []
    for src in SOURCES:
        _, proto = await loop.create_datagram_endpoint(
            Client, local_addr=(src, 0), remote_addr=("127.0.0.1", port)
        )
        clients.append(proto)
    rng = random.Random(7)
    seq = 0
    pending: set[asyncio.Task[None]] = set()

    async def one(proto: Client, src: str, name: str, kind: str) -> None:
        nonlocal seq
        seq = (seq + 1) & 0xFFFF
        qid = seq
        q = DNSRecord.question(name, "A")
        q.header.id = qid
        fut: asyncio.Future[bytes] = loop.create_future()
        proto.waiting[qid] = fut
        t = time.time()
        assert proto.transport is not None
        try:
            proto.transport.sendto(bytes(q.pack()))
            data = await asyncio.wait_for(fut, 4.0)
        except (TimeoutError, OSError):
            proto.waiting.pop(qid, None)
            load.sent.append((t, kind, False))
            return
        r = DNSRecord.parse(data)
        load.sent.append((t, kind, True))
        if r.header.rcode == 2:
            load.servfail += 1
            load.servfail_at.append((t, kind))
        if kind == "blocked" and r.header.rcode == 3:
            load.block_acks.append((time.time(), src, name))

    interval = 1.0 / rate
    next_t = loop.time()
    while time.time() < until:
        i = rng.randrange(len(SOURCES))
        roll = rng.random()
        if roll < 0.80:
            name, kind = rng.choice(POPULAR), "cached"
        elif roll < 0.90:
            name, kind = f"u{rng.getrandbits(48):x}.soak.test", "miss"
        elif roll < 0.95:
            name, kind = rng.choice(BLOCKED), "blocked"
        else:
            name, kind = f"x{rng.getrandbits(32):x}.nx.soak.test", "nx"
        task = loop.create_task(one(clients[i], SOURCES[i], name, kind))
        pending.add(task)
        task.add_done_callback(pending.discard)
        next_t += interval
        await asyncio.sleep(max(0.0, next_t - loop.time()))
    if pending:
        await asyncio.wait(pending, timeout=6)
    for c in clients:
        if c.transport is not None:
            c.transport.close()


def _servfail_summary(load: Load, t0: float) -> str:
    """Where the SERVFAILs fell: by kind of name and by 10-second slot."""
    kinds: dict[str, int] = {}
    slots: dict[int, int] = {}
    for t, kind in load.servfail_at:
        kinds[kind] = kinds.get(kind, 0) + 1
        slot = int((t - t0) // 10) * 10
        slots[slot] = slots.get(slot, 0) + 1
    k = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    s = ", ".join(f"{slot}-{slot + 10} s: {n}" for slot, n in sorted(slots.items()))
    return f"{k}; {s}"


def start_server(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "resolver.cli", "serve", "-c", str(cfg), "--workers", "1"],
        stderr=log.open("ab"),
        cwd=ROOT,
    )


def wait_answering(port: int, seconds: float = 15.0) -> float:
    q = bytes(DNSRecord.question("localhost", "A").pack())
    end = time.time() + seconds
    while time.time() < end:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(q, ("127.0.0.1", port))
                s.recv(512)
                return time.time()
            except OSError:
                time.sleep(0.05)
    raise RuntimeError("server did not answer")


async def soak(duration: float, rate: float, out: Path, outage: float = 0.0) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="parafoudre-soak-"))
    up_port, port = free_port(), free_port()
    compiled = tmp / "blocklist.pfb"
    write_list(compiled, 0)
    cfg = tmp / "soak.yaml"
    cfg.write_text(
        f"state_dir: {tmp}\nserver:\n  listen: ['127.0.0.1:{port}']\n"
        f"upstream:\n  servers: ['127.0.0.1:{up_port}']\n  timeout: 0.8\n  total_timeout: 2.5\n"
        f"blocking:\n  compiled: {compiled}\nblocklog:\n  flush_interval: {FLUSH_INTERVAL}\n"
        "rate_limit:\n  rate: 100000\n  burst: 100000\nlogging:\n  level: warning\n"
        "dashboard:\n  enabled: false\n"
        # The misses are random names under one domain, thousands a minute from each client:
        # what a tunnel looks like. Watch (detect) rather than block, so the popular names
        # keep being answered from the cache and the run measures what it means to.
        "exfiltration:\n  mode: detect\n"
    )
    upstream_cmd = [
        sys.executable,
        str(ROOT / "bench" / "tiny_upstream.py"),
        "--port",
        str(up_port),
    ]
    upstream = subprocess.Popen(upstream_cmd)
    server = start_server(cfg, tmp / "server.log")
    events: list[str] = []
    rss: list[tuple[float, int, float]] = []  # (time, instance, MB)
    load = Load()
    try:
        wait_answering(port)
        t0 = time.time()
        until = t0 + duration
        load_task = asyncio.create_task(run_load(port, rate, until, load))
        kill_up = t0 + duration * 0.2
        back_up = kill_up + (outage if outage > 0 else duration * 0.1)
        kill_server = t0 + duration * 0.55
        next_swap, generation, instance = t0 + 30, 0, 1
        killed_at = restarted_at = 0.0
        while time.time() < until:
            now = time.time()
            if upstream.poll() is None and kill_up <= now < back_up:
                upstream.kill()
                upstream.wait()
                events.append(f"{now - t0:6.1f} s upstream killed")
            if upstream.poll() is not None and now >= back_up:
                upstream = subprocess.Popen(upstream_cmd)
                events.append(f"{now - t0:6.1f} s upstream restarted")
            if now >= next_swap:
                generation += 1
                write_list(compiled, generation)
                next_swap += 30
                events.append(f"{now - t0:6.1f} s blocklist swapped (generation {generation})")
            if not killed_at and now >= kill_server:
                server.send_signal(signal.SIGKILL)
                server.wait()
                killed_at = time.time()
                events.append(f"{killed_at - t0:6.1f} s server killed with SIGKILL")
                server = start_server(cfg, tmp / "server.log")
                restarted_at = wait_answering(port)
                instance = 2
                events.append(f"{restarted_at - t0:6.1f} s server answering again")
            rss.append((now, instance, rss_mb(server.pid)))
            await asyncio.sleep(1.0)
        await load_task
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
    finally:
        for p in (server, upstream):
            if p.poll() is None:
                p.kill()
                p.wait()

    # --- verdicts ----------------------------------------------------------------------------
    margin = 1.0
    in_gap = [s for s in load.sent if killed_at - margin <= s[0] <= restarted_at + margin]
    outside = [s for s in load.sent if not (killed_at - margin <= s[0] <= restarted_at + margin)]
    unanswered = [s for s in outside if not s[2]]
    db = sqlite3.connect(tmp / "blocks.sqlite")
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    # The list's blocks only (the detector, in detect mode, writes none anyway).
    # Identical blocks within a write window share a row (its count): sum the counts.
    rows = db.execute("SELECT ts, count FROM blocks WHERE reason = 'feed:soak'").fetchall()
    cutoff = killed_at - (FLUSH_INTERVAL + 1.0)
    acks_before = sum(1 for t, _, _ in load.block_acks if t < cutoff)
    rows_before = sum(n for ts, n in rows if ts < cutoff)
    acks_after = sum(1 for t, _, _ in load.block_acks if t > restarted_at)
    rows_after = sum(n for ts, n in rows if ts > restarted_at - 0.5)
    inst2 = [mb for _, i, mb in rss if i == 2 and mb > 0]
    inst1 = [mb for _, i, mb in rss if i == 1 and mb > 0]

    def growth(samples: list[float]) -> float:
        if len(samples) < 6:
            return 0.0
        third = len(samples) // 3
        early = sorted(samples[third : 2 * third])[third // 2]  # after warm-up
        return (max(samples[2 * third :]) - early) / early * 100

    ok = (
        not unanswered
        and integrity == "ok"
        and rows_before >= acks_before
        and rows_after >= acks_after
        and growth(inst1) < 25
        and growth(inst2) < 25
    )
    lines = [
        f"# Soak run ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"`bench/soak.py --duration {duration:g} --rate {rate:g}`: {len(load.sent)} queries "
        f"from {len(SOURCES)} clients (80 % popular, 10 % misses, 5 % blocked, 5 % NXDOMAIN).",
        "",
        "Events:",
        "",
        *[f"    {e}" for e in events],
        "",
        "| check | result |",
        "|---|---|",
        f"| queries unanswered while the server was up | {len(unanswered)} of {len(outside)} |",
        f"| queries around the SIGKILL (excluded) | {len(in_gap)}, "
        f"{sum(1 for s in in_gap if not s[2])} unanswered |",
        f"| SERVFAIL answers (upstream down, names never seen) | {load.servfail}: "
        f"{_servfail_summary(load, t0)} |",
        f"| block log `PRAGMA integrity_check` | {integrity} |",
        f"| blocks answered > {FLUSH_INTERVAL + 1:g} s before the kill / in the log | "
        f"{acks_before} / {rows_before} |",
        f"| blocks answered after the restart / in the log | {acks_after} / {rows_after} |",
        f"| RSS first instance: min / max MB, growth after warm-up | "
        f"{min(inst1, default=0):.1f} / {max(inst1, default=0):.1f}, {growth(inst1):+.1f} % |",
        f"| RSS second instance: min / max MB, growth after warm-up | "
        f"{min(inst2, default=0):.1f} / {max(inst2, default=0):.1f}, {growth(inst2):+.1f} % |",
        f"| verdict | {'PASS' if ok else 'FAIL'} |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out.write_text(text)
    return 0 if ok else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--rate", type=float, default=300.0, help="queries per second")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "soak_results.md")
    ap.add_argument("--outage", type=float, default=0.0, help="upstream outage, s (10 %% of run)")
    args = ap.parse_args()
    os.chdir(ROOT)
    sys.exit(asyncio.run(soak(args.duration, args.rate, args.out, args.outage)))
