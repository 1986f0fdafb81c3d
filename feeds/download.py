"""Fetching feeds: conditional GET, size cap, timeouts, retries with backoff; local files too.

An unchanged feed costs one request answered 304 (ETag / Last-Modified), or one copy whose
SHA-256 matches the last good one. The body goes to a temporary file beside the last good copy;
the caller decides whether it replaces it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import aiohttp

from feeds.errors import FeedError, FeedTooLarge
from feeds.sources import local_path

log = logging.getLogger(__name__)

USER_AGENT = "parafoudre-feeds/0.1 (protective DNS resolver for town halls)"
_CHUNK = 1 << 16
# Server-requested waits (Retry-After) are honoured up to this many seconds.
_MAX_RETRY_AFTER = 600.0

Progress = Callable[[int], None]  # called with the number of bytes received so far


@dataclass(frozen=True, slots=True)
class Limits:
    """How long and how much one download may take."""

    max_bytes: int = 200_000_000
    connect_timeout: float = 10.0
    total_timeout: float = 300.0
    retries: int = 3
    retry_backoff: float = 5.0


@dataclass(frozen=True, slots=True)
class Fetched:
    """The outcome of one successful fetch."""

    changed: bool  # False: 304, or the same bytes as the last good copy
    size: int = 0
    sha256: str = ""
    etag: str = ""
    last_modified: str = ""


class DownloadError(FeedError):
    """A feed could not be downloaded (after retries where that made sense)."""


class _Retryable(Exception):
    """A failure worth another attempt: network error, timeout, 5xx, 429."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class _Sink:
    """Writes the body to ``dest`` while hashing and counting it, under the size cap."""

    def __init__(self, dest: Path, max_bytes: int) -> None:
        self.dest = dest
        self.max_bytes = max_bytes
        self.size = 0
        self.hash = hashlib.sha256()
        self._file: BinaryIO = dest.open("wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.max_bytes and self.size > self.max_bytes:
            raise FeedTooLarge(self.max_bytes)
        self.hash.update(chunk)
        self._file.write(chunk)

    def close(self) -> None:
        self._file.close()


def make_session(limits: Limits) -> aiohttp.ClientSession:
    """A client session with the configured timeouts (decompresses Content-Encoding gzip)."""
    # sock_connect, not connect: the latter also counts the wait for a pooled connection.
    timeout = aiohttp.ClientTimeout(total=limits.total_timeout, sock_connect=limits.connect_timeout)
    return aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": USER_AGENT})


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    limits: Limits,
    *,
    etag: str = "",
    last_modified: str = "",
    previous_sha256: str = "",
    progress: Progress | None = None,
) -> Fetched:
    """Fetch ``url`` into ``dest``; raises DownloadError (or FeedTooLarge) on failure.

    ``etag``/``last_modified`` are sent only by callers that still hold the last good copy.
    """
    path = local_path(url)
    if path is not None:
        return _copy_local(path, dest, limits, previous_sha256)
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    attempts = max(0, limits.retries) + 1
    for attempt in range(attempts):
        try:
            return await _get(session, url, dest, limits, headers, previous_sha256, progress)
        except _Retryable as exc:
            if attempt + 1 >= attempts:
                raise DownloadError(f"{exc} (after {attempts} attempts)") from None
            wait = limits.retry_backoff * (2**attempt)
            if exc.wait is not None:
                wait = max(wait, min(exc.wait, _MAX_RETRY_AFTER))
            log.info("%s: %s; retrying in %.1f s", url, exc, wait)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


async def _get(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    limits: Limits,
    headers: dict[str, str],
    previous_sha256: str,
    progress: Progress | None,
) -> Fetched:
    try:
        async with session.get(url, headers=headers) as resp:
            if resp.status == 304:
                return Fetched(changed=False, etag=headers.get("If-None-Match", ""))
            if resp.status == 429 or resp.status >= 500:
                raise _Retryable(f"HTTP {resp.status}", _retry_after(resp))
            if resp.status != 200:
                raise DownloadError(f"HTTP {resp.status} {resp.reason or ''}".strip())
            length = resp.content_length
            if limits.max_bytes and length is not None and length > limits.max_bytes:
                raise FeedTooLarge(limits.max_bytes)
            sink = _Sink(dest, limits.max_bytes)
            try:
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    sink.write(chunk)
                    if progress is not None:
                        progress(sink.size)
            finally:
                sink.close()
            sha = sink.hash.hexdigest()
            return Fetched(
                changed=sha != previous_sha256,
                size=sink.size,
                sha256=sha,
                etag=resp.headers.get("ETag", ""),
                last_modified=resp.headers.get("Last-Modified", ""),
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _Retryable(_describe(exc)) from exc


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    value = resp.headers.get("Retry-After", "")
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _copy_local(src: Path, dest: Path, limits: Limits, previous_sha256: str) -> Fetched:
    try:
        with src.open("rb") as f:
            sink = _Sink(dest, limits.max_bytes)
            try:
                while chunk := f.read(_CHUNK):
                    sink.write(chunk)
            finally:
                sink.close()
    except OSError as exc:
        raise DownloadError(f"cannot read {src}: {exc.strerror or exc}") from exc
    sha = sink.hash.hexdigest()
    return Fetched(changed=sha != previous_sha256, size=sink.size, sha256=sha)
