"""`parafoudre feeds update`: fetch, check, keep the last good copies, compile, notify.

Safety rails (issue 3 §5): a feed whose download or parse fails keeps its last good copy; so
does a feed that shrinks by more than ``max_shrink``; public suffixes and never-block names are
refused at compile time. The artifact is only rewritten when its inputs changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import publicsuffixlist

from feeds.compiler import Compiler, FeedSet, collect, write_artifact
from feeds.download import (
    TIMEOUT,
    DownloadError,
    Fetched,
    Limits,
    NetworkWatch,
    diagnosis,
    fetch,
    make_session,
)
from feeds.errors import FeedError
from feeds.never_block import (
    PublicSuffixes,
    load_never_block,
    load_public_resolvers,
    parse_names,
)
from feeds.normalize import ParseStats
from feeds.parsers import ParseOptions, parse_file
from feeds.sources import Feed, local_path, resolve_sources, url_host
from feeds.state import FeedState, StateStore, now_iso
from resolver import blocklist_file
from resolver.config.feeds import FeedsConfig

log = logging.getLogger(__name__)

# Exit codes, chosen to read well in a cron mail or `systemctl status`.
EXIT_OK = 0  # every feed fine; the blocklist is current
EXIT_CONFIG = 2  # the feeds configuration is wrong; nothing was fetched
EXIT_PARTIAL = 3  # some feeds failed; their last good copies were used
EXIT_NOTHING = 4  # no usable feed, or the blocklist could not be written; the old one stays

# Bump when a parser or the compiler changes what a given input produces, so that the next
# run rebuilds the artifact even though no feed changed.
COMPILER_VERSION = 1
# Downloads run in parallel, politely: few at a time.
_PARALLEL_DOWNLOADS = 4
# With no server answering at all after this long, the network is plainly absent: the update
# stops waiting and says so (a slow but working network has answered by then, and its downloads
# go on for as long as feeds.total_timeout allows).
GIVE_UP_OFFLINE = 25.0


@dataclass(slots=True)
class Outcome:
    """What happened to one feed in this run."""

    feed: Feed
    status: str = ""  # updated, unchanged, failed, unusable
    entries: int = 0
    added: int = 0
    removed: int = 0
    rejected: int = 0
    error: str = ""
    error_class: str = ""  # feeds/download.py's classes; "other" for content errors
    fresh: FeedSet | None = None  # parsed new copy, kept for the compile step
    format: str = ""  # as read this time: "adblock (detected)" for format: auto
    # Rejected lines by reason, with a few examples each (this run's parse only).
    reasons: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """True when the feed has a good copy to compile (new or last good)."""
        return self.status in ("updated", "unchanged", "failed")


def limits_of(cfg: FeedsConfig) -> Limits:
    """The download limits of the configuration."""
    return Limits(
        max_bytes=cfg.max_bytes,
        connect_timeout=cfg.connect_timeout,
        total_timeout=cfg.total_timeout,
        retries=cfg.retries,
        retry_backoff=cfg.retry_backoff,
    )


def parse_options(feed: Feed) -> ParseOptions:
    """The parser options of a resolved feed."""
    return ParseOptions(
        mask=feed.mask, allow_tld=feed.allow_tld, min_confidence=feed.min_confidence
    )


def parse_feed(path: Path, feed: Feed, max_bytes: int) -> tuple[FeedSet, ParseStats]:
    """Parse a saved copy of ``feed``; raises FeedError when it is not a usable list."""
    stats = ParseStats()
    fs = collect(
        parse_file(path, feed.format, parse_options(feed), stats, max_bytes=max_bytes), stats
    )
    if stats.lines and not len(fs) and stats.total_rejected:
        raise FeedError(f"no usable entry: all {stats.total_rejected} candidates rejected")
    for reason, count in sorted(stats.rejected.items()):
        log.info(
            "feed %s: %d rejected (%s), e.g. %r",
            feed.name,
            count,
            reason,
            stats.examples.get(reason, []),
        )
    return fs, stats


class Updater:
    """One run of the updater over the configured feeds."""

    def __init__(
        self,
        cfg: FeedsConfig,
        artifact_path: Path,
        out: TextIO,
        interactive: bool,
        err: TextIO | None = None,
        upstreams: Iterable[str] = (),
    ) -> None:
        self.cfg = cfg
        self.artifact = artifact_path
        # The names of the box's own upstreams (never_block.upstream_names): no feed blocks them.
        self.upstreams = frozenset(upstreams)
        self.out = out  # what went well
        self.err = err if err is not None else sys.stderr  # failures, each said once
        self.interactive = interactive
        self.store = StateStore(cfg.state_path())
        self._received: dict[str, int] = {}

    async def run(self) -> int:
        """Do the whole update; return the exit code."""
        try:
            feeds = resolve_sources(self.cfg)
        except FeedError as exc:
            self.out.write(f"feeds: configuration error: {exc}\n")
            return EXIT_CONFIG
        enabled = [f for f in feeds if f.enabled]
        self.store.ensure()
        with self.store.lock() as locked:
            if not locked:
                self.out.write("feeds: another update is running; nothing done\n")
                return EXIT_NOTHING
            return await self._run(feeds, enabled)

    async def _run(self, feeds: list[Feed], enabled: list[Feed]) -> int:
        started = time.monotonic()
        fetched = await self._download_all(enabled)
        outcomes = [self._check(f, fetched[f.name]) for f in enabled]
        for o in outcomes:
            stream = self.out if o.status in ("updated", "unchanged") else self.err
            stream.write(self._line(o) + "\n")
        failed_classes = [o.error_class for o in outcomes if o.error]
        if failed_classes:
            # One sentence for the operator, once, after the feed lines.
            self.err.write(f"diagnosis: {diagnosis(failed_classes)}\n")
        usable = [o for o in outcomes if o.usable]
        if enabled and not usable:
            self.err.write("blocklist: no usable feed; the current blocklist stays in place\n")
            return EXIT_NOTHING
        try:
            written = self._compile(usable, feeds)
        except (FeedError, OSError, blocklist_file.BlocklistFileError) as exc:
            self.err.write(f"blocklist: not written: {exc}\n")
            return EXIT_NOTHING
        self.out.write(f"{written} in {time.monotonic() - started:.1f} s\n")
        failed = any(o.status != "updated" and o.status != "unchanged" for o in outcomes)
        return EXIT_PARTIAL if failed else EXIT_OK

    # -- downloads -------------------------------------------------------------------------------

    async def _download_all(self, feeds: list[Feed]) -> dict[str, Fetched | FeedError]:
        limits = limits_of(self.cfg)
        gate = asyncio.Semaphore(_PARALLEL_DOWNLOADS)
        results: dict[str, Fetched | FeedError] = {}
        watch = NetworkWatch()

        async def one(feed: Feed) -> None:
            state = self.store.load(feed.name)
            have_copy = self.store.data_path(feed.name).exists() and state.url == feed.url
            async with gate:
                if watch.absent and local_path(feed.url) is None:
                    # Each try would wait for the same missing network: say it, do not wait.
                    results[feed.name] = DownloadError(
                        "not tried: the network is absent (see the first failure)",
                        watch.absent_class(),
                    )
                    return
                try:
                    results[feed.name] = await fetch(
                        session,
                        feed.url,
                        self.store.download_path(feed.name),
                        limits,
                        etag=state.etag if have_copy else "",
                        last_modified=state.last_modified if have_copy else "",
                        previous_sha256=state.sha256 if have_copy else "",
                        progress=self._progress(feed.name),
                        watch=watch,
                        on_retry=lambda why, n, total, wait: self._retrying(
                            feed.name, why, n, total, wait
                        ),
                    )
                except FeedError as exc:
                    results[feed.name] = exc

        async with make_session(limits) as session:
            tasks = [asyncio.ensure_future(one(f)) for f in feeds]
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=GIVE_UP_OFFLINE)
                if pending and not (watch.answered or watch.succeeded):
                    for task in pending:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                    words = f"gave up after {GIVE_UP_OFFLINE:g} s: no feed server answered"
                    for f in feeds:
                        results.setdefault(f.name, DownloadError(words, TIMEOUT))
                elif pending:
                    await asyncio.gather(*pending)
        if self.interactive and feeds:
            self.out.write("\r\x1b[K")  # clear the progress line
        return results

    def _progress(self, name: str) -> _ProgressLine | None:
        if not self.interactive:
            return None
        return _ProgressLine(self, name)

    def _show_progress(self, name: str, size: int) -> None:
        self._received[name] = size
        total = sum(self._received.values())
        self.out.write(f"\r\x1b[Kdownloading {len(self._received)} feeds: {total / 1e6:.1f} MB")
        self.out.flush()

    # -- checks and last good copies ---------------------------------------------------------------

    def _check(self, feed: Feed, result: Fetched | FeedError) -> Outcome:
        store, name = self.store, feed.name
        old = store.load(name)
        data = store.data_path(name)
        tmp = store.download_path(name)
        out = Outcome(feed)
        state = replace(old, last_attempt=now_iso())
        try:
            if isinstance(result, FeedError):
                raise result
            if result.changed:
                state = self._take_download(feed, result, old, state, out)
            else:
                if not data.exists():
                    raise FeedError("no copy kept from an earlier run")  # state lost: refetch
                state = replace(
                    state,
                    etag=result.etag or old.etag,
                    last_modified=result.last_modified or old.last_modified,
                    last_success=now_iso(),
                    last_error="",
                    error_class="",
                    status="unchanged",
                )
                out.status = "unchanged"
        except FeedError as exc:
            out.error = str(exc)
            out.error_class = getattr(exc, "error_class", "other")
            usable = data.exists() and old.url == feed.url and old.sha256 != ""
            out.status = "failed" if usable else "unusable"
            state = replace(
                state, last_error=out.error, error_class=out.error_class, status=out.status
            )
            # Said once, by the feed's line on stderr; the log only keeps it for -v.
            log.debug("feed %s: %s", name, out.error)
        finally:
            tmp.unlink(missing_ok=True)
        out.entries, out.rejected = state.entries, state.rejected
        store.save(name, state)
        return out

    def _take_download(
        self, feed: Feed, result: Fetched, old: FeedState, state: FeedState, out: Outcome
    ) -> FeedState:
        """Parse a changed download, refuse it if it shrank too much (FeedError), else make it
        the last good copy; fills ``out`` and returns the feed's new state."""
        data, tmp = self.store.data_path(feed.name), self.store.download_path(feed.name)
        fs, stats = parse_feed(tmp, feed, self.cfg.max_bytes)
        count = len(fs)
        floor = (1.0 - self.cfg.max_shrink) * old.entries
        if data.exists() and old.url == feed.url and count < floor:
            raise FeedError(
                f"shrank from {old.entries} to {count} entries (more than"
                f" feeds.max_shrink={self.cfg.max_shrink:g})"
            )
        out.added, out.removed = self._diff(fs, data, feed) if data.exists() else (count, 0)
        os.replace(tmp, data)
        now = now_iso()
        out.status, out.fresh = "updated", fs
        out.format, out.reasons, out.examples = stats.format, stats.rejected, stats.examples
        return replace(
            state,
            url=feed.url,
            etag=result.etag,
            last_modified=result.last_modified,
            sha256=result.sha256,
            size=result.size,
            entries=count,
            rejected=stats.total_rejected,
            reject_reasons=dict(stats.rejected),
            last_success=now,
            last_change=now,
            last_error="",
            error_class="",
            status="updated",
        )

    def _diff(self, new: FeedSet, data: Path, feed: Feed) -> tuple[int, int]:
        """(added, removed) names against the last good copy; (new size, 0) if it is unreadable."""
        try:
            old, _ = parse_feed(data, feed, self.cfg.max_bytes)
        except FeedError:
            return len(new), 0
        old_names = old.blocks.keys() | old.allows.keys()
        new_names = new.blocks.keys() | new.allows.keys()
        return len(new_names - old_names), len(old_names - new_names)

    # -- compile ---------------------------------------------------------------------------------

    def _compile(self, usable: list[Outcome], all_feeds: list[Feed]) -> str:
        cfg = self.cfg
        hosts = [h for h in (url_host(f.url) for f in all_feeds) if h]
        never_block = load_never_block(cfg.never_block_file, cfg.never_block, hosts)
        # Public resolvers a bypass feed may block; not those the operator or a feed URL names.
        resolvers = load_public_resolvers(cfg.never_block_file) - parse_names(
            [*cfg.never_block, *hosts], "feeds.never_block"
        )
        allowlist = parse_names(cfg.allowlist, "feeds.allowlist")
        fingerprint = self._fingerprint(usable, never_block, allowlist, resolvers)
        if fingerprint == self.store.load_fingerprint() and self._artifact_ok():
            return f"blocklist: unchanged ({self.artifact})"
        feeds = [o.feed for o in usable]
        compiler = Compiler(
            feeds,
            PublicSuffixes.bundled(),
            never_block,
            allowlist,
            public_resolvers=resolvers,
            upstreams=self.upstreams,
        )
        for index, o in enumerate(usable):
            fs = o.fresh
            if fs is None:
                try:
                    fs, _ = parse_feed(self.store.data_path(o.feed.name), o.feed, cfg.max_bytes)
                except FeedError as exc:
                    # The last good copy no longer parses (e.g. a format change in the config).
                    log.warning("feed %s: last good copy unusable: %s", o.feed.name, exc)
                    continue
            compiler.add(index, fs)
            o.fresh = None  # let it go: the compiler holds the merged names
        meta = {
            "written": now_iso(),
            "fingerprint": fingerprint,
            "feeds": {o.feed.name: self.store.load(o.feed.name).sha256 for o in usable},
        }
        report = write_artifact(self.artifact, compiler, meta=meta)
        self.store.save_fingerprint(fingerprint, self.artifact, report.entries)
        self._notify()
        refused = sum(report.refused.values())
        return (
            f"blocklist: {report.entries} entries written to {self.artifact}"
            f" ({report.subsumed} covered by a parent, {refused} refused)"
        )

    def _fingerprint(
        self,
        usable: list[Outcome],
        never_block: frozenset[str],
        allowlist: frozenset[str],
        resolvers: frozenset[str],
    ) -> str:
        parts = {
            "compiler": COMPILER_VERSION,
            "artifact": blocklist_file.VERSION,
            "psl": getattr(publicsuffixlist, "__version__", ""),
            "feeds": [
                [
                    o.feed.source,
                    o.feed.category,
                    o.feed.format,
                    o.feed.mask,
                    o.feed.allow_tld,
                    o.feed.min_confidence,
                    self.store.load(o.feed.name).sha256,
                ]
                for o in usable
            ],
            "never_block": sorted(never_block),
            "public_resolvers": sorted(resolvers),
            "upstreams": sorted(self.upstreams),
            "allowlist": sorted(allowlist),
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def _artifact_ok(self) -> bool:
        try:
            found = blocklist_file.read(self.artifact)
        except blocklist_file.BlocklistFileError:
            return False
        # An older format (version 1: no address ranges) is rebuilt from the same feeds.
        return found.version == blocklist_file.VERSION

    def _notify(self) -> None:
        """SIGHUP the resolver if a pid file is configured; it also watches the file itself."""
        if not self.cfg.pid_file:
            return
        try:
            with open(self.cfg.pid_file, "rb") as f:
                pid = int(f.read(32).strip())
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError) as exc:
            log.warning("could not signal the resolver (pid file %s): %s", self.cfg.pid_file, exc)

    # -- output ------------------------------------------------------------------------------------

    def _retrying(self, name: str, why: str, n: int, total: int, wait: float) -> None:
        """Each try of a failing feed as it happens, on stderr (the final line comes after)."""
        self.err.write(f"feed {name}: {why}, retry {n}/{total} in {wait:g} s\n")

    def _line(self, o: Outcome) -> str:
        name = o.feed.name
        if o.status == "updated":
            # The format it was read as, and why lines were rejected (two examples a reason):
            # said here, not in an INFO log line the command line never shows.
            fmt = f", read as {o.format}" if o.format else ""
            why = "".join(
                f"\n  {n} rejected ({reason}), e.g. "
                + ", ".join(repr(x[:100]) for x in o.examples.get(reason, [])[:2])
                for reason, n in sorted(o.reasons.items(), key=lambda kv: (-kv[1], kv[0]))
            )
            return (
                f"feed {name}: updated, {o.entries} entries (+{o.added} -{o.removed}),"
                f" {o.rejected} rejected{fmt}{why}"
            )
        if o.status == "unchanged":
            return f"feed {name}: unchanged, {o.entries} entries, {o.rejected} rejected"
        if o.status == "failed":
            return (
                f"feed {name}: FAILED, {o.error}; last good copy kept, {o.entries} entries,"
                f" {o.rejected} rejected"
            )
        return f"feed {name}: FAILED, {o.error}; no good copy, feed skipped"


