"""Builds the blocklist and allowlist from their files and swaps them in whole, off the loop.

Stages read ``holder.current`` once per query; a reload builds a new list in a thread and
replaces that one reference on the loop thread, so no query ever sees a half-built list. A list
that fails to load is logged and the previous one stays.

Fail closed: an operator list file that cannot be read on a reload (removed, renamed, no
permission) keeps its last good copy, as the feeds do, instead of being read as empty; it is
reported stale (one log line per failure episode, ``stale()`` for the page) until a reload reads
it again. At the very first start there is no copy to keep: the file then counts as empty.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from resolver import blocklist_file
from resolver.config.schema import Config
from resolver.core.blocklist import EMPTY, SUBTREE, Blocklist, ListHolder, Match, MemoryBlocklist
from resolver.list_files import ListFileError, load_list
from resolver.operator_allowlist import SOURCE, operator_path
from resolver.stats import StaleList

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

    @property
    def ranges(self) -> int:
        return sum(getattr(x, "ranges", 0) for x in self.lists)

    def match_ip(self, packed: bytes) -> Match | None:
        """The feeds' address ranges (resolver/stages/answer_ip.py); operator lists have none."""
        for lst in self.lists:
            match_ip = getattr(lst, "match_ip", None)
            m = match_ip(packed) if match_ip is not None else None
            if m is not None:
                return m  # type: ignore[no-any-return]
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


Entries = tuple[tuple[str, int, Match], ...]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ListFile:
    """One operator list file as the config names it."""

    kind: str  # "blocklist" or "allowlist"
    name: str
    path: Path
    source: str  # the Match.source of its entries
    category: str
    match: str  # "subtree" or "exact"
    # The box's own file (the operator's allowlist): absent until a first name is allowed, and
    # absent means empty, never a stale copy.
    optional: bool = False


@dataclass(frozen=True, slots=True)
class FileCopy(Generic[T]):
    """The copy of one list file in use, and whether the file could be read last time."""

    value: T
    size: int  # names in ``value``
    loaded_at: float  # unix time of the read that gave ``value``; 0.0: never read
    error: str = ""  # why the last read failed; "": ``value`` is the file as it was read last


def operator_files(cfg: Config) -> tuple[list[ListFile], list[ListFile]]:
    """The operator's block list files and allowlist files, in config order."""
    block = []
    for lf in cfg.blocking.lists:
        p = Path(lf.path).expanduser()
        name = lf.name or p.name
        block.append(ListFile("blocklist", name, p, f"list:{name}", lf.category, lf.match))
    allow = [
        ListFile("allowlist", f, Path(f).expanduser(), f"allowlist:{f}", "", "subtree")
        for f in cfg.allowlist.files
    ]
    path = operator_path(cfg)
    allow.append(ListFile("allowlist", "operator", path, SOURCE, "", "subtree", optional=True))
    return block, allow


def _entries(f: ListFile) -> Entries:
    return tuple(load_list(f.path, f.source, f.category, f.match))


def read_files(
    files: Sequence[ListFile],
    previous: Mapping[ListFile, FileCopy[T]],
    build: Callable[[Entries], T],
    now: float,
) -> dict[ListFile, FileCopy[T]]:
    """Read each file; one that cannot be read keeps its previous copy (empty if none)."""
    out: dict[ListFile, FileCopy[T]] = {}
    for f in files:
        if f.optional and not f.path.exists():
            out[f] = FileCopy(build(()), 0, now)
            continue
        try:
            entries = _entries(f)
        except ListFileError as exc:
            prev = previous.get(f)
            if prev is None:
                out[f] = FileCopy(build(()), 0, 0.0, exc.reason)
            else:
                out[f] = FileCopy(prev.value, prev.size, prev.loaded_at, exc.reason)
            continue
        out[f] = FileCopy(build(entries), len(entries), now)
    return out


def _same(entries: Entries) -> Entries:
    return entries


def build_blocklist(lists: Sequence[Blocklist], compiled: Blocklist | None) -> Blocklist:
    """The operator's lists in config order, then the feeds' compiled list: one lookup."""
    chain = [*lists, *([compiled] if compiled is not None else [])]
    if not chain:
        return EMPTY
    return chain[0] if len(chain) == 1 else ChainedBlocklist(chain)


def build_allowlist(cfg: Config, files: Sequence[Entries]) -> Blocklist:
    """One table for the config's names and every allowlist file: one lookup per query."""
    entries = [(n, SUBTREE, Match(n, "allowlist", "")) for n in cfg.allowlist.names]
    for file_entries in files:
        entries.extend(file_entries)
    return MemoryBlocklist(entries)


def _report(f: ListFile, old: FileCopy[T] | None, new: FileCopy[T]) -> None:
    """One log line when a file starts or stops failing (an episode), none while it goes on."""
    if new.error and (old is None or not old.error):
        if old is None:
            log.error(
                "%s file %s cannot be read (%s): starting without it (no names) until it can "
                "be read and the lists are reloaded",
                f.kind,
                f.path,
                new.error,
            )
        else:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(new.loaded_at))
            log.error(
                "%s file %s cannot be read (%s): keeping its last good copy (%d names, read "
                "%s); it is stale until it can be read and the lists are reloaded",
                f.kind,
                f.path,
                new.error,
                new.size,
                when,
            )
    elif old is not None and old.error and not new.error:
        log.info("%s file %s can be read again: %d names", f.kind, f.path, new.size)


