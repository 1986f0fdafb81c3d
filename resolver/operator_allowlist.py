"""The operator's allowlist file: names allowed from the page or ``parafoudre allow``.

One file the box owns (``<state_dir>/allowlist.operator.txt`` unless ``allowlist.operator_file``
says otherwise), in the format of every allowlist file (one name per line; each allows the name
and every name under it), so the resolver reads it with the configured ones and an upgrade keeps
it. Each line carries who allowed it and when in its comment. Writes take a lock (the page and
the command line may write at once), go to a temporary file that is fsynced, then renamed over
the old one: a reader sees the old list or the new one, never half of one. Every worker polls the
file (resolver/blocklist_holder.py), so a change is in force within a second, without a restart.

Each change is also recorded in the block log's ``operator_actions`` table (who, when, what).
"""

from __future__ import annotations

import calendar
import contextlib
import fcntl
import logging
import os
import re
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from resolver.blocklog.schema import BlockLogError, open_db
from resolver.config.schema import Config
from resolver.errors import ParafoudreError
from resolver.list_files import normalise

log = logging.getLogger(__name__)

FILE_NAME: Final = "allowlist.operator.txt"
SOURCE: Final = "allowlist:operator"  # the Match.source of its entries
MAX_ENTRIES: Final = 10_000  # a page click at a time: far more than any mairie needs
MAX_WHO: Final = 64
MAX_DETAIL: Final = 200

Scope = Literal["name", "domain"]

_HEADER: Final = (
    "# Parafoudre: names the operator allowed from the weather page or `parafoudre allow`.\n"
    "# Each line allows the name and every name under it. Written by Parafoudre (it keeps the\n"
    "# comments after each name: who allowed it and when); edit with `parafoudre allow`.\n"
)
# "name  # allowed 2026-12-06T16:40:05Z by marie -- feed:urlhaus (malware), 192.168.1.23"
_LINE: Final = re.compile(r"^(\S+)\s*(?:#\s*allowed (\S+) by (\S+)(?:\s+--\s+(.*))?)?$")


class AllowError(ParafoudreError):
    """A name that cannot be allowed (not a domain name, a public suffix, too many entries)."""


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """One line of the operator's allowlist."""

    name: str
    at: float  # unix seconds it was allowed; 0.0 if the line carries no date
    who: str
    detail: str


@dataclass(frozen=True, slots=True)
class OperatorAction:
    """One row of the block log's ``operator_actions``."""

    ts: float
    who: str
    action: str  # "allow", "remove"
    name: str
    detail: str


def operator_path(cfg: Config) -> Path:
    """Where the operator's allowlist lives (``allowlist.operator_file``, or the state dir)."""
    own = cfg.allowlist.operator_file
    return Path(own).expanduser() if own else cfg.state_path() / FILE_NAME


def _clean(text: str, limit: int) -> str:
    """One line of printable text: a comment in the file must not end or start a line."""
    return "".join(c if c.isprintable() else "?" for c in text)[:limit].strip()


def _who(text: str) -> str:
    """A login as one word (the file's comment reads it back up to the first space)."""
    return "_".join(_clean(text, MAX_WHO).split()) or "?"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _timegm(text: str) -> float:
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return 0.0


def parse(text: str) -> list[AllowEntry]:
    """The entries of the file's text; lines that hold no usable name are skipped."""
    out: list[AllowEntry] = []
    seen: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()[:1024]
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        token = m.group(1) if m else line.split()[0]
        name = normalise(token)
        if name is None or "." not in name or name in seen:
            continue
        seen.add(name)
        at = _timegm(m.group(2)) if m and m.group(2) else 0.0
        who = m.group(3) if m and m.group(3) else ""
        detail = m.group(4) if m and m.group(4) else ""
        out.append(AllowEntry(name, at, who, detail.strip()))
    return out


def render(entries: list[AllowEntry]) -> str:
    lines = [_HEADER]
    for e in entries:
        note = f"  # allowed {_iso(e.at)} by {e.who or '?'}"
        lines.append(f"{e.name}{note} -- {e.detail}\n" if e.detail else f"{e.name}{note}\n")
    return "".join(lines)


