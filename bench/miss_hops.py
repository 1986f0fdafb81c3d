#!/usr/bin/env python3
"""Where a miss's latency goes inside each server: the two hops, measured from outside.

    .venv/bin/python bench/miss_hops.py [--queries 1500] [--gap-ms 2] [--servers ...]

This script is both the client and the upstream. For each query it sends a never-seen name to
the server under test, receives the server's upstream query (hop in: the client's query in,
the upstream query out), answers it at once, and receives the server's answer (hop out: the
upstream's answer in, the client's answer out). Queries go one at a time with a pause between
them, so the server is asleep when each datagram lands, as it is at a few thousand queries a
second. Both hops include this script's own wake-up, the same for every server: read the
differences between servers, not the absolute figures. The server is pinned to one core, this
script to the other (as run_bench.py pins dnsperf). Parafoudre runs twice, with and without its
exfiltration detector, to tell the detector's share from the rest.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from dnslib import QTYPE, RR, A, DNSRecord

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_bench as rb

WARM = 200  # first queries not counted: caches, the upstream socket pool, first-call paths
VARIANTS = ("parafoudre", "parafoudre-no-detector", "unbound", "dnsmasq")


def start(
    variant: str, ps: rb.Processes, tmp: Path, data: rb.Data, up: rb.Proc, cpu: int | None
) -> rb.Proc:
    if variant != "parafoudre-no-detector":
        return rb.STARTERS[variant](ps, tmp, data, up, cpu)
    return rb.start_parafoudre(ps, tmp, data, up, cpu, name=variant, detector=False)


def one(client: socket.socket, up: socket.socket, port: int, name: str) -> tuple[int, int] | None:
    """(hop in, hop out) in ns for one miss; None if the server did not forward or answer."""
    t0 = time.perf_counter_ns()
    client.sendto(DNSRecord.question(name, "A").pack(), ("127.0.0.1", port))
    try:
        forwarded, addr = up.recvfrom(4096)
        t1 = time.perf_counter_ns()
        reply = DNSRecord.parse(forwarded).reply()
        reply.add_answer(RR(reply.q.qname, QTYPE.A, rdata=A("198.19.255.254"), ttl=60))
        wire = reply.pack()
        t2 = time.perf_counter_ns()
        up.sendto(wire, addr)
        client.recvfrom(4096)
    except TimeoutError:
        return None
    return t1 - t0, time.perf_counter_ns() - t2


def drain(up: socket.socket) -> None:
    """Drop upstream queries left from a start-up probe or an earlier server."""
    up.setblocking(False)
    try:
        while True:
            up.recvfrom(4096)
    except BlockingIOError:
        pass
    finally:
        up.settimeout(1.0)


def pct(values: list[int], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] / 1000


def measure(
    proc: rb.Proc, up: socket.socket, queries: int, gap: float
) -> tuple[list[int], list[int], int]:
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(1.0)
    ins: list[int] = []
    outs: list[int] = []
    failed = 0
    tag = random.randrange(1 << 30)
    deadline = time.monotonic() + 120  # bounded whatever the server does
    for i in range(WARM + queries):
        if time.monotonic() > deadline:
            break
        hops = one(client, up, proc.port, f"h{tag}x{i}.miss.{rb.ZONE}")
        if hops is None:
            failed += 1
        elif i >= WARM:
            ins.append(hops[0])
            outs.append(hops[1])
        time.sleep(gap)
    client.close()
    return ins, outs, failed


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--queries", type=int, default=1500, help="misses measured per server")
    p.add_argument("--gap-ms", type=float, default=2.0, help="pause between two queries")
    p.add_argument("--servers", default=",".join(VARIANTS), help="comma-separated: %(default)s")
    args = p.parse_args(argv)
    server_cpu, load_cpu, pinning = rb.cores()
    if load_cpu is not None:
        os.sched_setaffinity(0, {load_cpu})
    tmp = Path(tempfile.mkdtemp(prefix="parafoudre-hops-"))
    data = rb.generate(tmp, 1000, random.Random(1))
    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    up.bind(("127.0.0.1", 0))
    up.settimeout(1.0)
    upstream = rb.Proc("miss_hops", up.getsockname()[1], None, tmp / "none")  # type: ignore[arg-type]
    ps = rb.Processes()
    print(f"{pinning}; {args.queries} misses per server, {args.gap_ms:g} ms apart; µs\n")
    print("| server | hop in p50 | p90 | p99 | hop out p50 | p90 | p99 | failed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    try:
        for variant in args.servers.split(","):
            proc = start(variant, ps, tmp, data, upstream, server_cpu)
            # A listed name: every server answers it (NXDOMAIN) without asking upstream, which
            # is this script and does not listen yet.
            rb.wait_ready(proc, data.blocklist[0], expect_rcode=3)
            drain(up)
            ins, outs, failed = measure(proc, up, args.queries, args.gap_ms / 1000)
            ps.stop(proc)
            if not ins:
                print(f"| {variant} | – | – | – | – | – | – | {failed} |")
                continue
            cells = [f"{pct(v, q):.1f}" for v in (ins, outs) for q in (0.5, 0.9, 0.99)]
            print(f"| {variant} | {' | '.join(cells)} | {failed} |", flush=True)
    finally:
        ps.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
