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
_RR_FIXED_UNPACK = RR_FIXED.unpack_from
_U32_UNPACK = U32.unpack_from
_U32_PACK_INTO = U32.pack_into
_skip_name = wire.skip_name
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


# What _read_records finds: where the kept body ends, the kept (answer, authority, additional)
# counts, TTL offsets in the body, clamped TTLs, whether any TTL differs from the wire's, the
# CNAME/DNAME target offsets, and the negative TTL of the authority's SOA (-1: none).
_Records = tuple[int, int, int, int, list[int], list[int], bool, list[int], int]


def _skip_question(resp: bytes) -> tuple[int, int, int, int, int]:
    """The header's flags and record counts, and the offset after the question (RFC 1035 §4.1)."""
    n = len(resp)
    if n < 12:
        raise WireError("shorter than a DNS header")
    _, flags, qd, an, ns, ar = HEADER.unpack_from(resp)
    pos = 12
    for _ in range(qd):
        pos = _skip_name(resp, pos) + 4
        if pos > n:
            raise WireError("question runs past the end")
    return flags, an, ns, ar, pos


def _read_records(
    resp: bytes, qend: int, counts: tuple[int, int, int], min_ttl: int, max_ttl: int
) -> _Records:
    """One pass over the records (RFC 1035 §4.1.3): what the cache needs, nothing allocated
    per record but its offsets. The OPT record is per hop (RFC 6891 §6.1.1): the body ends
    where it starts; a record after it would lose its place, so the message is refused."""
    n = len(resp)
    unpack = _RR_FIXED_UNPACK
    ttl_at: list[int] = []
    ttls: list[int] = []
    cnames: list[int] = []
    kept = [0, 0, 0]
    neg_ttl = opt_at = -1
    changed = False
    pos = qend
    for section, count in enumerate(counts):
        for _ in range(count):
            start = pos
            # The owner is nearly always a pointer; a cut one fails the bound check below.
            pos = pos + 2 if pos < n and resp[pos] >= 0xC0 else _skip_name(resp, pos)
            if pos + 10 > n:
                raise WireError("record header runs past the end")
            rtype, _, ttl, rdlen = unpack(resp, pos)
            rdata_at = pos + 10
            pos = rdata_at + rdlen
            if pos > n:
                raise WireError("rdata runs past the end")
            if rtype == _T_OPT:
                opt_at = start if opt_at < 0 else opt_at
                continue
            if opt_at >= 0:
                raise WireError("record after OPT")
            t = 0 if ttl & 0x80000000 else ttl  # RFC 2181 §8: top bit set means 0
            if section == 0:
                if rtype in _ALIASES:
                    cnames.append(rdata_at - qend)
            elif section == 1 and rtype == _T_SOA and rdlen >= 20:
                minimum = _U32_UNPACK(resp, pos - 4)[0]
                # RFC 2308 §5; MINIMUM is a TTL too: top bit set means 0, never a negation
                # held for max_ttl while the SOA itself says 0.
                neg_ttl = min(t, 0 if minimum & 0x80000000 else minimum)
            kept[section] += 1
            t = t if t > min_ttl else min_ttl
            t = t if t < max_ttl else max_ttl
            changed = changed or t != ttl
            ttl_at.append(rdata_at - 6 - qend)
            ttls.append(t)
    # Bytes after the last record (junk from a broken upstream) are not kept either: they would
    # sit between the records and the OPT record rendered for the asker.
    end = opt_at if opt_at >= 0 else pos
    return end, kept[0], kept[1], kept[2], ttl_at, ttls, changed, cnames, neg_ttl


def from_upstream(resp: bytes, now: float, min_ttl: int, max_ttl: int) -> CachedAnswer:
    """Read an upstream response (already matched to our query); raise WireError if malformed."""
    flags, an, ns, ar, qend = _skip_question(resp)
    end, an, ns, ar, ttl_at, ttls, changed, cnames, neg_ttl = _read_records(
        resp, qend, (an, ns, ar), min_ttl, max_ttl
    )
    rcode = flags & wire.RCODE_MASK
    if rcode == wire.NOERROR and an:
        cache_ttl = max(min(ttls), 0)
    elif rcode in (wire.NXDOMAIN, wire.NOERROR) and neg_ttl >= 0:
        cache_ttl = min(max(neg_ttl, min_ttl), max_ttl)
        # The SOA of a negative answer says how long the negation holds (RFC 2308 §5): never
        # let a client keep it longer than we do.
        if max(ttls) > cache_ttl:
            ttls = [t if t < cache_ttl else cache_ttl for t in ttls]
            changed = True
    else:
        cache_ttl = 0  # SERVFAIL, REFUSED, negative answers without SOA: not cached
    body = resp[qend:end]
    if changed:  # the stored bytes carry the TTLs served: clamped, capped
        patched = bytearray(body)
        for off, t in zip(ttl_at, ttls, strict=True):
            _U32_PACK_INTO(patched, off, t)
        body = bytes(patched)
    return CachedAnswer(
        flags & _KEEP_FLAGS,
        an,
        ns,
        ar,
        body,
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
    """The CNAME/DNAME targets of the answer section, as lower-case text.

    Raises WireError if one cannot be read (a pointer into its own label, past 255 octets): an
    alias the lists cannot judge must not reach the client unjudged."""
    if not entry.cnames:
        return []
    # Compression pointers in the body are relative to the original message, where the question
    # started at offset 12; rebuild that prefix so names can be read.
    msg = bytes(12) + question + entry.body
    base = 12 + len(question)
    out = []
    for off in entry.cnames:
        labels, _ = wire.read_name(msg, base + off)
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
