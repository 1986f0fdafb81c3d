"""The pure Python build (no compiler, PARAFOUDRE_COMPILE=0, or mypyc failing: setup.py) passes
the per-query modules' unit tests too: a box installed without gcc runs that code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The unit tests of the compiled modules (resolver/compiled_modules.txt), run on a copy of the
# tree without a single compiled file.
SUITES = [
    "tests/unit/core",
    "tests/unit/stages",
    "tests/unit/exfil",
    "tests/unit/net",
    "tests/unit/blocklog",
    "tests/unit/test_blocklist_file_allow.py",
    "tests/unit/test_compiled.py",
]


def test_the_pure_python_build_passes_the_per_query_unit_tests(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    skip = shutil.ignore_patterns("*.so", "__pycache__", "compiled_sources.txt")
    for part in ("resolver", "feeds", "dashboard", "observatory", "tests"):
        shutil.copytree(REPO / part, tree / part, ignore=skip)
    shutil.copy(REPO / "pyproject.toml", tree / "pyproject.toml")
    (tree / "bench").symlink_to(REPO / "bench")  # the corpora some tests replay
    env = {**os.environ, "PARAFOUDRE_COMPILE": "0", "PYTHONPATH": str(tree)}

    def run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    proc = run("-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *SUITES, timeout=170)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    probe = run("-c", "from resolver import compiled; print(compiled.status())", timeout=30)
    assert probe.stdout.startswith("pure Python"), probe.stdout + probe.stderr  # the pure code
