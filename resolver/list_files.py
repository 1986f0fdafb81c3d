"""The operator's own list files: one domain per line, '#' comments. Lines are hostile input."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from resolver.core.blocklist import EXACT, SUBTREE, Match
from resolver.errors import ParafoudreError

log = logging.getLogger(__name__)

_MAX_LINE = 1024


class ListFileError(ParafoudreError):
    """A list file that cannot be opened or read; ``reason`` says why in a few words."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"list file {path} cannot be read ({reason})")
        self.path = path
        self.reason = reason


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def normalise(raw: str) -> str | None:
    """Lower-case A-label text without trailing dot, or None when not a usable domain name."""
    name = raw.strip().lower().rstrip(".")
    if name.startswith("*."):
        name = name[2:]
    if not name or len(name) > 253:
        return None
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return None
        if len(name) > 253:  # the limit holds for the encoded name, the one on the wire
            return None
    if _is_ip(name) or not set(name) <= _ALLOWED:
        return None
    labels = name.split(".")
    if any(not 0 < len(label) <= 63 for label in labels):
        return None
    return name


def read_names(path: Path) -> Iterator[str]:
    """Yield the valid names of a list file; count and report the rest once.

    Raises ListFileError when the file cannot be opened or read (missing, a directory, no
    permission, an I/O error): the caller decides what stands in for it (empty at start, the
    last good copy on a reload; resolver/blocklist_holder.py).
    """
    try:
        fh = path.open("r", encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ListFileError(path, exc.strerror or type(exc).__name__) from None
    try:
        with fh:
            yield from _names(fh, path)
    except OSError as exc:  # read() failed half-way: no half list either
        raise ListFileError(path, exc.strerror or type(exc).__name__) from None


def _names(lines: Iterable[str], path: Path) -> Iterator[str]:
    rejected = 0
    for line in lines:
        line = line[:_MAX_LINE].split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        # Accept hosts-file lines too ("0.0.0.0 name [name...]"), the format people paste
        # most; an address is never itself a name to block.
        tokens = fields[1:] if _is_ip(fields[0]) else fields[:1]
        if not tokens:
            rejected += 1
        for token in tokens:
            name = normalise(token)
            if name is None or "." not in name:
                rejected += 1
                continue
            yield name
    if rejected:
        log.warning("%s: %d lines are not domain names and were skipped", path, rejected)


def load_list(path: Path, source: str, category: str, match: str) -> list[tuple[str, int, Match]]:
    scope = SUBTREE if match == "subtree" else EXACT
    m = Match("", source, category)
    return [(name, scope, Match(name, m.source, m.category)) for name in read_names(path)]
