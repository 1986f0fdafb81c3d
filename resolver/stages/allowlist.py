"""The operator's allowlist: a listed name or any name under it skips the blocking stages."""

from __future__ import annotations

from typing import ClassVar

from resolver.core.blocklist import ListHolder
from resolver.core.query import Query
from resolver.core.stage import FULL, Full
from resolver.core.steps import CONTINUE, TRUSTED, Step


class AllowlistStage:
    name: ClassVar[str] = "allowlist"
    policy: ClassVar[bool] = True

    def __init__(self, names: ListHolder) -> None:
        self.names = names  # swapped whole on reload

    def describe(self) -> str:
        return f"{len(self.names.current)} names"

    def allows(self, name: str) -> bool:
        return self.names.current.match(name) is not None

    def on_name(self, name: str, qtype: int, qclass: int, client: str, now: float) -> Full | None:
        """An allowed name is TRUSTED by ``decide``: the lane leaves it to the full path."""
        return FULL if self.names.current.match(name) is not None else None

    def decide(self, query: Query, now: float) -> Step:
        return TRUSTED if self.names.current.match(query.qname) is not None else CONTINUE
