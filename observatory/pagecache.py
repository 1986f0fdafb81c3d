"""The rendered page, and the figures it shows, kept a few seconds for the next viewers.

With 1,000 communes a page costs tens of milliseconds of queries and rendering; a room of
viewers (or the meta refresh of many open tabs) would pay it each time for the same figures.
Each entry is kept ``seconds`` from when its rendering started, so what a viewer sees is at most
that much older than the database, on top of the boxes' push interval (a minute by default).
It is not cleared on ingest: at 1,000 boxes a batch arrives every few tens of milliseconds,
which would empty it before anyone reads it. Viewers arriving while a page is being rendered
wait for that rendering instead of starting their own.

Keys are bounded by the caller (language and a page number clamped to the pages that exist),
and entries past their time are dropped whenever a page is rendered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class PageCache(Generic[T]):
    seconds: float
    clock: Callable[[], float] = time.monotonic
    _entries: dict[Hashable, tuple[float, T]] = field(default_factory=dict)
    _pending: dict[Hashable, asyncio.Task[T]] = field(default_factory=dict)

    async def get(self, key: Hashable, render: Callable[[], Awaitable[T]]) -> T:
        """The page for ``key``: kept if still fresh, else the one being rendered, else
        rendered now by ``render``."""
        hit = self._entries.get(key)
        if hit is not None and self.clock() < hit[0]:
            return hit[1]
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fill(key, render))
            self._pending[key] = task
        # A viewer who goes away does not cancel the rendering the others wait for.
        return await asyncio.shield(task)

    async def _fill(self, key: Hashable, render: Callable[[], Awaitable[T]]) -> T:
        expires = self.clock() + self.seconds
        try:
            body = await render()
        finally:
            del self._pending[key]
        # Only pages still fresh are held: memory is what was rendered in the last seconds,
        # not every page of the table ever asked for.
        now = self.clock()
        for stale in [k for k, (until, _b) in self._entries.items() if until <= now]:
            del self._entries[stale]
        if self.seconds > 0:
            self._entries[key] = (expires, body)
        return body
