"""Errors of the feed updater; all are ParafoudreError, so the CLI prints one line."""

from __future__ import annotations

from resolver.errors import ParafoudreError


class FeedError(ParafoudreError):
    """A feed could not be fetched or read; its last good copy is used instead."""


class FeedTooLarge(FeedError):
    """The feed is over the configured size cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"feed is larger than the {limit}-byte cap (feeds.max_bytes)")
        self.limit = limit


class FeedFormatError(FeedError):
    """The feed's content is not the declared format (an HTML error page, an empty body...)."""
