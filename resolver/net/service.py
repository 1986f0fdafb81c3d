"""The shell around the pipeline: bytes in, bytes out, shared by the UDP and TCP transports."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

from resolver.blocklog.writer import BlockEvent
from resolver.core import cached_answer, responses, wire
from resolver.core import query as query_mod
from resolver.core.cached_answer import CachedAnswer, render_parts, stale_copy
from resolver.core.fastpath import FastQuery, parse_fast
from resolver.core.pipeline import Pipeline
from resolver.core.query import MIN_UDP, MalformedQuery, Query, Transport
from resolver.core.steps import LOGGED, Drop, Forward, Reply, Verdict
from resolver.net.upstream_client import UpstreamClient
from resolver.stages.cache import RENDERED_MAX, CacheStage
from resolver.stages.rate_limit import RateLimitStage

log = logging.getLogger(__name__)

Pending = tuple[Query, Forward]
_UDP = Transport.UDP


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
# Answers shorter-lived than this are not prefetched: they change too often to be worth it.
_PREFETCH_MIN_TTL: Final = 10


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
        stale_max_age: int = 0,
        stale_answer_after: float = 1.8,
        prefetch: Forward | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.upstream = upstream
        self.offer = offer
        self.server_payload = server_payload
        self.max_inflight = max_inflight
        self.clock = clock
        self.fast = fast
        self._parsed: dict[bytes, FastQuery] = {}
        self.stale_max_age = stale_max_age
        self.stale_answer_after = stale_answer_after
        self.prefetch = prefetch  # where to refresh popular answers from; None: no prefetch
        self._refreshing: set[bytes] = set()
        self._background: set[asyncio.Task[None]] = set()
        self.prefetches = 0
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
                    if (
                        self.prefetch is not None
                        and entry.ttl >= _PREFETCH_MIN_TTL
                        and now >= entry.stored_at + entry.ttl * 0.9
                        and not entry.blocked
                    ):
                        self._prefetch(fq[0], data, client)
                    out = self._fast_answer(data, fq, entry, client, transport, now)
                    if transport is _UDP:
                        self._remember(tail, out, entry, fq[2], now)
                    return out
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

    def _remember(
        self, tail: bytes, out: bytes, entry: CachedAnswer, question: bytes, now: float
    ) -> None:
        """Keep a UDP answer for repeats within this second, if it stays the same until then."""
        assert self.fast is not None
        cache = self.fast.cache
        sec = int(now)
        if sec != cache.rendered_second:
            return  # rendered in another second than the memo's (or not from the UDP loop)
        until = sec + 1
        if entry.stored_at + entry.ttl < until:
            return  # expires within the second
        if (
            not entry.blocked
            and self.prefetch is not None
            and entry.ttl >= _PREFETCH_MIN_TTL
            and entry.stored_at + entry.ttl * 0.9 < until
        ):
            return  # a repeat must reach begin() to start the prefetch
        memo = cache.rendered
        if len(memo) >= RENDERED_MAX:
            memo.clear()
        event = None
        if entry.blocked:
            qtype = (question[-4] << 8) | question[-3]
            event = (entry.qname, qtype, Verdict.BLOCKED, entry.reason, entry.category)
        memo[tail] = (out, event)

    def forward(self, pending: Pending, deliver: Callable[[bytes], None]) -> bool:
        """Forward ``pending`` with callbacks, no task: True if taken, False to use finish().

        ``deliver`` gets the answer (not called when there is nothing to send). The cheap way
        a cache miss goes; finish() stays for what needs waiting logic (serve-stale).
        """
        q, fwd = pending
        if self._stale_entry(q, fwd, self.clock()) is not None:
            return False

        def done(response: bytes | None) -> None:
            now = self.clock()
            try:
                out = self._send(q, self.pipeline.complete(q, fwd, response, now), now)
            except Exception:
                out = self._bug(q)
            finally:
                self.inflight -= 1
            deliver(out)

        try:
            self.upstream.exchange_soon(q, fwd.servers, done)
        except Exception:
            self.inflight -= 1
            deliver(self._bug(q))
        return True

    async def finish(self, pending: Pending) -> bytes | None:
        q, fwd = pending
        try:
            stale = self._stale_entry(q, fwd, self.clock())
            if stale is None:
                response = await self.upstream.exchange(q, fwd.servers)
            else:
                # RFC 8767 §5: with a stale answer at hand, do not make the client wait for
                # a dead upstream; its late answer still refreshes the cache.
                task = asyncio.ensure_future(self.upstream.exchange(q, fwd.servers))
                done, _ = await asyncio.wait({task}, timeout=self.stale_answer_after)
                if done:
                    response = task.result()
                else:
                    self._keep(self._complete_late(q, fwd, task))
                    response = None
            now = self.clock()
            if response is None and stale is not None:
                step = Reply(
                    cached_answer.render(stale_copy(stale, now), q, now), Verdict.STALE, "stale"
                )
            else:
                step = self.pipeline.complete(q, fwd, response, now)
        except Exception:
            return self._bug(q)
        finally:
            self.inflight -= 1
        return self._send(q, step, now)

    def _stale_entry(self, q: Query, fwd: Forward, now: float) -> CachedAnswer | None:
        """An expired answer we may serve if the upstream fails (not for conditional zones)."""
        if not self.stale_max_age or fwd.zone is not None or self.fast is None:
            return None
        entry = self.fast.cache.stale(q.cache_key)
        if entry is None or entry.blocked or entry.ttl <= 0:
            return None
        if now - (entry.stored_at + entry.ttl) > self.stale_max_age:
            return None
        return entry

    async def _complete_late(
        self, q: Query, fwd: Forward, task: asyncio.Future[bytes | None]
    ) -> None:
        response = await task
        if response is not None:
            self.pipeline.complete(q, fwd, response, self.clock())  # caches it

    def _prefetch(self, key: bytes, data: bytes, client: str) -> None:
        if key in self._refreshing or self.prefetch is None:
            return
        self._refreshing.add(key)
        self.prefetches += 1
        self._keep(self._refresh(key, data, client, self.prefetch))

    async def _refresh(self, key: bytes, data: bytes, client: str, fwd: Forward) -> None:
        try:
            q = query_mod.from_wire(data, client, Transport.UDP, self.server_payload)
            response = await self.upstream.exchange(q, fwd.servers)
            if response is not None:
                self.pipeline.complete(q, fwd, response, self.clock())
        except Exception:
            log.debug("prefetch failed", exc_info=True)
        finally:
            self._refreshing.discard(key)

    def _keep(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background, holding a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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
