"""Block names on the threat lists, and upstream answers that alias to them."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, ClassVar

from resolver.core import cached_answer, responses, wire
from resolver.core.block_answer import BlockAnswer
from resolver.core.blocklist import ListHolder, Match
from resolver.core.query import Query
from resolver.core.steps import CONTINUE, Forward, Reply, Step, Verdict
from resolver.core.wire import WireError

if TYPE_CHECKING:
    from resolver.core.cached_answer import CachedAnswer


_EDE_MAX = 256


class BlocklistStage:
    name: ClassVar[str] = "blocklist"
    policy: ClassVar[bool] = True
    rechecks: ClassVar[bool] = True  # CNAME targets listed since the answer was cached

    def __init__(
        self,
        lists: ListHolder,
        answer: BlockAnswer,
        allow: ListHolder | None = None,
        categories: Collection[str] = (),
        sources: Collection[str] = (),
    ) -> None:
        self.lists = lists  # swapped whole by the shell on reload; read once per query
        self.answer = answer
        # The operator's allowlist: an allowed name stays allowed when reached through an alias.
        self.allow = allow
        # A group's choice (config groups[]): only these categories / lists block; none: all.
        self.categories = frozenset(categories)
        self.sources = frozenset(sources)
        self._filtered = bool(self.categories or self.sources)
        # EDE option per block reason: the lists' sources, a handful (bounded all the same).
        self._ede: dict[str, bytes] = {}

    def describe(self) -> str:
        only = ""
        if self._filtered:
            only = ", only " + ", ".join(sorted(self.categories | self.sources))
        return f"{len(self.lists.current)} entries, answer {self.answer.mode}{only}"

    def _applies(self, m: Match) -> bool:
        return (not self.categories or m.category in self.categories) and (
            not self.sources or m.source in self.sources
        )

    def decide(self, query: Query, now: float) -> Step:
        m = self.lists.current.match(query.qname)
        if m is None or (self._filtered and not self._applies(m)):
            return CONTINUE
        entry = cached_answer.blocked_entry(
            query.qname, query.qtype, query.qclass, self.answer, m.source, m.category, now
        )
        return Reply(
            cached_answer.render(entry, query, now), Verdict.BLOCKED, m.source, m.category, entry
        )

    def on_name(
        self, name: str, qtype: int, qclass: int, client: str, now: float
    ) -> CachedAnswer | None:
        """``decide`` from the name alone: the blocked answer, or None (a clean name)."""
        m = self.lists.current.match(name)
        if m is None or (self._filtered and not self._applies(m)):
            return None
        reason = m.source
        ede = self._ede.get(reason)
        if ede is None:
            if len(self._ede) >= _EDE_MAX:
                self._ede.clear()
            ede = self._ede[reason] = cached_answer.ede_blocked(reason)
        return cached_answer.blocked_entry(
            name, qtype, qclass, self.answer, reason, m.category, now, ede
        )

    def on_answer(
        self, query: Query, fwd: Forward, entry: CachedAnswer, now: float
    ) -> Reply | None:
        """A clean name may be an alias of a listed one (CNAME cloaking): check the targets."""
        if not entry.cnames:
            return None
        try:
            targets = cached_answer.cname_targets(entry, query.question)
        except WireError:
            # An alias we cannot read could hide a listed name: the upstream's answer is
            # broken, and the client gets SERVFAIL rather than an unjudged answer.
            out = responses.make_error(query, wire.SERVFAIL)
            return Reply(out, Verdict.SERVFAIL, "upstream")
        allow = self.allow.current if self.allow is not None else None
        if allow is not None:
            targets = [t for t in targets if allow.match(t) is None]
        return self.check_targets(query, targets) if targets else None

    def check_targets(self, query: Query, targets: list[str]) -> Reply | None:
        """Block the query if any CNAME/DNAME target of its answer is listed."""
        current = self.lists.current
        for target in targets:
            m = current.match(target)
            if m is not None and (not self._filtered or self._applies(m)):
                reason = f"{m.source} cname:{target[:100]}"
                return Reply(
                    responses.make_blocked(query, self.answer, reason),
                    Verdict.BLOCKED,
                    reason,
                    m.category,
                )
        return None
