"""How a blocked name is answered (the operator's ``blocking.mode``)."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Final, Literal

BlockMode = Literal["nxdomain", "null", "refused", "sinkhole"]

_SOA_HEAD: Final = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_MNAME: Final = b"\x0aparafoudre\x07invalid\x00"  # RFC 6761 §6.4: never resolves
_RNAME: Final = b"\x06nobody\x07invalid\x00"  # RFC 6303 §3's RNAME for synthesised zones
_TIMERS: Final = struct.Struct("!IIIII")  # serial, refresh, retry, expire, minimum


def negative_soa(ttl: int) -> bytes:
    """The SOA a blocked name's negative answer carries in its authority section.

    RFC 2308 §3: without it a downstream cache (the mairie's domain controller, a router's
    dnsmasq) cannot cache the NXDOMAIN or NODATA and asks again at every lookup. Its owner is
    the root: a zone that holds every name, never the name itself (dnsmasq 2.90 then took the
    name for an existing apex and answered the repeats NOERROR) nor a name outside the
    question's ancestry (dnsmasq does not cache with such an SOA). The negative TTL, min(TTL,
    MINIMUM) by RFC 2308 §5, is the block's TTL: an unblocked name recovers as fast downstream
    as the positive block answers of null and sinkhole modes.
    """
    rdata = _MNAME + _RNAME + _TIMERS.pack(1, 3600, 600, 86400, ttl)
    return b"\x00" + _SOA_HEAD.pack(6, 1, ttl, len(rdata)) + rdata


@dataclass(frozen=True, slots=True)
class BlockAnswer:
    mode: BlockMode = "nxdomain"
    ttl: int = 60  # short, so an unblocked name recovers quickly in clients' caches
    ipv4: bytes = b"\x00\x00\x00\x00"  # rdata for A in null/sinkhole modes
    ipv6: bytes = bytes(16)
    has_ipv4: bool = True  # sinkhole mode without an IPv6 address answers AAAA with NODATA
    has_ipv6: bool = True
    soa: bytes = field(init=False, repr=False, compare=False)  # negative_soa(ttl), built once

    def __post_init__(self) -> None:
        object.__setattr__(self, "soa", negative_soa(self.ttl))

    @classmethod
    def build(cls, mode: BlockMode, ttl: int, sink4: str | None, sink6: str | None) -> BlockAnswer:
        if mode == "sinkhole":
            v4 = ipaddress.IPv4Address(sink4).packed if sink4 else b""
            v6 = ipaddress.IPv6Address(sink6).packed if sink6 else b""
            return cls(mode, ttl, v4, v6, bool(v4), bool(v6))
        return cls(mode, ttl)
