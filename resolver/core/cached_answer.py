"""Answers kept in wire form and served again with the asker's ID, question and aged TTLs.

Upstream answers and blocked answers are both ``CachedAnswer``s. The full path and the fast path
serve them only through ``render_parts``, so they give the same bytes by construction.
"""

from __future__ import annotations

from typing import NamedTuple

from resolver.core import wire
from resolver.core.block_answer import BlockAnswer
from resolver.core.query import DEFAULT_UDP_PAYLOAD, Query
from resolver.core.wire import HEADER, RR_FIXED, U32, WireError

_KEEP_FLAGS = wire.AD | wire.RCODE_MASK
_ECHO = wire.RD | wire.CD
# Module constants: read once per record in from_upstream's loop.
_T_OPT = wire.T_OPT
_T_SOA = wire.T_SOA
_ALIASES = frozenset((wire.T_CNAME, wire.T_DNAME))
_QNAME_PTR = b"\xc0\x0c"  # the question name always starts at offset 12
EDE_BLOCKED = 15  # RFC 8914 §4.16
# Blocked answers stay cached until the lists change (a swap clears the cache); this only
# bounds how long one survives if nothing ever changes.
BLOCKED_CACHE_TTL = 3600


class CachedAnswer(NamedTuple):
    """One cached answer, in wire form.

    A tuple of plain values on purpose: CPython's cyclic GC stops tracking such a tuple, so a
    full cache costs the old-generation collections nothing. As a slots dataclass (tracked for
    ever, with a mutable memo inside, in a (generation, answer) pair) 80,000 answers made every
    full collection a 58 ms pause. A subclass of tuple stays tracked, but it is now the only
    object per answer.
    """

    flags: int  # the upstream's AD bit and RCODE; the rest is recomputed per asker
    an: int
    ns: int
    ar: int  # without the upstream's OPT record, which is per-hop (RFC 6891 §6.1.1)
    body: bytes  # the sections after the question, TTLs already clamped
    ttl_at: tuple[int, ...]  # offsets of every TTL inside ``body`` (aged on each render)
    ttls: tuple[int, ...]
    stored_at: float
    ttl: int  # how long the whole answer may be served from cache; 0: not cacheable
    cnames: tuple[int, ...] = ()  # offsets of CNAME/DNAME targets, for the policy check
    ede: bytes = b""  # an EDNS option for askers that use EDNS (the block reason)
    # For blocked answers: what the block log needs on every hit.
    blocked: bool = False
    qname: str = ""
    reason: str = ""
    category: str = ""
    generation: int = 0  # of the lists when cached (set by CacheStage.store)

    @property
    def rcode(self) -> int:
        return self.flags & wire.RCODE_MASK


def _read_records(
    resp: bytes, qend: int, rrs: list[wire.RRInfo], min_ttl: int, max_ttl: int
) -> tuple[bytearray, tuple[int, int, int], list[int], list[int], list[int], int]:
    """The sections after the question without the OPT record, with what the cache needs.

    Returns the body, the (answer, authority, additional) counts, the TTL offsets in the body
    and the clamped TTLs, the CNAME/DNAME target offsets, and the negative-answer TTL of the
    authority's SOA (RFC 2308 §5; -1 when there is none).
    """
    segments: list[bytes] = []
    cut = 0  # bytes removed before the current point (the OPT record)
    last = qend
    ttl_at: list[int] = []
    ttls: list[int] = []
    cnames: list[int] = []
    an = ns = ar = 0
    neg_ttl = -1
    for rr in rrs:
        if rr.rtype == _T_OPT:
            end = rr.rdata_at + rr.rdlength
            segments.append(resp[last : rr.start])
            cut += end - rr.start
            last = end
            continue
        if cut:
            # A record after OPT would be shifted under its own compression pointers; recursive
            # resolvers always put OPT last, so refuse the odd message instead of mangling it.
            raise WireError("record after OPT")
        ttl = rr.ttl
        raw_ttl = 0 if ttl & 0x80000000 else ttl  # RFC 2181 §8: top bit set means 0
        if rr.section == 0:
            an += 1
            if rr.rtype in _ALIASES:
                cnames.append(rr.rdata_at - qend)
        elif rr.section == 1:
            ns += 1
            if rr.rtype == _T_SOA and rr.rdlength >= 20:
                minimum = U32.unpack_from(resp, rr.rdata_at + rr.rdlength - 4)[0]
                # RFC 2308 §5; MINIMUM is a TTL too: top bit set means 0, never a negation
                # held for max_ttl while the SOA itself says 0.
                neg_ttl = min(raw_ttl, 0 if minimum & 0x80000000 else minimum)
        else:
            ar += 1
        ttl_at.append(rr.ttl_at - qend)
        ttls.append(min(max(raw_ttl, min_ttl), max_ttl))
    # Up to the end of the last record: bytes after it (junk from a broken upstream) would sit
    # between the records and the OPT record rendered for the asker, and break the answer.
    segments.append(resp[last : rrs[-1].rdata_at + rrs[-1].rdlength if rrs else qend])
    return bytearray(b"".join(segments)), (an, ns, ar), ttl_at, ttls, cnames, neg_ttl


