"""The known-good list: domains whose long machine-made names are legitimate by design.

One name per line, '#' starts a comment; a name covers itself and every name under it. Only
domains whose DNS the operator of the service runs belong here: a tunnel needs an authoritative
server of its own, so it cannot hide under them. Never list a service that delegates sub-zones
to its customers (dynamic-DNS providers such as afraid.org do).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path

DEFAULT_RESOURCE = "exfil-known-good.txt"  # in resolver/stages/data/


def parse(lines: Iterable[str]) -> list[str]:
    """Names of a known-good file: comments and blanks skipped, lower case, no trailing dot."""
    out = []
    for line in lines:
        text = line.split("#", 1)[0].strip().lower().rstrip(".")
        if text.startswith("*."):
            text = text[2:]  # "*.sophosxl.net" means what "sophosxl.net" means here
        if text and " " not in text and "\t" not in text:
            out.append(text)
    return out


class KnownGood:
    """A set of domains; ``covers(name)`` is true for them and every name under them."""

    __slots__ = ("_depth", "_names", "_tails")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._names = frozenset(parse(names))
        # Only suffixes up to the deepest entry need a look: 3 to 4 set lookups per query.
        self._depth = max((n.count(".") + 1 for n in self._names), default=0)
        # Every label suffix of an entry -> whether it is an entry itself. A name's suffix that
        # is no entry's suffix ends the look: no longer suffix can be an entry (most names stop
        # at their second label, "google.com", instead of trying every depth).
        tails: dict[str, bool] = {}
        for name in self._names:
            labels = name.split(".")
            for i in range(1, len(labels)):
                tails.setdefault(".".join(labels[i:]), False)
        tails.update(dict.fromkeys(self._names, True))
        self._tails = tails

    def __len__(self) -> int:
        return len(self._names)

    def covers(self, qname: str) -> bool:
        tails = self._tails
        if not tails:
            return False
        # The suffixes of up to ``_depth`` labels, shortest first, each a slice of ``qname``
        # (no list of labels, no string built per label).
        end = len(qname)
        for _ in range(self._depth):
            end = qname.rfind(".", 0, end)
            entry = tails.get(qname[end + 1 :])
            if entry:
                return True
            if entry is None or end < 0:
                return False  # no entry ends with this suffix: no longer one can be an entry
        return False


def read(path: str = "", extra: Iterable[str] = ()) -> KnownGood:
    """Load the list once at start: ``path`` or, if "", the shipped default; raises OSError."""
    if path:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    else:
        ref = resources.files("resolver.stages").joinpath("data", DEFAULT_RESOURCE)
        text = ref.read_text(encoding="utf-8")
    return KnownGood([*text.splitlines(), *extra])
