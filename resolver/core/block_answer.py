"""How a blocked name is answered (the operator's ``blocking.mode``)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

BlockMode = Literal["nxdomain", "null", "refused", "sinkhole"]


@dataclass(frozen=True, slots=True)
class BlockAnswer:
    mode: BlockMode = "nxdomain"
    ttl: int = 60  # short, so an unblocked name recovers quickly in clients' caches
    ipv4: bytes = b"\x00\x00\x00\x00"  # rdata for A in null/sinkhole modes
    ipv6: bytes = bytes(16)
    has_ipv4: bool = True  # sinkhole mode without an IPv6 address answers AAAA with NODATA
    has_ipv6: bool = True

    @classmethod
    def build(cls, mode: BlockMode, ttl: int, sink4: str | None, sink6: str | None) -> BlockAnswer:
        if mode == "sinkhole":
            v4 = ipaddress.IPv4Address(sink4).packed if sink4 else b""
            v6 = ipaddress.IPv6Address(sink6).packed if sink6 else b""
            return cls(mode, ttl, v4, v6, bool(v4), bool(v6))
        return cls(mode, ttl)
