"""Names by which devices ask the network whether they may walk around it, answered by the box.

- ``use-application-dns.net``: Firefox turns its own DNS over HTTPS on only while this name
  resolves; NXDOMAIN keeps its DNS on the box (Mozilla's "canary domain").
- ``mask.icloud.com``, ``mask-h2.icloud.com``: NXDOMAIN tells Apple devices that the network
  turns iCloud Private Relay off (Apple, "Prepare your network for iCloud Private Relay").
- ``resolver.arpa`` and every name under it (RFC 9462 §6.4): answered here, never forwarded.
  ``_dns.resolver.arpa`` SVCB names the box's own encrypted endpoints (DDR, RFC 9461/9462),
  every other question NODATA.

A canary answer is a block with category "bypass" (the block log counts it per machine, so the
page can name a machine that keeps trying; not a threat: never in the weather, see
``resolver.core.categories.NON_THREAT_CATEGORIES``); resolver.arpa answers are local.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

from resolver.core import responses, wire
from resolver.core.categories import BYPASS
from resolver.core.query import Query
from resolver.core.stage import FULL, Full
from resolver.core.steps import CONTINUE, Reply, Step, Verdict

CATEGORY: Final = BYPASS
FIREFOX: Final = ("use-application-dns.net",)
PRIVATE_RELAY: Final = ("mask.icloud.com", "mask-h2.icloud.com")
DDR_NAME: Final = "_dns.resolver.arpa"
T_SVCB: Final = 64
DOH_PATH: Final = "/dns-query"
_DDR_TTL: Final = 300
_ZONE: Final = "resolver.arpa"
_SUFFIX: Final = "." + _ZONE

# RFC 9460 §14.3.2 SvcParamKeys, in the increasing order the wire form requires.
_ALPN, _PORT, _IPV4HINT, _IPV6HINT, _DOHPATH = 1, 3, 4, 6, 7


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One encrypted service of the box: ``kind`` "dot" (RFC 7858) or "doh" (RFC 8484)."""

    kind: str
    port: int


def _param(key: int, value: bytes) -> bytes:
    return wire.U16.pack(key) + wire.U16.pack(len(value)) + value


def svcb_rdata(priority: int, target: str, endpoint: Endpoint, hints: Sequence[str] = ()) -> bytes:
    """One SVCB record's rdata (RFC 9460 §2.2) for an endpoint, as RFC 9461 §4-5 asks:
    ALPN "dot" or "http/1.1" (our HTTPS speaks HTTP/1.1), the port, address hints, dohpath."""
    alpn = b"dot" if endpoint.kind == "dot" else b"http/1.1"
    params = _param(_ALPN, bytes([len(alpn)]) + alpn) + _param(_PORT, wire.U16.pack(endpoint.port))
    addresses = [ipaddress.ip_address(h) for h in hints]
    v4 = b"".join(a.packed for a in addresses if a.version == 4)
    v6 = b"".join(a.packed for a in addresses if a.version == 6)
    if v4:
        params += _param(_IPV4HINT, v4)
    if v6:
        params += _param(_IPV6HINT, v6)
    if endpoint.kind == "doh":
        params += _param(_DOHPATH, (DOH_PATH + "{?dns}").encode())
    return wire.U16.pack(priority) + wire.name_to_wire(target) + params


class CanaryStage:
    name: ClassVar[str] = "canaries"
    policy: ClassVar[bool] = False

    def __init__(self, firefox: bool = True, private_relay: bool = True) -> None:
        # name -> the reason written to the block log
        self.canaries: dict[str, str] = {}
        if firefox:
            self.canaries.update(dict.fromkeys(FIREFOX, "canary:firefox"))
        if private_relay:
            self.canaries.update(dict.fromkeys(PRIVATE_RELAY, "canary:private-relay"))
        self.ddr: tuple[bytes, ...] = ()  # SVCB rdata of the box's encrypted endpoints
        self.hits: dict[str, int] = {}  # canary or "ddr" -> questions answered (since start)

    def advertise(self, target: str, endpoints: Sequence[Endpoint], hints: Sequence[str]) -> None:
        """Answer DDR with these endpoints (the TLS first: no HTTP layer); none: NODATA."""
        ordered = sorted(endpoints, key=lambda e: (e.kind != "dot", e.port))
        self.ddr = tuple(svcb_rdata(i, target, e, hints) for i, e in enumerate(ordered, start=1))

    def describe(self) -> str:
        names = ", ".join(self.canaries) or "no canary"
        ddr = f"{len(self.ddr)} DDR endpoints" if self.ddr else "resolver.arpa NODATA"
        return f"NXDOMAIN for {names}; {ddr}"

    def decide(self, query: Query, now: float) -> Step:
        name = query.qname
        reason = self.canaries.get(name)
        if reason is not None:
            self.hits[reason] = self.hits.get(reason, 0) + 1
            return Reply(
                responses.make_response(query, wire.NXDOMAIN), Verdict.BLOCKED, reason, CATEGORY
            )
        if name.endswith(_ZONE) and (name == _ZONE or name.endswith(_SUFFIX)):
            return self._resolver_arpa(query)
        return CONTINUE

    def on_name(self, name: str, qtype: int, qclass: int, client: str, now: float) -> Full | None:
        """A canary or resolver.arpa goes to ``decide`` (which counts it); any other passes."""
        if name in self.canaries or (
            name.endswith(_ZONE) and (name == _ZONE or name.endswith(_SUFFIX))
        ):
            return FULL
        return None

    def _resolver_arpa(self, query: Query) -> Reply:
        self.hits["ddr"] = self.hits.get("ddr", 0) + 1
        rdatas = self.ddr
        if query.qname == DDR_NAME and query.qtype == T_SVCB and rdatas and query.qclass == 1:
            answers = b"".join(responses.answer_rr(T_SVCB, _DDR_TTL, r) for r in rdatas)
            out = responses.make_response(query, wire.NOERROR, answers, len(rdatas), aa=True)
        else:
            out = responses.make_response(query, wire.NOERROR, aa=True)  # NODATA
        return Reply(out, Verdict.LOCAL, "ddr")
