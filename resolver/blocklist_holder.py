"""Builds the blocklist and allowlist from their files and swaps them in whole, off the loop.

Stages read ``holder.current`` once per query; a reload builds a new list in a thread and
replaces that one reference on the loop thread, so no query ever sees a half-built list. A list
that fails to load is logged and the previous one stays.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from resolver import blocklist_file
from resolver.config.schema import Config
from resolver.core.blocklist import EMPTY, SUBTREE, Blocklist, ListHolder, Match, MemoryBlocklist
from resolver.list_files import load_list, read_names

log = logging.getLogger(__name__)


class ChainedBlocklist:
    """Several lists read as one: the first match wins."""

    __slots__ = ("lists",)

    def __init__(self, lists: Sequence[Blocklist]) -> None:
        self.lists = tuple(lists)

    def __len__(self) -> int:
        return sum(len(x) for x in self.lists)

    def match(self, name: str) -> Match | None:
        for lst in self.lists:
            m = lst.match(name)
            if m is not None:
                return m
        return None


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def load_compiled(path: Path) -> Blocklist | None:
    """The feeds artifact, or None when there is none yet. Raises on a bad artifact."""
    if not path.exists():
        return None
    return blocklist_file.read(path)  # written by `parafoudre feeds update`


def build_blocklist(cfg: Config, compiled: Blocklist | None) -> Blocklist:
    lists: list[Blocklist] = []
    for lf in cfg.blocking.lists:
        p = Path(lf.path).expanduser()
        name = lf.name or p.name
        lists.append(MemoryBlocklist(load_list(p, f"list:{name}", lf.category, lf.match)))
    if compiled is not None:
        lists.append(compiled)
    if not lists:
        return EMPTY
    return lists[0] if len(lists) == 1 else ChainedBlocklist(lists)


def build_allowlist(cfg: Config) -> Blocklist:
    entries = [(n, SUBTREE, Match(n, "allowlist", "")) for n in cfg.allowlist.names]
    for f in cfg.allowlist.files:
        for n in read_names(Path(f).expanduser()):
            entries.append((n, SUBTREE, Match(n, f"allowlist:{f}", "")))
    return MemoryBlocklist(entries)


class ListsHolder:
    """Owns the blocklist and allowlist references and their reloads."""

    def __init__(self, cfg: Config, on_swap: Callable[[], None]) -> None:
        self.cfg = cfg
        self.blocklist = ListHolder()
        self.allowlist = ListHolder()
        self.on_swap = on_swap  # invalidates the answer cache
        self.compiled_path = cfg.compiled_path()
        self._stamp: tuple[int, int, int] | None = None
        self._compiled: Blocklist | None = None
        self._lock = asyncio.Lock()
        self.reloads = 0
        self.failures = 0

    def load_now(self) -> None:
        """First load, before serving: a broken operator file is a start-up error."""
        stamp = _file_stamp(self.compiled_path)
        try:
            self._compiled = load_compiled(self.compiled_path)
        except Exception as exc:
            # A bad artifact must not keep the box from answering: serve the operator's lists.
            log.error("compiled blocklist %s refused: %s", self.compiled_path, exc)
            self._compiled = None
        self._stamp = stamp
        self.blocklist.current = build_blocklist(self.cfg, self._compiled)
        self.allowlist.current = build_allowlist(self.cfg)

    async def reload(self, *, everything: bool) -> bool:
        """Reload the compiled list (and, if ``everything``, the operator's files)."""
        started = time.perf_counter()  # the log line says how long until the swap
        async with self._lock:
            stamp = _file_stamp(self.compiled_path)
            compiled = self._compiled
            try:
                if stamp != self._stamp:
                    compiled = await asyncio.to_thread(load_compiled, self.compiled_path)
                blocklist = await asyncio.to_thread(build_blocklist, self.cfg, compiled)
                allowlist = (
                    await asyncio.to_thread(build_allowlist, self.cfg) if everything else None
                )
            except Exception as exc:
                self.failures += 1
                log.error("reload failed, keeping the current lists: %s", exc)
                self._stamp = stamp  # do not retry the same bad file every poll
                return False
            self._stamp = stamp
            self._compiled = compiled
            self.blocklist.current = blocklist
            if allowlist is not None:
                self.allowlist.current = allowlist
            self.on_swap()
            took_ms = (time.perf_counter() - started) * 1000
            self.reloads += 1
            log.info("lists reloaded in %.1f ms: %d blocklist entries", took_ms, len(blocklist))
            return True

    async def watch(self, interval: float = 2.0) -> None:
        """Poll the compiled artifact; the updater replaces it with os.replace (new inode)."""
        while True:
            await asyncio.sleep(interval)
            if _file_stamp(self.compiled_path) != self._stamp:
                await self.reload(everything=False)
