"""When to say something about a recurring event, so that a flood makes a few log lines.

The first event of a key (a client limited, a client x domain detected) is said at once; the
later ones are counted and said as one count once ``every`` seconds have passed since the key
was last said; a key quiet for ``every`` seconds is forgotten, and said afresh if it comes
back. New keys are said at most ``new_per_minute`` a minute, and at most ``max_keys`` are
remembered: past either bound, events are only counted, and said as one sum (``others``).
Pure: time comes in as ``now``; the shell does the logging, off the query path.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")


class Summary(Generic[K]):
    def __init__(self, every: float, max_keys: int = 1024, new_per_minute: int = 30) -> None:
        self.every = every
        self.max_keys = max_keys
        self.new_per_minute = new_per_minute
        self._said: dict[K, float] = {}  # key -> when last said
        self._unsaid: dict[K, int] = {}  # key -> events counted since
        self._minute = -1
        self._new = 0  # new keys said this minute
        self.others = 0  # events of keys not itemised (over a bound), not yet said

    def event(self, key: K, now: float, n: int = 1) -> bool:
        """Count ``n`` events of ``key``; True: say this one now (the key is new, or was
        quiet for ``every`` seconds)."""
        last = self._said.get(key)
        if last is None:
            minute = int(now // 60)
            if minute != self._minute:
                self._minute, self._new = minute, 0
            if self._new >= self.new_per_minute or len(self._said) >= self.max_keys:
                self.others += n
                return False
            self._new += 1
            self._said[key] = now
            return True
        if now - last >= self.every and key not in self._unsaid:
            self._said[key] = now
            return True
        self._unsaid[key] = self._unsaid.get(key, 0) + n
        return False

    def due(self, now: float) -> list[tuple[K, int]]:
        """The counts to say now: each key's events since it was said ``every`` seconds ago
        or more, once; keys quiet for that long are forgotten."""
        out = []
        for key, n in list(self._unsaid.items()):
            if now - self._said[key] >= self.every:
                out.append((key, n))
                del self._unsaid[key]
                self._said[key] = now
        for key, at in list(self._said.items()):
            if now - at >= self.every and key not in self._unsaid:
                del self._said[key]
        return out

    def take_others(self) -> int:
        """Events not itemised since the last call (said once a minute by the shell)."""
        n, self.others = self.others, 0
        return n
