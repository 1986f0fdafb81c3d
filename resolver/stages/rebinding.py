"""Drop upstream answers that put private addresses behind public names (DNS rebinding).

A page from the Internet that makes its own name resolve to 192.168.1.1 or 127.0.0.1 has the
browser talk to the mairie's router, printer or NAS as if to its own site, past the firewall
(dnsmasq ``--stop-dns-rebind``, unbound ``private-address``). Only answers from the default
upstreams are judged: the mairie's forwarded zones, the box's own records and the allowlist
(TRUSTED: the answer skips policy stages) are local names. Such an answer becomes NODATA with
an Extended DNS Error "Blocked" (RFC 8914 §4.16), as dnsmasq does.

It judges answers only, on the miss path: ``decide`` passes every query on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import ClassVar, Final

from resolver.core import cached_answer, wire
from resolver.core.block_answer import negative_soa
from resolver.core.cached_answer import CachedAnswer
from resolver.core.query import Query
from resolver.core.steps import CONTINUE, Forward, Reply, Step, Verdict

CATEGORY: Final = "rebinding"
_T_A: Final = wire.T_A
_T_AAAA: Final = wire.T_AAAA
_NODATA_TTL: Final = 60  # the refusal is policy: short, so an allow added is seen soon
_V4_MAPPED: Final = bytes(10) + b"\xff\xff"  # ::ffff:0:0/96


def _masks(nets: Iterable[str], version: int, bits: int) -> tuple[tuple[int, int], ...]:
    out = []
    for text in nets:
        net = ipaddress.ip_network(text, strict=False)
        if net.version == version:
            mask = ((1 << net.prefixlen) - 1) << (bits - net.prefixlen)
            out.append((int(net.network_address), mask))
    return tuple(out)


def _first_octets(masks: tuple[tuple[int, int], ...], bits: int) -> frozenset[int]:
    """The first octets an address of these networks can start with: most public answers are
    told apart by that one octet, without the arithmetic below."""
    out: set[int] = set()
    for net, mask in masks:
        first = net >> (bits - 8)
        free = 8 - min(8, bin(mask).count("1"))
        out.update(range(first, first + (1 << free)))
    return frozenset(out)


class RebindingStage:
    name: ClassVar[str] = "rebinding"
    # A policy stage: an allowlisted name (TRUSTED) is local by the operator's word.
    policy: ClassVar[bool] = True
    rechecks: ClassVar[bool] = True  # the private networks or local names may have changed

    def __init__(self, local_names: Iterable[str], networks: Iterable[str]) -> None:
        self.local = frozenset(n.lower().rstrip(".") for n in local_names)
        nets = tuple(networks)
        self._v4 = _masks(nets, 4, 32)
        self._v6 = _masks(nets, 6, 128)
        self._v4_first = _first_octets(self._v4, 32)
        # IPv4-mapped addresses (::ffff:a.b.c.d) start with 0 and are judged as IPv4.
        self._v6_first = _first_octets(self._v6, 128) | {0}
        self.dropped = 0  # answers refused, for /metrics and the log summary
        self.last_name = ""  # the last one, for the log summary (never per query)

    def describe(self) -> str:
        return f"{len(self._v4) + len(self._v6)} private networks, {len(self.local)} local names"

    def decide(self, query: Query, now: float) -> Step:
        return CONTINUE

    def private(self, rdata: bytes) -> bool:
        """Is this A (4 octets) or AAAA (16 octets) address in one of the networks?"""
        if rdata[0] not in (self._v4_first if len(rdata) == 4 else self._v6_first):
            return False
        if len(rdata) == 16 and rdata[:12] == _V4_MAPPED:
            rdata = rdata[12:]
            if rdata[0] not in self._v4_first:
                return False
        value = int.from_bytes(rdata)
        # A loop, not any(): no generator per address (this runs on every upstream answer).
        for net, mask in self._v4 if len(rdata) == 4 else self._v6:  # noqa: SIM110
            if value & mask == net:
                return True
        return False

    def is_local(self, qname: str) -> bool:
        local = self.local
        if qname in local:
            return True
        dot = qname.find(".")
        while dot >= 0:
            if qname[dot + 1 :] in local:
                return True
            dot = qname.find(".", dot + 1)
        return False

    def on_answer(
        self, query: Query, fwd: Forward, entry: CachedAnswer, now: float
    ) -> Reply | None:
        if fwd.zone is not None:
            return None  # the mairie's own servers: their names are local
        body = entry.body
        # The answer section only (its records come first): an authoritative upstream's
        # glue in the additional section (ns.example A 127.0.0.1 in a lab, an internal NS)
        # is no address the asker will connect to, as dnsmasq --stop-dns-rebind judges.
        for off in entry.ttl_at[: entry.an]:
            # A record's TTL is preceded by its type and class, followed by RDLENGTH, RDATA.
            rtype = (body[off - 4] << 8) | body[off - 3]
            if rtype in (_T_A, _T_AAAA):
                rdata = body[off + 6 : off + 6 + ((body[off + 4] << 8) | body[off + 5])]
                if len(rdata) in (4, 16) and self.private(rdata):
                    if self.is_local(query.qname):
                        return None
                    return self._refuse(query, now)
        return None

    def _refuse(self, query: Query, now: float) -> Reply:
        self.dropped += 1
        self.last_name = query.qname
        entry = CachedAnswer(
            wire.NOERROR,
            0,
            1,
            0,
            negative_soa(_NODATA_TTL),  # so a downstream cache keeps the NODATA (RFC 2308)
            (),
            (),
            now,
            _NODATA_TTL,
            ede=wire.ede_option(15, "private address for a public name (DNS rebinding)"),
            blocked=True,
            qname=query.qname,
            reason=CATEGORY,
            category=CATEGORY,
        )
        out = cached_answer.render(entry, query, now)
        return Reply(out, Verdict.BLOCKED, CATEGORY, CATEGORY)
