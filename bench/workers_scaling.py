"""How q/s grows with worker processes (issue 6, part 3): cached answers, dnsperf, loopback.

    .venv/bin/python bench/workers_scaling.py --workers 1,2 --duration 8

Starts a local upstream (bench/tiny_upstream.py), then parafoudre with each worker count in
turn, warms the cache with 1,000 names, and runs dnsperf (unpinned: on a 2-core machine the
load generator needs a core too, so two workers compete with it). Prints q/s and the server's
CPU per answer, summed over all its processes.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from soak import free_port, wait_answering  # noqa: E402


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def server_pids(root: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(root)], capture_output=True, text=True).stdout
    return [root, *(int(p) for p in out.split())]


def run(workers: int, duration: float, up_port: int, tmp: Path) -> tuple[float, float, int]:
    port = free_port()
    cfg = tmp / f"w{workers}.yaml"
    cfg.write_text(
        f"state_dir: {tmp / f'state{workers}'}\nserver:\n  listen: ['127.0.0.1:{port}']\n"
        f"  workers: {workers}\nupstream:\n  servers: ['127.0.0.1:{up_port}']\n"
        "rate_limit:\n  enabled: false\ndashboard:\n  enabled: false\nlogging:\n  level: warning\n"
        # One client walking 1,000 names of one domain looks like a tunnel: measure the cache.
        "exfiltration:\n  mode: 'off'\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "resolver.cli", "serve", "-c", str(cfg)], cwd=ROOT
    )
    try:
        wait_answering(port)
        time.sleep(1.0)
        names = tmp / "names.txt"
        names.write_text("".join(f"h{i}.bench.test A\n" for i in range(1000)))
        warm = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(names), "-n", "2"]
        subprocess.run(warm, capture_output=True, check=False)
        pids = server_pids(proc.pid)
        before = cpu_seconds(pids)
        cmd = [
            "dnsperf",
            "-s",
            "127.0.0.1",
            "-p",
            str(port),
            "-d",
            str(names),
            "-l",
            str(duration),
            "-c",
            "20",
            "-q",
            "500",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
        cpu = cpu_seconds(pids) - before
        qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        done = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
        lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
        return qps, cpu / max(done, 1) * 1e6, lost
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--duration", type=float, default=8.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="parafoudre-workers-"))
    up_port = free_port()
    upstream = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "tiny_upstream.py"),
            "--port",
            str(up_port),
            "--ttl",
            "3600",
        ]
    )
    try:
        print(f"cores: {os.cpu_count()}  ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
        print("| workers | q/s | server CPU µs/answer | lost |\n|---:|---:|---:|---:|")
        for n in (int(x) for x in args.workers.split(",")):
            qps, us, lost = run(n, args.duration, up_port, tmp)
            print(f"| {n} | {qps:,.0f} | {us:.1f} | {lost} |")
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
