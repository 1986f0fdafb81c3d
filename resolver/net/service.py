"""The shell around the pipeline: bytes in, bytes out, shared by the UDP and TCP transports.

``begin`` answers what can be answered now and says so explicitly: an ``Answer`` (the bytes to
send), a ``Pending`` forward, or ``Dropped`` with its reason. Every answer and drop is counted by
one ``account``. Whether a cached answer may skip the chain is the pipeline's decision, never the
transport's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from resolver.blocklog.writer import BlockEvent
from resolver.core import cached_answer, responses, wire
from resolver.core import query as query_mod
from resolver.core.cached_answer import CachedAnswer, render_parts, stale_copy
from resolver.core.fastpath import FastQuery, name_text, parse_fast, query_from_fast
from resolver.core.pipeline import Chain, Pipeline
from resolver.core.query import MIN_UDP, MalformedQuery, Query, Transport
from resolver.core.steps import LOGGED, Drop, Forward, Reply, Verdict
from resolver.net.upstream_client import UpstreamClient

log = logging.getLogger(__name__)

Answer = bytes  # a complete message for the client, fitted to its size limit


class Pending:
    """A query that waits for the upstream: ``forward`` or ``finish`` completes it."""

    __slots__ = ("fwd", "query")

    def __init__(self, query: Query, fwd: Forward) -> None:
        self.query = query
        self.fwd = fwd


class Dropped:
    """Nothing to send; ``reason`` says why. A TCP client whose query is refused (rate limit,
    overload) is told by the end of the stream (``ends_stream``); one that sent an unanswerable
    message (a response, a runt) is simply not answered."""

    __slots__ = ("ends_stream", "reason")

    def __init__(self, reason: str, ends_stream: bool = True) -> None:
        self.reason = reason
        self.ends_stream = ends_stream


class _Waiter:
    """One query waiting for an upstream answer: how to deliver it, and its stale fallback."""

    __slots__ = ("answered", "deliver", "pending", "stale", "timer")

    def __init__(self, pending: Pending, deliver: Callable[[bytes], None]) -> None:
        self.pending = pending
        self.deliver = deliver
        self.stale: CachedAnswer | None = None  # an expired answer to serve if none comes
        self.timer: asyncio.TimerHandle | None = None  # when to serve it
        self.answered = False  # the stale answer went out: the late one only fills the cache


class _Flight:
    """One upstream exchange, from send to answer, and the queries waiting for it."""

    __slots__ = ("key", "service", "waiters")

    def __init__(self, service: Service, key: tuple[bytes, Forward], first: _Waiter) -> None:
        self.service = service
        self.key = key
        self.waiters = [first]

    def landed(self, response: bytes | None) -> None:
        service = self.service
        flights = service._flights
        if flights.get(self.key) is self:
            del flights[self.key]
        for w in self.waiters:
            try:
                service._landed(w, response)
            except Exception:  # one waiter's fault must not leave the others unanswered
                log.exception("answer to a coalesced query not delivered")


OVERLOAD: Final = Dropped("overload")  # too many queries waiting for upstreams
UNANSWERABLE: Final = Dropped("malformed", ends_stream=False)
ERRORS_LIMITED: Final = Dropped("error_limit")  # too many error answers to this source network

_UDP = Transport.UDP
_BUG_LOG_INTERVAL: Final = 60.0  # seconds between two tracebacks of pipeline bugs
# Distinct query messages (less their ID) whose fast parse is remembered. Clients repeat the
# same bytes (same case, same flags, same EDNS options), so a hit skips the parse; the memo is
# simply reset when full, which bounds it whatever a flood sends.
_PARSED_MAX: Final = 8192
# Answers shorter-lived than this are not prefetched: they change too often to be worth it.
_PREFETCH_MIN_TTL: Final = 10
_DROP_VERDICT: Final = "dropped"


class Service:
    """Answers one message: ``begin`` decides synchronously, ``forward``/``finish`` complete."""

    def __init__(
        self,
        pipeline: Chain,
        upstream: UpstreamClient,
        offer: Callable[[BlockEvent], bool] | None,
        *,
        server_payload: int = query_mod.DEFAULT_UDP_PAYLOAD,
        max_inflight: int = 2048,
        clock: Callable[[], float] = time.time,
        fast: bool = True,
        stale_max_age: int = 0,
        stale_answer_after: float = 1.8,
        prefetch: Forward | None = None,
        errors: Callable[[str, float], bool] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.upstream = upstream
        self.offer = offer
        self.server_payload = server_payload
        self.max_inflight = max_inflight
        self.clock = clock
        self.fast = fast  # False: every query runs the chain (tests compare both)
        self._parsed: dict[bytes, FastQuery] = {}
        self.stale_max_age = stale_max_age
        self.stale_answer_after = stale_answer_after
        self.prefetch = prefetch  # where to refresh popular answers from; None: no prefetch
        # May an error answer to a malformed query go to this client now (ErrorLimiter)?
        self.errors = errors
        self._refreshing: set[bytes] = set()
        # (cache key, Forward) -> the exchange in flight for it, and the queries it answers.
        self._flights: dict[tuple[bytes, Forward], _Flight] = {}
        self.coalesced = 0  # queries answered by another query's upstream exchange
        self.prefetches = 0
        self.inflight = 0
        self.counts: dict[str, int] = dict.fromkeys((*Verdict.ALL, _DROP_VERDICT), 0)
        self.malformed = 0
        # Blocks per policy group, counted only when there are groups (config groups:).
        self.blocks_by_group: dict[str, int] | None = None if isinstance(pipeline, Pipeline) else {}
        self._last_bug_log = -_BUG_LOG_INTERVAL
        self._dropped: dict[str, Dropped] = {}  # one Dropped per pipeline Drop reason

    @property
    def dropped(self) -> int:
        return self.counts[_DROP_VERDICT]

    def account(self, verdict: str, event: BlockEvent | None = None) -> None:
        """Count one answer (or drop, verdict "dropped"); a block goes to the block log."""
        self.counts[verdict] += 1
        if event is not None:
            if self.offer is not None:
                self.offer(event)
            by_group = self.blocks_by_group
            if by_group is not None:
                group = self.pipeline.group_of(event.client)
                by_group[group] = by_group.get(group, 0) + 1

    def drop(self, why: Drop | Dropped) -> Dropped:
        """Count a drop; the transport's Dropped for it (one per reason: no allocation)."""
        self.account(_DROP_VERDICT)
        if isinstance(why, Dropped):
            return why
        d = self._dropped.get(why.reason)
        if d is None:
            d = self._dropped[why.reason] = Dropped(why.reason)
        return d

    # --- answering now -------------------------------------------------------------------------

    def begin(self, data: bytes, client: str, transport: Transport) -> Answer | Pending | Dropped:
        """The answer if it is known now, a pending forward, or Dropped: send nothing."""
        if self.fast:
            tail = data[2:]
            fq = self._parsed.get(tail)
            if fq is None:
                fq = self._parse(tail, data)
            if fq is not None:
                try:
                    return self._fast(data, tail, fq, client, transport)
                except Exception:
                    # A bug in a stage's hook: SERVFAIL and one log line, as on the full path.
                    name = name_text(fq[0])
                    q = query_from_fast(data, fq, name, client, transport, self.server_payload)
                    return self._bug(q)
        return self._full(data, client, transport)

    def _fast(
        self, data: bytes, tail: bytes, fq: FastQuery, client: str, transport: Transport
    ) -> Answer | Pending | Dropped:
        """A plain query: from the cache, judged from its name, or the chain from there on."""
        now = self.clock()
        pipeline = self.pipeline
        entry = pipeline.cached(fq[0], client, now)
        if entry is None:
            # Not seen: judged from its name (a listed one answered here), or the chain goes on
            # from where the name's judges stopped, without a second parse.
            name = name_text(fq[0])
            lane = pipeline.first(fq[0], name, client, now)
            if isinstance(lane, int):
                q = query_from_fast(data, fq, name, client, transport, self.server_payload)
                return self._decide(q, now, lane)
            entry = lane
        if isinstance(entry, Drop):
            return self.drop(entry)
        out = self._fast_answer(data, fq, entry, client, transport, now)
        if transport is _UDP:
            self._remember(client, tail, out, entry, fq[2], now)
        return out

    def _parse(self, tail: bytes, data: bytes) -> FastQuery | None:
        fq = parse_fast(data)
        if fq is not None:
            if len(self._parsed) >= _PARSED_MAX:
                self._parsed.clear()
            self._parsed[tail] = fq
        return fq

    def _full(self, data: bytes, client: str, transport: Transport) -> Answer | Pending | Dropped:
        try:
            q = query_mod.from_wire(data, client, transport, self.server_payload)
        except MalformedQuery as exc:
            self.malformed += 1
            if exc.response is None:
                return UNANSWERABLE
            errors = self.errors  # UDP only: a TCP source is not forged (BIND's RRL too)
            if errors is not None and transport is _UDP and not errors(client, self.clock()):
                return self.drop(ERRORS_LIMITED)
            return exc.response
        return self._decide(q, self.clock(), 0)

    def _decide(self, q: Query, now: float, start: int) -> Answer | Pending | Dropped:
        """Run the chain from stage ``start`` (0, or where ``Pipeline.first`` stopped)."""
        try:
            step = self.pipeline.handle(q, now, start)
        except Exception:
            return self._bug(q)
        if isinstance(step, Reply):
            return self._send(q, step, now)
        if isinstance(step, Drop):
            return self.drop(step)
        if self.inflight >= self.max_inflight:
            return self.drop(OVERLOAD)  # the client retries; better than queueing without bound
        self.inflight += 1  # released when the answer is delivered (forward)
        return Pending(q, step)

    def recall(self, tail: bytes, client: str, now: float) -> Answer | Dropped | None:
        """A repeat, within this second, of a UDP message answered from the cache: the same
        answer (its ID still the first asker's: the caller patches it), a drop, or None."""
        hit = self.pipeline.recall(tail, client, now)
        if hit is None:
            return None
        if isinstance(hit, Drop):
            return self.drop(hit)
        answer, event = hit
        if event is None:
            self.account(Verdict.CACHED)
        else:
            self.account(Verdict.BLOCKED, BlockEvent(now, client, *event))
        return answer

    def tick(self) -> float:
        """The time for a batch of datagrams; renderings of an earlier second are forgotten."""
        now = self.clock()
        self.pipeline.tick(now)
        return now

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
        if (
            self.prefetch is not None
            and entry.ttl >= _PREFETCH_MIN_TTL
            and now >= entry.stored_at + entry.ttl * 0.9
            and not entry.blocked
        ):
            self._prefetch(fq[0], data, client)
        edns = payload >= 0
        out = render_parts(entry, (data[0] << 8) | data[1], qflags, question, edns, do, now)
        if transport is _UDP:
            limit = max(MIN_UDP, min(payload, self.server_payload)) if edns else MIN_UDP
            if len(out) > limit:
                out = responses.truncated(out, question, edns, do)
        if entry.blocked:
            qtype = (question[-4] << 8) | question[-3]
            self.account(
                Verdict.BLOCKED,
                BlockEvent(
                    now, client, entry.qname, qtype, "blocked", entry.reason, entry.category
                ),
            )
        else:
            self.account(Verdict.CACHED)
        return out

    def _remember(
        self,
        client: str,
        tail: bytes,
        out: bytes,
        entry: CachedAnswer,
        question: bytes,
        now: float,
    ) -> None:
        """Keep a UDP answer for repeats within this second (CacheStage.remember)."""
        # A repeat must reach begin() to start the prefetch in the last tenth of the TTL.
        prefetch_at = (
            entry.stored_at + entry.ttl * 0.9
            if self.prefetch is not None and entry.ttl >= _PREFETCH_MIN_TTL and not entry.blocked
            else None
        )
        self.pipeline.remember(client, tail, out, entry, question, now, prefetch_at)

    # --- waiting for the upstream --------------------------------------------------------------

    def forward(self, pending: Pending, deliver: Callable[[bytes], None]) -> None:
        """Ask the upstream (no task, no closure); ``deliver`` gets the answer, once.

        With an expired answer at hand (RFC 8767 §5), the client gets it after
        ``stale_answer_after`` if the upstream is still silent; its late answer still
        refreshes the cache.
        """
        w = _Waiter(pending, deliver)
        stale = self._stale_entry(pending.query, pending.fwd, self.clock())
        if stale is not None:
            w.stale = stale
            w.timer = asyncio.get_running_loop().call_later(
                self.stale_answer_after, self._stale_due, w
            )
        self._exchange(w)

    def _stale_due(self, w: _Waiter) -> None:
        w.timer = None
        w.answered = True
        self._deliver(w, None)

    def _exchange(self, w: _Waiter) -> None:
        """Ask the upstream, or wait for the same question already asked of the same servers.

        Identical questions in flight share one upstream exchange (one answer, one chance for
        an off-path spoofer instead of one per client: RFC 5452 §5), and each waiter then gets
        its own answer (its ID, case, size limit, its answer-judging stages). Only the same
        cache key (name, type, class, DO, CD: what our upstream query carries) sent to the
        same Forward (servers, zone, trust) is shared: the chain has already judged each client
        before its query got here.
        """
        q, fwd = w.pending.query, w.pending.fwd
        key = (q.cache_key, fwd)
        flight = self._flights.get(key)
        if flight is not None:
            flight.waiters.append(w)
            self.coalesced += 1
            return
        flight = self._flights[key] = _Flight(self, key, w)
        try:
            self.upstream.exchange_soon(q, fwd.servers, flight.landed)
        except Exception:
            if self._flights.get(key) is flight:
                del self._flights[key]
            if w.timer is not None:
                w.timer.cancel()
            self.inflight -= 1
            w.deliver(self._bug(q))

    def _landed(self, w: _Waiter, response: bytes | None) -> None:
        """The upstream's answer (None: none came) for one waiter."""
        if w.timer is not None:
            w.timer.cancel()
            w.timer = None
        if w.answered:  # it had its stale answer: the late one only refreshes the cache
            self._complete_late(w.pending.query, w.pending.fwd, response)
        else:
            self._deliver(w, response)

    def _deliver(self, w: _Waiter, response: bytes | None) -> None:
        q, fwd, stale = w.pending.query, w.pending.fwd, w.stale
        now = self.clock()
        try:
            if response is None and stale is not None:
                step = Reply(
                    cached_answer.render(stale_copy(stale, now), q, now), Verdict.STALE, "stale"
                )
            else:
                step = self.pipeline.complete(q, fwd, response, now)
            out = self._send(q, step, now)
        except Exception:
            out = self._bug(q)
        finally:
            self.inflight -= 1
        w.deliver(out)

    def _complete_late(self, q: Query, fwd: Forward, response: bytes | None) -> None:
        if response is not None:
            try:
                self.pipeline.complete(q, fwd, response, self.clock())  # caches it
            except Exception:
                log.debug("late answer not kept", exc_info=True)

    async def finish(self, pending: Pending) -> Answer:
        """``forward`` as a coroutine (TCP, tests)."""
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        def deliver(out: bytes) -> None:
            if not fut.done():  # the waiter may have been cancelled (connection lost)
                fut.set_result(out)

        self.forward(pending, deliver)
        return await fut

    def _stale_entry(self, q: Query, fwd: Forward, now: float) -> CachedAnswer | None:
        """An expired answer we may serve if the upstream fails (not for conditional zones)."""
        if not self.stale_max_age or fwd.zone is not None:
            return None
        entry = self.pipeline.stale(q.client, q.cache_key)
        if entry is None or entry.blocked or entry.ttl <= 0:
            return None
        if now - (entry.stored_at + entry.ttl) > self.stale_max_age:
            return None
        return entry

    def _prefetch(self, key: bytes, data: bytes, client: str) -> None:
        fwd = self.prefetch
        if key in self._refreshing or fwd is None:
            return
        try:
            q = query_mod.from_wire(data, client, Transport.UDP, self.server_payload)
        except MalformedQuery:
            return
        self._refreshing.add(key)
        self.prefetches += 1

        def done(response: bytes | None) -> None:
            self._refreshing.discard(key)
            self._complete_late(q, fwd, response)

        try:
            self.upstream.exchange_soon(q, fwd.servers, done)
        except Exception:
            self._refreshing.discard(key)
            log.debug("prefetch failed", exc_info=True)

    async def answer(self, data: bytes, client: str, transport: Transport) -> bytes | None:
        """Both halves in one call (tests): the answer, or None when dropped."""
        out = self.begin(data, client, transport)
        if isinstance(out, Pending):
            return await self.finish(out)
        if isinstance(out, Dropped):
            return None
        return out

    def _send(self, q: Query, step: Reply, now: float) -> bytes:
        verdict = step.verdict
        if verdict in LOGGED:
            event = BlockEvent(now, q.client, q.qname, q.qtype, verdict, step.reason, step.category)
            self.account(verdict, event)
        else:
            self.account(verdict)
        out = step.wire
        if len(out) > q.size_limit:
            out = responses.fit(q, out)
        return out

    def _bug(self, q: Query) -> bytes:
        """A fault of ours: SERVFAIL for this query, one log line, and serving goes on."""
        self.account(Verdict.SERVFAIL)
        now = time.monotonic()
        if now - self._last_bug_log >= _BUG_LOG_INTERVAL:
            self._last_bug_log = now
            log.exception("internal error while answering %r (type %d)", q.qname[:255], q.qtype)
        return responses.make_error(q, wire.SERVFAIL)
