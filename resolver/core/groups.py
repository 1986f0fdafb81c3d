"""Several policy chains, one per group of the commune's clients (issue 21).

The group is chosen once per query from the client's address; each group has its own chain and
its own answer cache, so an answer judged for one group is never served to another (the public
Wi-Fi's blocked adult site stays reachable from the administration, and the administration's
cached answer never reaches the Wi-Fi). Groups' networks never overlap (the config refuses it),
so the first group that holds the address is the one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Final

from resolver.core.cached_answer import CachedAnswer
from resolver.core.pipeline import Pipeline
from resolver.core.query import Query
from resolver.core.stage import Rendered
from resolver.core.steps import Drop, Forward, Reply

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_ROUTES_MAX: Final = 4096  # client addresses remembered; reset when full (bounded under floods)


class GroupedPipeline:
    """Routes each client to its group's Pipeline; the default group takes everyone else."""

    def __init__(
        self, default: Pipeline, groups: Sequence[tuple[Sequence[Network], Pipeline]]
    ) -> None:
        self.default = default
        self.groups = tuple((tuple(nets), p) for nets, p in groups)
        self.pipelines = (default, *(p for _, p in self.groups))
        self._routes: dict[str, Pipeline] = {}

    def route(self, client: str) -> Pipeline:
        p = self._routes.get(client)
        if p is None:
            p = self._classify(client)
            if len(self._routes) >= _ROUTES_MAX:
                self._routes.clear()
            self._routes[client] = p
        return p

    def _classify(self, client: str) -> Pipeline:
        try:
            addr = ipaddress.ip_address(client.split("%", 1)[0])
        except ValueError:
            return self.default
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped  # dual-stack sockets show IPv4 clients as ::ffff:a.b.c.d
        for nets, p in self.groups:
            if any(addr in n for n in nets):
                return p
        return self.default

    def group_of(self, client: str) -> str:
        return self.route(client).name

    def cached(self, key: bytes, client: str, now: float) -> CachedAnswer | Drop | None:
        return self.route(client).cached(key, client, now)

    def recall(self, tail: bytes, client: str, now: float) -> Rendered | Drop | None:
        return self.route(client).recall(tail, client, now)

    def first(self, key: bytes, name: str, client: str, now: float) -> CachedAnswer | Drop | int:
        return self.route(client).first(key, name, client, now)

    def handle(self, query: Query, now: float, start: int = 0) -> Reply | Forward | Drop:
        return self.route(query.client).handle(query, now, start)

    def complete(self, query: Query, fwd: Forward, response: bytes | None, now: float) -> Reply:
        return self.route(query.client).complete(query, fwd, response, now)

    def changed(self) -> None:
        for p in self.pipelines:
            p.changed()

    def tick(self, now: float) -> None:
        for p in self.pipelines:
            p.tick(now)

    def remember(
        self,
        client: str,
        tail: bytes,
        out: bytes,
        entry: CachedAnswer,
        question: bytes,
        now: float,
        prefetch_at: float | None,
    ) -> None:
        self.route(client).remember(client, tail, out, entry, question, now, prefetch_at)

    def stale(self, client: str, key: bytes) -> CachedAnswer | None:
        return self.route(client).stale(client, key)
