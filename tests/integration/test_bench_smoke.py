"""The benchmark of issue 6 still runs: a short smoke run of bench/run_bench.py (loopback only).

The benchmark itself stays out of CI (it pins CPUs and takes minutes); this only checks that a
newcomer's `bench/run_bench.py` starts NSD and parafoudre, gets right answers and writes its
tables, so that it does not rot between the runs that produce bench/results.md.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("dnsperf", "nsd", "taskset")


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )


def quick_bench(
    tmp_path: Path, servers: str, workloads: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    """A --quick run of 1 s per load; (the process, the results it wrote), having succeeded."""
    out = tmp_path / "results.md"
    proc = run_script(
        "run_bench.py",
        *("--quick", "--servers", servers, "--workloads", workloads),
        *("--duration", "1", "--output", str(out)),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, out.read_text()


@pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason=f"the benchmark needs {', '.join(TOOLS)} (Debian: dnsperf nsd util-linux)",
)
def test_bench_quick_run_answers_right_and_writes_its_tables(tmp_path: Path) -> None:
    proc, text = quick_bench(
        tmp_path, "parafoudre", "cached,blocked,blocked-distinct,misses,mixed,latency"
    )
    workloads = ("cached", "blocked", "blocked-distinct", "misses", "mixed", "latency")
    for workload in workloads:
        assert f"## {workload}" in text
    # Right answers and nothing lost, on each load.
    rows = [line for line in text.splitlines() if line.startswith("| parafoudre |")]
    assert len(rows) == len(workloads)
    for row in rows:
        assert row.rstrip().endswith("| ok |"), row
        assert "| 0 / " in row, row
    # The latency load comes in turns; the percentiles are those of every answer of them all.
    p50, p99 = (float(cell) for cell in rows[-1].split("|")[4:6])
    assert 0 < p50 <= p99, rows[-1]
    assert "5 turns of 0.2 s" in proc.stderr


@pytest.mark.skipif(
    any(shutil.which(t) is None for t in (*TOOLS, "dnsmasq")),
    reason=f"needs {', '.join(TOOLS)} and dnsmasq (Debian: dnsperf nsd util-linux dnsmasq-base)",
)
def test_first_blocked_names_are_also_set_against_a_dnsmasq_that_logs_them(
    tmp_path: Path,
) -> None:
    """dnsmasq keeps no record of what it blocks; parafoudre keeps a row of every block. The
    results give both comparisons, the second from a dnsmasq whose log holds every query."""
    _, text = quick_bench(tmp_path, "parafoudre,dnsmasq", "blocked-distinct")
    note = [line for line in text.splitlines() if "dnsmasq writing down every query" in line]
    assert len(note) == 1, text
    assert "every query answered was found in its log" in note[0]
    assert "µs CPU/query; parafoudre / it: **" in note[0]
    target = [line for line in text.splitlines() if "first blocked answer" in line]
    assert len(target) == 1 and "dnsmasq logging every query (" in target[0], text


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)")
def test_miss_hops_times_both_hops_of_a_miss_with_and_without_the_detector() -> None:
    proc = run_script(
        "miss_hops.py",
        "--queries",
        "30",
        "--gap-ms",
        "1",
        "--servers",
        "parafoudre,parafoudre-no-detector",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {
        line.split("|")[1].strip(): line.split("|")[2:-1]
        for line in proc.stdout.splitlines()
        if line.startswith("| parafoudre")
    }
    assert set(rows) == {"parafoudre", "parafoudre-no-detector"}, proc.stdout
    for cells in rows.values():
        *hops, failed = (c.strip() for c in cells)
        assert failed == "0"
        assert all(float(h) > 0 for h in hops)
