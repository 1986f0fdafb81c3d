"""The per-query modules run compiled (setup.py, mypyc), and never a stale copy of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from resolver import compiled

ROOT = Path(__file__).resolve().parents[2]


def test_every_listed_module_is_a_source_file_of_the_package() -> None:
    names = compiled.listed()
    assert names, "resolver/compiled_modules.txt lists nothing"
    for name in names:
        assert (ROOT / (name.replace(".", "/") + ".py")).is_file(), name


def test_the_tests_run_the_code_users_run_compiled() -> None:
    # The install compiles when it can (gcc, Python's headers, mypy in the build): the tests
    # must then see the compiled modules, or the speed users get goes untested.
    if os.environ.get("PARAFOUDRE_COMPILE") == "0":
        pytest.skip("PARAFOUDRE_COMPILE=0: this run tests the pure Python build on purpose")
    pure = [m.name for m in compiled.modules() if m.compiled is None]
    assert not pure, (
        f"not compiled: {', '.join(pure)}; install gcc and python3-dev and run ./scripts/test "
        "again, or set PARAFOUDRE_COMPILE=0 to test the pure Python build"
    )
    assert compiled.status() == "compiled with mypyc"


def test_a_touched_but_unchanged_source_is_not_stale() -> None:
    # A checkout or a branch switch rewrites files without changing them: the compiled copy
    # is still the code, and neither the tests nor serve should complain.
    built = [m for m in compiled.modules() if m.compiled is not None and m.source is not None]
    if not built:
        pytest.skip("the pure Python build: no compiled module that could be stale")
    source = built[0].source
    assert source is not None
    before = source.stat()
    try:
        os.utime(source, (before.st_atime + 3600, before.st_mtime + 3600))
        assert compiled.stale() == []
    finally:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
