"""The import rules of ARCHITECTURE.md §2.7 and §3, as tests; and every example config loads.

Every ``import`` and ``from ... import`` of every module is read from its syntax tree, including
imports inside functions (a lazy import is still a dependency), with relative imports resolved
and ``from package import module`` counted as importing the module. The rules:

- **The core does no I/O** (h11's sans-I/O core): ``resolver/core``, ``resolver/stages`` and the
  detector's helpers ``resolver/exfil`` import no network, database, thread, process, logging or
  clock module (``NO_IO``), and of third-party code only ``CORE_THIRD_PARTY``. Time enters as
  an argument (``now``); the shell logs.
- **The core imports no stage and no transport**: ``resolver/core`` imports only
  ``resolver.core`` and ``resolver.errors``. A stage may also import its config section
  (``resolver.config``, stdlib-only values), another stage, and ``resolver.exfil``; never the
  transport (``resolver.net``), the writer, the app.
- **The config is leaves only**: ``resolver/config`` imports the stdlib, ``resolver.checks``,
  ``resolver.errors`` and itself; PyYAML only in ``loader.py``. Loading the config must not load
  the resolver, the page or the feeds (also checked at run time below).
- **The page never reads the resolver's memory**: ``dashboard`` imports of ``resolver`` only
  ``DASHBOARD_MAY_USE``: its config section (``resolver.config``), the block log's file format
  (``resolver.blocklog.schema``, opened read-only), the counters interface (``resolver.stats``:
  frozen snapshots and rows handed over by the server, no live object), the error base
  (``resolver.errors``), ``resolver`` itself (``__version__``) and the name redaction
  (``resolver.exfil.redact``, a pure function: the page must redact exactly as the logs do).
  Never the feeds or the observatory.
- **Feeds run without the server**: ``feeds`` imports of ``resolver`` only ``FEEDS_MAY_USE``:
  ``resolver.core`` (name normalisation, the list's match masks), ``resolver.blocklist_file``
  (the artifact it writes), ``resolver.config``, ``resolver.errors`` and ``resolver`` itself
  (``__version__`` in the User-Agent). Never the page or the observatory.
- **The observatory is its own server**: it imports no resolver transport, stage, app, CLI or
  supervisor (it may share the page's code and the config's value checks).
- **Only the composition root imports everything**: inside ``resolver``, only ``cli.py``,
  ``app.py`` and the page's adapter ``feeds_status.py`` import ``dashboard``, ``feeds`` or
  ``observatory``.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from observatory.config import ObservatoryServerConfig
from resolver.config import Config
from resolver.config.loader import load_file, load_text

REPO = Path(__file__).resolve().parents[1]
STDLIB = frozenset(sys.stdlib_module_names)

NO_IO = frozenset(
    {
        "asyncio", "socket", "ssl", "select", "selectors", "sqlite3", "threading",
        "multiprocessing", "concurrent", "subprocess", "http", "urllib", "time", "datetime",
        "logging", "aiohttp", "asyncpg", "uvloop",
    }
)  # fmt: skip
CORE_THIRD_PARTY = frozenset({"dnslib", "marisa_trie", "publicsuffixlist", "idna"})
CORE_MAY_USE = ("resolver.core", "resolver.errors")
STAGES_MAY_USE = (
    *CORE_MAY_USE,
    "resolver.stages",
    "resolver.config",
    "resolver.exfil",
    "resolver.dga",
)
CONFIG_MAY_USE = ("resolver.config", "resolver.checks", "resolver.errors")
DASHBOARD_MAY_USE = (
    "resolver.config",
    "resolver.blocklog.schema",
    "resolver.stats",
    "resolver.errors",
    "resolver.exfil.redact",
)
FEEDS_MAY_USE = ("resolver.core", "resolver.blocklist_file", "resolver.config", "resolver.errors")
OBSERVATORY_MUST_NOT_USE = (
    "resolver.net",
    "resolver.stages",
    "resolver.app",
    "resolver.cli",
    "resolver.supervisor",
)
COMPOSITION_ROOT = ("resolver/cli.py", "resolver/app.py", "resolver/feeds_status.py")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    base = REPO.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


@cache
def imports_of(path: Path) -> tuple[tuple[str, int], ...]:
    """(module, line) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            found.append((base, node.lineno))
            found += [
                (f"{base}.{alias.name}", node.lineno)
                for alias in node.names
                if _is_module(f"{base}.{alias.name}")
            ]
    return tuple(found)


