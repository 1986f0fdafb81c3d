"""The blocklist contract the policy stages read, and a small in-memory implementation.

Names given to ``match`` are lower-case, without the trailing dot, in A-label (punycode) form:
exactly the text of ``Query.qname``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

# Match scopes (FORMATS.md): EXACT blocks the name only, SUBTREE the name and every name under it,
# WILDCARD names strictly under it (RPZ "*.x" without "x").
EXACT = 1
SUBTREE = 2
WILDCARD = 3


class Match(NamedTuple):
    """Why a name is on the list: the entry that matched, who listed it, and what it is.

    A NamedTuple: one is built per listed name answered, and a frozen dataclass costs twice as
    much to build."""

    entry: str
    source: str  # "feed:urlhaus" or "feed:urlhaus,feed:threatfox": goes to the block log as is
    category: str  # "malware", "phishing", "c2", ...


class Blocklist(Protocol):
    """What the blocklist and allowlist stages need: a lookup and a size."""

    def match(self, name: str) -> Match | None: ...

    def __len__(self) -> int: ...


def parents(name: str) -> Iterator[str]:
    """Yield ``name`` then each parent: a.b.c, b.c, c."""
    yield name
    i = name.find(".")
    while i >= 0:
        name = name[i + 1 :]
        yield name
        i = name.find(".")


@dataclass(frozen=True, slots=True)
class _Entry:
    scope: int
    match: Match


class MemoryBlocklist:
    """A dict-backed blocklist: fine for operator lists and tests, not for millions of names."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Iterable[tuple[str, int, Match]] = ()) -> None:
        table: dict[str, list[_Entry]] = {}
        for name, scope, m in entries:
            table.setdefault(name, []).append(_Entry(scope, m))
        self._entries: dict[str, tuple[_Entry, ...]] = {k: tuple(v) for k, v in table.items()}

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, name: str) -> Match | None:
        entries = self._entries
        if not entries:
            return None
        first = True
        for candidate in parents(name):
            found = entries.get(candidate)
            if found is not None:
                for e in found:
                    if e.scope == SUBTREE or (e.scope == EXACT) is first:
                        return e.match
            first = False
        return None


EMPTY = MemoryBlocklist()


class ListHolder:
    """One reference to the current list; the shell replaces it whole, stages read it once."""

    __slots__ = ("current",)

    def __init__(self, current: Blocklist = EMPTY) -> None:
        self.current: Blocklist = current
