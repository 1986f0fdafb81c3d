"""Names the box answers itself; zones the mairie's own DNS servers answer are left alone.

Private reverse zones and localhost must never reach public upstreams: that leaks the network's
layout. Names in a conditional-forwarding zone (the Windows domain) pass on to the policy stages
like any other name, and are routed to the mairie's servers by the upstream stage; a zone the
operator trusts (``trusted: true``) is TRUSTED here, so the lists and the exfiltration detector
skip it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from resolver.core import responses, wire
from resolver.core.query import Query
from resolver.core.stage import FULL, Full
from resolver.core.steps import CONTINUE, TRUSTED, Reply, Step, Verdict
from resolver.stages.upstream import under as _under

# RFC 6303 §4 (and RFC 6761 for localhost): zones no public server should be asked about.
PRIVATE_REVERSE_ZONES: tuple[str, ...] = (
    "10.in-addr.arpa",
    *(f"{i}.172.in-addr.arpa" for i in range(16, 32)),
    "168.192.in-addr.arpa",
    "254.169.in-addr.arpa",
    "127.in-addr.arpa",
    "0.in-addr.arpa",
    "d.f.ip6.arpa",
    "8.e.f.ip6.arpa",
    "9.e.f.ip6.arpa",
    "a.e.f.ip6.arpa",
    "b.e.f.ip6.arpa",
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
)


@dataclass(frozen=True, slots=True)
class LocalRecord:
    name: str  # lower case, no trailing dot
    rtype: int
    ttl: int
    rdata: bytes  # uncompressed wire rdata


def parse_record(text: str, default_ttl: int = 300) -> LocalRecord:
    """Read one zone-file line, e.g. ``nas.mairie.local A 192.168.1.10``; ValueError if bad."""
    from dnslib import RR, DNSBuffer  # config-time only: keeps dnslib off the import of the core

    try:
        rrs = RR.fromZone(text, ttl=default_ttl)
    except Exception as exc:  # dnslib raises several unrelated types for bad text
        raise ValueError(f"not a zone-file record: {exc}") from None
    if len(rrs) != 1:
        raise ValueError("expected exactly one record")
    rr = rrs[0]
    buf = DNSBuffer()
    rr.rdata.pack(buf)
    name = str(rr.rname).rstrip(".").lower()
    return LocalRecord(name, int(rr.rtype), int(rr.ttl), bytes(buf.data))


# RFC 6303 §3's SOA for locally served zones: MNAME the zone, RNAME nobody.invalid, and short
# negative TTLs so a later change (a forward zone added) is seen within the hour.
_SOA_TTL = 3600
_SOA_TIMERS = (
    wire.U32.pack(1)
    + wire.U32.pack(604800)
    + wire.U32.pack(86400)
    + wire.U32.pack(2419200)
    + wire.U32.pack(_SOA_TTL)
)


def _soa_record(zone: str) -> bytes:
    owner = wire.name_to_wire(zone)
    rdata = owner + wire.name_to_wire("nobody.invalid") + _SOA_TIMERS
    return owner + wire.RR_FIXED.pack(wire.T_SOA, wire.C_IN, _SOA_TTL, len(rdata)) + rdata


class LocalZoneStage:
    name: ClassVar[str] = "local_zone"
    policy: ClassVar[bool] = False

    def __init__(
        self,
        records: Iterable[LocalRecord],
        forwards: Sequence[tuple[str, bool]],
        private_reverse: bool = True,
        identity: str = "parafoudre",
    ) -> None:
        table: dict[str, dict[int, list[LocalRecord]]] = {}
        for r in records:
            table.setdefault(r.name, {}).setdefault(r.rtype, []).append(r)
        table.setdefault("localhost", {})
        table["localhost"].setdefault(
            wire.T_A, [LocalRecord("localhost", wire.T_A, 300, b"\x7f\0\0\x01")]
        )
        table["localhost"].setdefault(
            wire.T_AAAA, [LocalRecord("localhost", wire.T_AAAA, 300, bytes(15) + b"\x01")]
        )
        self.records = table
        # RFC 4892: "id.server" CH TXT names the instance (the worker, with several); handy to
        # see which box and which worker answers. Versions are not disclosed.
        ident = identity.encode("ascii", "replace")[:255]
        self.identity_rdata = bytes([len(ident)]) + ident
        # (zone, trusted), longest zone first: a trusted sub-zone of an untrusted zone or back.
        self.forwards = sorted(
            ((z.rstrip(".").lower(), t) for z, t in forwards), key=lambda zt: -len(zt[0])
        )
        self.private_reverse = PRIVATE_REVERSE_ZONES if private_reverse else ()
        self._soas: dict[str, bytes] = {}  # zone -> its synthesised SOA record

    def describe(self) -> str:
        zones = ", ".join(f"{z} (trusted)" if t else z for z, t in self.forwards) or "none"
        return f"{len(self.records)} local names, forwarding {zones}"

    def decide(self, query: Query, now: float) -> Step:
        if query.qclass == wire.C_CH:
            return self._chaos(query)
        name = query.qname
        found = self.records.get(name)
        if found is not None:
            return self._answer(query, found)
        for zone, trusted in self.forwards:
            if _under(name, zone):
                # Judged like any name (RFC 6303's private reverse zones included: the
                # mairie's DC answers them), unless the operator trusts the zone.
                return TRUSTED if trusted else CONTINUE
        if name.endswith(".arpa"):
            for zone in self.private_reverse:
                if _under(name, zone):
                    return self._nxdomain(query, zone, "private-reverse")
        elif name.endswith("localhost") and _under(name, "localhost"):  # RFC 6761 §6.3
            return self._nxdomain(query, "localhost", "local")
        return CONTINUE

    def on_name(self, name: str, qtype: int, qclass: int, client: str, now: float) -> Full | None:
        """``decide`` without building an answer: whatever it would answer or trust is FULL."""
        if qclass == wire.C_CH or name in self.records:
            return FULL
        for zone, trusted in self.forwards:
            if _under(name, zone):
                return FULL if trusted else None
        if name.endswith(".arpa"):
            for zone in self.private_reverse:
                if _under(name, zone):
                    return FULL
        elif name.endswith("localhost") and _under(name, "localhost"):
            return FULL
        return None

    def _nxdomain(self, query: Query, zone: str, reason: str) -> Reply:
        """NXDOMAIN with the zone's SOA, so askers can cache the negation (RFC 2308 §3)."""
        soa = self._soas.get(zone)
        if soa is None:
            soa = self._soas[zone] = _soa_record(zone)
        return Reply(
            responses.make_response(query, wire.NXDOMAIN, authority=soa, ns=1, aa=True),
            Verdict.LOCAL,
            reason,
        )

    def _chaos(self, query: Query) -> Reply:
        if query.qname in ("id.server", "hostname.bind") and query.qtype in (
            wire.T_TXT,
            wire.T_ANY,
        ):
            rdata = self.identity_rdata
            rr = b"\xc0\x0c" + wire.RR_FIXED.pack(wire.T_TXT, wire.C_CH, 0, len(rdata)) + rdata
            return Reply(
                responses.make_response(query, wire.NOERROR, rr, 1, aa=True), Verdict.LOCAL, "id"
            )
        return Reply(responses.make_error(query, wire.REFUSED), Verdict.REFUSED, "chaos")

    def _answer(self, query: Query, by_type: dict[int, list[LocalRecord]]) -> Reply:
        rrs = by_type.get(query.qtype)
        if rrs is None and query.qtype != wire.T_CNAME:
            rrs = by_type.get(wire.T_CNAME)
        if rrs is None and query.qtype == wire.T_ANY:
            rrs = [r for group in by_type.values() for r in group][:1]  # RFC 8482: one is enough
        if not rrs or query.qclass not in (wire.C_IN, wire.T_ANY):
            wire_answer = responses.make_response(query, wire.NOERROR, aa=True)  # NODATA
        else:
            answers = b"".join(responses.answer_rr(r.rtype, r.ttl, r.rdata) for r in rrs)
            wire_answer = responses.make_response(query, wire.NOERROR, answers, len(rrs), aa=True)
        return Reply(wire_answer, Verdict.LOCAL, "local")
