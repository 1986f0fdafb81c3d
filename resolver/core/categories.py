"""Block categories that are not threats: counted and shown apart, never in the weather.

A machine that asks Firefox's canary or a DoH endpoint tries to get around the filter; the box
answers it and logs it, but it is no attack on the commune (issue 21 and 22). Defined here, in
the core, so stages, feeds and the block log all read the one set.
"""

from __future__ import annotations

from typing import Final

BYPASS: Final = "bypass"
NON_THREAT_CATEGORIES: Final[frozenset[str]] = frozenset({BYPASS})
