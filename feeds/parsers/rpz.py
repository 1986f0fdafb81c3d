"""Response Policy Zones: ``name CNAME .`` is EXACT, ``*.name CNAME .`` WILDCARD-ONLY.

Owners are relative to the zone (FORMATS.md §6). Both lines together merge into SUBTREE in the
compiler (scope bits OR-ed). ``rpz-passthru.`` is an allow; non-QNAME triggers are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from feeds.normalize import BELOW, SELF, Entry, ParseStats, normalize_name, rpz_ip_network
from feeds.parsers.base import ParseOptions

_CLASSES = frozenset({"in", "ch", "hs", "cs"})
_ZONE_TYPES = frozenset({"soa", "ns", "dnskey", "rrsig", "nsec", "nsec3", "ds"})
_LOCAL_DATA = frozenset({"a", "aaaa", "txt", "mx", "ptr", "srv", "dname"})
# Special triggers (response IP, name server, client) are not QNAME triggers.
_SPECIAL = ("rpz-ip", "rpz-nsdname", "rpz-nsip", "rpz-client-ip")
# A hostile "(" that never closes must not swallow the rest of the zone.
_MAX_PAREN_LINES = 32


def parse(lines: Iterable[str], stats: ParseStats, opts: ParseOptions) -> Iterator[Entry]:
    """Yield EXACT, WILDCARD-ONLY and allow entries from CNAME and local-data records."""
    origin = ""  # the zone apex, from the first $ORIGIN, without the trailing dot
    in_parens = 0  # lines left to skip inside a multi-line record, bounded
    for line in lines:
        if ";" in line:
            line = line.split(";", 1)[0]
        if in_parens:
            in_parens = 0 if ")" in line else in_parens - 1
            stats.skipped += 1
            continue
        if not line.strip():
            stats.skipped += 1
            continue
        if "(" in line and ")" not in line:
            in_parens = _MAX_PAREN_LINES
            stats.skipped += 1
            continue
        if line[0] in " \t":
            # No owner: another record of the previous owner (the apex NS in every real file).
            stats.skipped += 1
            continue
        fields = line.split()
        head = fields[0].upper()
        if head == "$ORIGIN" and len(fields) >= 2:
            origin = origin or fields[1].lower().rstrip(".")
            stats.skipped += 1
            continue
        if head == "$TTL":
            stats.skipped += 1
            continue
        if head == "$INCLUDE":
            stats.reject("rpz_include", line)  # never read another file named by a feed
            continue
        if head.startswith("$"):
            stats.reject("malformed", line)
            continue
        entry = _record(fields, line, origin, stats, opts)
        if entry is not None:
            stats.accepted += 1
            yield entry


def _record(
    fields: list[str], line: str, origin: str, stats: ParseStats, opts: ParseOptions
) -> Entry | None:
    owner = fields[0]
    rest = fields[1:]
    # Optional TTL and class, in either order (RFC 1035 §5.1).
    while rest and (rest[0].isdigit() or rest[0].lower() in _CLASSES):
        rest = rest[1:]
    if not rest:
        stats.reject("malformed", line)
        return None
    rtype = rest[0].lower()
    target = rest[1].lower() if len(rest) > 1 else ""
    if owner == "@" or rtype in _ZONE_TYPES:
        stats.skipped += 1
        return None
    allow = False
    if rtype == "cname":
        if target in (".", "*.", "rpz-drop."):
            pass  # NXDOMAIN, NODATA, drop: all blocks
        elif target == "rpz-passthru.":
            allow = True
        elif target == "rpz-tcp-only.":
            stats.reject("rpz_tcp_only", line)
            return None
        else:
            stats.note("rpz_local_data", line)  # a redirect: block, answer with our sinkhole
    elif rtype in _LOCAL_DATA:
        stats.note("rpz_local_data", line)
    else:
        stats.reject("malformed", line)
        return None
    owner = owner.lower()
    if owner.endswith("."):
        owner = owner[:-1]
        if origin and (owner == origin or owner.endswith("." + origin)):
            owner = owner[: -len(origin)].rstrip(".")
        else:
            stats.note("rpz_absolute_owner", line)
    if owner.endswith(".rpz-ip") and not allow:
        # A response-IP trigger: an answer into that network is blocked (resolver/stages/
        # answer_ip.py); still no name, so counted as the other special triggers are.
        net = rpz_ip_network(owner[: -len(".rpz-ip")])
        if net is not None:
            stats.keep_ip(net)
    if any(owner == s or owner.endswith("." + s) for s in _SPECIAL):
        stats.reject("rpz_nonqname_trigger", line)
        return None
    mask = SELF
    if owner.startswith("*."):
        owner = owner[2:]
        mask = BELOW
    name = normalize_name(owner, stats, allow_tld=opts.allow_tld)
    if name is None:
        return None
    return Entry(name, mask, allow)
