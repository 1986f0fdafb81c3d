"""Questions a forwarder does not serve, answered at once and never sent upstream.

What unbound answers to the same questions (its ``worker_handle_request``), so a client sees the
same thing whichever resolver it meets:

- zone transfers (AXFR, IXFR): REFUSED; a transfer is a matter for the zone's own servers, and
  forwarded over UDP it only earns the client a SERVFAIL after two timeouts;
- meta-types that are not questions (OPT, TKEY, TSIG, MAILA, MAILB and the meta range 128-248,
  RFC 6895 §3.1): FORMERR; ANY (255) is a question, answered minimally further on;
- classes other than IN, CH and ANY (HS, NONE, unassigned): REFUSED; there is nowhere to resolve
  them. CH is the local zone's (``id.server``).
"""

from __future__ import annotations

from typing import ClassVar, Final

from resolver.core import responses, wire
from resolver.core.query import Query
from resolver.core.stage import FULL, Full
from resolver.core.steps import CONTINUE, Reply, Step, Verdict

T_IXFR: Final = 251
T_AXFR: Final = 252
_T_TKEY: Final = 249
_T_TSIG: Final = 250
_T_MAILB: Final = 253
_T_MAILA: Final = 254
# RFC 6895 §3.1: 128-255 are meta-types and Q-types; of them a resolver serves only ANY.
_NOT_QUESTIONS: Final = frozenset(
    (wire.T_OPT, *range(128, 249), _T_TKEY, _T_TSIG, _T_MAILB, _T_MAILA)
)
_SERVED_CLASSES: Final = frozenset((wire.C_IN, wire.C_CH, wire.T_ANY))  # class ANY is 255 too


class ProtocolStage:
    name: ClassVar[str] = "protocol"
    policy: ClassVar[bool] = False

    def describe(self) -> str:
        return "zone transfers and other classes refused, meta-types FORMERR"

    def decide(self, query: Query, now: float) -> Step:
        qtype = query.qtype
        if query.qclass not in _SERVED_CLASSES:
            return self._error(query, wire.REFUSED, Verdict.REFUSED, "class")
        if qtype < wire.T_OPT or qtype > _T_MAILA:
            return CONTINUE  # the common case (ANY, 255, included), by two comparisons
        if qtype in (T_AXFR, T_IXFR):
            return self._error(query, wire.REFUSED, Verdict.REFUSED, "zone-transfer")
        if qtype in _NOT_QUESTIONS:
            return self._error(query, wire.FORMERR, Verdict.FORMERR, "meta-type")
        return CONTINUE

    def on_name(self, name: str, qtype: int, qclass: int, client: str, now: float) -> Full | None:
        """``decide``'s two comparisons: anything it would answer goes to it."""
        if qclass not in _SERVED_CLASSES or (wire.T_OPT <= qtype <= _T_MAILA):
            return FULL
        return None

    @staticmethod
    def _error(query: Query, rcode: int, verdict: str, reason: str) -> Reply:
        return Reply(responses.make_error(query, rcode), verdict, reason)
