"""Which per-query modules run compiled (mypyc, see setup.py), and whether any is stale.

A module compiled in a source tree (``pip install -e .``) keeps running its compiled copy after
its ``.py`` is edited, until the next install: ``stale`` finds those, so the tests and
``parafoudre serve`` can say so instead of running yesterday's code.
"""

from __future__ import annotations

import hashlib
import importlib.util
from importlib import resources
from pathlib import Path
from typing import NamedTuple


class Module(NamedTuple):
    name: str  # dotted, e.g. resolver.core.fastpath
    source: Path | None  # the .py beside it, when there is one
    compiled: Path | None  # the extension module that runs instead, when there is one


def listed() -> list[str]:
    """The dotted names of the modules setup.py compiles."""
    text = resources.files("resolver").joinpath("compiled_modules.txt").read_text("utf-8")
    names = []
    for line in text.splitlines():
        path = line.split("#", 1)[0].strip()
        if path:
            names.append(path.removesuffix(".py").replace("/", "."))
    return names


def modules() -> list[Module]:
    out = []
    for name in listed():
        spec = importlib.util.find_spec(name)
        origin = Path(spec.origin) if spec is not None and spec.origin else None
        if origin is not None and origin.suffix != ".py":
            source = origin.parent / (name.rsplit(".", 1)[1] + ".py")
            out.append(Module(name, source if source.exists() else None, origin))
        else:
            out.append(Module(name, origin, None))
    return out


def status() -> str:
    """One line for ``--version`` and the start-up log."""
    mods = modules()
    done = sum(1 for m in mods if m.compiled is not None)
    if done == len(mods):
        return "compiled with mypyc"
    if done == 0:
        return "pure Python (not compiled: slower first answers)"
    return f"partly compiled ({done} of {len(mods)} modules)"


def _as_compiled() -> dict[str, str]:
    """Dotted module name -> SHA-256 of its source when it was compiled (setup.py writes it)."""
    try:
        text = resources.files("resolver").joinpath("compiled_sources.txt").read_text("utf-8")
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        digest, _, path = line.partition("  ")
        if path:
            out[path.removesuffix(".py").replace("/", ".")] = digest
    return out


def stale() -> list[Module]:
    """Compiled modules whose source changed after they were built (a source tree's): by
    content where the build recorded it (a checkout touching a file is no change), else by
    modification time."""
    recorded = _as_compiled()
    out = []
    for m in modules():
        if m.compiled is None or m.source is None:
            continue
        digest = recorded.get(m.name)
        if digest is not None:
            changed = hashlib.sha256(m.source.read_bytes()).hexdigest() != digest
        else:
            changed = m.source.stat().st_mtime > m.compiled.stat().st_mtime
        if changed:
            out.append(m)
    return out
