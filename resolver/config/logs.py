"""The ``logging`` section (a module not named ``logging``, so it never shadows the stdlib's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    # debug, info, warning or error. Queries are never logged one by one.
    level: Literal["debug", "info", "warning", "error"] = "info"
