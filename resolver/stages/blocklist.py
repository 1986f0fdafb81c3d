"""Block names on the threat lists, and upstream answers that alias to them."""

from __future__ import annotations

from typing import ClassVar

from resolver.core import cached_answer, responses
from resolver.core.block_answer import BlockAnswer
from resolver.core.blocklist import ListHolder
from resolver.core.query import Query
from resolver.core.steps import CONTINUE, Reply, Step, Verdict


class BlocklistStage:
    name: ClassVar[str] = "blocklist"
    policy: ClassVar[bool] = True

    def __init__(self, lists: ListHolder, answer: BlockAnswer) -> None:
        self.lists = lists  # swapped whole by the shell on reload; read once per query
        self.answer = answer

    def describe(self) -> str:
        return f"{len(self.lists.current)} entries, answer {self.answer.mode}"

    def decide(self, query: Query, now: float) -> Step:
        m = self.lists.current.match(query.qname)
        if m is None:
            return CONTINUE
        entry = cached_answer.blocked_entry(
            query.qname, query.qtype, query.qclass, self.answer, m.source, m.category, now
        )
        return Reply(
            cached_answer.render(entry, query, now), Verdict.BLOCKED, m.source, m.category, entry
        )

    def check_targets(self, query: Query, targets: list[str]) -> Reply | None:
        """Block the query if any CNAME/DNAME target of its answer is listed."""
        current = self.lists.current
        for target in targets:
            m = current.match(target)
            if m is not None:
                reason = f"{m.source} cname:{target[:100]}"
                return Reply(
                    responses.make_blocked(query, self.answer, reason),
                    Verdict.BLOCKED,
                    reason,
                    m.category,
                )
        return None
