"""The contract of a policy stage."""

from __future__ import annotations

from typing import ClassVar, Protocol

from resolver.core.query import Query
from resolver.core.steps import Step


class Stage(Protocol):
    """Decides on a query or passes it on. Pure: no I/O, time comes in as ``now``."""

    name: ClassVar[str]  # lower case; used in logs, reasons and the config section
    # Policy stages are skipped once an earlier stage said TRUSTED (the allowlist).
    policy: ClassVar[bool]

    def decide(self, query: Query, now: float) -> Step: ...

    def describe(self) -> str: ...
