"""Block data smuggled out in query names: DNS tunnels (iodine, dns2tcp, dnscat2) and exfiltration.

A name alone proves little (antivirus clouds, DKIM and CDNs send long random names too), so each
query only adds evidence to what its client asked of the same registered domain over a short
and a long window. Where each signal comes from:

* ``info``, ``slow`` - an information bound per (client, registered domain): the compressed size
  of the distinct names sent (Paxson et al., "Practical Comprehensive Bounds on Surreptitious
  Communication Over DNS", 22nd USENIX Security Symposium, 2013: flag the pairs whose volume
  exceeds a configurable bound), capped by the capacity of the names' alphabet;
* ``names``, ``volume`` - the count and length of names shaped like encoded data: character
  classes and entropy of the labels (Born and Gustafson, "Detecting DNS Tunnels Using Character
  Frequency Analysis", arXiv:1004.4358, 2010: tunnels spread characters evenly where names
  follow Zipf's law; Farnham, "Detecting DNS Tunneling", SANS GIAC paper, 2013);
* ``odd``, ``qtype`` - bytes no host name holds and the tunnels' record types (NULL, KEY,
  private use), per the tools' own documentation (iodine, dns2tcp) and Farnham 2013;
* ``answers``, ``nxdomain`` - answer-side volume of TXT/NULL/CNAME/MX answers and the NXDOMAIN
  share per domain, seen through ``on_answer`` (Farnham 2013 "payload analysis"; stagers carry
  their payload down);
* ``beacon`` - regular gaps between a client's queries to one domain, as command-and-control
  check-ins keep (Hu et al., "BAYWATCH: Robust Beaconing Detection to Identify Infected Hosts
  in Large-Scale Enterprise Networks", IEEE/IFIP DSN 2016, doi:10.1109/DSN.2016.50); also the
  heartbeat: a name asked before, asked again after a pause to a domain whose data names were
  refused (Cobalt Strike's check-in, the same name each sleep);
* ``persist`` - temporal persistence: new names carrying more than a lookup key in many of the
  ten-minute slots of the last hours (Giroire et al., "Exploiting Temporal Persistence to
  Detect Covert Botnet Channels", RAID 2009, doi:10.1007/978-3-642-04342-0_17): a slow beacon
  with random sleeps (SUNBURST: an encoded id and a few octets a name, FireEye/Mandiant 2020),
  under every volume bound and too irregular for ``beacon``;
* ``nxtld`` - data-like names under a top-level domain the Public Suffix List does not know
  (dnscat2's direct mode): nothing on the Internet resolves them;
* ``rate`` - distinct names of any shape per domain in a minute.

Known-good evidence lowers the weight of the weak signals: a domain many of the commune's
machines use (popularity across clients), names in the shapes mail servers ask by design (DKIM
RFC 6376, DMARC RFC 7489, SPF RFC 7208, DNSBL RFC 5782), the known-good list.

A name that carries only a key (a counter and a short hash: a DNS test battery; a UUID)
is a lookup, not a data carrier: ``names`` needs ``name_info`` octets of information per name.

Escalation: a first detection blocks (or, in detect mode, reports) that name only; the
registered domain is blocked for that client (scope "client") during a cool-down only on a
strong signal or after ``escalate_after`` detections. A pair once cooled down keeps its record:
after the cool-down its first detection (or heartbeat) cuts it again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

from resolver.config.exfiltration import ExfiltrationConfig
from resolver.core import responses
from resolver.core.block_answer import BlockAnswer
from resolver.core.cached_answer import CachedAnswer
from resolver.core.query import Query
from resolver.core.steps import CONTINUE, Forward, Reply, Step, Verdict
from resolver.exfil import known_good
from resolver.exfil.features import (
    STRONG_TYPES,
    WEAK_TYPES,
    is_key,
    is_mail_shape,
    measure,
)
from resolver.exfil.known_good import KnownGood
from resolver.exfil.psl import RegisteredDomains
from resolver.exfil.redact import UNKNOWN_TLD

# The window slots as globals: ``state.X`` costs a module attribute lookup on every use, ~25
# uses a query.
from resolver.exfil.state import (
    ANSWER,
    DISTINCT,
    INFO,
    NAMES,
    NXD,
    ODD,
    REPLIES,
    STRONG,
    VOLUME,
    LruMap,
    Track,
)

CATEGORY = "exfiltration"
_ALL = ""  # client key of a cool-down that holds for every client (scope "all")
# Signals strong enough to cool the whole domain down at once: no benign software sends them.
STRONG_SIGNALS: Final = frozenset({"odd", "qtype", "nxtld"})
# Answers that can carry a payload down (RFC 1035 TXT, NULL, CNAME, MX; KEY; private use; ANY).
ANSWER_TYPES: Final = frozenset({5, 10, 15, 16, 25, 255, *range(65280, 65535)})
ADDRESS_TYPES: Final = frozenset({1, 28})  # A, AAAA


@dataclass(frozen=True, slots=True)
class Detection:
    """One detection, for the shell to log (also in detect mode, where nothing is blocked)."""

    at: float
    client: str
    domain: str  # the registered domain (UNKNOWN_TLD for names under no real TLD)
    qname: str  # the query that crossed the threshold
    qtype: int
    signals: tuple[str, ...]  # "names", "info", "volume", "odd", "qtype", "answers", ...
    blocked: bool  # False in detect mode
    level: str = "name"  # "name": that name only; "domain": the cool-down started


@dataclass(frozen=True, slots=True)
class _Cooldown:
    until: float
    reason: str  # "exfil:cooldown,<signals>"


class _Audience:
    """The clients that asked about one registered domain lately, and when each last did."""

    __slots__ = ("clients", "low")

    def __init__(self, client: str, now: float) -> None:
        self.clients = {client: now}
        # At most the oldest time held: no client can have gone quiet while the horizon of the
        # long window has not passed it.
        self.low = now


class ExfiltrationStage:
    name: ClassVar[str] = "exfiltration"
    policy: ClassVar[bool] = True

    def __init__(
        self,
        cfg: ExfiltrationConfig,
        answer: BlockAnswer,
        known: KnownGood | None = None,
        domains: RegisteredDomains | None = None,
        zones: Sequence[str] = (),
    ) -> None:
        """``known``: the known-good list; None reads ``cfg.known_good_file`` plus
        ``cfg.known_good`` (the shipped list when the file is ""). ``zones``: the mairie's
        own zones (conditional forwarding), each judged as a registered domain of its own."""
        self.cfg = cfg
        self.t = cfg.thresholds
        self.answer = answer
        self.block = cfg.mode == "block"
        self.off = cfg.mode == "off"
        # Read once here (start-up), never per query; tests and the evaluation pass their own.
        if known is None:
            known = known_good.read(cfg.known_good_file, cfg.known_good)
        self.known = known
        # Domains the operator said are legitimate on this box ("this is legitimate").
        self.trusted: set[str] = set()
        self.domains = domains if domains is not None else RegisteredDomains()
        # Longest first, so a sub-zone is its own domain. An AD domain such as mairie.local
        # is under no public TLD, yet no tunnel: its names go to the mairie's own servers,
        # and its machine names (DESKTOP-7F3K2LQ, android-5f3a...) look like data.
        self.zones = tuple(sorted({z.rstrip(".").lower() for z in zones}, key=lambda z: -len(z)))
        self.tracks: LruMap[tuple[str, str], Track] = LruMap(cfg.max_tracked)
        self.cooldowns: LruMap[tuple[str, str], _Cooldown] = LruMap(cfg.max_cooldowns)
        # (client, domain) pairs once cooled down -> (when, persistence): their next track
        # starts with strikes.
        self.convicted: LruMap[tuple[str, str], tuple[float, int, int]] = LruMap(cfg.max_cooldowns)
        # Registered domain -> its clients and when each last asked: popularity across clients.
        self.audience: LruMap[str, _Audience] = LruMap(cfg.max_domains)
        # The shell drains this after each query and logs each detection once (WARNING).
        self.detections: deque[Detection] = deque(maxlen=cfg.max_detections)
        self.detected = 0  # detections since start, for /metrics
        # Bumped whenever a verdict this stage gives may change for a name it judged before
        # (a cool-down starts or ends, a domain is trusted): the fast lane reads it.
        self.generation = 0
        # For ``admits``: when each client's last cool-down ends, and the last of scope "all".
        self._cooling_clients: dict[str, float] = {}
        # Queries passed on, by id, until their answer comes: (query, hash of the part judged,
        # (client, registered domain)).
        self._placed: dict[int, tuple[Query, int, tuple[str, str]]] = {}
        self._all_until = 0.0

    def describe(self) -> str:
        if self.off:
            return "disabled"
        t = self.t
        return (
            f"{self.cfg.mode}, scope {self.cfg.scope}, cool-down {self.cfg.cooldown:g} s after "
            f"{t.escalate_after} detections, {len(self.known)} known-good domains, "
            f"{t.names} data names or {t.info} octets of information per {t.window:g} s"
        )

    def _place(self, qname: str) -> tuple[str, str] | None:
        """(part to judge, registered domain); under an unknown TLD the whole name is judged,
        unless it is in one of the mairie's own zones."""
        for zone in self.zones:
            if qname.endswith(zone) and (len(qname) == len(zone) or qname[-len(zone) - 1] == "."):
                return qname[: -len(zone) - 1], zone
        parts = self.domains.split(qname)
        if parts is None:
            return None  # a single label or a public suffix: no one's tunnel
        if not self.domains.tld_exists(qname):
            return qname, UNKNOWN_TLD
        return parts

    def decide(self, query: Query, now: float) -> Step:
        if self.off:
            return CONTINUE
        qname = query.qname
        # Known-good names first: a third of a commune's misses (reverse DNS, antivirus, mail
        # blocklists), answered without the ~3 µs of the public suffix lookup.
        if "." not in qname or self.known.covers(qname):
            return CONTINUE
        parts = self._place(qname)
        if parts is None:
            return CONTINUE
        prefix, base = parts
        client = query.client
        cooling = self._cooling(client, base, now) if self.cooldowns.entries else None
        if cooling is not None:
            if not self.block:
                return CONTINUE  # detect mode: reported once per cool-down
            return self._reply(query, cooling.reason)
        if not prefix or base in self.trusted:
            return CONTINUE
        popular = self._popular(base, client, now)
        key = (client, base)
        tracks = self.tracks.entries
        track = tracks.get(key)
        if track is None:
            track = self._track(key, now)
        else:
            tracks.move_to_end(key)  # LruMap.get, without the call
        gap = track.tick(now, self.t.beacon_min_gap)
        name_key = hash(prefix)
        self._remember(query, name_key, key)
        if track.seen(name_key):
            # A repeat carries no new data; but a client coming back, after a pause, with a name
            # it asked before to a domain whose data names were refused is a beacon's heartbeat
            # (Cobalt Strike's check-in: the same name each sleep): repeated evidence.
            if track.strikes and (
                (track.strikes >= self.t.escalate_after and gap >= self.t.beacon_min_gap)
                or track.periodic(self.t.beacon_gaps, self.t.beacon_cv)
            ):
                return self._detected(query, key, track, ("beacon",), now)
            return CONTINUE
        signals = self._add(track, prefix, name_key, query.qtype, now, base is UNKNOWN_TLD)
        if signals and popular:
            signals = tuple(s for s in signals if s in STRONG_SIGNALS)
        if not signals:
            return CONTINUE
        return self._detected(query, key, track, signals, now)

    def _track(self, key: tuple[str, str], now: float) -> Track:
        """A new track; a pair whose domain was cooled down lately (the cool-down plus one long
        window) starts with its strikes: a tunnel resuming after the cool-down is cut at its
        first detection or heartbeat, a false detection is not held against the pair all day."""
        track = Track(self.t.window, self.t.long_window)
        self.tracks.put(key, track)
        if len(self.convicted):
            record = self.convicted.peek(key)
            if record is not None and now - record[0] < self.cfg.cooldown + self.t.long_window:
                track.strikes = self.t.escalate_after
                track.first_strike, track.persist_mask, track.persist_last = record
        return track

    def _add(
        self, track: Track, prefix: str, name_key: int, qtype: int, now: float, no_tld: bool
    ) -> tuple[str, ...]:
        """Count this new name; return the signals whose threshold it reached (usually none)."""
        t = self.t
        octets, escaped, data = measure(prefix, t)
        odd = 1 if escaped else 0  # ODD counts names, not their odd octets
        track.expect(name_key, data)  # a new name: its first answer will count
        if not data:
            track.keep_plain(name_key)
        strong = 1 if qtype in STRONG_TYPES else 0
        if not odd and is_mail_shape(prefix):
            # DKIM, DMARC, SPF, DNSBL: only the strong signals and the rate apply.
            track.short.count_name(now, 0, 0, 0, strong, 0)
            return ("qtype",) if strong and self._strong_types(track) else ()
        info = track.information(prefix, octets, t.info_min_chars, data)
        short_window, long_window = track.short, track.long
        if data:
            weight = t.weak_type_weight if qtype in WEAK_TYPES else 1
            long_window.count_name(now, weight, octets, odd, strong, info)
            short_window.count_name(now, weight, octets, odd, strong, info)
        else:
            long_window.count_name(now, 0, 0, 0, strong, info)
            short_window.count_name(now, 0, 0, 0, strong, info)
        short = short_window.totals
        long = long_window.totals
        signals: list[str] = []
        if short[ODD] >= t.odd_names:
            signals.append("odd")
        if short[STRONG] >= t.strong_type_names:
            signals.append("qtype")
        if short[DISTINCT] >= t.rate:
            signals.append("rate")
        if (
            data
            and info >= t.name_info  # more than a lookup key (an update's 8-hex hash)
            and track.persist(now, t.persist_slot, t.persist_span) >= t.persist_slots
            and not is_key(prefix)
        ):
            signals.append("persist")
        if data or info >= t.info_min_chars * 2:
            signals += self._weak(track, short, long, data, no_tld)
        return tuple(signals) if signals else ()

    def _weak(
        self, track: Track, short: list[int], long: list[int], data: bool, no_tld: bool
    ) -> list[str]:
        """The signals a name carrying data can cross."""
        t = self.t
        out = []
        names = short[NAMES]
        info = short[INFO]
        if names >= t.names and (
            (info >= t.names_min_info and info >= t.name_info * short[DISTINCT])
            or (names >= t.many_names and track.varied())
            or track.scattered(t.names)
        ):
            out.append("names")
        if short[VOLUME] >= t.volume:
            out.append("volume")
        if short[INFO] >= t.info:
            out.append("info")
        if (
            long[NAMES] >= t.slow_names
            or long[VOLUME] >= t.slow_volume
            or long[INFO] >= t.slow_info
        ):
            out.append("slow")
        if data and no_tld and long[NAMES] >= t.unknown_tld_names:
            out.append("nxtld")
        if (
            data
            and long[NAMES] >= t.beacon_names
            and long[INFO] >= t.beacon_info
            and track.periodic(t.beacon_gaps, t.beacon_cv)
        ):
            out.append("beacon")
        if self._nxdomain(short):
            out.append("nxdomain")
        return out

    def _nxdomain(self, short: list[int]) -> bool:
        """Mostly NXDOMAIN answers to names that carry data (not a search suffix's misses)."""
        t = self.t
        return (
            short[REPLIES] >= t.nxdomain_answers
            and short[NXD] * 100 >= t.nxdomain_percent * short[REPLIES]
            and short[NAMES] * 2 >= t.names
        )

    def _strong_types(self, track: Track) -> bool:
        return track.short.totals[STRONG] >= self.t.strong_type_names

    def _popular(self, base: str, client: str, now: float) -> bool:
        """Note that ``client`` asked about ``base``; True if enough machines did lately."""
        need = self.t.popular_clients
        audience = self.audience.get(base)
        if audience is None:
            self.audience.put(base, _Audience(client, now))
            return need <= 1
        clients = audience.clients
        clients[client] = now
        if now < audience.low:
            audience.low = now  # a clock set back
        if len(clients) < need:
            return False
        horizon = now - self.t.long_window
        if horizon > audience.low:
            # Some machine may have gone quiet for the long window: forget those that did.
            # Skipped while none can have (a popular domain's every query scanned them all).
            for c in [c for c, at in clients.items() if at < horizon]:
                del clients[c]
            audience.low = min(clients.values())
        return len(clients) >= need

    def _cooling(self, client: str, base: str, now: float) -> _Cooldown | None:
        cooldowns = self.cooldowns
        for key in ((client, base), (_ALL, base)):
            c = cooldowns.peek(key)
            if c is not None:
                if now < c.until:
                    return c
                cooldowns.pop(key)
                self.generation += 1  # the domain is answered again
        return None

    def _detected(
        self,
        query: Query,
        key: tuple[str, str],
        track: Track,
        signals: tuple[str, ...],
        now: float,
    ) -> Step:
        """One more detection on ``track``: block the name, or escalate to the domain."""
        escalated = self._strike(query, key, track, signals, now)
        joined = ",".join(signals)
        if not self.block:
            return CONTINUE
        if escalated:
            return self._reply(query, f"exfil:cooldown,{joined}")
        return self._reply(query, f"exfil:{joined}")

    def _strike(
        self,
        query: Query,
        key: tuple[str, str],
        track: Track,
        signals: tuple[str, ...],
        now: float,
    ) -> bool:
        """Count a detection; start the cool-down on strong or repeated evidence (True)."""
        track.strikes += 1
        if track.strikes == 1:
            track.first_strike = now
        escalate = self.cfg.cooldown > 0 and (
            not STRONG_SIGNALS.isdisjoint(signals) or self._repeated(track, signals, now)
        )
        if escalate:
            base = key[1]
            scope_key = key if self.cfg.scope == "client" else (_ALL, base)
            reason = f"exfil:cooldown,{','.join(signals)}"
            until = now + self.cfg.cooldown
            self.cooldowns.put(scope_key, _Cooldown(until, reason))
            self._note_cooling(scope_key[0], until, now)
            self.generation += 1
            self.tracks.pop(key)  # start afresh after the cool-down...
            # ...but not with a clean record (``_track``): its strikes and its persistence.
            self.convicted.put(key, (now, track.persist_mask, track.persist_last))
        if track.strikes == 1 or escalate:
            # Reported twice at most per track: the first name, then the domain.
            self.detected += 1
            self.detections.append(
                Detection(
                    now,
                    query.client,
                    key[1],
                    query.qname,
                    query.qtype,
                    signals,
                    self.block,
                    "domain" if escalate else "name",
                )
            )
        return escalate

    def _remember(self, query: Query, name_key: int, key: tuple[str, str]) -> None:
        """Keep where ``query`` was counted until its answer comes (no second PSL lookup)."""
        placed = self._placed
        placed[id(query)] = (query, name_key, key)
        if len(placed) > self.cfg.max_tracked:
            del placed[next(iter(placed))]  # the oldest: its answer never came

    def _repeated(self, track: Track, signals: tuple[str, ...], now: float) -> bool:
        """Repeated detections that moved real data, came with a beacon's period, or went on
        for longer than the short window (not one burst): enough to cut the whole domain."""
        t = self.t
        if track.strikes < t.escalate_after:
            return False
        long = track.long.totals
        return (
            long[INFO] >= t.escalate_info
            or long[ANSWER] >= 2 * t.answer_bytes
            or "beacon" in signals
            or now - track.first_strike >= t.window
        )

    def on_answer(
        self, query: Query, fwd: Forward, answer: bytes | CachedAnswer, now: float
    ) -> Reply | None:
        """Count what came back for ``query`` from an upstream: answer-side evidence.

        ``answer`` is the ``CachedAnswer`` made of the upstream's response (or that response in
        wire form). The pipeline calls it once per upstream answer to a query this stage passed
        on, never for cache hits nor blocked answers. A Reply (block mode, once the answers
        cross a threshold) replaces the answer: the payload a stager pulls down stops there.
        """
        if self.off or fwd.zone is not None:
            return None  # conditional forwarding: the commune's own zones
        entry = self._placed.pop(id(query), None)
        if entry is None or entry[0] is not query:
            return None  # never reached a track: known-good, trusted, in cool-down, plain
        key = entry[2]
        track = self.tracks.entries.get(key)
        if track is None:
            return None  # known-good, trusted, in cool-down or long forgotten
        signals = self._answered(track, query, entry[1], answer, now)
        if not signals or self._is_popular(key[1], now):
            return None
        escalated = self._strike(query, key, track, signals, now)
        if not self.block:
            return None
        joined = ",".join(signals)
        return self._reply(query, f"exfil:cooldown,{joined}" if escalated else f"exfil:{joined}")

    def _answered(
        self, track: Track, query: Query, name_key: int, answer: bytes | CachedAnswer, now: float
    ) -> tuple[str, ...]:
        """Add one answer to ``track``; the answer-side signals it crossed."""
        if isinstance(answer, CachedAnswer):
            rcode, size, tail = answer.rcode, len(answer.body), answer.body[-4:]
        else:
            rcode = answer[3] & 0xF if len(answer) > 3 else 0
            size = max(len(answer) - 12 - len(query.question), 0)
            tail = answer[-4:]
        if query.qtype in ADDRESS_TYPES and size and not rcode:
            # the last record's address (or the last 4 octets of the answer)
            track.address(int.from_bytes(tail, "big"))
        # Only the first answer to a new name counts: an answer asked again once its TTL ran
        # out carries nothing new.
        fresh = track.fresh(name_key) if query.qtype in ANSWER_TYPES else 0
        carried = size if fresh else 0
        # What a data-like name brings down is information of the channel as much as what it
        # carried up: the bound of Paxson et al. (names going up) applied to the downlink of
        # the same names. A TXT task fetch "api.<nonce>" carries 4 octets up and 189 down.
        down = carried if fresh == 2 else 0
        nxd = 1 if rcode == 3 else 0
        short_window, long_window = track.short, track.long
        short_window.count_answer(now, down, carried, nxd)
        long_window.count_answer(now, down, carried, nxd)
        long = long_window.totals
        t = self.t
        nxdomain = self._nxdomain(short_window.totals)
        if carried and long[ANSWER] >= t.answer_bytes and long[DISTINCT] >= t.answer_names:
            return ("answers", "nxdomain") if nxdomain else ("answers",)
        return ("nxdomain",) if nxdomain else ()  # no list, no tuple() on the usual answer

    def admits(self, client: str, now: float) -> bool:
        """False while ``client`` (or every client, scope "all") has a domain in cool-down:
        its cached answers must then take the full path, where this stage sees them."""
        if now < self._all_until:
            return False
        until = self._cooling_clients.get(client)
        if until is None:
            return True
        if now < until:
            return False
        del self._cooling_clients[client]
        return True

    def _note_cooling(self, client: str, until: float, now: float) -> None:
        if client == _ALL:
            self._all_until = max(self._all_until, until)
            return
        cooling = self._cooling_clients
        cooling[client] = max(cooling.get(client, 0.0), until)
        if len(cooling) > 2 * self.cfg.max_cooldowns:
            for c in [c for c, u in cooling.items() if u <= now]:
                del cooling[c]

    def _is_popular(self, base: str, now: float) -> bool:
        audience = self.audience.peek(base)
        if audience is None:
            return False
        clients = audience.clients
        horizon = now - self.t.long_window
        if horizon <= audience.low:
            return len(clients) >= self.t.popular_clients  # none older than the horizon
        return sum(1 for at in clients.values() if at >= horizon) >= self.t.popular_clients

    def trust(self, domain: str) -> None:
        """The operator said ``domain`` is legitimate: never judge it again on this box."""
        base = domain.lower().rstrip(".")
        self.trusted.add(base)
        for key in self.cooldowns.key_list():
            if key[1] == base:
                self.cooldowns.pop(key)
        for track_key in self.tracks.key_list():
            if track_key[1] == base:
                self.tracks.pop(track_key)
        for pair in self.convicted.key_list():
            if pair[1] == base:
                self.convicted.pop(pair)
        self.generation += 1

    def _reply(self, query: Query, reason: str) -> Reply:
        wire = responses.make_blocked(query, self.answer, reason, CATEGORY)
        return Reply(wire, Verdict.EXFILTRATION, reason=reason, category=CATEGORY)

    def drain(self) -> list[Detection]:
        """Take the detections not yet logged (the shell calls this after each query)."""
        out = list(self.detections)
        self.detections.clear()
        return out
