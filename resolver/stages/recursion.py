"""A query without RD (recursion desired) is answered only from the box's own data.

RFC 1034 §4.3.1: a server answers a non-recursive query from what it holds. What a resolver
holds in its cache is its users' browsing, though: answering RD=0 from it lets anyone on the
network see which names were looked up lately (cache snooping). So, like unbound's default
``access-control: allow``, the local zone still answers (it comes earlier in the chain) and
everything else is REFUSED: not looked up, not read from the cache, never sent upstream. The
fast lane never serves such a query either (resolver.core.fastpath takes only RD=1).
"""

from __future__ import annotations

from typing import ClassVar

from resolver.core import responses, wire
from resolver.core.query import Query
from resolver.core.steps import CONTINUE, Reply, Step, Verdict


class RecursionStage:
    name: ClassVar[str] = "recursion"
    policy: ClassVar[bool] = False
    passes_names: ClassVar[bool] = True  # its on_name says None: left out of the lane

    def describe(self) -> str:
        return "queries without RD answered from local data only, else REFUSED"

    def on_name(self, name: str, qtype: int, qclass: int, client: str, now: float) -> None:
        """The lane sees only queries with RD (resolver.core.fastpath): ``decide`` passes them."""
        return None

    def decide(self, query: Query, now: float) -> Step:
        if query.flags & wire.RD:
            return CONTINUE
        return Reply(responses.make_error(query, wire.REFUSED), Verdict.REFUSED, "no-recursion")
