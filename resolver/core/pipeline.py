"""The policy chain: a query goes through the stages in order until one decides."""

from __future__ import annotations

from collections.abc import Sequence

from resolver.core import cached_answer, responses, wire
from resolver.core.query import Query
from resolver.core.stage import Stage
from resolver.core.steps import Drop, Forward, Reply, Trusted, Verdict
from resolver.stages.allowlist import AllowlistStage
from resolver.stages.blocklist import BlocklistStage
from resolver.stages.cache import CacheStage


class ChainFellOff(RuntimeError):
    """No stage decided: the chain is misbuilt (the upstream stage must be last)."""


class Pipeline:
    """Runs the stages; ``complete`` finishes a forwarded query once the upstream answered."""

    def __init__(
        self,
        stages: Sequence[Stage],
        cache: CacheStage,
        allowlist: AllowlistStage,
        blocklist: BlocklistStage,
    ) -> None:
        self.stages = tuple(stages)
        self.cache = cache
        self.allowlist = allowlist
        self.blocklist = blocklist

    def handle(self, query: Query, now: float) -> Reply | Forward | Drop:
        trusted = False
        for stage in self.stages:
            if trusted and stage.policy:
                continue
            step = stage.decide(query, now)
            if isinstance(step, Reply):
                if step.entry is not None:
                    self.cache.store(query.cache_key, step.entry)
                return step
            if isinstance(step, (Forward, Drop)):
                return step
            if isinstance(step, Trusted):
                trusted = True
        raise ChainFellOff(query.qname)

    def complete(self, query: Query, fwd: Forward, response: bytes | None, now: float) -> Reply:
        """Turn the upstream's response (None: none came) into the client's reply."""
        if response is None:
            return Reply(
                responses.make_error(
                    query,
                    wire.SERVFAIL,
                    responses.EDE_NO_REACHABLE_AUTHORITY,
                    "no upstream answered",
                ),
                Verdict.SERVFAIL,
                "upstream",
            )
        try:
            entry = cached_answer.from_upstream(
                response, now, self.cache.min_ttl, self.cache.max_ttl
            )
        except wire.WireError:
            return Reply(responses.make_error(query, wire.SERVFAIL), Verdict.SERVFAIL, "upstream")
        if fwd.zone is None:
            # A clean name may be an alias of a listed one (CNAME cloaking): check the targets.
            targets = cached_answer.cname_targets(entry, query.question)
            # An allowlisted target stays allowed when reached through an alias.
            targets = [t for t in targets if not self.allowlist.allows(t)]
            if targets and not self.allowlist.allows(query.qname):
                blocked = self.blocklist.check_targets(query, targets)
                if blocked is not None:
                    return blocked
            if entry.ttl > 0:
                self.cache.store(query.cache_key, entry)
        return Reply(cached_answer.render(entry, query, now), Verdict.FORWARDED, "upstream")
