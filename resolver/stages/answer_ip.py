"""Block answers that point into a listed address: the feeds' IP and CIDR indicators.

A clean-looking name (a fresh domain no list knows yet, a generated one) may resolve to a
command server or phishing host whose address a feed already lists: URLhaus and
Phishing.Database publish thousands of IP indicators, RPZ carries them as ``rpz-ip`` triggers
(the response-IP policy of draft-vixie-dnsop-dns-rpz §4.2), and Blocky and AdGuard Home check
answers against them. Like CNAME targets (resolver/stages/blocklist.py), every A and AAAA
record of an upstream answer is looked up in the artifact's address ranges on its way back,
before the cache keeps it; a match is answered as blocked (``blocking.mode``, EDE 15), the
reason naming the feed and the address.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, ClassVar, Final, Protocol

from resolver.core import responses
from resolver.core.block_answer import BlockAnswer
from resolver.core.blocklist import ListHolder, Match
from resolver.core.query import Query
from resolver.core.steps import CONTINUE, Forward, Reply, Step, Verdict
from resolver.core.wire import RR_FIXED, WireError, skip_name

if TYPE_CHECKING:
    from resolver.core.cached_answer import CachedAnswer

_A: Final = 1
_AAAA: Final = 28
# A feed's sinkhole addresses (researchers who took a botnet's domains over): a machine that
# reaches one is infected, which the page ranks as command and control.
_SINKHOLE: Final = "sinkhole"


class AddressIndicators(Protocol):
    """A list that also holds address ranges (resolver/blocklist_file.py, version 2)."""

    def match_ip(self, packed: bytes) -> Match | None: ...


def addresses(entry: CachedAnswer, question: bytes) -> list[bytes]:
    """The A and AAAA rdata of the answer section (4 or 16 octets each)."""
    # Compression pointers in the body are relative to the original message, where the
    # question started at offset 12: rebuild that prefix so names can be skipped.
    msg = bytes(12) + question + entry.body
    pos = 12 + len(question)
    out = []
    for _ in range(entry.an):
        pos = skip_name(msg, pos)
        rtype, _rclass, _ttl, rdlen = RR_FIXED.unpack_from(msg, pos)
        pos += 10
        if (rtype == _A and rdlen == 4) or (rtype == _AAAA and rdlen == 16):
            out.append(msg[pos : pos + rdlen])
        pos += rdlen
    return out


class AnswerIpStage:
    name: ClassVar[str] = "answer-ip"
    policy: ClassVar[bool] = True
    passes_names: ClassVar[bool] = True  # its on_name says None: left out of the lane
    rechecks: ClassVar[bool] = True  # addresses listed since the answer was cached

    def __init__(
        self,
        lists: ListHolder,
        answer: BlockAnswer,
        categories: Collection[str] = (),
        sources: Collection[str] = (),
    ) -> None:
        self.lists = lists  # the same holder as the blocklist stage: swapped whole on reload
        self.answer = answer
        # A group's choice (config groups[]), as the blocklist stage: only these categories /
        # lists block (a sinkhole's address counts as c2, as it is shown); none: all.
        self.categories = frozenset(categories)
        self.sources = frozenset(sources)
        self._filtered = bool(self.categories or self.sources)

    def describe(self) -> str:
        ranges = getattr(self.lists.current, "ranges", 0)
        return f"{ranges} address ranges from the feeds, answer {self.answer.mode}"

    def decide(self, query: Query, now: float) -> Step:
        return CONTINUE  # judges answers only

    def on_name(self, name: str, qtype: int, qclass: int, client: str, now: float) -> None:
        return None

    def on_answer(
        self, query: Query, fwd: Forward, entry: CachedAnswer, now: float
    ) -> Reply | None:
        """Block the answer if one of its addresses is in a listed range."""
        if not entry.an or entry.flags & 0xF:
            return None
        match_ip = getattr(self.lists.current, "match_ip", None)
        if match_ip is None:
            return None  # no artifact with address ranges (operator lists only)
        try:
            found = addresses(entry, query.question)
        except (WireError, IndexError, ValueError):
            return None  # the cache's own parse accepted it; nothing here to judge
        for packed in found:
            m = match_ip(packed)
            if m is not None and (not self._filtered or self._applies(m)):
                return self._reply(query, m)
        return None

    def _applies(self, m: Match) -> bool:
        category = "c2" if m.category == _SINKHOLE else m.category
        return (not self.categories or category in self.categories) and (
            not self.sources or m.source in self.sources
        )

    def _reply(self, query: Query, m: Match) -> Reply:
        reason = f"{m.source} answer-ip:{m.entry}"
        category = "c2" if m.category == _SINKHOLE else m.category
        wire = responses.make_blocked(query, self.answer, reason, category)
        return Reply(wire, Verdict.BLOCKED, reason, category)
