"""Answers built straight in wire form: header, the client's own question, records, OPT."""

from __future__ import annotations

from typing import Final

from resolver.core import cached_answer, wire
from resolver.core.block_answer import BlockAnswer as BlockAnswer  # re-exported for stages
from resolver.core.query import DEFAULT_UDP_PAYLOAD, Query
from resolver.core.wire import HEADER, RR_FIXED

# RFC 8914 §4 INFO-CODEs we use.
EDE_OTHER: Final = 0
EDE_BLOCKED: Final = 15
EDE_PROHIBITED: Final = 18
EDE_NOT_READY: Final = 14
EDE_NO_REACHABLE_AUTHORITY: Final = 22

_QNAME_PTR: Final = b"\xc0\x0c"  # the question name always starts at offset 12


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


def make_blocked(query: Query, how: BlockAnswer, reason: str, category: str = "") -> bytes:
    """The answer to a blocked name, with an Extended DNS Error saying which list (RFC 8914)."""
    entry = cached_answer.blocked_entry(
        query.qname, query.qtype, query.qclass, how, reason, category, 0.0
    )
    return cached_answer.render(entry, query, 0.0)


def fit(query: Query, answer: bytes) -> bytes:
    """Truncate an answer that does not fit the client's limit: TC set, sections empty."""
    if len(answer) <= query.size_limit:
        return answer
    return truncated(answer, query.question, query.edns is not None, query.do)


def truncated(answer: bytes, question: bytes, edns: bool, do: bool) -> bytes:
    """``answer`` cut to its header and question, TC set (RFC 1035 §4.1.1, RFC 7766 §5)."""
    qid, flags = HEADER.unpack_from(answer)[:2]
    opt = wire.build_opt(DEFAULT_UDP_PAYLOAD, do) if edns else b""
    return HEADER.pack(qid, flags | wire.TC, 1, 0, 0, 1 if opt else 0) + question + opt
