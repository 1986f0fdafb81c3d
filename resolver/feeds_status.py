"""The feeds' status as the weather page shows it, read from the updater's state files.

An adapter of the composition root (``resolver/app.py`` imports it when the page is served): it
reads the feeds' files and hands the page plain rows (``resolver.stats.FeedStatusRow``), so
the page never imports the feeds package and the config never imports either.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from feeds.sources import resolve_sources
from feeds.state import StateStore
from resolver.config.feeds import FeedsConfig
from resolver.stats import FeedStatusRow


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
                feed.name,
                feed.category,
                st.entries,
                _epoch(st.last_success),
                st.last_error,
                st.error_class,
            )
        )
    return rows
