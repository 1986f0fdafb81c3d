"""The ``exfiltration`` section: the settings of the detector in resolver/stages/exfiltration.py.

Every threshold is here with the measurement behind its default; ``bench/exfil_eval.py`` replays
real tunnel captures, generated tunnel encodings and benign families against them and
``bench/exfil_results.md`` records the figures.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal


def _bad(message: str, hint: str) -> ValueError:
    # The config loader splits "message|hint" (see resolver/config/loader.py).
    return ValueError(f"{message}|{hint}")


@dataclass(frozen=True, slots=True)
class ExfilThresholds:
    """What makes one name data-like, and how much per client and domain is too much."""

    # A name part (left of the registered domain, dots removed) shorter than this is never data:
    # the longest such part in 58,654 real benign names that is not a word is 21 characters
    # (pennstateoffice365-my); tunnel data queries carry 30 to 250.
    min_data_chars: int = 16
    # Letter/digit alternations a data-like part needs, at least this many...
    min_switches: int = 3
    # ...and at least one per this many characters: random base32/base64/hex text alternates
    # every 3 to 4 characters, brand names with a number once or twice (beigeneo365apc).
    switch_every: int = 8
    # Or: this Shannon entropy (bits per character) on a part of at least long_chars characters
    # without digits. English-like names stay under 3.9; 32 random base32 letters reach 4.4.
    long_chars: int = 24
    long_entropy: float = 4.1
    # Short window: sliding span in seconds, cut in buckets.
    window: float = 60.0
    # Distinct data-like names to one registered domain from one client in the short window.
    # Tunnels send one per query; benign families outside the known-good list stay at 1 to 3.
    names: int = 8
    # A data-like name asked with TXT, CNAME or MX counts this many times toward ``names``:
    # weak evidence, as tunnels prefer types that carry long answers but mail servers ask them.
    weak_type_weight: int = 2
    # Characters of data-like names (the information budget) in the short window. 1,200 is 5
    # to 6 full-size tunnel queries; it bounds what leaks before the block to ~1 KB decoded.
    volume: int = 1200
    # Distinct names holding bytes that are not letters, digits, '-' or '_' (escaped as \DDD:
    # base64 '+', '/', binary base128): no host name has them.
    odd_names: int = 3
    # Distinct names asked with NULL, KEY or private-use types (65280-65534): DNS tunnels'
    # favourite carriers, unused by anything a town hall runs.
    strong_type_names: int = 3
    # Distinct names of any shape to one registered domain in the short window: catches a tunnel
    # that keeps each name short. The busiest benign case seen, a page with a CDN, stays < 40;
    # but one address may speak for many machines (a domain controller forwarding to the box),
    # and 150 blocked a benchmark's zone walk within a second, so the bar is high.
    rate: int = 1000
    # Long window for slow leaks (a beacon posting every minute), in seconds...
    long_window: float = 3600.0
    # ...with its own budgets of distinct data-like names and of their characters.
    slow_names: int = 100
    slow_volume: int = 4000
    # Information bound (Paxson et al., USENIX Security 2013): the compressed octets of the
    # distinct names one client sent to one registered domain, in the short window and in the
    # long one. Fresh base32 costs ~0.6 octet per character; a tenant's repeated name, nothing.
    info: int = 640
    slow_info: int = 2400
    # "names" also needs this much information: 8 short hashed labels (a DNS test battery's
    # c0-f7fd88-67d8d.wild.<domain>) carry ~60 octets, a tunnel's 8 names 300 or more.
    names_min_info: int = 320
    # ...unless there are this many and their A/AAAA answers differ: Cobalt Strike's A mode
    # fetches its tasks 4 octets per name, 60 names a burst; a test battery's wildcard zone
    # answers every name with one address.
    many_names: int = 24
    # (And from ``names`` on when their last ``names`` A/AAAA answers are all different and in
    # nearly as many /8 networks: data carried down 4 octets an answer. A wildcard, a zone's
    # own hosts or a CDN's pool sit in a few networks.)
    # ...and (without the many varied answers above) at least this many octets of information
    # per distinct name on average: a name that carries only a key (a counter and a 64-bit hash,
    # as a DNS test battery's c36-f64e16-4f315, ~9 octets) is a lookup, not a data carrier;
    # tunnels pack 20 to 120 octets a name. Low-information floods stay bounded by ``info``.
    name_info: int = 12
    # Names shorter than this (octets left of the registered domain) count their length as
    # their information instead of being compressed: ~4 µs saved on most queries.
    info_min_chars: int = 12
    # Distinct data-like names under a top-level domain that does not exist (dnscat2's direct
    # mode, "dnscat.<hex>"): nothing can resolve them, so three are enough.
    unknown_tld_names: int = 3
    # Answer side (stagers carry their payload down): octets of TXT/NULL/CNAME/MX/KEY answers
    # one client received from one registered domain in the long window, over at least
    # answer_names distinct names. A sender's SPF, DMARC and DKIM records make ~1.5 KB.
    answer_bytes: int = 4096
    answer_names: int = 6
    # NXDOMAIN share of the answers in the short window (a tunnel whose server went quiet, a
    # random-subdomain flood), once at least nxdomain_answers answers came.
    nxdomain_answers: int = 20
    nxdomain_percent: int = 90
    # Beacons: the last beacon_gaps gaps of at least beacon_min_gap seconds between a client's
    # queries to one domain vary by at most beacon_cv (coefficient of variation; a Cobalt
    # Strike sleep with 20 % jitter is 0.06 to 0.12; random gaps ~0.5), and beacon_names
    # data-like names with at least beacon_info octets of information came in the long window.
    beacon_gaps: int = 8
    beacon_cv: float = 0.2
    beacon_min_gap: float = 5.0
    beacon_names: int = 3
    beacon_info: int = 96
    # Temporal persistence (Giroire et al., "Exploiting Temporal Persistence to Detect Covert
    # Botnet Channels", RAID 2009): new data-like names from one client to one domain in at
    # least persist_slots of the last persist_span slots of persist_slot seconds (12 of the
    # last 24 ten-minute slots: data sent on and on for two hours or more). Catches a slow
    # beacon with random sleeps (SUNBURST: one encoded name every few minutes, ~300 octets an
    # hour, under every bound of volume and too irregular for ``beacon``).
    persist_slot: float = 600.0
    persist_span: int = 24
    persist_slots: int = 12
    # A registered domain asked by this many of the commune's machines within the long window
    # is popular: its weak signals are ignored (a tunnel serves one machine).
    popular_clients: int = 5
    # Escalation: a detection blocks that name only; the domain's cool-down (for that client)
    # starts at once on a strong signal (odd, qtype, nxtld), or after escalate_after detections
    # once the names carried escalate_info octets of information in the long window (or the
    # answers twice answer_bytes, or a beacon came with them, or the detections went on longer
    # than the short window): repeated evidence, not one burst such as a test battery.
    escalate_after: int = 3
    escalate_info: int = 1024

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value <= 0:
                raise _bad(f"{f.name} is {value}", "give a positive value")
        if self.long_window < self.window:
            raise _bad("long_window is shorter than window", "make long_window >= window")
        if self.persist_span > 64:
            raise _bad(f"persist_span is {self.persist_span}", "use 64 slots or fewer")
        if self.beacon_gaps > 8:
            raise _bad(f"beacon_gaps is {self.beacon_gaps}", "use 8 or fewer (gaps remembered)")


@dataclass(frozen=True, slots=True)
class ExfiltrationConfig:
    """The detector of data smuggled out in query names (tunnels, DNS exfiltration)."""

    # block: answer the detected names, then (on strong or repeated evidence) the domain's
    # later queries, as blocked; detect: only report (for operators who want to watch first);
    # off: the stage passes everything on.
    mode: Literal["block", "detect", "off"] = "block"
    # Once escalated, block the registered domain for this client only ("client") or for
    # every client ("all": a tunnel domain is nobody's business).
    scope: Literal["client", "all"] = "client"
    # Seconds the registered domain stays blocked once escalated. An hour: a tunnel client
    # retries for minutes, and the block shows on the day's weather page meanwhile.
    cooldown: float = 3600.0
    thresholds: ExfilThresholds = ExfilThresholds()
    # Known-good list file (registered domains and suffixes never judged): "" = the shipped,
    # commented list resolver/stages/data/exfil-known-good.txt. Copy it to edit it.
    known_good_file: str = ""
    # Extra known-good domains, added to the file's (e.g. the mairie's own mail provider).
    known_good: tuple[str, ...] = ()
    # Client+domain pairs followed at once. Least recently seen pairs are forgotten first, so
    # a flood of random names cannot grow memory: about 1 KB each, 4 MB in all; a pair whose
    # names look like data also holds a small compressor (~11 KB): 50 MB at the very most.
    max_tracked: int = 4096
    # Domains (or client+domain pairs) in cool-down at once; the oldest is forgotten first.
    max_cooldowns: int = 1024
    # Detections kept for the shell to log (drained after each query); older ones are dropped.
    max_detections: int = 256
    # Registered domains whose audience (distinct clients, for popularity) is followed.
    max_domains: int = 8192

    def __post_init__(self) -> None:
        if self.cooldown < 0:
            raise _bad(f"cooldown is {self.cooldown}", "give 0 (no cool-down) or more seconds")
        for name in ("max_tracked", "max_cooldowns", "max_detections", "max_domains"):
            if getattr(self, name) < 1:
                raise _bad(f"{name} is below 1", "use 1 or more")
