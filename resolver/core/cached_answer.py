"""An upstream answer kept in wire form, served again with the asker's ID, question and aged TTLs.

Both the full path and the fast path serve answers only through ``render``, so they give the same
bytes by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from resolver.core import wire
from resolver.core.query import Query
from resolver.core.responses import opt_for
from resolver.core.wire import HEADER, U32, WireError

_KEEP_FLAGS = wire.AD | wire.RCODE_MASK


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    flags: int  # the upstream's AD bit and RCODE; the rest is recomputed per asker
    an: int
    ns: int
    ar: int  # without the upstream's OPT record, which is per-hop (RFC 6891 §6.1.1)
    body: bytes  # the sections after the question, TTLs already clamped
    ttl_at: tuple[int, ...]  # offsets of every TTL inside ``body``
    ttls: tuple[int, ...]
    stored_at: float
    ttl: int  # how long the whole answer may be served from cache; 0: not cacheable
    cnames: tuple[int, ...]  # offsets of CNAME/DNAME targets, for the policy check

    @property
    def rcode(self) -> int:
        return self.flags & wire.RCODE_MASK

    @property
    def expires_at(self) -> float:
        return self.stored_at + self.ttl


def from_upstream(resp: bytes, now: float, min_ttl: int, max_ttl: int) -> CachedAnswer:
    """Read an upstream response (already matched to our query); raise WireError if malformed."""
    qend, rrs = wire.walk(resp)
    flags = HEADER.unpack_from(resp)[1]
    rcode = flags & wire.RCODE_MASK
    segments: list[bytes] = []
    cut = 0  # bytes removed before the current point (the OPT record)
    last = qend
    ttl_at: list[int] = []
    ttls: list[int] = []
    cnames: list[int] = []
    an = ns = ar = 0
    neg_ttl = -1
    min_seen = -1
    for rr in rrs:
        end = rr.rdata_at + rr.rdlength
        if rr.rtype == wire.T_OPT:
            segments.append(resp[last : rr.start])
            cut += end - rr.start
            last = end
            continue
        if cut:
            # A record after OPT would be shifted under its own compression pointers; recursive
            # resolvers always put OPT last, so refuse the odd message instead of mangling it.
            raise WireError("record after OPT")
        if rr.section == 0:
            an += 1
            if rr.rtype in (wire.T_CNAME, wire.T_DNAME):
                cnames.append(rr.rdata_at - qend - cut)
        elif rr.section == 1:
            ns += 1
            if rr.rtype == wire.T_SOA and rr.rdlength >= 20:
                minimum = U32.unpack_from(resp, rr.rdata_at + rr.rdlength - 4)[0]
                neg_ttl = min(rr.ttl, minimum)  # RFC 2308 §5
        else:
            ar += 1
        t = min(max(rr.ttl & 0x7FFFFFFF, min_ttl), max_ttl)  # RFC 2181 §8: top bit means 0
        ttl_at.append(rr.ttl_at - qend - cut)
        ttls.append(t)
        if min_seen < 0 or t < min_seen:
            min_seen = t
    segments.append(resp[last:])
    body = bytearray(b"".join(segments))
    if rcode == wire.NOERROR and an:
        cache_ttl = max(min_seen, 0)
    elif rcode in (wire.NXDOMAIN, wire.NOERROR) and neg_ttl >= 0:
        cache_ttl = min(max(neg_ttl, min_ttl), max_ttl)
        # The SOA of a negative answer says how long the negation holds (RFC 2308 §5): never
        # let a client keep it longer than we do.
        ttls = [min(t, cache_ttl) for t in ttls]
    else:
        cache_ttl = 0  # SERVFAIL, REFUSED, negative answers without SOA: not cached
    for off, t in zip(ttl_at, ttls, strict=True):
        U32.pack_into(body, off, t)
    return CachedAnswer(
        flags & _KEEP_FLAGS,
        an,
        ns,
        ar,
        bytes(body),
        tuple(ttl_at),
        tuple(ttls),
        now,
        cache_ttl,
        tuple(cnames),
    )


def cname_targets(entry: CachedAnswer, question: bytes) -> list[str]:
    """The CNAME/DNAME targets of the answer section, as lower-case text."""
    if not entry.cnames:
        return []
    # Compression pointers in the body are relative to the original message, where the question
    # started at offset 12; rebuild that prefix so names can be read.
    msg = bytes(12) + question + entry.body
    base = 12 + len(question)
    out = []
    for off in entry.cnames:
        try:
            labels, _ = wire.read_name(msg, base + off)
        except WireError:
            continue
        out.append(wire.labels_to_text(labels))
    return out


def render(entry: CachedAnswer, query: Query, now: float) -> bytes:
    """The answer for ``query``: its ID, its question (case kept), TTLs aged since storage."""
    keep = entry.flags if (query.do or query.flags & wire.AD) else entry.flags & wire.RCODE_MASK
    flags = wire.QR | wire.RA | (query.flags & (wire.RD | wire.CD)) | keep
    opt = opt_for(query)
    age = int(now - entry.stored_at)
    body = entry.body
    if age > 0 and entry.ttl_at:
        patched = bytearray(body)
        for off, t in zip(entry.ttl_at, entry.ttls, strict=True):
            U32.pack_into(patched, off, t - age if t > age else 0)
        body = bytes(patched)
    header = HEADER.pack(query.id, flags, 1, entry.an, entry.ns, entry.ar + (1 if opt else 0))
    return header + query.question + body + opt
