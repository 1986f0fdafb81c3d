"""Fetching feeds: conditional GET, size cap, timeouts, retries with backoff; local files too.

An unchanged feed costs one request answered 304 (ETag / Last-Modified), or one copy whose
SHA-256 matches the last good one. The body goes to a temporary file beside the last good copy;
the caller decides whether it replaces it.

A failure is classified (no DNS, no route, refused, TLS, HTTP status, timeout) and described in
a few plain words, never as a library's exception text. Only what may heal within seconds is
retried (timeouts, resets, 5xx, 429): a name that does not resolve or a refused port does not.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final
from urllib.parse import urlsplit

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


# Failure classes, also stored in the feed's state for the page to say in its own language.
DNS: Final = "dns"  # the host name does not resolve
ROUTE: Final = "route"  # no route to the host, network down or unreachable
REFUSED: Final = "refused"  # the host answered, the port refused the connection
TLS: Final = "tls"  # the TLS handshake or certificate check failed
HTTP: Final = "http"  # the server answered with an error status
TIMEOUT: Final = "timeout"  # no answer in time
OTHER: Final = "other"
# The network itself is missing (not one server): the update stops trying other feeds.
NETWORK_ABSENT: Final = frozenset({DNS, ROUTE})
# What a stuck operator should check, one sentence per class; the most telling class first.
DIAGNOSES: Final = {
    DNS: "this box cannot resolve public names: check its DNS and gateway",
    ROUTE: "this box has no route to the internet: check its cable, gateway and router",
    TLS: (
        "secure connections fail: check the box's clock, or a proxy that intercepts HTTPS"
        " (add its CA to the system's certificates)"
    ),
    REFUSED: (
        "the feed servers refuse connections: a firewall or proxy may block outgoing web"
        " connections"
    ),
    TIMEOUT: "the feed servers do not answer in time: the network is slow or filtered",
    HTTP: "the feed servers answered with errors: try again later, or check the feed URLs",
    OTHER: "the feeds could not be downloaded or read: see the lines above",
}
_ROUTE_ERRNOS: Final = frozenset(
    {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN, errno.EADDRNOTAVAIL}
)


class DownloadError(FeedError):
    """A feed could not be downloaded (after retries where that made sense)."""

    def __init__(self, message: str, error_class: str = OTHER) -> None:
        super().__init__(message)
        self.error_class = error_class


class _Retryable(Exception):
    """A failure worth another attempt: timeout, reset, 5xx, 429."""

    def __init__(self, message: str, error_class: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.wait = wait


@dataclass(slots=True)
class NetworkWatch:
    """Shared by the downloads of one update: once the network itself is missing (a name that
    does not resolve, no route) and nothing succeeded, the others stop retrying and waiting."""

    succeeded: bool = False  # a feed was fetched
    answered: bool = False  # a server answered at all (even an error status)
    failures: list[str] = field(default_factory=list)  # classes seen so far

    @property
    def absent(self) -> bool:
        """No server answered yet, and a failure said the network itself is missing."""
        if self.succeeded or self.answered:
            return False
        return any(c in NETWORK_ABSENT for c in self.failures)

    def absent_class(self) -> str:
        """The class that showed the network missing (DNS before route)."""
        return DNS if DNS in self.failures else ROUTE


def classify(exc: BaseException, url: str) -> tuple[str, str]:
    """(class, a few plain words) for a failed request: never a library's exception text."""
    host = urlsplit(url).hostname or url
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return TIMEOUT, f"{host} did not answer in time"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return TLS, f"the certificate of {host} is not valid ({_reason(exc.certificate_error)})"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return TLS, f"secure connection to {host} failed ({_reason(exc)})"
    os_error = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    if isinstance(os_error, socket.gaierror):
        return DNS, f"cannot resolve {host} ({os_error.strerror or 'no answer'})"
    if isinstance(os_error, ConnectionRefusedError):
        port = urlsplit(url).port or (443 if url.startswith("https") else 80)
        return REFUSED, f"{host} port {port} refused the connection"
    if isinstance(os_error, OSError) and os_error.errno in _ROUTE_ERRNOS:
        return ROUTE, f"no route to {host} ({os_error.strerror})"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return OTHER, f"{host} closed the connection mid-way"
    if isinstance(os_error, OSError) and os_error.strerror:
        return OTHER, f"{host}: {os_error.strerror}"
    return OTHER, f"{host}: {type(exc).__name__}"


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or getattr(exc, "verify_message", None)
    text = str(reason or exc)
    return text[:120]


def diagnosis(classes: list[str]) -> str:
    """One sentence for the operator: the most telling class among ``classes``."""
    for cls in DIAGNOSES:
        if cls in classes:
            return DIAGNOSES[cls]
    return DIAGNOSES[OTHER]


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
    watch: NetworkWatch | None = None,
    on_retry: Callable[[str, int, int, float], None] | None = None,
) -> Fetched:
    """Fetch ``url`` into ``dest``; raises DownloadError (or FeedTooLarge) on failure.

    ``etag``/``last_modified`` are sent only by callers that still hold the last good copy.
    With ``watch``, no retry once the network is known to be absent. ``on_retry(reason, n,
    retries, wait)`` is called before the n-th retry, so the operator sees each try as it
    happens ("HTTP 500, retry 2/3 in 10 s") instead of a silence.
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
    watch = watch if watch is not None else NetworkWatch()
    for attempt in range(attempts):
        try:
            fetched = await _get(
                session, url, dest, limits, headers, previous_sha256, progress, watch
            )
        except DownloadError as exc:
            watch.failures.append(exc.error_class)
            raise
        except _Retryable as exc:
            if attempt + 1 >= attempts or watch.absent:
                watch.failures.append(exc.error_class)
                tries = f" (after {attempt + 1} attempts)" if attempt else ""
                raise DownloadError(f"{exc}{tries}", exc.error_class) from None
            wait = limits.retry_backoff * (2**attempt)
            if exc.wait is not None:
                wait = max(wait, min(exc.wait, _MAX_RETRY_AFTER))
            log.info("%s: %s; retrying in %.1f s", url, exc, wait)
            if on_retry is not None:
                on_retry(str(exc), attempt + 1, attempts - 1, wait)
            await asyncio.sleep(wait)
        else:
            watch.succeeded = True
            return fetched
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


async def _get(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    limits: Limits,
    headers: dict[str, str],
    previous_sha256: str,
    progress: Progress | None,
    watch: NetworkWatch | None = None,
) -> Fetched:
    try:
        async with session.get(url, headers=headers) as resp:
            if watch is not None:
                watch.answered = True  # a server answered: the network is there
            if resp.status == 304:
                return Fetched(changed=False, etag=headers.get("If-None-Match", ""))
            status = f"HTTP {resp.status} {resp.reason or ''}".strip()
            if resp.status == 429 or resp.status >= 500:
                raise _Retryable(status, HTTP, _retry_after(resp))
            if resp.status != 200:
                raise DownloadError(status, HTTP)
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
    except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
        cls, words = classify(exc, url)
        if cls in (DNS, ROUTE, REFUSED, TLS):
            # A name that does not resolve or a refused port will not heal in seconds.
            raise DownloadError(words, cls) from exc
        raise _Retryable(words, cls) from exc


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    value = resp.headers.get("Retry-After", "")
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


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
