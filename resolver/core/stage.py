"""The contract of a policy stage, and the hooks by which it tells the pipeline what it needs.

Every stage decides on a query (``decide``). A stage whose judgement depends on more than the
query name says so by implementing one of the optional hooks below; the pipeline finds them once,
when it is built, and honours them on every path, the fast lane included (ARCHITECTURE §2.6):

- ``Metered.meter``: sees every query, even one answered from the cache (the rate limit).
- ``Admitting.admits``: judges the client; the fast lane serves a client only while every such
  stage admits it (the ACL; the exfiltration detector, while the client is in a cool-down).
- ``Versioned.generation``: a number the stage bumps whenever it would now judge some answer
  differently (a cool-down started); nothing judged before is then served from the fast lane.
- ``AnswerJudge.on_answer``: judges the upstream's answer on its way back (CNAME targets on a
  threat list, caching), in chain order, so policy speaks before the cache keeps an answer. A
  judge with ``rechecks = True`` also judges a cached answer again when the cache takes it
  back after a change of judgement (a list swap): CNAME targets and addresses newly listed are
  blocked then too. Judges that count evidence from fresh answers only leave it unset.
- ``NameJudge.on_name``: what ``decide`` would say, from the question's name, type and class
  alone, for an admitted client's plain query (one question, QUERY, RD set: what
  resolver.core.fastpath accepts). The pipeline runs the stages that have it, in chain order,
  for a question the cache has not seen (``Pipeline.first``): a listed name is then answered
  without a Query being built, and a name no stage stopped goes on from the first stage
  without the hook. A stage that cannot tell from the name says ``FULL``: ``decide`` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from resolver.core.query import Query
from resolver.core.steps import Drop, Forward, Reply, Step

if TYPE_CHECKING:
    from resolver.core.cached_answer import CachedAnswer


class Stage(Protocol):
    """Decides on a query or passes it on. Pure: no I/O, time comes in as ``now``."""

    name: ClassVar[str]  # lower case; used in logs, reasons and the config section
    # Policy stages are skipped once an earlier stage said TRUSTED (the allowlist).
    policy: ClassVar[bool]

    def decide(self, query: Query, now: float) -> Step: ...

    def describe(self) -> str: ...


@runtime_checkable
class Metered(Protocol):
    """A stage that must count every query of a client, cached or not."""

    def meter(self, client: str, now: float) -> Drop | None: ...


@runtime_checkable
class Admitting(Protocol):
    """A stage whose verdict depends on the client: may its cached answers go fast?"""

    def admits(self, client: str, now: float) -> bool: ...


@runtime_checkable
class Versioned(Protocol):
    """A stage with state that changes verdicts; ``generation`` moves when it does."""

    generation: int


@runtime_checkable
class AnswerJudge(Protocol):
    """A stage that also sees the upstream's answer: a Reply replaces it, None lets it pass."""

    def on_answer(
        self, query: Query, fwd: Forward, entry: CachedAnswer, now: float
    ) -> Reply | None: ...


class Full:
    """``on_name`` cannot tell: the stage's ``decide`` must see the whole query."""

    __slots__ = ()


FULL = Full()

# ``on_name`` says: None (``decide`` would pass the query on), a Drop, the stage's answer as a
# CachedAnswer (the bytes ``decide``'s Reply would carry once rendered), or FULL.


@runtime_checkable
class NameJudge(Protocol):
    """A stage that can judge a plain query from its name (see the module's docstring).

    A stage whose ``on_name`` always says None may set ``passes_names = True``: the pipeline
    then leaves it out of the lane (one call less per first answer).
    """

    def on_name(
        self, name: str, qtype: int, qclass: int, client: str, now: float
    ) -> CachedAnswer | Drop | Full | None: ...


NameHook = Callable[[str, int, int, str, float], "CachedAnswer | Drop | Full | None"]

# An answer as rendered for a query message (its first two bytes the first asker's ID), and
# the block-log fields of a blocked answer (qname, qtype, verdict, reason, category) or None.
Rendered = tuple[bytes, tuple[str, int, str, str, str] | None]


class AnswerCache(Protocol):
    """What the pipeline's fast lane needs of the answer cache (its one owner is the stage)."""

    min_ttl: int
    max_ttl: int

    def hit(self, key: bytes, now: float) -> CachedAnswer | None: ...

    def recall(self, tail: bytes) -> Rendered | None: ...

    def tick(self, now: float) -> None: ...

    def remember(
        self,
        tail: bytes,
        out: bytes,
        entry: CachedAnswer,
        question: bytes,
        now: float,
        prefetch_at: float | None,
    ) -> None: ...

    def stale(self, key: bytes) -> CachedAnswer | None: ...

    def store(self, key: bytes, entry: CachedAnswer) -> None: ...

    def invalidate(self) -> None: ...
