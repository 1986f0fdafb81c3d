"""What each step of a change bought: ``run_bench.py`` of each commit, back to back, one run.

    .venv/bin/python bench/steps.py --workloads blocked-distinct,misses COMMIT [COMMIT ...]

Each commit is checked out in a detached worktree of its own (under --dir), and its own
``bench/run_bench.py`` runs its own server (run_bench puts the tree it lives in first on the
server's PYTHONPATH), parafoudre only; then the current tree's run_bench measures dnsmasq and
unbound once, for the ratios. Prints a Markdown table of CPU µs per query per workload.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_ROW = re.compile(r"^\| (parafoudre|dnsmasq|unbound) \|(?:[^|]*\|){4}\s*([0-9.]+)\s*\|")
_SECTION = re.compile(r"^## ([a-z-]+):")


def _cpu(md: Path) -> dict[tuple[str, str], float]:
    """(workload, server) -> CPU µs per query, from a run_bench results file."""
    out: dict[tuple[str, str], float] = {}
    workload = ""
    for line in md.read_text(encoding="utf-8").splitlines():
        m = _SECTION.match(line)
        if m:
            workload = m.group(1)
            continue
        r = _ROW.match(line)
        if r and workload:
            out[workload, r.group(1)] = float(r.group(2))
    return out


def _run(
    bench: Path, servers: str, args: argparse.Namespace, md: Path
) -> dict[tuple[str, str], float]:
    cmd = [
        sys.executable,
        str(bench),
        "--workloads",
        args.workloads,
        "--servers",
        servers,
        "--duration",
        str(args.duration),
        "--rounds",
        "1",
        "--output",
        str(md),
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return _cpu(md)


def _worktree(commit: str, where: Path) -> Path:
    tree = where / commit[:12]
    if not tree.exists():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    if (tree / "setup.py").exists() and not list(tree.glob("resolver/core/*.so")):
        # A commit that compiles its per-query modules (setup.py, mypyc) is measured compiled,
        # as it installs; built in its own tree, which the server's PYTHONPATH puts first.
        subprocess.run(
            [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
            cwd=tree,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return tree


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("commits", nargs="+")
    p.add_argument("--workloads", default="blocked-distinct,misses")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--dir", type=Path, default=Path("/tmp/parafoudre-steps"))
    args = p.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    workloads = args.workloads.split(",")
    rows = []
    for commit in args.commits:
        tree = _worktree(commit, args.dir)
        got = _run(tree / "bench" / "run_bench.py", "parafoudre", args, args.dir / f"{commit}.md")
        rows.append((commit, [got.get((w, "parafoudre")) for w in workloads]))
        print(f"{commit}: {rows[-1][1]}", file=sys.stderr)
    ref = _run(REPO / "bench" / "run_bench.py", "dnsmasq,unbound", args, args.dir / "ref.md")
    print("| commit | " + " | ".join(f"{w} µs (×dnsmasq, ×unbound)" for w in workloads) + " |")
    print("|---|" + "---:|" * len(workloads))
    for commit, cpus in rows:
        cells = []
        for w, cpu in zip(workloads, cpus, strict=True):
            if cpu is None:
                cells.append("–")
                continue
            d, u = ref.get((w, "dnsmasq")), ref.get((w, "unbound"))
            ratios = ", ".join(f"{cpu / x:.2f}×" for x in (d, u) if x)
            cells.append(f"{cpu:.1f} ({ratios})")
        print(f"| {commit[:12]} | " + " | ".join(cells) + " |")
    refs = ", ".join(
        f"{w}: dnsmasq {ref.get((w, 'dnsmasq'))}, unbound {ref.get((w, 'unbound'))}"
        for w in workloads
    )
    print(f"\nReference in the same run (µs): {refs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
