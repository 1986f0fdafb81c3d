"""ANY queries get a minimal answer (RFC 8482): they are the amplification attacker's favourite."""

from __future__ import annotations

from typing import ClassVar

from resolver.core import responses, wire
from resolver.core.query import Query
from resolver.core.stage import FULL, Full
from resolver.core.steps import CONTINUE, Reply, Step, Verdict

# RFC 8482 §4.2: a synthesised HINFO with CPU "RFC8482" and an empty OS.
_HINFO = b"\x07RFC8482\x00"
_T_HINFO = 13


class MinimalAnyStage:
    name: ClassVar[str] = "minimal_any"
    policy: ClassVar[bool] = False

    def describe(self) -> str:
        return "ANY answered with RFC 8482 HINFO"

    def on_name(self, name: str, qtype: int, qclass: int, client: str, now: float) -> Full | None:
        return FULL if qtype == wire.T_ANY else None

    def decide(self, query: Query, now: float) -> Step:
        if query.qtype != wire.T_ANY:
            return CONTINUE
        rr = b"\xc0\x0c" + wire.RR_FIXED.pack(_T_HINFO, query.qclass, 3600, len(_HINFO)) + _HINFO
        return Reply(responses.make_response(query, wire.NOERROR, rr, 1), Verdict.LOCAL, "rfc8482")