def from_upstream(resp: bytes, now: float, min_ttl: int, max_ttl: int) -> CachedAnswer:
    """Read an upstream response (already matched to our query); raise WireError if malformed."""
    qend, rrs = wire.walk(resp)
    flags = HEADER.unpack_from(resp)[1]
    body, counts, ttl_at, ttls, cnames, neg_ttl = _read_records(resp, qend, rrs, min_ttl, max_ttl)
    rcode = flags & wire.RCODE_MASK
    an, ns, ar = counts
    if rcode == wire.NOERROR and an:
        cache_ttl = max(min(ttls), 0)
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


def blocked_entry(
    qname: str,
    qtype: int,
    qclass: int,
    how: BlockAnswer,
    reason: str,
    category: str,
    now: float,
    ede: bytes | None = None,
) -> CachedAnswer:
    """The answer to a blocked name, with an Extended DNS Error saying which list (RFC 8914).

    ``ede``: that option, if the caller keeps it per reason (``ede_blocked``)."""
    if ede is None:
        ede = ede_blocked(reason)
    rcode, body, an = wire.NOERROR, b"", 0
    if how.mode == "nxdomain":
        rcode = wire.NXDOMAIN
    elif how.mode == "refused":
        rcode = wire.REFUSED
    elif qclass == wire.C_IN:
        if qtype == wire.T_A and how.has_ipv4:
            body = _QNAME_PTR + RR_FIXED.pack(wire.T_A, wire.C_IN, how.ttl, 4) + how.ipv4
        elif qtype == wire.T_AAAA and how.has_ipv6:
            body = _QNAME_PTR + RR_FIXED.pack(wire.T_AAAA, wire.C_IN, how.ttl, 16) + how.ipv6
    ns = 0
    if body:
        an = 1
    elif rcode != wire.REFUSED:
        # NXDOMAIN, or NODATA in null/sinkhole mode: an SOA, so downstream caches keep the
        # negation (RFC 2308 §3) as they do the box's local ones.
        body, ns = how.soa, 1
    # TTLs of blocked answers are not aged: they are policy, not data with a lifetime.
    return CachedAnswer(
        rcode,
        an,
        ns,
        0,
        body,
        (),
        (),
        now,
        BLOCKED_CACHE_TTL,
        (),
        ede,
        True,
        qname,
        reason,
        category,
    )


def ede_blocked(reason: str) -> bytes:
    """The EDE option of a block for ``reason`` (RFC 8914 §4.16, Blocked)."""
    return wire.ede_option(EDE_BLOCKED, reason)


STALE_TTL = 30  # RFC 8767 §4: TTL of records served stale


def stale_copy(entry: CachedAnswer, now: float) -> CachedAnswer:
    """``entry`` as served past its expiry (RFC 8767): every TTL set to 30 s."""
    body = bytearray(entry.body)
    for off in entry.ttl_at:
        U32.pack_into(body, off, STALE_TTL)
    n = len(entry.ttl_at)
    return entry._replace(body=bytes(body), ttls=(STALE_TTL,) * n, stored_at=now, ttl=STALE_TTL)


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


def render_parts(
    entry: CachedAnswer,
    qid: int,
    qflags: int,
    question: bytes,
    edns: bool,
    do: bool,
    now: float,
) -> bytes:
    """The answer for one asker: its ID, its question (case kept), TTLs aged since storage."""
    keep = entry.flags if (do or qflags & wire.AD) else entry.flags & wire.RCODE_MASK
    flags = wire.QR | wire.RA | (qflags & _ECHO) | keep
    ar = entry.ar
    opt = b""
    if edns:
        ar += 1
        ede = entry.ede
        opt = (
            b"\x00"
            + RR_FIXED.pack(wire.T_OPT, DEFAULT_UDP_PAYLOAD, 0x8000 if do else 0, len(ede))
            + ede
        )
    body = entry.body
    if entry.ttl_at:
        age = int(now - entry.stored_at)
        if age > 0:
            # Patched on every render: repeats within a second come from the UDP loop's memo
            # of rendered answers (CacheStage.rendered), so this runs about once a second per
            # popular question.
            patched = bytearray(body)
            for off, t in zip(entry.ttl_at, entry.ttls, strict=True):
                U32.pack_into(patched, off, t - age if t > age else 0)
            body = bytes(patched)
    return HEADER.pack(qid, flags, 1, entry.an, entry.ns, ar) + question + body + opt


def render(entry: CachedAnswer, query: Query, now: float) -> bytes:
    return render_parts(
        entry, query.id, query.flags, query.question, query.edns is not None, query.do, now
    )
