"""The policy chain: every answer, fast or not, is one the stages in order would give now.

A query goes through the stages until one decides (``handle``); the upstream's answer comes back
through the stages that judge answers (``complete``). The fast lane (``cached``, ``recall``)
serves a cached answer without running the chain, and only when running it could not change the
answer: the client is admitted by every stage that judges clients, every metered stage has seen
the query, and no stage has changed its judgement since the answer was judged (``changed``
invalidates the cache and the admissions). The pipeline knows the stages only by the hooks of
resolver.core.stage; it imports none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final, Protocol

from resolver.core import cached_answer, responses, wire
from resolver.core.cached_answer import CachedAnswer
from resolver.core.query import Query
from resolver.core.resolution import failure_reply, is_failure
from resolver.core.stage import (
    Admitting,
    AnswerCache,
    AnswerJudge,
    Full,
    Metered,
    NameHook,
    NameJudge,
    Rendered,
    Stage,
    Versioned,
)
from resolver.core.steps import Drop, Forward, Recheck, Reply, Trusted, Verdict

# Clients whose admission to the fast lane is remembered; a commune has a few hundred machines.
# Past this the memo is simply reset, which bounds it whatever source addresses a flood uses.
_ADMITTED_MAX: Final = 4096
# The way back of a cached answer rechecked: no server asked, the default upstreams' zone
# (answers of conditional-forwarding zones are never cached).
_RECHECK: Final = Forward(())
_RECHECK_TRUSTED: Final = Forward((), trusted=True)


class ChainFellOff(Exception):  # not RuntimeError: compiled, only Exception is inheritable
    """No stage decided: the chain is misbuilt (the upstream stage must be last)."""


class Pipeline:
    """Runs the stages in order; owns the fast lane's right to skip them."""

    def __init__(self, stages: Sequence[Stage], cache: AnswerCache, name: str = "default") -> None:
        self.stages = tuple(stages)
        self.cache = cache
        self.name = name  # the group of clients this chain serves
        # Clients whose queries may be answered from the cache without the chain; any other
        # takes the full path, which asks the admitting stages again.
        self.admitted: set[str] = set()
        # Bound methods, found once: the fast lane calls them without a lookup per query.
        self._meters = tuple(s.meter for s in stages if isinstance(s, Metered))
        self._hit = cache.hit
        self._recall = cache.recall
        self._admitting = tuple(s for s in stages if isinstance(s, Admitting))
        self._versioned = tuple(s for s in stages if isinstance(s, Versioned))
        self._generations = [s.generation for s in self._versioned]
        self._judges = tuple((s, s.policy) for s in stages if isinstance(s, AnswerJudge))
        self._rechecks = tuple((s, p) for s, p in self._judges if getattr(s, "rechecks", False))
        # The stages ``first`` runs, with their place: the chain's head up to the first stage
        # without on_name, less those that pass every plain query of an admitted client.
        lane: list[tuple[int, NameHook]] = []
        self._lane_end = len(stages)
        for i, stage in enumerate(stages):
            if not isinstance(stage, NameJudge):
                self._lane_end = i
                break
            if not getattr(stage, "passes_names", False):
                lane.append((i, stage.on_name))
        self._lane = tuple(lane)
        # The chain from each place ``first`` may resume at: no slice per miss.
        self._from = tuple(self.stages[i:] for i in range(len(self.stages) + 1))
        self._store = cache.store

    def changed(self) -> None:
        """Some stage now judges some answers differently (a list swapped, a cool-down began):
        nothing judged before may be served without the chain judging it again."""
        self.cache.invalidate()
        self.admitted.clear()

    # --- the fast lane -------------------------------------------------------------------------

    def cached(self, key: bytes, client: str, now: float) -> CachedAnswer | Drop | None:
        """The cached answer the chain would give now, a Drop, or None: take the full path."""
        if client not in self.admitted:
            return None
        entry = self._hit(key, now)
        if entry is None:
            return None
        for meter in self._meters:
            drop = meter(client, now)
            if drop is not None:
                return drop
        return entry

    def recall(self, tail: bytes, client: str, now: float) -> Rendered | Drop | None:
        """This second's rendering of the same query message (``tail``: less its ID), if the
        client is admitted and every metered stage lets it through; a Drop; or None."""
        if client not in self.admitted:
            return None
        hit = self._recall(tail)
        if hit is None:
            return None
        for meter in self._meters:
            drop = meter(client, now)
            if drop is not None:
                return drop
        return hit

    def first(self, key: bytes, name: str, client: str, now: float) -> CachedAnswer | Drop | int:
        """A question the cache has not seen (``cached`` said None), judged from its name by
        the stages' ``on_name`` in chain order: a stage's answer (a listed name), a Drop, or
        the index of the stage from which ``handle`` must run (the stages before it would
        pass the query on, and have seen it: a metered stage counted it). ``key`` is the fast
        parse's cache key, ``name`` its text.

        A listed name's answer is not cached: a burst of distinct listed names (a malware's
        domain list) would otherwise evict the commune's answers from the cache; answering a
        listed name again here costs one trie lookup more than a hit, and repeats within the
        second come from the memo of renderings anyway."""
        if client not in self.admitted:
            return 0
        qtype = (key[-5] << 8) | key[-4]
        qclass = (key[-3] << 8) | key[-2]
        for i, on_name in self._lane:
            step = on_name(name, qtype, qclass, client, now)
            if step is not None:
                if isinstance(step, Full):
                    return i
                return step
        return self._lane_end

    def tick(self, now: float) -> None:
        """A new batch of datagrams at ``now`` (the memo of renderings ages by the second)."""
        self.cache.tick(now)

    def remember(
        self,
        client: str,
        tail: bytes,
        out: bytes,
        entry: CachedAnswer,
        question: bytes,
        now: float,
        prefetch_at: float | None,
    ) -> None:
        """Keep ``out`` for repeats of the message ``tail`` within this second (the asker's
        chain: a rendering never crosses from one group of clients to another)."""
        self.cache.remember(tail, out, entry, question, now, prefetch_at)

    def stale(self, client: str, key: bytes) -> CachedAnswer | None:
        """The cached answer for ``key`` whatever its age (serve-stale, RFC 8767)."""
        return self.cache.stale(key)

    def group_of(self, client: str) -> str:
        return self.name

    # --- the chain -----------------------------------------------------------------------------

    def handle(self, query: Query, now: float, start: int = 0) -> Reply | Forward | Drop:
        """Run the stages in order until one decides, from ``start`` (what ``first`` said)."""
        step = self._run(query, now, self._from[start])
        if self._versioned:
            self._notice_changes()
        client = query.client
        if client not in self.admitted:
            self._admit(client, now)
        return step

    def _run(self, query: Query, now: float, stages: tuple[Stage, ...]) -> Reply | Forward | Drop:
        trusted = False
        for stage in stages:
            if trusted and stage.policy:
                continue
            step = stage.decide(query, now)
            if isinstance(step, Reply):
                if step.entry is not None:
                    self._store(query.cache_key, step.entry)
                return step
            if isinstance(step, Forward):
                return replace(step, trusted=True) if trusted and not step.trusted else step
            if isinstance(step, Drop):
                return step
            if isinstance(step, Trusted):
                trusted = True
            elif isinstance(step, Recheck):
                return self._recheck(query, step.entry, trusted, now)
        raise ChainFellOff(query.qname)

    def _recheck(self, query: Query, entry: CachedAnswer, trusted: bool, now: float) -> Reply:
        """A cached answer from before a change of judgement: the answer judges that recheck
        see it again (the cache's own keeps it under the new judgement), then it is served."""
        fwd = _RECHECK_TRUSTED if trusted else _RECHECK
        for stage, policy in self._rechecks:
            if trusted and policy:
                continue
            out = stage.on_answer(query, fwd, entry, now)
            if out is not None:
                return out
        return Reply(cached_answer.render(entry, query, now), Verdict.CACHED, "cache")

    def _notice_changes(self) -> None:
        gens = self._generations
        for i, stage in enumerate(self._versioned):
            if stage.generation != gens[i]:
                gens[i] = stage.generation
                self.changed()

    def _admit(self, client: str, now: float) -> None:
        # A client refused now is asked again next time: its state (a cool-down) may end.
        if all(stage.admits(client, now) for stage in self._admitting):
            if len(self.admitted) >= _ADMITTED_MAX:
                self.admitted.clear()
            self.admitted.add(client)

    def complete(self, query: Query, fwd: Forward, response: bytes | None, now: float) -> Reply:
        """Turn the upstream's response (None: none came) into the client's reply.

        The answer passes the answer-judging stages in chain order: the policy's (CNAME
        targets on a list) before the cache's, so the cache keeps only what policy let through.
        """
        if response is None or is_failure(response):
            # No upstream replied: SERVFAIL, EDE 22. Every one tried gave an error answer: its
            # rcode and its EDE passed on, never "no upstream answered" (issue 14).
            return failure_reply(query, response)
        try:
            entry = cached_answer.from_upstream(
                response, now, self.cache.min_ttl, self.cache.max_ttl
            )
        except wire.WireError:
            return Reply(responses.make_error(query, wire.SERVFAIL), Verdict.SERVFAIL, "upstream")
        out = self._judge(query, fwd, entry, now)
        if self._versioned:
            self._notice_changes()  # an answer may start a cool-down (answer-side evidence)
        if out is not None:
            return out
        return Reply(cached_answer.render(entry, query, now), Verdict.FORWARDED, "upstream")

    def _judge(self, query: Query, fwd: Forward, entry: CachedAnswer, now: float) -> Reply | None:
        trusted = fwd.trusted
        for stage, policy in self._judges:
            if trusted and policy:
                continue
            out = stage.on_answer(query, fwd, entry, now)
            if out is not None:
                return out
        return None


class Chain(Protocol):
    """What the shell asks of the policy: one Pipeline, or one per group of clients."""

    def cached(self, key: bytes, client: str, now: float) -> CachedAnswer | Drop | None: ...

    def recall(self, tail: bytes, client: str, now: float) -> Rendered | Drop | None: ...

    def first(
        self, key: bytes, name: str, client: str, now: float
    ) -> CachedAnswer | Drop | int: ...

    def handle(self, query: Query, now: float, start: int = 0) -> Reply | Forward | Drop: ...

    def complete(self, query: Query, fwd: Forward, response: bytes | None, now: float) -> Reply: ...

    def changed(self) -> None: ...

    def tick(self, now: float) -> None: ...

    def remember(
        self,
        client: str,
        tail: bytes,
        out: bytes,
        entry: CachedAnswer,
        question: bytes,
        now: float,
        prefetch_at: float | None,
    ) -> None: ...

    def stale(self, client: str, key: bytes) -> CachedAnswer | None: ...

    def group_of(self, client: str) -> str: ...
