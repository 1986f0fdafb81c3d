"""The feeds' status as the weather page shows it, read from the updater's state files."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from dashboard.context import FeedStatusRow
from feeds.sources import FeedsConfig, resolve_sources
from feeds.state import StateStore


def _epoch(iso: str) -> float | None:
    try:
        return datetime.fromisoformat(iso).timestamp() if iso else None
    except ValueError:
        return None


def feeds_status(cfg: FeedsConfig) -> Sequence[FeedStatusRow]:
    """One row per enabled feed: entries of its last good copy, when, and its last error."""
    store = StateStore(cfg.state_path())
    rows = []
    for feed in resolve_sources(cfg):
        if not feed.enabled:
            continue
        st = store.load(feed.name)
        rows.append(
            FeedStatusRow(
                feed.name, feed.category, st.entries, _epoch(st.last_success), st.last_error
            )
        )
    return rows
