"""The names no feed may block: the Public Suffix List and the never-block list.

Public suffixes come from the ``publicsuffixlist`` package's bundled copy of the PSL, *with*
its private section (github.io, vercel.app, duckdns.org...), read into plain sets once per
update: the package's own ``is_public`` costs ~4 µs a name, too slow for millions.

A never-block line may end with the word ``resolver``: a public resolver's name (dns.google,
cloudflare-dns.com), kept from threat feeds in case the box uses it as its upstream. The box
reaches its upstreams by address, so a ``bypass`` feed may block those names, unless one is a
configured upstream (``upstream_names``): that one stays unblocked (feeds/compiler.py).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Final, Literal

import publicsuffixlist

from feeds.normalize import ParseStats, normalize_name
from resolver.config.upstream_spec import UpstreamSpec

log = logging.getLogger(__name__)

# How far an entry is from being a public suffix.
PublicKind = Literal["rule", "wildcard"] | None

# The word after a public resolver's name on a never-block line.
RESOLVER_TAG: Final = "resolver"


class PublicSuffixes:
    """Set-based PSL lookups: a listed rule, a name under a ``*.`` rule, or neither."""

    __slots__ = ("exceptions", "rules", "wildcards")

    def __init__(self, lines: Iterable[str]) -> None:
        self.rules: set[str] = set()
        self.wildcards: set[str] = set()  # "*.ck" is stored as "ck"
        self.exceptions: set[str] = set()  # "!www.ck" is stored as "www.ck"
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("//"):
                continue
            rule = line.split()[0]
            target = self.rules
            if rule.startswith("!"):
                rule, target = rule[1:], self.exceptions
            elif rule.startswith("*."):
                rule, target = rule[2:], self.wildcards
            encoded = _encode(rule)
            if encoded:
                target.add(encoded)

    @classmethod
    def bundled(cls) -> PublicSuffixes:
        """The PSL shipped with the ``publicsuffixlist`` package."""
        with open(publicsuffixlist.PSLFILE, encoding="utf-8") as f:
            return cls(f)

    def kind(self, name: str) -> PublicKind:
        """``rule`` if ``name`` is listed (com, gouv.fr, github.io), ``wildcard`` if it is
        public only through a ``*.`` rule (x.at.ply.gg: one tenant's host), else None."""
        if name in self.rules:
            return "rule"
        if name in self.exceptions:
            return None
        dot = name.find(".")
        if dot >= 0 and name[dot + 1 :] in self.wildcards:
            return "wildcard"
        return None


def _encode(rule: str) -> str:
    """PSL rules are UTF-8; feeds and queries use A-labels."""
    if rule.isascii():
        return rule.lower()
    try:
        return rule.encode("idna").decode("ascii")
    except UnicodeError:
        return ""


def bundled_never_block_lines() -> list[str]:
    """The shipped feeds/data/never-block.txt, one line per item."""
    text = resources.files("feeds").joinpath("data/never-block.txt").read_text("utf-8")
    return text.split("\n")


def _never_block_lines(path: str) -> list[str]:
    return Path(path).read_text("utf-8").split("\n") if path else bundled_never_block_lines()


def load_never_block(
    path: str = "", extra: Iterable[str] = (), feed_hosts: Iterable[str] = ()
) -> frozenset[str]:
    """The protected names: the shipped list (or ``path`` instead), ``extra`` and feed hosts."""
    return parse_names([*_never_block_lines(path), *extra, *feed_hosts], "never-block list")


def load_public_resolvers(path: str = "") -> frozenset[str]:
    """The names of the never-block list (shipped, or ``path``) tagged ``resolver``."""
    return parse_names(_never_block_lines(path), "never-block list", resolvers_only=True)


def upstream_names(specs: Iterable[UpstreamSpec]) -> frozenset[str]:
    """The names of the configured upstreams (DoT certificate names, DoH hosts): never blocked
    by any feed, even a bypass feed. Plain DNS upstreams are addresses and have none."""
    names = set()
    for spec in specs:
        for name in (spec.server_name, spec.host if spec.kind == "https" else None):
            if name and not _is_address(name):
                names.add(name)
    return parse_names(names, "upstream.servers")


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def parse_names(
    lines: Iterable[str], what: str = "name list", *, resolvers_only: bool = False
) -> frozenset[str]:
    """Normalised names from lines with ``#`` comments; invalid lines are logged and skipped.

    A name may be followed by the word ``resolver`` (RESOLVER_TAG); with ``resolvers_only``,
    only those names are returned.
    """
    names: set[str] = set()
    stats = ParseStats()
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        tagged = len(parts) == 2 and parts[1] == RESOLVER_TAG
        if tagged:
            line = parts[0]
        elif resolvers_only:
            continue
        name = normalize_name(line, stats)
        if name is not None:
            names.add(name)
    if stats.rejected:
        log.warning("%s: ignored invalid lines %r", what, dict(stats.examples))
    return frozenset(names)
