"""Merge parsed feeds into one blocklist: deduplicate, subsume, guard, keep provenance.

FORMATS.md §9. Per feed, entries are collected into a ``FeedSet`` (duplicates merged, RPZ
``x`` + ``*.x`` OR-ed into SUBTREE, ``$badfilter`` applied). Across feeds, one dict maps each
name to ``owners << 2 | mask``: the bit set of the feeds listing it and its scope bits.
``finish`` then refuses what must never be blocked and drops what a parent already covers.

Public resolvers' names (never-block lines tagged ``resolver``) are refused to every feed but
the ``bypass`` ones: blocking public DNS over HTTPS is what those feeds are for, and the box
reaches its upstreams by address. The configured upstreams' own names stay refused to all.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feeds.never_block import PublicSuffixes
from feeds.normalize import BELOW, EXAMPLES_PER_REASON, MASK_TO_SCOPE, SELF, Entry, ParseStats
from feeds.sources import Feed
from resolver import blocklist_file
from resolver.core.categories import BYPASS

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FeedSet:
    """One feed's entries after per-feed deduplication."""

    blocks: dict[str, int] = field(default_factory=dict)  # name -> scope mask
    allows: dict[str, int] = field(default_factory=dict)  # name -> scope mask
    important: set[str] = field(default_factory=set)  # ABP $important blocks
    ips: set[str] = field(default_factory=set)  # address indicators ("192.0.2.1/32")

    def __len__(self) -> int:
        return len(self.blocks) + len(self.allows) + len(self.ips)


def collect(entries: Iterable[Entry], stats: ParseStats) -> FeedSet:
    """Gather a feed's entries; ``$badfilter`` rules cancel the rule they name (counted)."""
    fs = FeedSet()
    blocks, allows = fs.blocks, fs.allows
    get = blocks.get
    cancelled: list[Entry] = []
    # Unpacking beats attribute access here: this loop runs once per line of every feed.
    for e in entries:
        name, mask, allow, important, badfilter = e
        if not (allow or important or badfilter):
            blocks[name] = get(name, 0) | mask
        elif badfilter:
            cancelled.append(e)
        elif allow:
            allows[name] = allows.get(name, 0) | mask
        else:
            blocks[name] = get(name, 0) | mask
            fs.important.add(name)
    for e in cancelled:
        # AdGuard drops the identical rule; merged scopes make "identical" mean same name here.
        target = allows if e.allow else blocks
        if target.pop(e.name, None) is not None:
            stats.note("badfilter", e.name)
    fs.ips = stats.ips
    return fs


