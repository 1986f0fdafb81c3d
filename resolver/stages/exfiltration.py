"""Block data smuggled out in query names: DNS tunnels (iodine, dns2tcp, dnscat2) and exfiltration.

A name alone proves little (antivirus clouds, DKIM and CDNs send long random names too), so each
query only adds evidence to what its client asked of the same registered domain over a short
and a long window: distinct data-like names, their characters (the information budget), odd
bytes, tunnel record types, distinct names of any shape. Past a threshold the query is blocked,
then the registered domain, for that client or for all, during a cool-down.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from resolver.config.exfiltration import ExfiltrationConfig
from resolver.core import responses
from resolver.core.block_answer import BlockAnswer
from resolver.core.query import Query
from resolver.core.steps import CONTINUE, Reply, Step, Verdict
from resolver.exfil import known_good, state
from resolver.exfil.features import STRONG_TYPES, WEAK_TYPES, measure
from resolver.exfil.known_good import KnownGood
from resolver.exfil.psl import RegisteredDomains
from resolver.exfil.state import LruMap, Track

CATEGORY = "exfiltration"
_ALL = ""  # client key of a cool-down that holds for every client (scope "all")


@dataclass(frozen=True, slots=True)
class Detection:
    """One detection, for the shell to log (also in detect mode, where nothing is blocked)."""

    at: float
    client: str
    domain: str  # the registered domain now in cool-down
    qname: str  # the query that crossed the threshold
    qtype: int
    signals: tuple[str, ...]  # "names", "volume", "odd", "qtype", "rate", "slow"
    blocked: bool  # False in detect mode


@dataclass(frozen=True, slots=True)
class _Cooldown:
    until: float
    reason: str  # "exfil:cooldown,<signals>"


class ExfiltrationStage:
    name: ClassVar[str] = "exfiltration"
    policy: ClassVar[bool] = True

    def __init__(
        self,
        cfg: ExfiltrationConfig,
        answer: BlockAnswer,
        known: KnownGood | None = None,
        domains: RegisteredDomains | None = None,
    ) -> None:
        """``known``: the known-good list; None reads ``cfg.known_good_file`` plus
        ``cfg.known_good`` (the shipped list when the file is "")."""
        self.cfg = cfg
        self.t = cfg.thresholds
        self.answer = answer
        self.block = cfg.mode == "block"
        self.off = cfg.mode == "off"
        # Read once here (start-up), never per query; tests and the evaluation pass their own.
        if known is None:
            known = known_good.read(cfg.known_good_file, cfg.known_good)
        self.known = known
        self.domains = domains if domains is not None else RegisteredDomains()
        self.tracks: LruMap[tuple[str, str], Track] = LruMap(cfg.max_tracked)
        self.cooldowns: LruMap[tuple[str, str], _Cooldown] = LruMap(cfg.max_cooldowns)
        # The shell drains this after each query and logs each detection once (WARNING).
        self.detections: deque[Detection] = deque(maxlen=cfg.max_detections)
        self.detected = 0  # detections since start, for /metrics

    def describe(self) -> str:
        if self.off:
            return "disabled"
        t = self.t
        return (
            f"{self.cfg.mode}, scope {self.cfg.scope}, cool-down {self.cfg.cooldown:g} s, "
            f"{len(self.known)} known-good domains, {t.names} data names or {t.volume} chars "
            f"per {t.window:g} s"
        )

    def decide(self, query: Query, now: float) -> Step:
        if self.off:
            return CONTINUE
        qname = query.qname
        parts = self.domains.split(qname)
        if parts is None:
            return CONTINUE  # a single label or a public suffix: no one's tunnel
        prefix, base = parts
        client = query.client
        cooling = self._cooling(client, base, now)
        if cooling is not None:
            if not self.block:
                return CONTINUE  # detect mode: reported once per cool-down
            return self._reply(query, cooling.reason)
        if not prefix or self.known.covers(qname):
            return CONTINUE
        key = (client, base)
        track = self.tracks.get(key)
        if track is None:
            track = Track(self.t.window, self.t.long_window)
            self.tracks.put(key, track)
        if track.seen(hash(prefix)):
            return CONTINUE  # a repeat carries no new data
        signals = self._add(track, prefix, query.qtype, now)
        if not signals:
            return CONTINUE
        return self._detected(query, key, base, signals, now)

    def _add(self, track: Track, prefix: str, qtype: int, now: float) -> tuple[str, ...]:
        """Count this new name; return the signals whose threshold it reached (usually none)."""
        t = self.t
        ev = measure(prefix, t)
        strong = qtype in STRONG_TYPES
        signals: list[str] = []
        if ev.data:
            weight = t.weak_type_weight if qtype in WEAK_TYPES else 1
            values = (weight, ev.octets, 1 if ev.odd else 0, int(strong), 1)
            long = track.long.add(now, values)
            if long[state.NAMES] >= t.slow_names or long[state.VOLUME] >= t.slow_volume:
                signals.append("slow")
        else:
            values = (0, 0, 0, int(strong), 1)
        short = track.short.add(now, values)
        if short[state.NAMES] >= t.names:
            signals.append("names")
        if short[state.VOLUME] >= t.volume:
            signals.append("volume")
        if short[state.ODD] >= t.odd_names:
            signals.append("odd")
        if short[state.STRONG] >= t.strong_type_names:
            signals.append("qtype")
        if short[state.DISTINCT] >= t.rate:
            signals.append("rate")
        return tuple(signals)

    def _cooling(self, client: str, base: str, now: float) -> _Cooldown | None:
        cooldowns = self.cooldowns
        if not len(cooldowns):
            return None
        for key in ((client, base), (_ALL, base)):
            c = cooldowns.peek(key)
            if c is not None:
                if now < c.until:
                    return c
                cooldowns.pop(key)
        return None

    def _detected(
        self, query: Query, key: tuple[str, str], base: str, signals: tuple[str, ...], now: float
    ) -> Step:
        self.detected += 1
        self.tracks.pop(key)  # start afresh after the cool-down
        joined = ",".join(signals)
        scope_key = key if self.cfg.scope == "client" else (_ALL, base)
        if self.cfg.cooldown > 0:
            cooldown = _Cooldown(now + self.cfg.cooldown, f"exfil:cooldown,{joined}")
            self.cooldowns.put(scope_key, cooldown)
        self.detections.append(
            Detection(now, query.client, base, query.qname, query.qtype, signals, self.block)
        )
        if not self.block:
            return CONTINUE
        return self._reply(query, f"exfil:{joined}")

    def _reply(self, query: Query, reason: str) -> Reply:
        wire = responses.make_blocked(query, self.answer, reason, CATEGORY)
        return Reply(wire, Verdict.EXFILTRATION, reason=reason, category=CATEGORY)

    def drain(self) -> list[Detection]:
        """Take the detections not yet logged (the shell calls this after each query)."""
        out = list(self.detections)
        self.detections.clear()
        return out
