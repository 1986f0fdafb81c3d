"""Per-feed state on disk: the last good copy, its HTTP validators, and what happened last.

Layout under ``state_dir``::

    <feed>.data       last good copy, exactly as downloaded (gzip or not)
    <feed>.json       FeedState below
    <feed>.download   a download in progress (replaces .data only once it passed the checks)
    compile.json      fingerprint of the inputs of the last artifact written

Every JSON file is written to a temporary name then renamed, so a crash leaves the old one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# A state file is a few hundred bytes; a larger one is not ours.
_MAX_STATE_BYTES = 1 << 20


def now_iso() -> str:
    """The current UTC time, to the second, ISO 8601."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True, slots=True)
class FeedState:
    """What the updater remembers about one feed between runs."""

    url: str = ""
    etag: str = ""
    last_modified: str = ""
    sha256: str = ""  # of the last good copy
    size: int = 0
    entries: int = 0  # distinct names in the last good copy
    rejected: int = 0  # lines rejected in the last good copy
    reject_reasons: dict[str, int] = field(default_factory=dict)
    last_attempt: str = ""  # ISO time of the last run that tried this feed
    last_success: str = ""  # ISO time the last good copy was fetched or confirmed unchanged
    last_change: str = ""  # ISO time the last good copy last changed
    last_error: str = ""  # "" after a successful run
    # The class of last_error for the page ("dns", "route", "refused", "tls", "http",
    # "timeout", "other"; feeds/download.py), "" after a successful run.
    error_class: str = ""
    status: str = ""  # updated, unchanged, failed (last good kept), unusable

    def to_json(self) -> str:
        """The state as JSON."""
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeedState:
        """Parse a state file, ignoring unknown keys and wrong types (they reset to defaults)."""
        try:
            raw = json.loads(text)
        except ValueError:
            return cls()
        if not isinstance(raw, dict):
            return cls()
        defaults = cls()
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = raw.get(f.name)
            if isinstance(value, type(getattr(defaults, f.name))):
                values[f.name] = value
        return cls(**values)


class StateStore:
    """Reads and writes the files of ``state_dir``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def ensure(self) -> None:
        """Create the directory (0755: the status command may run as another user)."""
        self.dir.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[bool]:
        """Hold ``update.lock`` for one run; yields False if another run holds it.

        flock, not a pid file: the kernel releases it when a run dies, so no stale locks.
        """
        self.ensure()
        with (self.dir / "update.lock").open("a") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def data_path(self, name: str) -> Path:
        """Where the last good copy of feed ``name`` lives."""
        return self.dir / f"{name}.data"

    def download_path(self, name: str) -> Path:
        """Where a new download of feed ``name`` is written before the checks."""
        return self.dir / f"{name}.download"

    def load(self, name: str) -> FeedState:
        """The state of feed ``name``; a fresh one if none or unreadable."""
        return FeedState.from_json(self._read(self.dir / f"{name}.json"))

    def save(self, name: str, state: FeedState) -> None:
        """Replace the state of feed ``name`` atomically."""
        self._write(self.dir / f"{name}.json", state.to_json())

    def load_fingerprint(self) -> str:
        """The fingerprint of the inputs of the last artifact written, or ""."""
        try:
            value = json.loads(self._read(self.dir / "compile.json") or "{}").get("fingerprint")
        except (ValueError, AttributeError):
            return ""
        return value if isinstance(value, str) else ""

    def save_fingerprint(self, fingerprint: str, artifact: Path, entries: int) -> None:
        """Remember what the artifact was built from, so an unchanged run can skip the build."""
        text = json.dumps(
            {
                "fingerprint": fingerprint,
                "artifact": str(artifact),
                "entries": entries,
                "written": now_iso(),
            },
            indent=1,
        )
        self._write(self.dir / "compile.json", text)

    def _read(self, path: Path) -> str:
        try:
            with path.open("rb") as f:
                return f.read(_MAX_STATE_BYTES).decode("utf-8", "replace")
        except FileNotFoundError:
            return ""
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            return ""

    def _write(self, path: Path, text: str) -> None:
        self.ensure()
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
