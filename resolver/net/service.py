"""The shell around the pipeline: bytes in, bytes out, shared by the UDP and TCP transports."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from resolver.blocklog.writer import BlockEvent
from resolver.core import query as query_mod
from resolver.core import responses, wire
from resolver.core.cached_answer import CachedAnswer, render_parts
from resolver.core.fastpath import FastQuery, parse_fast
from resolver.core.pipeline import Pipeline
from resolver.core.query import MIN_UDP, MalformedQuery, Query, Transport
from resolver.core.steps import LOGGED, Drop, Forward, Reply, Verdict
from resolver.net.upstream_client import UpstreamClient
from resolver.stages.cache import CacheStage
from resolver.stages.rate_limit import RateLimitStage

log = logging.getLogger(__name__)

Pending = tuple[Query, Forward]


@dataclass(frozen=True, slots=True)
class FastPath:
    """What the fast path reads: the ACL's memo of admitted clients and the answer cache."""

    acl_memo: dict[str, bool]
    cache: CacheStage
    rate_limit: RateLimitStage | None


_BUG_LOG_INTERVAL: Final = 60.0  # seconds between two tracebacks of pipeline bugs
# Distinct query messages (less their ID) whose fast parse is remembered. Clients repeat the
# same bytes (same case, same flags, same EDNS options), so a hit skips the parse; the memo is
# simply reset when full, which bounds it whatever a flood sends.
_PARSED_MAX: Final = 8192


class Service:
    """Answers one message: ``begin`` decides synchronously, ``finish`` awaits the upstream."""

    def __init__(
        self,
        pipeline: Pipeline,
        upstream: UpstreamClient,
        offer: Callable[[BlockEvent], bool] | None,
        *,
        server_payload: int = query_mod.DEFAULT_UDP_PAYLOAD,
        max_inflight: int = 2048,
        clock: Callable[[], float] = time.time,
        fast: FastPath | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.upstream = upstream
        self.offer = offer
        self.server_payload = server_payload
        self.max_inflight = max_inflight
        self.clock = clock
        self.fast = fast
        self._parsed: dict[bytes, FastQuery] = {}
        self.inflight = 0
        self.counts: dict[str, int] = dict.fromkeys(Verdict.ALL, 0)
        self.dropped = 0
        self.malformed = 0
        self._last_bug_log = -_BUG_LOG_INTERVAL

    def begin(self, data: bytes, client: str, transport: Transport) -> bytes | Pending | None:
        """The answer if it is known now, a pending forward, or None to send nothing."""
        fast = self.fast
        if fast is not None and fast.acl_memo.get(client) is True:
            # Only for clients the ACL already admitted (its memo), and only on a cache hit:
            # everything else, including a client's first query, takes the full path below.
            tail = data[2:]
            fq = self._parsed.get(tail)
            if fq is None:
                fq = parse_fast(data)
                if fq is not None:
                    if len(self._parsed) >= _PARSED_MAX:
                        self._parsed.clear()
                    self._parsed[tail] = fq
            if fq is not None:
                now = self.clock()
                entry = fast.cache.lookup(fq[0], now)
                if entry is not None:
                    if fast.rate_limit is not None and not fast.rate_limit.allow(client, now):
                        self.dropped += 1
                        return None
                    return self._fast_answer(data, fq, entry, client, transport, now)
        try:
            q = query_mod.from_wire(data, client, transport, self.server_payload)
        except MalformedQuery as exc:
            self.malformed += 1
            return exc.response
        now = self.clock()
        try:
            step = self.pipeline.handle(q, now)
        except Exception:
            return self._bug(q)
        if isinstance(step, Reply):
            return self._send(q, step, now)
        if isinstance(step, Drop):
            self.dropped += 1
            return None
        if self.inflight >= self.max_inflight:
            self.dropped += 1  # the client retries; better than queueing without bound
            return None
        self.inflight += 1  # released by finish(), which the caller must await
        return (q, step)

    def _fast_answer(
        self,
        data: bytes,
        fq: FastQuery,
        entry: CachedAnswer,
        client: str,
        transport: Transport,
        now: float,
    ) -> bytes:
        _, qflags, question, payload, do = fq
        edns = payload >= 0
        out = render_parts(entry, (data[0] << 8) | data[1], qflags, question, edns, do, now)
        if transport is Transport.UDP:
            limit = max(MIN_UDP, min(payload, self.server_payload)) if edns else MIN_UDP
            if len(out) > limit:
                out = responses.truncated(out, question, edns, do)
        assert self.fast is not None
        self.fast.cache.hits += 1
        if entry.blocked:
            self.counts[Verdict.BLOCKED] += 1
            if self.offer is not None:
                qtype = (question[-4] << 8) | question[-3]
                self.offer(
                    BlockEvent(
                        now, client, entry.qname, qtype, "blocked", entry.reason, entry.category
                    )
                )
        else:
            self.counts[Verdict.CACHED] += 1
        return out

    async def finish(self, pending: Pending) -> bytes | None:
        q, fwd = pending
        try:
            response = await self.upstream.exchange(q, fwd.servers)
            now = self.clock()
            step = self.pipeline.complete(q, fwd, response, now)
        except Exception:
            return self._bug(q)
        finally:
            self.inflight -= 1
        return self._send(q, step, now)

    async def answer(self, data: bytes, client: str, transport: Transport) -> bytes | None:
        """Both halves in one call (tests, TCP)."""
        out = self.begin(data, client, transport)
        if isinstance(out, tuple):
            return await self.finish(out)
        return out

    def _send(self, q: Query, step: Reply, now: float) -> bytes:
        self.counts[step.verdict] += 1
        if step.verdict in LOGGED and self.offer is not None:
            self.offer(
                BlockEvent(
                    now, q.client, q.qname, q.qtype, step.verdict, step.reason, step.category
                )
            )
        out = step.wire
        if len(out) > q.size_limit:
            out = responses.fit(q, out)
        return out

    def _bug(self, q: Query) -> bytes:
        """A fault of ours: SERVFAIL for this query, one log line, and serving goes on."""
        self.counts[Verdict.SERVFAIL] += 1
        now = time.monotonic()
        if now - self._last_bug_log >= _BUG_LOG_INTERVAL:
            self._last_bug_log = now
            log.exception("internal error while answering %r (type %d)", q.qname[:255], q.qtype)
        return responses.make_error(q, wire.SERVFAIL)
