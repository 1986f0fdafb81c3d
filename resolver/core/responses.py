"""Answers built straight in wire form: header, the client's own question, records, OPT."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final, Literal

from resolver.core import wire
from resolver.core.query import DEFAULT_UDP_PAYLOAD, Query
from resolver.core.wire import HEADER, RR_FIXED

# RFC 8914 §4 INFO-CODEs we use.
EDE_OTHER: Final = 0
EDE_BLOCKED: Final = 15
EDE_PROHIBITED: Final = 18
EDE_NOT_READY: Final = 14
EDE_NO_REACHABLE_AUTHORITY: Final = 22

_QNAME_PTR: Final = b"\xc0\x0c"  # the question name always starts at offset 12

BlockMode = Literal["nxdomain", "null", "refused", "sinkhole"]


@dataclass(frozen=True, slots=True)
class BlockAnswer:
    """How a blocked name is answered."""

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


def response_flags(query: Query, rcode: int, aa: bool = False) -> int:
    """QR and RA set, RD and CD echoed (RFC 1035 §4.1.1, RFC 4035 §3.2.2)."""
    return wire.QR | wire.RA | (query.flags & (wire.RD | wire.CD)) | (wire.AA if aa else 0) | rcode


def opt_for(query: Query, options: bytes = b"") -> bytes:
    """Our OPT record when the client sent one (RFC 6891 §7), else nothing."""
    if query.edns is None:
        return b""
    return wire.build_opt(DEFAULT_UDP_PAYLOAD, query.edns.do, 0, options)


def make_response(
    query: Query,
    rcode: int,
    answers: bytes = b"",
    an: int = 0,
    authority: bytes = b"",
    ns: int = 0,
    aa: bool = False,
    ede: bytes = b"",
) -> bytes:
    opt = opt_for(query, ede)
    return (
        HEADER.pack(query.id, response_flags(query, rcode, aa), 1, an, ns, 1 if opt else 0)
        + query.question
        + answers
        + authority
        + opt
    )


def make_error(query: Query, rcode: int, ede_code: int | None = None, text: str = "") -> bytes:
    ede = wire.ede_option(ede_code, text) if ede_code is not None else b""
    return make_response(query, rcode, ede=ede)


def answer_rr(rtype: int, ttl: int, rdata: bytes) -> bytes:
    """One answer record whose owner is the question name (a compression pointer to it)."""
    return _QNAME_PTR + RR_FIXED.pack(rtype, wire.C_IN, ttl, len(rdata)) + rdata


def make_blocked(query: Query, how: BlockAnswer, reason: str) -> bytes:
    """The answer to a blocked name, with an Extended DNS Error saying which list (RFC 8914)."""
    ede = wire.ede_option(EDE_BLOCKED, reason)
    if how.mode == "nxdomain":
        return make_response(query, wire.NXDOMAIN, ede=ede)
    if how.mode == "refused":
        return make_response(query, wire.REFUSED, ede=ede)
    if query.qtype == wire.T_A and how.has_ipv4 and query.qclass == wire.C_IN:
        return make_response(
            query, wire.NOERROR, answer_rr(wire.T_A, how.ttl, how.ipv4), 1, ede=ede
        )
    if query.qtype == wire.T_AAAA and how.has_ipv6 and query.qclass == wire.C_IN:
        rr = answer_rr(wire.T_AAAA, how.ttl, how.ipv6)
        return make_response(query, wire.NOERROR, rr, 1, ede=ede)
    return make_response(query, wire.NOERROR, ede=ede)  # NODATA for other types


def fit(query: Query, answer: bytes) -> bytes:
    """Truncate an answer that does not fit the client's limit: TC set, sections empty."""
    if len(answer) <= query.size_limit:
        return answer
    flags = HEADER.unpack_from(answer)[1] | wire.TC
    opt = opt_for(query)
    return HEADER.pack(query.id, flags, 1, 0, 0, 1 if opt else 0) + query.question + opt