class ListsHolder:
    """Owns the blocklist and allowlist references and their reloads."""

    def __init__(self, cfg: Config, on_swap: Callable[[], None]) -> None:
        self.cfg = cfg
        self.blocklist = ListHolder()
        self.allowlist = ListHolder()
        self.on_swap = on_swap  # invalidates the answer cache
        self.compiled_path = cfg.compiled_path()
        self._stamp: tuple[int, int, int] | None = None
        self.operator_path = operator_path(cfg)
        self._operator_stamp: tuple[int, int, int] | None = None
        self._compiled: Blocklist | None = None
        self._block_files, self._allow_files = operator_files(cfg)
        # The copy in use of each operator file (swapped whole, on the loop thread).
        self._blocks: dict[ListFile, FileCopy[MemoryBlocklist]] = {}
        self._allows: dict[ListFile, FileCopy[Entries]] = {}
        self._lock = asyncio.Lock()
        self.reloads = 0
        self.failures = 0

    def load_now(self) -> None:
        """First load, before serving: a file that cannot be read counts as empty (logged)."""
        stamp = _file_stamp(self.compiled_path)
        try:
            self._compiled = load_compiled(self.compiled_path)
        except Exception as exc:
            # A bad artifact must not keep the box from answering: serve the operator's lists.
            log.error("compiled blocklist %s refused: %s", self.compiled_path, exc)
            self._compiled = None
        self._stamp = stamp
        self._operator_stamp = _file_stamp(self.operator_path)
        now = time.time()
        blocks = read_files(self._block_files, {}, MemoryBlocklist, now)
        allows = read_files(self._allow_files, {}, _same, now)
        self._swap(blocks, allows, self._compiled)

    def _swap(
        self,
        blocks: dict[ListFile, FileCopy[MemoryBlocklist]],
        allows: dict[ListFile, FileCopy[Entries]] | None,
        compiled: Blocklist | None,
    ) -> Blocklist:
        """Install what a load read (on the loop thread); log the files that start or stop
        failing."""
        for f, copy in blocks.items():
            _report(f, self._blocks.get(f), copy)
        self._blocks = blocks
        self.blocklist.current = blocklist = build_blocklist(
            [blocks[f].value for f in self._block_files], compiled
        )
        if allows is not None:
            for f, entries in allows.items():
                _report(f, self._allows.get(f), entries)
            self._allows = allows
            self.allowlist.current = build_allowlist(
                self.cfg, [allows[f].value for f in self._allow_files]
            )
        return blocklist

    def stale(self) -> tuple[StaleList, ...]:
        """The operator files whose copy in use is not the file as it is (cannot be read)."""
        copies: list[tuple[ListFile, FileCopy[MemoryBlocklist] | FileCopy[Entries]]] = [
            *self._blocks.items(),
            *self._allows.items(),
        ]
        return tuple(
            StaleList(f.kind, f.name, str(f.path), c.size, c.loaded_at, c.error)
            for f, c in copies
            if c.error
        )

    def _read(
        self, compiled: Blocklist | None, changed: bool, everything: bool
    ) -> tuple[
        Blocklist | None,
        dict[ListFile, FileCopy[MemoryBlocklist]],
        dict[ListFile, FileCopy[Entries]] | None,
    ]:
        """In a thread (the lock held): the compiled list if it changed, and the operator files."""
        if changed:
            compiled = load_compiled(self.compiled_path)
        now = time.time()
        blocks = read_files(self._block_files, self._blocks, MemoryBlocklist, now)
        allows = read_files(self._allow_files, self._allows, _same, now) if everything else None
        return compiled, blocks, allows

    async def reload(self, *, everything: bool) -> bool:
        """Reload the compiled list (and, if ``everything``, the operator's files)."""
        started = time.perf_counter()  # the log line says how long until the swap
        async with self._lock:
            stamp = _file_stamp(self.compiled_path)
            if everything:
                self._operator_stamp = _file_stamp(self.operator_path)
            try:
                compiled, blocks, allows = await asyncio.to_thread(
                    self._read, self._compiled, stamp != self._stamp, everything
                )
            except Exception as exc:
                self.failures += 1
                log.error("reload failed, keeping the current lists: %s", exc)
                self._stamp = stamp  # do not retry the same bad file every poll
                return False
            self._stamp = stamp
            self._compiled = compiled
            blocklist = self._swap(blocks, allows, compiled)
            self.on_swap()
            took_ms = (time.perf_counter() - started) * 1000
            self.reloads += 1
            log.info("lists reloaded in %.1f ms: %d blocklist entries", took_ms, len(blocklist))
            return True

    async def watch(self, interval: float = 2.0, operator_interval: float = 0.25) -> None:
        """Poll the compiled artifact and the operator's allowlist; both are replaced with
        os.replace (a new inode). The operator's file is polled often, so a name allowed from
        the page is in force in every worker within a second (a stat() each time, no read)."""
        ticks = max(1, round(interval / operator_interval))
        tick = 0
        while True:
            await asyncio.sleep(operator_interval)
            tick += 1
            if _file_stamp(self.operator_path) != self._operator_stamp:
                await self.reload(everything=True)
            elif tick % ticks == 0 and _file_stamp(self.compiled_path) != self._stamp:
                await self.reload(everything=False)
