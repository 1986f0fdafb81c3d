"""DNS over HTTPS to one upstream resolver (RFC 8484): POST application/dns-message.

One aiohttp session per upstream, created at the first query inside the running loop, keeps its
HTTP/1.1 connections alive between queries. The certificate must chain to a trusted CA and carry
the URL's host name. ``address``, when given, is where that host name is reached: the session
then never asks DNS for it (a resolver must not depend on itself to reach its upstream).

RFC 8484 §4.1 recommends DNS ID 0, so identical queries look identical to HTTP caches: the query
goes out with ID 0 and the reply comes back with the caller's ID, so callers still match replies
by ID.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from resolver.net.upstream_query import matches
from resolver.net.upstream_tls import default_ssl_context

DNS_MESSAGE = "application/dns-message"
_MAX_MESSAGE = 65535
_KEEPALIVE = 30.0  # seconds an idle HTTP connection is kept for the next query


class FixedResolver(AbstractResolver):
    """Resolves one host name to one fixed address, and nothing else (no DNS lookup at all)."""

    def __init__(self, hostname: str, address: str) -> None:
        self.hostname = hostname.rstrip(".").lower()
        self.address = str(ipaddress.ip_address(address))
        self.family = socket.AF_INET6 if ":" in self.address else socket.AF_INET

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.rstrip(".").lower() != self.hostname:
            raise OSError(f"{host}: no address configured for this name")
        return [
            ResolveResult(
                hostname=host,
                host=self.address,
                port=port,
                family=self.family,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


class HttpsUpstream:
    """DNS over HTTPS to one server: ``exchange`` sends a query and returns the matching reply."""

    def __init__(
        self,
        url: str,
        *,
        address: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"{url!r}: not an https:// URL")
        if parts.fragment:
            raise ValueError(f"{url!r}: a URL sent to the server has no '#' part")
        self.url = url
        self.hostname = parts.hostname
        self.address = str(ipaddress.ip_address(address)) if address else None
        self.ssl_context = ssl_context if ssl_context is not None else default_ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def __repr__(self) -> str:
        at = f"#{self.address}" if self.address else ""
        return f"HttpsUpstream({self.url}{at})"

    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ConnectionError(f"{self!r} is closed")
        session = self._session
        if session is None or session.closed:
            resolver = FixedResolver(self.hostname, self.address) if self.address else None
            connector = aiohttp.TCPConnector(
                ssl=self.ssl_context,
                resolver=resolver,
                keepalive_timeout=_KEEPALIVE,
                limit=100,
            )
            session = self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # a resolver talks to its upstream directly, never via a proxy
                auto_decompress=False,
                headers={"Accept": DNS_MESSAGE},
            )
        return session

    async def exchange(self, query: bytes, timeout: float) -> bytes:  # noqa: ASYNC109
        """The reply to ``query`` (same ID and question), within ``timeout`` seconds.

        Raises TimeoutError, OSError (ConnectionError for an HTTP status or content type that
        is not a DNS answer, ssl.SSLError for a refused certificate) or ValueError (a reply
        too large or not answering the query).
        """
        if not 12 <= len(query) <= _MAX_MESSAGE:
            raise ValueError("not a DNS query")
        sent = b"\0\0" + query[2:]
        session = self._client()
        try:
            async with (
                asyncio.timeout(timeout),
                session.post(
                    self.url,
                    data=sent,
                    headers={"Content-Type": DNS_MESSAGE},
                    allow_redirects=False,
                ) as resp,
            ):
                if resp.status != 200:
                    raise ConnectionError(f"{self.url}: HTTP {resp.status} {resp.reason or ''}")
                if resp.content_type != DNS_MESSAGE:
                    raise ConnectionError(f"{self.url}: content type {resp.content_type!r}")
                if resp.content_length is not None and resp.content_length > _MAX_MESSAGE:
                    raise ValueError(f"{self.url}: reply of {resp.content_length} bytes")
                body = await resp.content.read(_MAX_MESSAGE + 1)
                while len(body) <= _MAX_MESSAGE and not resp.content.at_eof():
                    chunk = await resp.content.read(_MAX_MESSAGE + 1 - len(body))
                    if not chunk:
                        break
                    body += chunk
        except (OSError, TimeoutError):
            raise  # aiohttp's connection errors and timeouts are OSError and TimeoutError too
        except aiohttp.ClientError as exc:
            raise ConnectionError(f"{self.url}: {exc.__class__.__name__}: {exc}") from exc
        if len(body) > _MAX_MESSAGE:
            raise ValueError(f"{self.url}: reply larger than {_MAX_MESSAGE} bytes")
        if not matches(body, sent):
            raise ValueError(f"{self.url}: the reply does not answer the query")
        return query[:2] + body[2:]

    async def close(self) -> None:
        """Close the session and its connections; later exchanges fail with ConnectionError."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()
