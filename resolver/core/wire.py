"""Just enough of the DNS wire format (RFC 1035 §4) to route, cache and answer without a full parse.

dnslib parses a whole message in tens of microseconds; the hot path needs only the header, the
question and the OPT record, and the cache only the offsets of TTLs. Everything here reads
untrusted bytes: every offset is bounds-checked and compression pointers may only point backwards,
so a loop cannot hang us.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = struct.Struct("!HHHHHH")
U16 = struct.Struct("!H")
U32 = struct.Struct("!I")
RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength

# Header flag bits (RFC 1035 §4.1.1, RFC 4035 §3.2).
QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
AD = 0x0020
CD = 0x0010
OPCODE_MASK = 0x7800
RCODE_MASK = 0x000F

# RR types and classes used by name.
T_A = 1
T_NS = 2
T_CNAME = 5
T_SOA = 6
T_PTR = 12
T_MX = 15
T_TXT = 16
T_AAAA = 28
T_SRV = 33
T_OPT = 41
T_DNAME = 39
T_ANY = 255
C_IN = 1
C_CH = 3

# RCODEs (RFC 1035, RFC 6891 for the extended BADVERS).
NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5
BADVERS = 16

MAX_NAME = 255  # RFC 1035 §2.3.4, in wire octets
MAX_LABEL = 63

# Bytes that stay as themselves in the text form of a name; others become \DDD (RFC 4343 §2.1).
_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_*")
_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")


class WireError(ValueError):
    """The bytes are not a well-formed DNS message."""


@dataclass(frozen=True, slots=True)
class Edns:
    """The client's OPT record (RFC 6891 §6.1.3)."""

    payload: int  # requestor's UDP payload size
    version: int
    do: bool  # DNSSEC OK
    ext_rcode: int


def read_name(buf: bytes, pos: int) -> tuple[list[bytes], int]:
    """Read a possibly compressed name at ``pos``; return its labels and the offset after it."""
    labels: list[bytes] = []
    end = -1
    total = 1
    n = len(buf)
    limit = pos  # compression pointers must go strictly backwards: no loop can form
    while True:
        if pos >= n:
            raise WireError("name runs past the end")
        ln = buf[pos]
        if ln == 0:
            pos += 1
            break
        if ln & 0xC0 == 0xC0:
            if pos + 1 >= n:
                raise WireError("truncated compression pointer")
            target = ((ln & 0x3F) << 8) | buf[pos + 1]
            if end < 0:
                end = pos + 2
            if target >= limit:
                raise WireError("compression pointer does not point backwards")
            limit = target
            pos = target
            continue
        if ln & 0xC0:
            raise WireError("unknown label type")
        pos += 1
        if pos + ln > n:
            raise WireError("label runs past the end")
        total += ln + 1
        if total > MAX_NAME:
            raise WireError("name longer than 255 octets")
        labels.append(buf[pos : pos + ln])
        pos += ln
    return labels, (end if end >= 0 else pos)


def skip_name(buf: bytes, pos: int) -> int:
    """Return the offset after the name at ``pos`` without collecting labels."""
    n = len(buf)
    while True:
        if pos >= n:
            raise WireError("name runs past the end")
        ln = buf[pos]
        if ln == 0:
            return pos + 1
        if ln & 0xC0 == 0xC0:
            if pos + 1 >= n:
                raise WireError("truncated compression pointer")
            return pos + 2
        if ln & 0xC0:
            raise WireError("unknown label type")
        pos += ln + 1


def labels_to_text(labels: list[bytes]) -> str:
    """Lower-case text form without trailing dot; odd bytes escaped as \\DDD."""
    parts = []
    for raw in labels:
        label = raw.translate(_LOWER)
        if all(c in _PLAIN for c in label):
            parts.append(label.decode("ascii"))
        else:
            parts.append("".join(chr(c) if c in _PLAIN else f"\\{c:03d}" for c in label))
    return ".".join(parts)


def name_to_wire(name: str) -> bytes:
    """Encode a dotted ASCII name (no escapes) as uncompressed wire labels."""
    out = bytearray()
    if name and name != ".":
        for label in name.rstrip(".").split("."):
            b = label.encode("ascii")
            if not 0 < len(b) <= MAX_LABEL:
                raise WireError(f"bad label in {name!r}")
            out.append(len(b))
            out += b
    out.append(0)
    if len(out) > MAX_NAME:
        raise WireError("name longer than 255 octets")
    return bytes(out)


@dataclass(frozen=True, slots=True)
class RRInfo:
    """Where one resource record sits in a message."""

    section: int  # 0 answer, 1 authority, 2 additional
    start: int  # offset of the owner name
    rtype: int
    rclass: int
    ttl: int
    ttl_at: int  # offset of the 4-byte TTL
    rdata_at: int
    rdlength: int


def walk(buf: bytes) -> tuple[int, list[RRInfo]]:
    """Return the offset after the question section and every RR of the message."""
    if len(buf) < 12:
        raise WireError("shorter than a DNS header")
    _, _, qd, an, ns, ar = HEADER.unpack_from(buf)
    pos = 12
    for _ in range(qd):
        pos = skip_name(buf, pos) + 4
        if pos > len(buf):
            raise WireError("question runs past the end")
    qend = pos
    rrs: list[RRInfo] = []
    for section, count in ((0, an), (1, ns), (2, ar)):
        for _ in range(count):
            start = pos
            pos = skip_name(buf, pos)
            if pos + 10 > len(buf):
                raise WireError("record header runs past the end")
            rtype, rclass, ttl, rdlen = RR_FIXED.unpack_from(buf, pos)
            rdata_at = pos + 10
            if rdata_at + rdlen > len(buf):
                raise WireError("rdata runs past the end")
            rrs.append(RRInfo(section, start, rtype, rclass, ttl, pos + 4, rdata_at, rdlen))
            pos = rdata_at + rdlen
    return qend, rrs


def build_opt(payload: int, do: bool, ext_rcode: int = 0, options: bytes = b"") -> bytes:
    """An OPT pseudo-record (RFC 6891 §6.1.2) for a response."""
    ttl = (ext_rcode << 24) | (0x8000 if do else 0)
    return b"\x00" + RR_FIXED.pack(T_OPT, payload, ttl, len(options)) + options


def ede_option(info_code: int, text: str) -> bytes:
    """An Extended DNS Error option (RFC 8914 §2): code 15, INFO-CODE, EXTRA-TEXT."""
    # Bounded (the reason may echo list names), and cut on a character boundary: EXTRA-TEXT
    # must stay valid UTF-8.
    extra = text.encode("utf-8", "replace")[:200].decode("utf-8", "ignore").encode("utf-8")
    return U16.pack(15) + U16.pack(2 + len(extra)) + U16.pack(info_code) + extra
