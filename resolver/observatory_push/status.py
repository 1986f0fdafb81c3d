"""The state of the box's link to the observatory, for ``parafoudre doctor``.

Blocking on purpose (the doctor is a short command, not the resolver): one heartbeat POST with a
short timeout, and a read-only look at the outbox file.
"""

from __future__ import annotations

import json
import sqlite3
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from resolver.config.observatory import ObservatoryPushConfig

# Same payload version as the pusher's batches (outbox.PAYLOAD_VERSION).
HEARTBEAT_VERSION: Final = 2


@dataclass(frozen=True, slots=True)
class Probe:
    """What the observatory answered to a heartbeat: an HTTP status, or why there was none."""

    status: int | None
    error: str = ""


def heartbeat_body(cfg: ObservatoryPushConfig) -> bytes:
    """An empty batch: the observatory checks the token and the INSEE code and stores nothing
    but the box's "last seen" time.
    """
    payload: dict[str, object] = {
        "version": HEARTBEAT_VERSION,
        "batch_id": None,
        "commune": cfg.commune,
        "insee": cfg.insee,
        "events": [],
        "daily": [],
    }
    return json.dumps(payload).encode()


def probe(
    cfg: ObservatoryPushConfig, *, timeout: float, ssl_context: ssl.SSLContext | None = None
) -> Probe:
    """POST one heartbeat to ``cfg.ingest_url()`` with the box's token."""
    request = urllib.request.Request(  # noqa: S310 (the URL is checked: http(s) only)
        cfg.ingest_url(),
        data=heartbeat_body(cfg),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {cfg.token}",
            "User-Agent": "parafoudre-doctor",
        },
    )
    try:
        with urllib.request.urlopen(  # noqa: S310
            request, timeout=timeout, context=ssl_context
        ) as resp:
            resp.read(4096)
            return Probe(resp.status)
    except urllib.error.HTTPError as exc:
        return Probe(exc.code)
    except urllib.error.URLError as exc:
        reason = exc.reason
        text = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
        return Probe(None, text)
    except (OSError, TimeoutError) as exc:
        return Probe(None, str(exc) or type(exc).__name__)


def outbox_status(path: Path) -> tuple[int, float | None]:
    """(batches waiting, unix time of the last 2xx or None) read from the outbox, read-only.

    (0, None) when the file does not exist yet. Raises sqlite3.Error if it cannot be read.
    """
    if not path.exists():
        return 0, None
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'state'").fetchone():
            return 0, None
        pending: int = conn.execute("SELECT count(*) FROM batches").fetchone()[0]
        row = conn.execute("SELECT value FROM state WHERE name = 'last_ok'").fetchone()
        return pending, (float(row[0]) if row else None)
    finally:
        conn.close()
