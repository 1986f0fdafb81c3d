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


@pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason=f"the benchmark needs {', '.join(TOOLS)} (Debian: dnsperf nsd util-linux)",
)
def test_bench_quick_run_answers_right_and_writes_its_tables(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run_bench.py"),
            "--quick",
            "--servers",
            "parafoudre",
            "--workloads",
            "cached,blocked,blocked-distinct,misses,mixed",
            "--duration",
            "1",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    workloads = ("cached", "blocked", "blocked-distinct", "misses", "mixed")
    for workload in workloads:
        assert f"## {workload}" in text
    # Right answers and nothing lost, on each load.
    rows = [line for line in text.splitlines() if line.startswith("| parafoudre |")]
    assert len(rows) == len(workloads)
    for row in rows:
        assert row.rstrip().endswith("| ok |"), row
        assert "| 0 / " in row, row
