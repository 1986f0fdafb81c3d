"""The last stage: everything still undecided goes to the default upstream resolvers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from resolver.core.query import Query
from resolver.core.steps import Forward, Step, Upstream


class UpstreamStage:
    name: ClassVar[str] = "upstream"
    policy: ClassVar[bool] = False

    def __init__(self, servers: Sequence[Upstream]) -> None:
        self.forward = Forward(tuple(servers))

    def describe(self) -> str:
        return ", ".join(str(s) for s in self.forward.servers)

    def decide(self, query: Query, now: float) -> Step:
        return self.forward
