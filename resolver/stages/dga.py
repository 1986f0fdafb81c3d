"""Name the machine that looks up generated domains (DGA malware), then block its tries.

Malware that generates its rendezvous names (Conficker, Necurs, Ramnit, Suppobox, ...) tries
hundreds a day until one answers; no feed can list them in advance. The signals, and where
each comes from:

* NXDOMAIN answers for registered domains (the name itself or ``www.`` under it) that none of
  the commune's machines resolved: most generated names are unregistered (Antonakakis et al.,
  "From Throw-Away Traffic to Bots: Detecting the Rise of DGA-Based Malware", USENIX Security
  2012; Schüppen et al., "FANCI: Feature-based Automated NXDomain Classification and
  Intelligence", USENIX Security 2018). A missing host under an existing domain (a dead CDN
  node, an antivirus or DKIM lookup, a search suffix) says nothing and is not counted;
* how unlike real names the label is: resolver/dga/charmodel.py, a likelihood ratio against a
  character model of real names (the lexical evidence of both papers);
* the time pattern: evidence fades with a half-life, so a burst counts and a typo a day does
  not (resolver/dga/suspect.py, after the per-day volumes of Plohmann et al., "A Comprehensive
  Measurement Study of Domain Generating Malware", USENIX Security 2016, DGArchive);
* what the rest of the commune does: a registered domain another machine resolved is no
  generated name, neither as evidence nor once the machine is judged;
* the family's shape (TLD set, label lengths, alphabet; DGArchive): once a machine is judged,
  its lookups of registered domains of that shape are answered as blocked, the one name of the
  list the operator registered (the live command server) included.

The judgement ends ``hold`` seconds after the machine's last lookup of that shape. Chromium's
random probes are single labels and never reach a registered domain, except where a search
suffix is itself a top-level domain: three probes per start stay below ``domains``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import ClassVar, Final

from publicsuffixlist import PublicSuffixList

from resolver.config.dga import DgaConfig
from resolver.core import responses
from resolver.core.block_answer import BlockAnswer
from resolver.core.cached_answer import CachedAnswer
from resolver.core.query import Query
from resolver.core.steps import CONTINUE, Forward, Reply, Step, Verdict
from resolver.dga.charmodel import CharModel
from resolver.dga.suspect import Suspect
from resolver.exfil.psl import RegisteredDomains
from resolver.exfil.state import LruMap

CATEGORY: Final = "dga"
REASON: Final = "dga"
_ADDRESS_TYPES: Final = frozenset({1, 28})  # A, AAAA: what a bot asks of its rendezvous names
_NXDOMAIN: Final = 3
_MX: Final = 15
# WPAD (draft-ietf-wrec-wpad-01) and ISATAP (RFC 5214 §8.3.2) names a machine looks up under
# each of its search suffixes: devolution shows which suffixes it appends.
_DEVOLUTION: Final = ("wpad.", "isatap.")
_MAX_SUFFIXES: Final = 16
# No network appends these: a bot asking wpad.com must not make .com names pass.
_NEVER_SUFFIXES: Final = frozenset({"com", "net", "org", "info", "biz", "ru", "cn"})
# Chromium's intranet-redirect probes: 7 to 15 random letters (chrome/browser/
# intranet_redirect_detector.cc).
_PROBE_MIN: Final = 7
_PROBE_MAX: Final = 15


def _icann() -> PublicSuffixList:
    return PublicSuffixList(only_icann=True)  # the package's bundled copy: no download


@dataclass(frozen=True, slots=True)
class Judgement:
    """A machine judged infected, for the shell to log once."""

    at: float
    client: str
    qname: str  # the lookup that tipped the judgement
    domains: int  # distinct never-resolved registered domains counted
    score: float
    tlds: tuple[str, ...]
    blocked: bool  # False in detect mode


class DgaStage:
    name: ClassVar[str] = "dga"
    policy: ClassVar[bool] = True

    def __init__(
        self,
        cfg: DgaConfig,
        answer: BlockAnswer,
        model: CharModel | None = None,
        domains: RegisteredDomains | None = None,
    ) -> None:
        self.cfg = cfg
        self.answer = answer
        self.block = cfg.mode == "block"
        self.off = cfg.mode == "off"
        self.model = model if model is not None else CharModel.shipped()  # read once, at start
        # ICANN section only: a bot registers its names with a registrar; a cloud's tenants
        # (d1x2.cloudfront.net, ec2-....amazonaws.com) are hosts under an existing domain.
        self.domains = domains if domains is not None else RegisteredDomains(_icann())
        self.suspects: LruMap[str, Suspect] = LruMap(cfg.max_clients)
        # Machines judged infected, until their judgement ends (bounded by max_clients: a
        # machine enters only from ``suspects``).
        self.infected: dict[str, Suspect] = {}
        # Registered domain (without "www.") -> the machine that last resolved it.
        self.resolved: LruMap[str, str] = LruMap(cfg.max_domains)
        # Search suffixes that are TLDs of their own (an ISP box's "box", "home" where it is
        # one), learnt from WPAD/ISATAP devolution lookups: "wpad.box" means a machine appends
        # "box" to single labels, so "<probe>.box" is no registered domain anyone chose.
        self.suffixes: set[str] = set()
        # Machines that asked MX lately: mail servers look up senders' domains (RFC 5321
        # §5.1: MX, then the address), spam's invented ones included. A bot asks addresses.
        self.mailers: LruMap[str, float] = LruMap(cfg.max_clients)
        self.judgements: deque[Judgement] = deque(maxlen=cfg.max_detections)
        self.named = 0  # machines judged since start, for /metrics
        # Bumped when a machine is judged: its answers memoised as admitted must take the chain.
        self.generation = 0

    def describe(self) -> str:
        if self.off:
            return "disabled"
        c = self.cfg
        return (
            f"{c.mode}: a machine is named after {c.domains} never-resolved registered domains "
            f"(evidence {c.score:g}, half-life {c.half_life:g} s), held {c.hold:g} s"
        )

    # --- the query's way in: only judged machines are looked at -------------------------------

    def decide(self, query: Query, now: float) -> Step:
        if not self.infected:
            return CONTINUE
        suspect = self.infected.get(query.client)
        if suspect is None:
            return CONTINUE
        if now >= suspect.until:
            # The bursts stopped: the judgement ends, and its evidence with it (a cleaned
            # machine's next typo must not find a full slow window waiting).
            del self.infected[query.client]
            self.suspects.pop(query.client)
            return CONTINUE
        if not self._same_shape(suspect, query):
            return CONTINUE
        suspect.until = now + self.cfg.hold
        return self._reply(query) if self.block else CONTINUE

    def _same_shape(self, suspect: Suspect, query: Query) -> bool:
        place = self._registered(query.qname)
        if place is None:
            return False
        base, label, tld = place
        resolver = self.resolved.peek(base)
        if resolver is not None and resolver != query.client:
            return False  # another machine resolves it: no generated name
        return suspect.matches(label, tld, self._random(label))

    def admits(self, client: str, now: float) -> bool:
        """A judged machine's cached answers take the chain, where its tries are blocked (in
        detect mode nothing is blocked: the fast lane stays open to it)."""
        if not self.block:
            return True
        suspect = self.infected.get(client)
        return suspect is None or now >= suspect.until

    # --- the answer's way back: the evidence -----------------------------------------------------

    def on_answer(
        self, query: Query, fwd: Forward, entry: CachedAnswer, now: float
    ) -> Reply | None:
        """Count an NXDOMAIN for a registered domain; remember who resolves what."""
        if self.off or fwd.zone is not None:
            return None  # conditional forwarding: the mairie's own zones
        if query.qtype not in _ADDRESS_TYPES:
            if query.qtype == _MX:
                self.mailers.put(query.client, now)
            return None
        qname = query.qname
        rcode = entry.flags & 0xF
        if rcode != _NXDOMAIN:
            if rcode == 0 and entry.an and qname.count(".") <= 3:
                self.resolved.put(qname[4:] if qname.startswith("www.") else qname, query.client)
            return None
        if qname.startswith(_DEVOLUTION):
            self._learn_suffix(qname)
            return None
        place = self._registered(qname)
        if place is None:
            return None
        base, label, tld = place
        if self.resolved.peek(base) is not None:
            return None  # the domain exists (it resolved lately): a host is missing, no more
        if tld in self.suffixes and _PROBE_MIN <= len(label) <= _PROBE_MAX and label.isalpha():
            return None  # a Chromium probe (7-15 letters) with the search suffix appended
        client = query.client
        mailed = self.mailers.peek(client)
        if mailed is not None and now - mailed < self.cfg.window:
            return None  # a mail server: senders' invented domains, looked up MX then A
        suspect = self.suspects.get(client)
        if suspect is None:
            suspect = Suspect()
            self.suspects.put(client, suspect)
        random = self._random(label)
        weight = self.cfg.random_weight if random else 1.0
        if not suspect.add(now, hash(base), label, tld, weight, self.cfg.half_life):
            return None
        if suspect.named_at:
            suspect.until = now + self.cfg.hold
            return None
        cfg = self.cfg
        if suspect.score >= cfg.score:
            distinct = suspect.distinct(now, cfg.window)
            if distinct >= cfg.domains:
                return self._judge(query, suspect, distinct, now)
        if len(suspect.recent) >= cfg.slow_domains and suspect.slow(
            now, cfg.slow_window, cfg.slow_domains
        ):
            return self._judge(query, suspect, suspect.distinct(now, cfg.slow_window), now)
        return None

    def _judge(self, query: Query, suspect: Suspect, distinct: int, now: float) -> Reply | None:
        client = query.client
        suspect.named_at = now
        suspect.until = now + self.cfg.hold
        infected = self.infected
        infected[client] = suspect
        if len(infected) > self.cfg.max_clients:
            for c in [c for c, s in infected.items() if now >= s.until]:
                del infected[c]  # judgements that ended while their machine kept quiet
        self.named += 1
        if self.block:
            self.generation += 1  # its memoised admission must go: its tries are blocked now
        self.judgements.append(
            Judgement(
                now,
                client,
                query.qname,
                distinct,
                round(suspect.score, 1),
                tuple(sorted(suspect.tlds)),
                self.block,
            )
        )
        return self._reply(query) if self.block else None

    # --- helpers -----------------------------------------------------------------------------

    def _registered(self, qname: str) -> tuple[str, str, str] | None:
        """(registered domain, its label, its suffix) when ``qname`` is that domain or www.
        under it, under a TLD that exists; else None."""
        if "." not in qname:
            return None  # a single label (Chromium's probes): no registered domain
        parts = self.domains.split(qname)
        if parts is None:
            return None
        prefix, base = parts
        if prefix and prefix != "www":
            return None
        if not self.domains.tld_exists(base):
            return None  # a search suffix such as mairie.local: never on the Internet
        dot = base.find(".")
        return base, base[:dot], base[dot + 1 :]

    def _learn_suffix(self, qname: str) -> None:
        suffix = qname[qname.find(".") + 1 :]
        if (
            "." not in suffix
            and suffix not in _NEVER_SUFFIXES
            and len(self.suffixes) < _MAX_SUFFIXES
        ):
            self.suffixes.add(suffix)

    def _random(self, label: str) -> bool:
        return len(label) >= self.cfg.min_random_chars and self.model.randomness(label) > 0

    def _reply(self, query: Query) -> Reply:
        wire = responses.make_blocked(query, self.answer, REASON, CATEGORY)
        return Reply(wire, Verdict.BLOCKED, reason=REASON, category=CATEGORY)

    def drain(self) -> list[Judgement]:
        """Take the judgements not yet logged."""
        out = list(self.judgements)
        self.judgements.clear()
        return out
