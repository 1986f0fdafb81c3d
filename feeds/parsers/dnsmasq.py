"""dnsmasq ``address=/d/``, ``server=/d/``, ``local=/d/`` and unbound ``local-zone:`` rules.

All block ``d`` and its subdomains (FORMATS.md §5); forwarding and local data are not blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from feeds.normalize import BELOW, SELF, Entry, ParseStats, normalize_name, strip_inline_comment
from feeds.parsers.base import ParseOptions

# unbound local-zone types that refuse or null the zone; "transparent" and friends do not.
_UNBOUND_BLOCKING = frozenset(
    {
        "always_null",
        "always_nxdomain",
        "always_refuse",
        "always_deny",
        "static",
        "refuse",
        "deny",
        "inform_deny",
    }
)
# One rule may name several domains (address=/a.com/b.net/0.0.0.0); bound the fan-out.
_MAX_NAMES_PER_RULE = 64


def parse(lines: Iterable[str], stats: ParseStats, opts: ParseOptions) -> Iterator[Entry]:
    """Yield SUBTREE entries for dnsmasq and unbound blocking rules."""
    for line in lines:
        line = line.strip()
        if not line or line[0] == "#":
            stats.skipped += 1
            continue
        line = strip_inline_comment(line)
        if line == "server:":
            stats.skipped += 1
            continue
        key, sep, value = line.partition("=")
        if sep and key in ("address", "server", "local"):
            yield from _dnsmasq(key, value, line, stats, opts)
        elif line.startswith("local-zone:"):
            yield from _unbound_zone(line, stats, opts)
        elif line.startswith("local-data:") or line.startswith("local-data-ptr:"):
            stats.reject("unbound_local_data", line)
        else:
            stats.reject("malformed", line)


def _dnsmasq(
    key: str, value: str, line: str, stats: ParseStats, opts: ParseOptions
) -> Iterator[Entry]:
    parts = value.split("/")
    # "/a.com/b.net/answer": parts[0] is empty, the last part is the answer.
    if len(parts) < 3 or parts[0]:
        stats.reject("malformed", line)
        return
    names, answer = parts[1:-1], parts[-1]
    if key == "server" and answer not in ("", "#"):
        # server=/d/1.2.3.4 forwards d to another resolver: not a block.
        stats.reject("dnsmasq_forward", line)
        return
    if key == "server" and answer == "#":
        # "#" for server= means "use the standard servers": also not a block.
        stats.reject("dnsmasq_forward", line)
        return
    if len(names) > _MAX_NAMES_PER_RULE:
        stats.reject("malformed", line)
        return
    if not any(names):
        stats.reject("empty", line)  # "address=//0.0.0.0": a rule naming no domain
        return
    for raw in names:
        if not raw:
            continue
        name = normalize_name(raw, stats, allow_tld=opts.allow_tld)
        if name is None:
            continue
        stats.accepted += 1
        yield Entry(name, SELF | BELOW)


def _unbound_zone(line: str, stats: ParseStats, opts: ParseOptions) -> Iterator[Entry]:
    fields = line[len("local-zone:") :].split()
    if len(fields) != 2:
        stats.reject("malformed", line)
        return
    zone, kind = fields[0].strip('"'), fields[1].lower()
    if kind not in _UNBOUND_BLOCKING:
        stats.reject("unbound_not_block", line)
        return
    name = normalize_name(zone, stats, allow_tld=opts.allow_tld)
    if name is None:
        return
    stats.accepted += 1
    yield Entry(name, SELF | BELOW)
