"""Benchmark the feeds pipeline on the 1,000,000-line list: compile, load, and server RSS.

    .venv/bin/python bench/feeds_bench.py [--source FILE] [--skip-server]

Each phase runs in a fresh subprocess so that its peak RSS is its own. Targets (issue 3):
compile <= 15 s, load <= 50 ms, <= 40 MB RSS added to the server. Results: feeds_results.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_SOURCE = Path(
    "/work/shared/feeds/benchmark/ut1_malware_union_2023-04-02_to_2025-07-13.txt.gz"
)
LOOKUPS = 200_000
SERVER_QUERIES = 5_000


def rss_kb(pid: int | str = "self") -> int:
    """Current resident set size of a process, in KiB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def phase_compile(source: Path, work: Path) -> dict[str, float]:
    from feeds.update import run_update
    from resolver.config.feeds import FeedsConfig, FeedSource

    cfg = FeedsConfig(
        catalogue=(),
        sources=(FeedSource(name="ut1-union", url=str(source), format="domains", match="subtree"),),
        state_dir=str(work / "state"),
    )
    artifact = work / "blocklist.pfb"
    rss0 = rss_kb()
    out = io.StringIO()
    t0 = time.perf_counter()
    code = asyncio.run(run_update(cfg, artifact_path=artifact, out=out, interactive=False))
    t1 = time.perf_counter()
    out2 = io.StringIO()
    code2 = asyncio.run(run_update(cfg, artifact_path=artifact, out=out2, interactive=False))
    t2 = time.perf_counter()
    sys.stderr.write(out.getvalue() + out2.getvalue())
    return {
        "exit": code,
        "exit_unchanged": code2,
        "compile_s": t1 - t0,
        "unchanged_s": t2 - t1,
        "peak_rss_mb": peak_kb() / 1024,
        "start_rss_mb": rss0 / 1024,
        "artifact_mb": artifact.stat().st_size / 1e6,
    }


def phase_load(artifact: Path, source: Path) -> dict[str, float]:
    import gzip

    from resolver import blocklist_file

    names = []
    with gzip.open(source, "rt") as f:
        for i, line in enumerate(f):
            if i % 5 == 0:
                names.append(line.strip())
    rng = random.Random(1)
    queries = [rng.choice(("", "www.", "a.b.")) + rng.choice(names) for _ in range(LOOKUPS)]
    queries += [f"miss{i}.example.org" for i in range(LOOKUPS // 4)]
    rss0 = rss_kb()
    t0 = time.perf_counter()
    bl = blocklist_file.read(artifact)
    t1 = time.perf_counter()
    rss1 = rss_kb()
    hits = 0
    t2 = time.perf_counter()
    for q in queries:
        if bl.match(q) is not None:
            hits += 1
    t3 = time.perf_counter()
    rss2 = rss_kb()
    return {
        "entries": len(bl),
        "load_ms": (t1 - t0) * 1000,
        "rss_added_after_load_mb": (rss1 - rss0) / 1024,
        "rss_added_after_lookups_mb": (rss2 - rss0) / 1024,
        "lookups_per_s": len(queries) / (t3 - t2),
        "hit_ratio": hits / len(queries),
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_rss(exe: Path, state: Path, source: Path | None) -> dict[str, float]:
    """Start `parafoudre serve` on loopback, query it, return its RSS (KiB) at each step."""
    import dns.message
    import dns.query

    port = _free_port()
    cfg = state / "parafoudre.yaml"
    cfg.write_text(
        f'state_dir: "{state}"\nserver:\n  listen: ["127.0.0.1:{port}"]\n  workers: 1\n'
        'upstream:\n  servers: ["127.0.0.1:9"]\n  timeout: 0.2\n  total_timeout: 0.3\n'
    )
    proc = subprocess.Popen(
        [str(exe), "serve", "-c", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        probe = dns.message.make_query("probe.example", "A")
        for _ in range(100):  # bounded wait for the server to answer
            try:
                dns.query.udp(probe, "127.0.0.1", port=port, timeout=0.2)
                break
            except Exception:
                time.sleep(0.1)
        time.sleep(0.5)
        started = rss_kb(proc.pid)
        if source is not None:
            import gzip

            with gzip.open(source, "rt") as f:
                names = [line.strip() for i, line in enumerate(f) if i % 200 == 0]
            for name in names[:SERVER_QUERIES]:
                q = dns.message.make_query(name, "A")
                with contextlib.suppress(Exception):
                    dns.query.udp(q, "127.0.0.1", port=port, timeout=0.5)
        queried = rss_kb(proc.pid)
        return {"started_kb": started, "queried_kb": queried}
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def phase_server(artifact: Path, source: Path) -> dict[str, float]:
    exe = Path(sys.executable).parent / "parafoudre"
    if not exe.exists():
        return {"skipped": 1}
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        base = _server_rss(exe, Path(a), None)
        shutil.copy(artifact, Path(b) / "blocklist.pfb")
        loaded = _server_rss(exe, Path(b), source)
    return {
        "rss_without_mb": base["started_kb"] / 1024,
        "rss_with_mb": loaded["started_kb"] / 1024,
        "rss_with_after_queries_mb": loaded["queried_kb"] / 1024,
        "rss_added_mb": (loaded["queried_kb"] - base["started_kb"]) / 1024,
    }


def run_phase(*args: str) -> dict[str, float]:
    res = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True, cwd=ROOT
    )
    sys.stderr.write(res.stderr)
    result: dict[str, float] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    p.add_argument("--phase", choices=("compile", "load", "server"))
    p.add_argument("--work", type=Path)
    p.add_argument("--skip-server", action="store_true")
    args = p.parse_args()
    if args.phase == "compile":
        print(json.dumps(phase_compile(args.source, args.work)))
        return 0
    if args.phase == "load":
        print(json.dumps(phase_load(args.work / "blocklist.pfb", args.source)))
        return 0
    if args.phase == "server":
        print(json.dumps(phase_server(args.work / "blocklist.pfb", args.source)))
        return 0
    if not args.source.exists():
        sys.exit(f"{args.source} not found")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        common = ["--source", str(args.source), "--work", str(work)]
        results = {"compile": run_phase("--phase", "compile", *common)}
        results["load"] = run_phase("--phase", "load", *common)
        if not args.skip_server:
            results["server"] = run_phase("--phase", "server", *common)
    print(json.dumps(results, indent=1))
    print(f"cpu: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
