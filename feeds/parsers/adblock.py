"""Adblock Plus / AdGuard / uBlock rules, read the way AdGuard Home reads them (FORMATS.md §4).

Only whole-host rules become DNS entries: ``||host^`` is SUBTREE(host), ``@@||host^`` an allow,
a bare ``host`` takes the feed's mask. Path rules never block their host (``||github.com/x``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from feeds.normalize import BELOW, SELF, Entry, ParseStats, normalize_name
from feeds.parsers.base import ParseOptions

# Modifiers that still mean "the whole host": urlhaus-filter writes ``||x^$all``.
_WHOLE_HOST = frozenset({"all", "doc", "document", "important", "badfilter"})
# AdGuard Home modifiers that change who or which query type is blocked: not implemented.
_DNS_ONLY = frozenset({"dnstype", "client", "ctag", "denyallow", "dnsrewrite"})
_COSMETIC = ("##", "#@#", "#?#", "#$#", "#%#", "#@$#", "#@%#", "$$", "$@$")


def parse(lines: Iterable[str], stats: ParseStats, opts: ParseOptions) -> Iterator[Entry]:
    """Yield block and allow entries; every other kind of rule is counted by reason."""
    for line in lines:
        line = line.strip()
        if not line or line[0] == "!" or line[0] == "[":
            stats.skipped += 1
            continue
        if any(marker in line for marker in _COSMETIC):
            stats.rejected["abp_cosmetic"] += 1  # silent: normal in mixed lists
            continue
        if line[0] == "#":
            stats.skipped += 1  # some lists use "#" comments; cosmetic rules are gone already
            continue
        entry = _rule(line, stats, opts)
        if entry is not None:
            stats.accepted += 1
            yield entry


def _rule(line: str, stats: ParseStats, opts: ParseOptions) -> Entry | None:
    allow = line.startswith("@@")
    body = line[2:] if allow else line
    important = badfilter = False
    if "$" in body:
        body, _, options = body.partition("$")
        for option in options.split(","):
            key = option.strip().lower().lstrip("~").split("=", 1)[0]
            if key in _DNS_ONLY:
                stats.reject("abp_unsupported_modifier", line)
                return None
            if key not in _WHOLE_HOST:
                stats.reject("abp_browser_modifier", line)
                return None
            important = important or key == "important"
            badfilter = badfilter or key == "badfilter"
        if important:
            stats.note("abp_important")
    if body.startswith("/") and body.endswith("/") and len(body) > 1:
        stats.reject("abp_regex", line)
        return None
    if body.startswith("||"):
        host = body[2:]
        if host.endswith("^|"):
            host = host[:-2]
        elif host.endswith("^"):
            host = host[:-1]
        elif not any(c in host for c in "/:^"):
            # "||host" is a prefix match in ABP; the author meant the host (count it).
            stats.note("abp_missing_caret", line)
        mask = SELF | BELOW
    elif body.startswith("|") or body.startswith("://"):
        stats.reject("abp_unsupported", line)
        return None
    else:
        host = body
        mask = opts.mask or SELF  # uBO "hostname" line: AdGuard Home reads it as exact
    if "/" in host or ":" in host:
        # A URL rule names a page, not a host: github.com must not be blocked for one file.
        stats.reject("abp_path_rule", line)
        return None
    if "^" in host or "|" in host:
        stats.reject("abp_unsupported", line)
        return None
    name = normalize_name(host, stats, allow_tld=opts.allow_tld)
    if name is None:
        return None
    return Entry(name, mask, allow, important, badfilter)
