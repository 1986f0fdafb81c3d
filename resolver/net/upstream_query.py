"""Our query to an upstream resolver, and whether a reply answers it (RFC 5452 §9.1).

Pure functions shared by every upstream transport (UDP, TCP, DNS over TLS, DNS over HTTPS) and
by ``parafoudre doctor``; they import no transport, so the transports import no one another.
"""

from __future__ import annotations

from typing import Final

from resolver.core import wire
from resolver.core.query import DEFAULT_UDP_PAYLOAD, Query
from resolver.core.wire import HEADER, U16

_LOWER: Final = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_OPT_LEN: Final = 11  # the OPT record build_upstream_query appends (no options)
# The root's NS set: every recursive resolver answers it from its priming, at once.
_PROBE_QUESTION: Final = b"\x00" + wire.U16.pack(wire.T_NS) + wire.U16.pack(wire.C_IN)
# What follows the ID in every query build_upstream_query makes at our usual payload: our flags
# and the counts (one question, one OPT record), then the OPT record. Indexed by the last byte
# of the client's cache key (bit 0 DO, bit 1 CD: ``resolver.core.query``), so that the query we
# send is a function of the cache key, as coalescing (``resolver.net.service``) assumes: one
# upstream answer serves every client of that key. Built once: a cache miss joins four pieces.
_PIECES: Final = tuple(
    (
        HEADER.pack(0, wire.RD | wire.AD | (wire.CD if bits & 2 else 0), 1, 0, 0, 1)[2:],
        wire.build_opt(DEFAULT_UDP_PAYLOAD, bool(bits & 1)),
    )
    for bits in range(4)
)


def build_upstream_query(query: Query, qid: int, payload: int = DEFAULT_UDP_PAYLOAD) -> bytes:
    """Our own query for ``query``'s question: recursion desired, AD set, EDNS with the client's DO.

    AD is always set (RFC 6840 §5.7: the asker wants the AD bit of the answer): a validating
    upstream then says whether the answer is authentic even without DO, the cached answer keeps
    that bit whoever asked first, and ``render_parts`` shows it to the clients that set AD or DO
    (glibc's ``trust-ad``) and to no other.

    The question goes out exactly as the client wrote it, case included, as unbound and
    dnsmasq forward it: a client that checks the 0x20 bits of the echo (RFC 5452 §9.1 style)
    or carries data in the case (dns2tcp, iodine) needs them intact. The cache key is
    lower-cased separately (``Query.cache_key``).
    """
    if payload == DEFAULT_UDP_PAYLOAD:
        head, opt = _PIECES[query.cache_key[-1]]
        return b"".join((U16.pack(qid), head, query.question, opt))
    flags = wire.RD | wire.AD | (query.flags & wire.CD)
    return HEADER.pack(qid, flags, 1, 0, 0, 1) + query.question + wire.build_opt(payload, query.do)


def build_probe(qid: int) -> bytes:
    """A query to see whether an upstream answers at all: ``. NS``, recursion desired, EDNS."""
    return HEADER.pack(qid, wire.RD, 1, 0, 0, 1) + _PROBE_QUESTION + wire.build_opt(1232, False)


def matches(resp: bytes, sent: bytes) -> bool:
    """True if ``resp`` answers ``sent``: same ID, QR set, the same single question.

    ``sent`` is a query of ``build_upstream_query`` or ``build_probe`` (header, one question,
    an OPT record without options). The name is compared without regard to case (RFC 4343):
    some upstreams answer in lower case whatever the question's case.
    """
    if len(resp) < 12 or resp[0] != sent[0] or resp[1] != sent[1]:
        return False
    # QR set, exactly one question (the header's octets 2 and 4-5).
    if not resp[2] & 0x80 or resp[4] or resp[5] != 1:
        return False
    qend = len(sent) - _OPT_LEN
    question = sent[12:qend]
    if resp.startswith(question, 12):
        return True  # the question echoed as sent, case included: most upstreams
    # Only the name is folded: type 65 (HTTPS) is the byte "A", and lower-casing it too would
    # make an answer to type 97 look like one to type 65.
    return (
        resp[12 : qend - 4].translate(_LOWER) == question[:-4].translate(_LOWER)
        and resp[qend - 4 : qend] == question[-4:]
    )
