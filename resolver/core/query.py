"""A client's query, parsed once from the wire with only what the policy chain needs."""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple, NoReturn

from resolver.core import wire
from resolver.core.wire import HEADER, RR_FIXED, Edns, WireError

# RFC 6891 §6.2.3: below 512 is treated as 512. 1232 is the DNS Flag Day 2020 size that avoids
# IP fragmentation on practically every path.
MIN_UDP = 512
DEFAULT_UDP_PAYLOAD = 1232


class Transport(enum.Enum):
    UDP = "udp"
    TCP = "tcp"


class Query(NamedTuple):
    """One question from one client. ``qname`` is lower-case text without the trailing dot.

    A NamedTuple, not a frozen dataclass: one is built for every query the cache cannot answer,
    and a frozen dataclass of eleven fields costs three times as much to build.
    """

    id: int
    flags: int
    qname: str
    qtype: int
    qclass: int
    question: bytes  # the question section exactly as received: answers echo its case
    edns: Edns | None
    client: str  # textual address as the socket gave it; the ACL parses it once and caches
    transport: Transport
    size_limit: int  # largest answer this client accepts on this transport
    # Lower-cased question plus the DO and CD bits: identical questions share a cache entry.
    # CD is part of the key: an answer fetched with checking disabled must not be served to a
    # client that relies on the upstream's DNSSEC validation (RFC 4035 §4.7). Computed once.
    cache_key: bytes

    @property
    def do(self) -> bool:
        return self.edns is not None and self.edns.do


def cache_key(question: bytes, do: bool, flags: int) -> bytes:
    """The cache key of a question (see ``Query.cache_key``)."""
    return question[:-4].translate(_LOWER) + question[-4:] + _KEY_FLAGS[do, bool(flags & wire.CD)]


_QTAIL = struct.Struct("!HH")
# The last byte of a cache key: bit 0 DO, bit 1 CD.
_KEY_FLAGS = {
    (False, False): b"\x00",
    (True, False): b"\x01",
    (False, True): b"\x02",
    (True, True): b"\x03",
}
_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")


