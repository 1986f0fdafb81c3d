"""Value checks shared by every config section (the resolver's, the page's, the observatory's).

Each returns the value or raises ValueError("message|hint"), which the config loader turns
into a one-line error. Kept outside resolver.config so that sections defined in other packages
can use it without importing the config tree that nests them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any


def check(fn: Callable[[Any], Any]) -> dict[str, Any]:
    """Field metadata naming the check the loader runs on the value."""
    return {"check": fn}


def networks(values: tuple[str, ...]) -> tuple[str, ...]:
    for v in values:
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError:
            raise ValueError(
                f"{v!r} is not a network|write it as 192.168.0.0/16 or fd00::/8"
            ) from None
    return values


def at_least(minimum: int) -> Callable[[int], int]:
    def check_min(v: int) -> int:
        if v < minimum:
            raise ValueError(f"{v} is below the minimum {minimum}|use {minimum} or more")
        return v

    return check_min