@dataclass(slots=True)
class CompileReport:
    """What the merge kept, dropped and refused."""

    entries: int = 0
    subsumed: int = 0
    ranges: int = 0  # address indicators (IPs and CIDR blocks)
    allowed: int = 0  # allow entries kept under a broader block (blocklist_file.ALLOW)
    refused: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def refuse(self, reason: str, name: str) -> None:
        """Count a refused entry and keep a few examples for the warning."""
        self.refused[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES_PER_REASON:
            kept.append(name)


class Compiler:
    """Accumulates feed sets, then produces the entries and provenance of the artifact."""

    def __init__(
        self,
        feeds: Sequence[Feed],
        psl: PublicSuffixes,
        never_block: Iterable[str],
        allowlist: Iterable[str] = (),
        *,
        public_resolvers: Iterable[str] = (),
        upstreams: Iterable[str] = (),
    ) -> None:
        self.feeds = tuple(feeds)
        self.psl = psl
        self.upstreams = frozenset(upstreams)  # never blocked, by any feed
        self.protected = frozenset(never_block) | self.upstreams
        self.local_allow = frozenset(allowlist)
        # Parents of protected names: a SUBTREE block there would swallow the protected name.
        self.protected_parents = frozenset(p for n in self.protected for p in _ancestors(n))
        # What a bypass feed may not block: the never-block list but the public resolvers, which
        # are its very targets (the configured upstreams stay, they are in ``protected``).
        waived = frozenset(public_resolvers) - self.upstreams
        self.bypass_protected = self.protected - waived if waived else self.protected
        self._bypass_feeds = 0  # bit set of the bypass feeds, when anything is waived for them
        for i, feed in enumerate(self.feeds):
            if waived and feed.category == BYPASS:
                self._bypass_feeds |= 1 << i
        self._names: dict[str, int] = {}  # name -> owners << 2 | mask
        self._allows: dict[str, int] = {}
        self._important: set[str] = set()
        self._ips: dict[str, int] = {}  # network -> owners (a bit per feed)
        self._tld_feeds = 0  # bit set of the feeds allowed to block whole TLDs
        for i, feed in enumerate(self.feeds):
            if feed.allow_tld:
                self._tld_feeds |= 1 << i

    def add(self, index: int, fs: FeedSet) -> None:
        """Merge the entries of feed ``index`` (its position in ``feeds``)."""
        bit = 1 << (index + 2)
        names = self._names
        for name, mask in fs.blocks.items():
            names[name] = names.get(name, 0) | bit | mask
        allows = self._allows
        for name, mask in fs.allows.items():
            allows[name] = allows.get(name, 0) | mask
        self._important |= fs.important
        ips = self._ips
        for net in fs.ips:
            ips[net] = ips.get(net, 0) | bit >> 2

    def networks(
        self, provenance: list[tuple[str, str]], report: CompileReport
    ) -> list[tuple[blocklist_file.Network, int]]:
        """The address indicators as (network, provenance index), ``provenance`` extended with
        the feed combinations only they have. Private, loopback and other non-global addresses
        are refused: a feed listing 127.0.0.1 or 0.0.0.0 would block every local answer and the
        box's own block answers."""
        index = {p: i for i, p in enumerate(provenance)}
        out: list[tuple[blocklist_file.Network, int]] = []
        for text, owners in self._ips.items():
            net = ipaddress.ip_network(text)
            if not net.is_global or net.prefixlen < (8 if net.version == 4 else 19):
                report.refuse("ip_not_global" if not net.is_global else "ip_too_wide", text)
                continue
            prov = self._provenance(owners)
            if prov not in index:
                index[prov] = len(provenance)
                provenance.append(prov)
            out.append((net, index[prov]))
        return out

    def finish(self) -> tuple[Iterator[tuple[str, int, int]], list[tuple[str, str]], CompileReport]:
        """Apply the guards and subsumption; return (entries, provenance, report).

        The entries iterator yields (name, scope, provenance index) for ``write_atomic``.
        """
        report = CompileReport()
        self._guard(report)
        self._subsume(report)
        names = self._names
        report.entries = len(names)
        provenance: list[tuple[str, str]] = []
        index: dict[int, int] = {}
        for owners in {v >> 2 for v in names.values()}:
            index[owners] = len(provenance)
            provenance.append(self._provenance(owners))
        for reason, count in sorted(report.refused.items()):
            if reason == "upstream":
                log.warning(
                    "kept %d names of bypass feeds unblocked: the box's configured upstream"
                    " resolvers (upstream.servers), e.g. %r",
                    count,
                    report.examples[reason],
                )
                continue
            log.warning(
                "refused %d feed entries (%s), e.g. %r", count, reason, report.examples[reason]
            )
        entries: Iterator[tuple[str, int, int]] = (
            (n, MASK_TO_SCOPE[v & 3], index[v >> 2]) for n, v in names.items()
        )
        allowed = self._allow_entries()
        report.allowed = len(allowed)
        if allowed:
            provenance.append(("allow", ""))
            entries = itertools.chain(
                entries, ((n, scope, len(provenance) - 1) for n, scope in allowed)
            )
        return entries, provenance, report

    def _allow_entries(self) -> list[tuple[str, int]]:
        """Allow rules (a feed's ``@@||x^``, ``feeds.allowlist``) under a block kept for a
        parent: ``@@||adclick.g.doubleclick.net^`` under another feed's ``||g.doubleclick.net^``.
        Without an entry of its own the parent's block would cover it. A parent blocked with
        ``$important`` beats the allow, as in AdGuard."""
        names, important = self._names, self._important
        wanted = dict(self._allows)
        for name in self.local_allow:
            wanted[name] = SELF | BELOW
        out: list[tuple[str, int]] = []
        for name, mask in wanted.items():
            if name in names:
                continue  # blocked itself ($important): the allow lost
            for parent in _ancestors(name):
                value = names.get(parent)
                if value is not None and value & BELOW:
                    if parent not in important:
                        scope = blocklist_file.ALLOW if mask & BELOW else blocklist_file.ALLOW_EXACT
                        out.append((name, scope))
                    break
        return out

    def _provenance(self, owners: int) -> tuple[str, str]:
        feeds = [f for i, f in enumerate(self.feeds) if owners >> i & 1]
        return ",".join(f.source for f in feeds), ",".join(sorted({f.category for f in feeds}))

    def _guard(self, report: CompileReport) -> None:
        names, allows, important = self._names, self._allows, self._important
        protected, parents, local = self.protected, self.protected_parents, self.local_allow
        psl = self.psl
        allow_below = {n for n, m in allows.items() if m & BELOW}
        # Only a name ending in the last two labels of a guarded name can sit under one: this
        # test spares the parent walk for nearly every name (all guards have two labels or more).
        tails = {_last_two(n) for n in (*protected, *local, *allow_below)}
        drop: list[str] = []
        narrowed: list[tuple[str, int]] = []
        for name, value in names.items():
            mask = value & 3
            reason = ""
            if name in protected or (mask & BELOW and name in parents):
                reason = "protected"
            elif name in local:
                reason = "allowlist"
            elif allows and name not in important and allows.get(name, 0) & SELF:
                reason = "allowed_by_feed"
            elif _last_two(name) in tails:
                reason = self._guarded_parent(name, protected)
            if reason == "protected" and (value >> 2) & self._bypass_feeds:
                # A public resolver's name: refused to the threat feeds, not to bypass ones.
                reason, kept = self._bypass_reason(name, value)
                if not reason and kept != value:
                    value = kept
                    narrowed.append((name, value))
            if not reason:
                kind = psl.kind(name)
                if kind == "rule" and not ("." not in name and (value >> 2) & self._tld_feeds):
                    reason = "public_suffix"
                elif kind == "wildcard":
                    # ams3.digitaloceanspaces.com under "*.digitaloceanspaces.com": the PSL
                    # makes it a public suffix, a region endpoint every tenant shares; even an
                    # exact block of it cuts them all off. Refused like any public suffix (a
                    # tenant's own name, one label more, stays blockable).
                    reason = "public_suffix"
            if reason:
                report.refuse(reason, name)
                drop.append(name)
        for name in drop:
            del names[name]
        for name, value in narrowed:
            names[name] = value

    def _bypass_reason(self, name: str, value: int) -> tuple[str, int]:
        """Why the bypass feeds listing ``name`` may not block it (or ""), and the value with
        the bypass feeds alone as owners. Rare: only names at or around a protected one."""
        mask = value & 3
        for guarded, reason in ((self.upstreams, "upstream"), (self.bypass_protected, "protected")):
            if name in guarded or any(p in guarded for p in _ancestors(name)):
                return reason, value
            if mask & BELOW and any(name in _ancestors(g) for g in guarded):
                return reason, value
        if name in self.local_allow:
            return "allowlist", value
        allows = self._allows
        if allows and name not in self._important and allows.get(name, 0) & SELF:
            return "allowed_by_feed", value
        reason = self._guarded_parent(name, self.bypass_protected)
        return reason, value & (self._bypass_feeds << 2 | 3)

    def _guarded_parent(self, name: str, protected: frozenset[str]) -> str:
        """Why a parent of ``name`` forbids blocking it, or ""."""
        allows = self._allows
        feed_allow = bool(allows) and name not in self._important
        for parent in _ancestors(name):
            if parent in protected:
                return "protected"
            if parent in self.local_allow:
                return "allowlist"
            if feed_allow and allows.get(parent, 0) & BELOW:
                return "allowed_by_feed"
        return ""

    def _subsume(self, report: CompileReport) -> None:
        names = self._names
        drop = []
        for name in names:
            # Inline parent walk: this loop runs once per name, a generator costs 30 % more.
            i = name.find(".")
            while i >= 0:
                if names.get(name[i + 1 :], 0) & BELOW:
                    drop.append(name)
                    break
                i = name.find(".", i + 1)
        for name in drop:
            del names[name]
        report.subsumed = len(drop)


def _last_two(name: str) -> str:
    """The last two labels of ``name`` (all of it if it has fewer)."""
    i = name.rfind(".")
    return name[name.rfind(".", 0, i) + 1 :] if i > 0 else name


def _ancestors(name: str) -> Iterator[str]:
    """Proper parents of ``name``, nearest first: a.b.c -> b.c, c."""
    i = name.find(".")
    while i >= 0:
        name = name[i + 1 :]
        yield name
        i = name.find(".")


def write_artifact(path: Path, compiler: Compiler, *, meta: dict[str, Any]) -> CompileReport:
    """Finish ``compiler`` and write the artifact atomically; return the report."""
    entries, provenance, report = compiler.finish()
    networks = compiler.networks(provenance, report)
    report.ranges = len(networks)
    blocklist_file.write_atomic(path, entries, provenance, meta=meta, networks=networks)
    return report