class _ProgressLine:
    """Progress callback for one feed, drawing one shared line on a terminal."""

    __slots__ = ("name", "updater")

    def __init__(self, updater: Updater, name: str) -> None:
        self.updater = updater
        self.name = name

    def __call__(self, size: int) -> None:
        self.updater._show_progress(self.name, size)


async def run_update(
    cfg: FeedsConfig,
    *,
    artifact_path: Path,
    out: TextIO,
    interactive: bool,
    err: TextIO | None = None,
    upstreams: Iterable[str] = (),
) -> int:
    """Run `parafoudre feeds update`; return the exit code (EXIT_*).

    What went well goes to ``out``; each failure once to ``err`` (default stderr), then one
    diagnosis line. ``upstreams``: the names of the box's upstreams, never blocked.
    """
    return await Updater(cfg, artifact_path, out, interactive, err, upstreams).run()


def update(
    cfg: FeedsConfig,
    *,
    artifact_path: Path,
    out: TextIO,
    interactive: bool,
    err: TextIO | None = None,
    upstreams: Iterable[str] = (),
) -> int:
    """Synchronous wrapper of ``run_update`` for callers without an event loop."""
    return asyncio.run(
        run_update(
            cfg,
            artifact_path=artifact_path,
            out=out,
            interactive=interactive,
            err=err,
            upstreams=upstreams,
        )
    )