class MalformedQuery(Exception):
    """A query we cannot serve; ``response`` is what to send back (None: send nothing)."""

    def __init__(self, reason: str, response: bytes | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.response = response


def _error_reply(
    buf: bytes, rcode: int, question: bytes, qd: int, edns: Edns | None, payload: int
) -> bytes:
    qid, flags = HEADER.unpack_from(buf)[:2]
    # Keep opcode and RD, set QR and RA (RFC 1035 §4.1.1).
    out_flags = wire.QR | wire.RA | (flags & (wire.OPCODE_MASK | wire.RD | wire.CD)) | (rcode & 0xF)
    opt = b""
    if edns is not None or rcode > 15:
        opt = wire.build_opt(payload, edns.do if edns else False, rcode >> 4)
    return HEADER.pack(qid, out_flags, qd, 0, 0, 1 if opt else 0) + question + opt


def _formerr(buf: bytes, reason: str) -> MalformedQuery:
    """FORMERR for a message whose question cannot be read: nothing after it can be either."""
    return MalformedQuery(reason, _error_reply(buf, wire.FORMERR, b"", 0, None, 0))


class _BadOpt(WireError):
    """The asker's OPT record is there but malformed: it speaks EDNS, so our FORMERR carries
    an OPT all the same (RFC 6891 §7)."""

    def __init__(self, reason: str, edns: Edns) -> None:
        super().__init__(reason)
        self.edns = edns


def _read_question(buf: bytes) -> tuple[list[bytes], int]:
    """The labels of the one question's name and the offset after its type and class.

    A label is any octets (RFC 2181 §11): only the name's structure can be malformed.
    """
    try:
        labels, pos = wire.read_name(buf, 12)
        # Nothing precedes the question but the header, so a pointer in it can only point
        # there: a query's question is never compressed.
        if pos != 12 + sum(len(label) + 1 for label in labels) + 1:
            raise WireError("compressed question name")
    except WireError as exc:
        raise _formerr(buf, str(exc)) from None
    if pos + 4 > len(buf):
        raise _formerr(buf, "truncated question")
    return labels, pos + 4


def _check_options(buf: bytes, pos: int, end: int) -> None:
    """The OPT's options (code, length, data: RFC 6891 §6.1.2) must fill its RDATA exactly."""
    while pos < end:
        if pos + 4 > end:
            raise WireError("truncated EDNS option")
        pos += 4 + ((buf[pos + 2] << 8) | buf[pos + 3])
    if pos != end:
        raise WireError("EDNS option longer than its record")


def _read_edns(buf: bytes, pos: int, skip: int, ar: int) -> Edns | None:
    """Skip ``skip`` records from ``pos``, then read the OPT among the ``ar`` additional ones.

    Raises WireError on a truncated record, _BadOpt on a misplaced or malformed OPT.
    """
    edns: Edns | None = None
    for _ in range(skip):
        pos = wire.skip_name(buf, pos)
        if pos + 10 > len(buf):
            raise WireError("truncated record")
        pos += 10 + RR_FIXED.unpack_from(buf, pos)[3]
    for _ in range(ar):
        name_at = pos
        pos = wire.skip_name(buf, pos)
        if pos + 10 > len(buf):
            raise WireError("truncated record")
        rtype, rclass, ttl, rdlen = RR_FIXED.unpack_from(buf, pos)
        pos += 10 + rdlen
        if pos > len(buf):
            raise WireError("truncated rdata")
        if rtype == wire.T_OPT:
            found = Edns(rclass, (ttl >> 16) & 0xFF, bool(ttl & 0x8000), ttl >> 24)
            if edns is not None or buf[name_at] != 0:
                raise _BadOpt("OPT twice or not at the root", found)  # RFC 6891 §6.1.1
            if rdlen:  # most clients send no options (glibc, Windows): no call then
                try:
                    _check_options(buf, pos - rdlen, pos)
                except WireError as exc:
                    raise _BadOpt(str(exc), found) from None
            edns = found
    return edns


def _edns_for_error(buf: bytes, qd: int, pos: int, skip: int, ar: int) -> Edns | None:
    """The asker's OPT, if it can be found, for an error reply (RFC 6891 §7: an OPT in the
    request, an OPT in the response). ``pos``: after the question when ``qd`` is 1."""
    try:
        if qd != 1:
            pos = 12
            for _ in range(qd):  # each turn moves on at least 5 octets or raises
                pos = wire.skip_name(buf, pos) + 4
        return _read_edns(buf, pos, skip, ar)
    except _BadOpt as exc:
        return exc.edns
    except WireError:
        return None


def _not_a_query(
    buf: bytes, flags: int, qd: int, question: bytes, pos: int, payload: int
) -> NoReturn:
    """Raise NOTIMP for another opcode, FORMERR for a question count other than one."""
    an, ns, ar = HEADER.unpack_from(buf)[3:]
    edns = _edns_for_error(buf, qd, pos, an + ns, ar)
    if flags & wire.OPCODE_MASK:
        qcount = 1 if question else 0
        raise MalformedQuery(
            "opcode not implemented",
            _error_reply(buf, wire.NOTIMP, question, qcount, edns, payload),
        )
    raise MalformedQuery(
        "question count is not 1", _error_reply(buf, wire.FORMERR, b"", 0, edns, payload)
    )


def from_wire(
    buf: bytes,
    client: str,
    transport: Transport,
    server_payload: int = DEFAULT_UDP_PAYLOAD,
) -> Query:
    """Parse a query; raise MalformedQuery carrying the error response to send, if any."""
    if len(buf) < 12:
        raise MalformedQuery("shorter than a header", None)
    _qid, flags, qd, an, ns, ar = HEADER.unpack_from(buf)
    if flags & wire.QR:
        # Never answer a response: that is how reflection loops between servers start.
        raise MalformedQuery("response received as query", None)
    # Find the question (when there is exactly one) before deciding, so errors echo it.
    question = b""
    pos = 12
    qname_labels: list[bytes] = []
    if qd == 1:
        qname_labels, pos = _read_question(buf)
        question = bytes(buf[12:pos])
    if flags & wire.OPCODE_MASK or qd != 1:
        _not_a_query(buf, flags, qd, question, pos, server_payload)
    try:
        edns = _read_edns(buf, pos, an + ns, ar)
    except _BadOpt as exc:
        raise MalformedQuery(
            str(exc), _error_reply(buf, wire.FORMERR, question, 1, exc.edns, server_payload)
        ) from None
    except WireError as err:  # not ``exc``: compiled, one name has one type (_BadOpt above)
        raise MalformedQuery(
            str(err), _error_reply(buf, wire.FORMERR, question, 1, None, server_payload)
        ) from None
    if edns is not None and edns.version != 0:
        raise MalformedQuery(
            "EDNS version not supported",
            _error_reply(buf, wire.BADVERS, question, 1, edns, server_payload),
        )
    if transport is Transport.TCP:
        limit = 65535
    elif edns is None:
        limit = MIN_UDP
    else:
        limit = max(MIN_UDP, min(edns.payload, server_payload))
    qtype, qclass = _QTAIL.unpack_from(question, len(question) - 4)
    return Query(
        _qid,
        flags,
        wire.labels_to_text(qname_labels),
        qtype,
        qclass,
        question,
        edns,
        client,
        transport,
        limit,
        cache_key(question, edns is not None and edns.do, flags),
    )
