"""The per-query modules run compiled (setup.py, mypyc), and never a stale copy of them."""

from __future__ import annotations

import os
from pathlib import Path

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
        return
    pure = [m.name for m in compiled.modules() if m.compiled is None]
    assert not pure, (
        f"not compiled: {', '.join(pure)}; install gcc and python3-dev and run ./scripts/test "
        "again, or set PARAFOUDRE_COMPILE=0 to test the pure Python build"
    )
    assert compiled.status() == "compiled with mypyc"
