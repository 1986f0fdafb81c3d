"""The fast path (ARCHITECTURE §2.6): recognise an ordinary query from its raw bytes.

Most of a commune's queries are repeats. For a plain query (one question, no records but an
optional well-formed OPT) this returns what is needed to look the cache up and answer, without
building a Query; anything unusual returns None and takes the full path, which gives the same
bytes for the same question because both render cached answers with ``render_parts``.
"""

from __future__ import annotations

from typing import Final

from resolver.core import wire
from resolver.core.query import MIN_UDP, Query, Transport
from resolver.core.wire import Edns

_LOWER: Final = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_COUNTS_NO_EDNS: Final = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_COUNTS_EDNS: Final = b"\x00\x01\x00\x00\x00\x00\x00\x01"
_FLAG_BYTES: Final = (b"\x00", b"\x01", b"\x02", b"\x03")
_OPT_HEAD: Final = b"\x00\x00\x29"  # root owner name, type OPT
# What stays as itself in a name's text (wire.labels_to_text), and the dot between labels.
_PLAIN_OR_DOT: Final = b"abcdefghijklmnopqrstuvwxyz0123456789-_*."
_TCP_LIMIT: Final = 65535

# (cache key, flags, question, EDNS payload or -1 without EDNS, DO bit): all but the ID, so
# that the parse of a message can be reused for the same bytes under another ID.
FastQuery = tuple[bytes, int, bytes, int, bool]


def parse_fast(data: bytes) -> FastQuery | None:
    n = len(data)
    # QR=0, OPCODE=0 (QUERY) and RD=1: the top five bits and the last of the third byte. A
    # query without RD is never answered from the cache (resolver.stages.recursion).
    if n < 17 or (data[2] & 0xF9) != 0x01:
        return None
    counts = data[4:12]
    pos = 12
    # Walk the labels; compression, long labels and over-long names go to the full path.
    while True:
        ln = data[pos]
        if ln == 0:
            break
        if ln > 63:
            return None
        pos += ln + 1
        if pos >= n:
            return None
    if pos > 12 + 254:
        return None
    qend = pos + 5
    if counts == _COUNTS_NO_EDNS:
        if qend != n:
            return None
        payload = -1
        do = False
    elif counts == _COUNTS_EDNS:
        # Exactly one OPT at the root, version 0, its options filling the rest of the message.
        if n < qend + 11 or data[qend : qend + 3] != _OPT_HEAD or data[qend + 6]:
            return None
        if qend + 11 + ((data[qend + 9] << 8) | data[qend + 10]) != n:
            return None
        # Each option's length must land on the end (a bad one is FORMERR on the full path).
        at = qend + 11
        while at < n:
            if at + 4 > n:
                return None
            at += 4 + ((data[at + 2] << 8) | data[at + 3])
        if at != n:
            return None
        payload = (data[qend + 3] << 8) | data[qend + 4]
        do = bool(data[qend + 7] & 0x80)
    else:
        return None
    name_end = pos + 1
    # The last byte as in Query.cache_key: bit 0 DO, bit 1 CD (0x10 of the fourth byte).
    flag = (1 if do else 0) | ((data[3] & 0x10) >> 3)
    key = data[12:name_end].translate(_LOWER) + data[name_end:qend] + _FLAG_BYTES[flag]
    return key, (data[2] << 8) | data[3], data[12:qend], payload, do


def name_text(key: bytes) -> str:
    """The text of a cache key's name (lower case, no trailing dot), as ``Query.qname`` has it.

    The same text as ``wire.labels_to_text``, which it calls only for names with odd octets:
    replacing each length octet by a dot is all an ordinary name needs.
    """
    end = len(key) - 6  # the root label, type, class and the flags octet follow the name
    if end <= 0:
        return ""
    text = bytearray(key[1:end])
    labels = 1
    pos = key[0]
    n = len(text)
    while pos < n:
        ln = text[pos]
        text[pos] = 46
        pos += ln + 1
        labels += 1
    if text.translate(None, _PLAIN_OR_DOT) or text.count(46) != labels - 1:
        return wire.labels_to_text(wire.read_name(key, 0)[0])  # \DDD escapes, dots in labels
    return text.decode("ascii")


def query_from_fast(
    data: bytes, fq: FastQuery, name: str, client: str, transport: Transport, server_payload: int
) -> Query:
    """The Query ``query.from_wire`` would give for ``data``, from its fast parse: no second
    parse of a query the fast lane could not answer."""
    key, flags, question, payload, do = fq
    qtype = (question[-4] << 8) | question[-3]
    qclass = (question[-2] << 8) | question[-1]
    qid = (data[0] << 8) | data[1]
    if payload < 0:
        edns = None
        limit = MIN_UDP
    else:
        # RFC 6891 §6.1.3: the extended RCODE is the first octet of the OPT's TTL.
        edns = Edns(payload, 0, do, data[12 + len(question) + 5])
        limit = max(MIN_UDP, min(payload, server_payload))
    if transport is Transport.TCP:
        limit = _TCP_LIMIT
    return Query(qid, flags, name, qtype, qclass, question, edns, client, transport, limit, key)