def files(*dirs: str) -> Iterator[Path]:
    for d in dirs:
        yield from sorted((REPO / d).rglob("*.py"))


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _where(path: Path, line: int, module: str) -> str:
    return f"{path.relative_to(REPO)}:{line}: {module}"


def _is_package_root(module: str) -> bool:
    """``from resolver import x`` names the package itself; x is counted on its own."""
    return module == "resolver"


# --- the core does no I/O, and imports no stage nor transport -------------------------------------


def test_core_and_stages_import_no_io_module() -> None:
    bad = [
        _where(path, line, module)
        for path in files("resolver/core", "resolver/stages", "resolver/exfil")
        for module, line in imports_of(path)
        if module.split(".")[0] in NO_IO
        or (
            module.split(".")[0] not in STDLIB
            and module.split(".")[0] not in CORE_THIRD_PARTY
            and module.split(".")[0] != "resolver"
        )
    ]
    assert bad == [], "the core does no I/O (ARCHITECTURE.md §3.1)"


def test_core_imports_no_stage_and_no_transport() -> None:
    bad = [
        _where(path, line, module)
        for path in files("resolver/core")
        for module, line in imports_of(path)
        if module.startswith("resolver")
        and not _is_package_root(module)
        and not _under(module, CORE_MAY_USE)
    ]
    assert bad == [], "the pipeline runs a generic chain: it imports no stage (§2.7, issue 13)"


def test_stages_import_no_transport_nor_shell() -> None:
    bad = [
        _where(path, line, module)
        for path in files("resolver/stages")
        for module, line in imports_of(path)
        if module.startswith("resolver")
        and not _is_package_root(module)
        and not _under(module, STAGES_MAY_USE)
    ]
    assert bad == []


# --- the config is leaves only --------------------------------------------------------------------


def test_config_imports_only_the_stdlib_and_itself() -> None:
    bad = []
    for path in files("resolver/config"):
        for module, line in imports_of(path):
            top = module.split(".")[0]
            if top == "yaml" and path.name == "loader.py":
                continue
            if top in STDLIB or _under(module, CONFIG_MAY_USE):
                continue
            bad.append(_where(path, line, module))
    assert bad == [], "config sections use the stdlib and resolver.checks only (§2.7)"


