"""The operator's own list files: one domain per line, '#' comments. Lines are hostile input."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from pathlib import Path

from resolver.core.blocklist import EXACT, SUBTREE, Match

log = logging.getLogger(__name__)

_MAX_LINE = 1024


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

    A missing or unreadable file is reported and read as empty: a typo in a list path must not
    take the commune's DNS down.
    """
    rejected = 0
    try:
        fh = path.open("r", encoding="utf-8", errors="replace")
    except OSError as exc:
        log.error("list file %s cannot be read (%s): using it as empty", path, exc.strerror)
        return
    with fh:
        for line in fh:
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
