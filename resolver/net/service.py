"""The shell around the pipeline: bytes in, bytes out, shared by the UDP and TCP transports."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from resolver.blocklog.writer import BlockEvent
from resolver.core import query as query_mod
from resolver.core import responses, wire
from resolver.core.pipeline import Pipeline
from resolver.core.query import MalformedQuery, Query, Transport
from resolver.core.steps import LOGGED, Drop, Forward, Reply, Verdict
from resolver.net.upstream_client import UpstreamClient

log = logging.getLogger(__name__)

Pending = tuple[Query, Forward]

_BUG_LOG_INTERVAL: Final = 60.0  # seconds between two tracebacks of pipeline bugs


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
    ) -> None:
        self.pipeline = pipeline
        self.upstream = upstream
        self.offer = offer
        self.server_payload = server_payload
        self.max_inflight = max_inflight
        self.clock = clock
        self.inflight = 0
        self.counts: dict[Verdict, int] = dict.fromkeys(Verdict, 0)
        self.dropped = 0
        self.malformed = 0
        self._last_bug_log = -_BUG_LOG_INTERVAL

    def begin(self, data: bytes, client: str, transport: Transport) -> bytes | Pending | None:
        """The answer if it is known now, a pending forward, or None to send nothing."""
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
                    now, q.client, q.qname, q.qtype, step.verdict.value, step.reason, step.category
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