class OperatorAllowlist:
    """Reads and changes the operator's allowlist file; records each change in the block log."""

    def __init__(
        self,
        path: Path,
        blocklog_path: Path | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.blocklog_path = blocklog_path
        self.clock = clock
        self._psl: object | None = None  # PublicSuffixList, built on first use (~0.1 s)

    # --- reading -------------------------------------------------------------------------------

    def entries(self) -> list[AllowEntry]:
        """The file's entries; none when it does not exist yet."""
        try:
            return parse(self.path.read_text(encoding="utf-8", errors="replace"))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise AllowError(f"cannot read {self.path}: {exc.strerror or exc}") from None

    def actions(self, limit: int = 20) -> list[OperatorAction]:
        """The latest changes, newest first (empty when the block log has none yet)."""
        if self.blocklog_path is None or not self.blocklog_path.exists():
            return []
        try:
            conn = open_db(self.blocklog_path, readonly=True)
        except BlockLogError:
            return []
        try:
            rows = conn.execute(
                "SELECT ts, who, action, name, detail FROM operator_actions"
                " ORDER BY ts DESC, id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        except sqlite3.Error:
            return []
        finally:
            conn.close()
        return [OperatorAction(float(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    def domain_of(self, name: str) -> str | None:
        """The registered domain of ``name`` (Public Suffix List, private section included)."""
        from publicsuffixlist import PublicSuffixList

        if self._psl is None:
            self._psl = PublicSuffixList(only_icann=False)
        assert isinstance(self._psl, PublicSuffixList)
        base = self._psl.privatesuffix(name)
        return str(base) if base else None

    # --- changing ------------------------------------------------------------------------------

    def check(self, raw: str, scope: Scope = "name") -> str:
        """The name that ``allow(raw, scope)`` would write, or AllowError saying why not."""
        name = normalise(raw)
        if name is None or "." not in name:
            raise AllowError(f"{raw[:100]!r} is not a domain name (write it as www.example.com)")
        if scope == "domain":
            base = self.domain_of(name)
            if base is None:
                raise AllowError(f"{name!r} is a public suffix: it has no domain to allow")
            return base
        if self.domain_of(name) is None:
            # Allowing "com" or "github.io" would allow every site under it.
            raise AllowError(f"{name!r} is a public suffix: allow a name under it instead")
        return name

    def allow(self, raw: str, *, who: str, scope: Scope = "name", detail: str = "") -> AllowEntry:
        """Allow ``raw`` (or its registered domain) and every name under it."""
        name = self.check(raw, scope)
        now = self.clock()
        entry = AllowEntry(name, now, _who(who), _clean(detail, MAX_DETAIL))
        with self._locked():
            current = self.entries()
            if any(e.name == name for e in current):
                return next(e for e in current if e.name == name)
            if len(current) >= MAX_ENTRIES:
                raise AllowError(f"the operator allowlist already holds {MAX_ENTRIES} names")
            self._write([*current, entry])
        self._record(now, entry.who, "allow", name, entry.detail)
        return entry

    def remove(self, raw: str, *, who: str) -> bool:
        """Undo an allow; False when the name was not on the operator's allowlist."""
        name = normalise(raw)
        if name is None:
            return False
        with self._locked():
            current = self.entries()
            kept = [e for e in current if e.name != name]
            if len(kept) == len(current):
                return False
            self._write(kept)
        self._record(self.clock(), _who(who), "remove", name, "")
        return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time across processes (the page, the command line). The lock is
        taken on the directory itself: a lock file made by `sudo parafoudre allow` would belong
        to root, and the page (the service's user) could not open it afterwards."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _write(self, entries: list[AllowEntry]) -> None:
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(render(entries))
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)  # the resolver may run as another user than the command line
            if os.geteuid() == 0:  # `sudo parafoudre allow`: the file stays the service's
                st = os.stat(directory)
                os.chown(tmp, st.st_uid, st.st_gid)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with contextlib.suppress(OSError):
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def _record(self, ts: float, who: str, action: str, name: str, detail: str) -> None:
        """The change in the block log; the file is what counts, so a failure only warns."""
        if self.blocklog_path is None or not self.blocklog_path.exists():
            # The resolver creates the block log at its first start; made here (by root, from
            # the command line) it would belong to the wrong user. The file is what counts.
            log.warning("operator action not logged: no block log at %s yet", self.blocklog_path)
            return
        try:
            conn = open_db(self.blocklog_path)
        except BlockLogError as exc:
            log.warning("operator action not logged: %s", exc)
            return
        try:
            conn.execute(
                "INSERT INTO operator_actions (ts, who, action, name, detail)"
                " VALUES (?, ?, ?, ?, ?)",
                (ts, who, action, name, detail),
            )
        except sqlite3.Error as exc:
            log.warning("operator action not logged: %s", exc)
        finally:
            conn.close()
