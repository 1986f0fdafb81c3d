"""One machine's evidence of generated-domain lookups, and the shape of the names it tried.

The evidence is the one Antonakakis et al. build on ("From Throw-Away Traffic to Bots",
USENIX Security 2012): a bot tries many generated names, most of them unregistered, so its
NXDOMAIN answers for registered domains nobody else resolves pile up; FANCI (Schüppen et al.,
USENIX Security 2018) judges the same NXDOMAIN names one by one. The time pattern enters as
decay (a bot tries its list in bursts; DGArchive, Plohmann et al., USENIX Security 2016,
measures tens to thousands of names per day and family), and the shape (TLDs, label lengths,
alphabet) is the family's: DGArchive finds that a family draws from a fixed set of TLDs and a
narrow length range, which is what lets a judged machine's later lookups be recognised.
"""

from __future__ import annotations

from collections import deque
from typing import Final

# Distinct registered domains remembered per machine (for the distinct count and the shape).
RECENT: Final = 64
# TLDs kept per machine's shape: families use 1 to ~20 (DGArchive); past this, any TLD goes.
MAX_TLDS: Final = 24
NEW_TLD_CHANCE: Final = 0.05
# Lengths a little outside those seen are of the shape too: a dozen names show most of a
# family's range, not its ends.
LENGTH_SLACK: Final = 3
_DIGITS: Final = frozenset("0123456789")


class Suspect:
    """Evidence and shape for one machine; bounded whatever it asks."""

    __slots__ = (
        "at",
        "digits",
        "max_len",
        "min_len",
        "named_at",
        "randoms",
        "recent",
        "score",
        "tlds",
        "total",
        "until",
    )

    def __init__(self) -> None:
        self.score = 0.0
        self.at = 0.0  # time of the last evidence
        # (time, hash(domain), random-looking) of the last registered domains counted.
        self.recent: deque[tuple[float, int, bool]] = deque(maxlen=RECENT)
        self.tlds: dict[str, int] = {}  # TLD -> names counted under it
        self.min_len = 255
        self.max_len = 0
        self.digits = False  # some label had a digit
        self.randoms = 0  # labels judged random-looking, of ``total``
        self.total = 0
        self.named_at = 0.0  # 0: not judged infected
        self.until = 0.0  # the judgement holds until then

    def add(
        self, now: float, domain: int, label: str, tld: str, weight: float, half_life: float
    ) -> bool:
        """One NXDOMAIN for a registered domain; False if it was among the recent ones."""
        for _, h, _ in self.recent:
            if h == domain:
                return False
        self.recent.append((now, domain, weight > 1))
        if self.at:
            self.score *= 0.5 ** ((now - self.at) / half_life)
        self.score += weight
        self.at = now
        tlds = self.tlds
        if tld in tlds or len(tlds) < MAX_TLDS:
            tlds[tld] = tlds.get(tld, 0) + 1
        n = len(label)
        self.min_len = min(self.min_len, n)
        self.max_len = max(self.max_len, n)
        if not self.digits and not _DIGITS.isdisjoint(label):
            self.digits = True
        self.total += 1
        if weight > 1:
            self.randoms += 1
        return True

    def distinct(self, now: float, window: float) -> int:
        """Registered domains counted within the last ``window`` seconds."""
        horizon = now - window
        return sum(1 for t, _, _ in self.recent if t >= horizon)

    def slow(self, now: float, window: float, need: int) -> bool:
        """At least ``need`` registered domains within ``window`` seconds, most of them
        random-looking: a bot that tries one name a minute never makes a burst."""
        horizon = now - window
        n = randoms = 0
        for t, _, random in self.recent:
            if t >= horizon:
                n += 1
                randoms += random
        return n >= need and randoms * 2 > n

    @property
    def random_family(self) -> bool:
        """Nearly all the names were random-looking (an arithmetic or hash-based family); a
        pronounceable family, judged random one name in two, is not held to it."""
        return self.randoms * 5 >= self.total * 4

    def matches(self, label: str, tld: str, random: bool) -> bool:
        """Is this registered domain of the shape of the names the machine tried?

        A TLD not seen yet is of the shape when the family's TLD set looks larger than what
        was seen (Necurs draws from 43, Nymaim2 from dozens): by Good and Turing's estimate,
        the chance that the next name's TLD is a new one is the share of names whose TLD was
        seen once; above ``NEW_TLD_CHANCE``, any TLD goes.
        """
        if tld not in self.tlds and len(self.tlds) < MAX_TLDS:
            once = sum(1 for c in self.tlds.values() if c == 1)
            if once < NEW_TLD_CHANCE * max(self.total, 1):
                return False
        n = len(label)
        if n < self.min_len - LENGTH_SLACK or n > self.max_len + LENGTH_SLACK:
            return False
        if not self.digits and not _DIGITS.isdisjoint(label):
            return False
        return random or not self.random_family