@pytest.mark.parametrize("module", ["resolver.config", "resolver.config.schema"])
def test_loading_the_config_loads_neither_the_resolver_nor_the_page_nor_the_feeds(
    module: str,
) -> None:
    code = (
        f"import sys, {module}\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    forbidden = ("dashboard", "feeds", "observatory", "aiohttp", "asyncio", "dnslib")
    loaded = [m for m in out if m.split(".")[0] in forbidden]
    resolver_parts = [
        m
        for m in out
        if m.startswith("resolver.")
        and not _under(m, ("resolver.config", "resolver.checks", "resolver.errors"))
    ]
    assert loaded == [] and resolver_parts == []


# --- the page, the feeds and the observatory ------------------------------------------------------


def test_dashboard_never_imports_the_resolver_memory() -> None:
    bad = [
        _where(path, line, module)
        for path in files("dashboard")
        for module, line in imports_of(path)
        if (
            module.startswith("resolver")
            and not _is_package_root(module)
            and not _under(module, DASHBOARD_MAY_USE)
        )
        or module.split(".")[0] in ("feeds", "observatory")
    ]
    assert bad == [], "the page reads files and snapshots, never the server's objects (§2.5)"


def test_feeds_run_without_the_server() -> None:
    bad = [
        _where(path, line, module)
        for path in files("feeds")
        for module, line in imports_of(path)
        if (
            module.startswith("resolver")
            and not _is_package_root(module)
            and not _under(module, FEEDS_MAY_USE)
        )
        or module.split(".")[0] in ("dashboard", "observatory")
    ]
    assert bad == [], "feeds may use resolver.core, resolver.blocklist_file, resolver.config"


def test_observatory_imports_no_resolver_transport_stage_or_app() -> None:
    bad = [
        _where(path, line, module)
        for path in files("observatory")
        for module, line in imports_of(path)
        if _under(module, OBSERVATORY_MUST_NOT_USE)
    ]
    assert bad == []


def test_only_the_composition_root_imports_the_page_the_feeds_or_the_observatory() -> None:
    bad = [
        _where(path, line, module)
        for path in files("resolver")
        if str(path.relative_to(REPO)) not in COMPOSITION_ROOT
        for module, line in imports_of(path)
        if module.split(".")[0] in ("dashboard", "feeds", "observatory")
    ]
    assert bad == [], "only resolver/cli.py and resolver/app.py import everything (§2.7)"


def test_the_scanner_sees_lazy_relative_and_submodule_imports() -> None:
    """The rules above are only as good as the scan: it must see what Python would import."""
    path = REPO / "resolver" / "config" / "schema.py"
    found = {m for m, _ in imports_of(path)}
    assert "resolver.config.acl" in found and "dataclasses" in found
    cli = {m for m, _ in imports_of(REPO / "resolver" / "cli.py")}
    assert "observatory.server" in cli  # imported inside a function
    assert "resolver.config" in cli  # `from resolver import config`


# --- every example config loads -------------------------------------------------------------------

EXAMPLES = sorted((REPO / "deploy").glob("*.yaml"))

# Markdown whose YAML blocks are tested elsewhere, or are not the box's config.
DOCS_TESTED_ELSEWHERE = {
    "deploy/CONDITIONAL-FORWARDING.md": "tests/integration/test_conditional_forwarding_recipes.py",
    "observatory/README.md": "tests/unit/test_observatory_store.py (the observatory's config)",
    "deploy/DOCKER.md": "a docker compose file, not a config",
}


def _doc_blocks() -> list[tuple[str, int, str]]:
    blocks = []
    for doc in sorted(REPO.glob("*.md")) + sorted(REPO.glob("*/**/*.md")):
        rel = str(doc.relative_to(REPO))
        if rel.startswith((".venv/", "tests/", "bench/")) or rel in DOCS_TESTED_ELSEWHERE:
            continue
        text = doc.read_text(encoding="utf-8")
        for m in re.finditer(r"```yaml\n(.*?)```", text, re.S):
            blocks.append((rel, text.count("\n", 0, m.start()) + 2, m.group(1)))
    return blocks


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_config_loads(path: Path) -> None:
    # deploy/observatory*.yaml configure the départemental observatory, the others the box.
    cls: type[Any] = ObservatoryServerConfig if path.name.startswith("observatory") else Config
    cfg = load_file(path, cls)
    assert cfg != cls(), "an example that changes nothing teaches nothing"


def test_the_box_example_config_is_among_them() -> None:
    assert "parafoudre.example.yaml" in [p.name for p in EXAMPLES]


@pytest.mark.parametrize(
    ("where", "block"), [pytest.param(f"{d}:{n}", b, id=f"{d}:{n}") for d, n, b in _doc_blocks()]
)
def test_config_snippet_in_the_docs_loads(where: str, block: str) -> None:
    cfg = load_text(textwrap.dedent(block), Config, where)
    assert cfg != Config()
