"""Build: the per-query modules are compiled to C with mypyc where a C compiler is at hand.

Everything else about the distribution is in pyproject.toml. The modules listed in
``resolver/compiled_modules.txt`` are the path every query takes (parsing, the policy chain,
the cache, the leak detector, the upstream exchange): compiled, a miss costs 40 % less server
CPU and a first-seen blocked name 25 % less (bench/README.md, "Compiled with mypyc"). The code
is the same typed Python either way: without mypyc, a compiler or Python's headers, or with
``PARAFOUDRE_COMPILE=0``, the package is built pure Python and works the same, slower.
``parafoudre --version`` says which one runs.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
LIST = HERE / "resolver" / "compiled_modules.txt"
SOURCES = HERE / "resolver" / "compiled_sources.txt"  # read by resolver/compiled.py


def compiled_modules() -> list[str]:
    """The source files to compile, one per line in the list (comments after #)."""
    paths = []
    for line in LIST.read_text(encoding="utf-8").splitlines():
        path = line.split("#", 1)[0].strip()
        if path:
            paths.append(path)
    return paths


def record_sources(paths: list[str]) -> None:
    """The sources as compiled (their SHA-256), for resolver/compiled.py to tell an edited
    module from one a checkout merely touched."""
    lines = [f"{hashlib.sha256((HERE / p).read_bytes()).hexdigest()}  {p}\n" for p in paths]
    SOURCES.write_text("".join(lines), encoding="utf-8")


def forget_earlier_builds() -> None:
    """An earlier build's extensions in build/ would be packaged when this build cannot compile
    (build_ext keeps what it finds up to date): older code beside newer sources."""
    for old in HERE.glob("build/lib*/**/*.so"):
        old.unlink()


def extensions() -> list[Any]:
    forget_earlier_builds()
    if os.environ.get("PARAFOUDRE_COMPILE", "1") == "0":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("parafoudre: mypyc not found, building pure Python (slower)", file=sys.stderr)
        return []
    # Errors outside the compiled modules are mypy's job in the test command, not the build's;
    # a build environment may lack the dependencies' stubs.
    options = ["--follow-imports=silent", "--ignore-missing-imports"]
    paths = compiled_modules()
    try:
        exts = mypycify(options + paths, opt_level="3", group_name="parafoudre")
    except (Exception, SystemExit) as exc:  # a type error, or mypyc's own bug: still install
        print(f"parafoudre: mypyc failed ({exc!r}), building pure Python", file=sys.stderr)
        return []
    record_sources(paths)
    for ext in exts:
        # No compiler or no Python.h: build_ext skips the module with a warning, and the pure
        # Python source (shipped beside it) is what runs.
        ext.optional = True
    return list(exts)


class BuildExt(build_ext):
    """In a source tree (``pip install -e .``), a compile that fails leaves no compiled module
    behind: the edited sources run, never an earlier build of them beside a record saying it
    is current."""

    def run(self) -> None:
        start = time.time()
        super().run()
        if not self.inplace or not self.extensions:
            return
        outputs = [Path(self.get_ext_fullpath(e.name)) for e in self.extensions]
        if all(p.exists() and p.stat().st_mtime >= start - 1 for p in outputs):
            return
        print("parafoudre: not every module compiled, running pure Python", file=sys.stderr)
        for p in outputs:
            p.unlink(missing_ok=True)
        SOURCES.unlink(missing_ok=True)


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
