"""Which upstream to ask next, how, for how long, and what its reply means; no I/O.

The shape of dnspython's ``_Resolution`` (``dns/resolver.py``): a ``Resolution`` says the next
try (server, TCP or not, how long to wait) and judges each outcome; the callback driver and the
coroutine driver in ``resolver.net.upstream_client`` are thin loops around it, so truncation to
TCP, trying another server and the health bookkeeping are written here once::

    res = Resolution(health, servers, now, timeout, total_timeout)
    while (t := res.next_try(now)) is not None:
        reply = ...ask t.server (over TCP if t.tcp) and wait at most t.wait; None if no reply...
        res.query_result(reply, now)
    res.response   # the answer; an upstream's error answer (every server failed); None
    if is_failure(res.response):   # what the client is told then (Pipeline.complete)
        reply = failure_reply(query, res.response)

``UpstreamHealth`` is what every resolution shares: which upstreams answer, how fast, which are
set aside and until when, when to say in the log that none answers, and which to probe.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence, ValuesView
from dataclasses import dataclass
from typing import Final, NamedTuple

from resolver.core import responses, wire
from resolver.core.query import Query
from resolver.core.steps import Reply, Upstream, Verdict
from resolver.core.wire import HEADER, U16

# Answers that say this server cannot help with this name (another may). Not a health failure:
# SERVFAIL is often the name's fault (broken DNSSEC, dead authoritative).
TRY_ANOTHER: Final = frozenset((wire.SERVFAIL, wire.REFUSED, wire.NOTIMP, wire.FORMERR))
# Which error answer to pass on when every server gave one: SERVFAIL speaks of the name (the
# upstream tried), REFUSED of us (its ACL), NOTIMP and FORMERR of our query.
_ERROR_RANK: Final = {wire.SERVFAIL: 3, wire.REFUSED: 2, wire.NOTIMP: 1, wire.FORMERR: 0}
MAX_BACKOFF: Final = 60.0  # seconds a failing upstream is set aside at most
_EDE: Final = 15  # the EDNS option code of an Extended DNS Error (RFC 8914 §2)
_EDE_MAX: Final = 512  # bytes of upstream EDE options passed on at most
# Server lists whose health records are kept by identity (see UpstreamHealth.pairs): the
# configuration's few Forward tuples; a caller building a new tuple per query only refills it.
_PLANS: Final = 64


@dataclass(slots=True)
class Health:
    """What we know of one upstream: its smoothed latency and its recent failures."""

    srtt: float = 0.0  # smoothed round-trip time, seconds; 0 until measured (so tried early)
    fails: int = 0  # consecutive failures (no reply at all)
    down_until: float = 0.0  # time before which it is tried only as a last resort
    answered: int = 0
    failed: int = 0
    probing: bool = False  # a probe to it is on its way
    probed_at: float = float("-inf")  # when the last probe to it left


# A server and its health record, as a Resolution tries them.
Pair = tuple[Upstream, Health]
# A tuple of servers and their pairs (UpstreamHealth.pairs).
Plan = tuple[Sequence[Upstream], list[Pair]]


def _ordered(pairs: list[Pair], now: float) -> list[Pair]:
    """``pairs`` in the order to try them now: not set aside first, then fastest, then as given."""
    if len(pairs) == 1:
        return pairs[:]
    if len(pairs) == 2:  # the common case, without sorted() and its key function (a cache miss)
        a, b = pairs
        ha, hb = a[1], b[1]
        if (now < hb.down_until, hb.srtt) < (now < ha.down_until, ha.srtt):
            return [b, a]
        return [a, b]
    # sorted() is stable: servers equally good stay in the configuration's order.
    return sorted(pairs, key=lambda p: (now < p[1].down_until, p[1].srtt))


@dataclass(frozen=True, slots=True)
class Alarm:
    """What to tell the operator about the upstreams as a whole (the driver logs it)."""

    down: bool  # True: no upstream has answered for ``seconds``; False: they answer again
    seconds: float  # how long no upstream has answered (so far, or in all)
    failed: int = 0  # tries that failed since the previous alarm (``down`` only)


class UpstreamHealth:
    """Every upstream's health, shared by all resolutions; times are the driver's clock.

    A server that gives no reply is set aside for an exponential backoff (1 s, 2 s, ... 60 s),
    then tried again first if it is the faster: a recovered server is used again without a
    restart. When no upstream has answered for ``alarm_after`` seconds, ``alarm`` says so, at
    most every ``alarm_every`` seconds with a count, and once more when one answers again.
    Meanwhile each failed server is probed every ``probe_every`` seconds (or when its backoff
    ends, if sooner).
    """

    def __init__(
        self,
        latency_buckets: tuple[float, ...] = (),
        *,
        max_backoff: float = MAX_BACKOFF,
        alarm_after: float = 10.0,
        alarm_every: float = 60.0,
        probe_every: float = 5.0,
    ) -> None:
        self.servers: dict[Upstream, Health] = {}
        self.max_backoff = max_backoff
        self.alarm_after = alarm_after
        self.alarm_every = alarm_every
        self.probe_every = probe_every
        self.failures = 0  # tries that got no reply, for /metrics
        self.latency_buckets = latency_buckets
        self.latency_counts = [0] * (len(latency_buckets) + 1)  # per bucket, then +Inf
        self.latency_sum = 0.0
        # Time of the first failed try since any upstream last replied; None: one replied since.
        self.silent_since: float | None = None
        self._last_reply = 0.0
        self._unanswered = 0  # tries failed since the last alarm
        self._outage_start: float | None = None  # set once an outage was reported
        self._warned_at = 0.0
        self._replied_since_warning = False
        # pairs() by id of the servers' tuple (with the tuple, so that the id stays its own),
        # and the last one asked for: most boxes forward every miss to the same tuple.
        self._plans: dict[int, Plan] = {}
        self.last: Plan = ((), [])

    def __getitem__(self, server: Upstream) -> Health:
        h = self.servers.get(server)
        if h is None:
            h = self.servers[server] = Health()
        return h

    def get(self, server: Upstream) -> Health | None:
        """``server``'s health, or None if it was never asked (as the dict this replaced)."""
        return self.servers.get(server)

    def values(self) -> ValuesView[Health]:
        """Every known server's health (as the dict this replaced gave them)."""
        return self.servers.values()

    def pairs(self, servers: Sequence[Upstream]) -> list[Pair]:
        """Each of ``servers`` with its health record, in the given order.

        Kept per tuple of servers, by identity (a Forward's tuple lives as long as the
        configuration): a cache miss then hashes no Upstream (a frozen dataclass's hash is
        Python code, 0.25 µs each) to find its servers' records. Records are never replaced,
        so a kept pair stays true. A list may change between two calls: never kept.
        """
        key = id(servers)
        plan = self._plans.get(key)
        if plan is None or plan[0] is not servers:
            plan = (servers, [(s, self[s]) for s in servers])
            if type(servers) is not tuple:
                return plan[1]
            if len(self._plans) >= _PLANS:
                self._plans.clear()
            # The tuple is kept with its pairs: its id cannot be reused while it is here.
            self._plans[key] = plan
        self.last = plan
        return plan[1]

    def order(self, servers: Sequence[Upstream], now: float) -> list[Upstream]:
        """The servers in the order to try them now: not set aside first, then fastest."""
        return [s for s, _ in _ordered(self.pairs(servers), now)]

    def is_down(self, server: Upstream, now: float) -> bool:
        return now < self[server].down_until

    def failed(self, server: Upstream, now: float) -> None:
        """``server`` gave no reply (timeout, error): set it aside for a while."""
        self.failed_h(self[server], now)

    def failed_h(self, h: Health, now: float) -> None:
        """``failed`` for a server's record (a Resolution holds it)."""
        h.fails += 1
        h.failed += 1
        if h.fails == 1:
            h.probed_at = now  # a failure is as good as a probe: the next one in probe_every
        # 1, 2, 4 ... 60 s; the exponent is capped (2.0 ** 1024 overflows after a long outage).
        h.down_until = now + min(2.0 ** min(h.fails - 1, 6), self.max_backoff)
        self.failures += 1
        self._unanswered += 1
        if self.silent_since is None:
            self.silent_since = now

    def answered(self, server: Upstream, now: float, rtt: float) -> None:
        """``server`` answered in ``rtt`` seconds."""
        self.answered_h(self[server], now, rtt)

    def answered_h(self, h: Health, now: float, rtt: float) -> None:
        """``answered`` for a server's record: this runs on every cache miss."""
        srtt = h.srtt
        h.srtt = rtt if srtt == 0.0 else 0.7 * srtt + 0.3 * rtt
        h.answered += 1
        # replied_h(), inlined.
        h.fails = 0
        h.down_until = 0.0
        self.silent_since = None
        self._last_reply = now
        if self._outage_start is not None:
            self._replied_since_warning = True
        self.latency_sum += rtt
        # Prometheus buckets are upper bounds (le): a sample on a bound counts in that bucket.
        self.latency_counts[bisect_left(self.latency_buckets, rtt)] += 1

    def replied(self, server: Upstream, now: float) -> None:
        """``server`` replied, if only with an error: it is up (no latency sample)."""
        self.replied_h(self[server], now)

    def replied_h(self, h: Health, now: float) -> None:
        """``replied`` for a server's record."""
        h.fails = 0
        h.down_until = 0.0
        self.silent_since = None
        self._last_reply = now
        if self._outage_start is not None:
            self._replied_since_warning = True

    @property
    def watching(self) -> bool:
        """True while something is to be watched: a silence, or an outage not yet over."""
        return self.silent_since is not None or self._outage_start is not None

    def alarm(self, now: float) -> Alarm | None:
        """What to tell the operator now, if anything (then not again until it changes)."""
        if self._replied_since_warning and self._outage_start is not None:
            alarm = Alarm(False, self._last_reply - self._outage_start)
            self._outage_start = None
            self._replied_since_warning = False
            return alarm
        since = self.silent_since
        if since is None or now - since < self.alarm_after:
            return None
        if self._outage_start is not None and now - self._warned_at < self.alarm_every:
            return None
        if self._outage_start is None:
            self._outage_start = since
        self._warned_at = now
        failed, self._unanswered = self._unanswered, 0
        return Alarm(True, now - since, failed)

    def next_check(self, now: float) -> float | None:
        """When ``alarm`` or ``probes_due`` may next have something; None: nothing to watch."""
        if self._replied_since_warning:
            return now
        since = self.silent_since
        if since is None:
            return None
        if self._outage_start is None:
            when = since + self.alarm_after
        else:
            when = self._warned_at + self.alarm_every
        for h in self.servers.values():
            if h.fails and not h.probing:
                when = min(when, h.down_until, h.probed_at + self.probe_every)
        return max(when, now)

    def probes_due(self, now: float) -> list[Upstream]:
        """Servers to probe now: while no upstream answers, each failed one when its time is up.

        Client queries find a server's return too, but a probe finds it with no client
        asking, so the log and the page say at once that the box answers again.
        """
        if self.silent_since is None:
            return []
        every = self.probe_every
        due = [
            s
            for s, h in self.servers.items()
            if h.fails and not h.probing and (now >= h.down_until or now - h.probed_at >= every)
        ]
        for server in due:
            h = self.servers[server]
            h.probing = True
            h.probed_at = now
        return due

    def probe_ended(self, server: Upstream) -> None:
        self[server].probing = False


class Try(NamedTuple):
    """One try: ask ``server`` (plain DNS over TCP if ``tcp``) and wait ``wait`` seconds."""

    server: Upstream
    tcp: bool
    wait: float


# NamedTuple's generated __new__ is a Python function; tuple.__new__ builds the same Try at a
# third of the cost, once or twice per cache miss.
_new_try = tuple.__new__


class Resolution:
    """One query's way through the upstreams, from the first try to an answer or giving up.

    Servers are tried best first, each twice at most (a lost datagram deserves one retry),
    within ``total_timeout``. A truncated UDP answer is asked again of the same server over TCP;
    an error answer (SERVFAIL, REFUSED, NOTIMP, FORMERR) moves on to another server and that
    server is not asked again. While every server is set aside, one try to the one due first,
    for ``timeout`` at most: clients of a box whose upstreams are all down get their SERVFAIL
    after one try, not ``total_timeout``, and that try is also a probe of its return.
    """

    __slots__ = (
        "_index",
        "_started",
        "_tcp",
        "_tries",
        "deadline",
        "done",
        "health",
        "response",
        "timeout",
    )

    def __init__(
        self,
        health: UpstreamHealth,
        servers: Sequence[Upstream],
        now: float,
        timeout: float,
        total_timeout: float,
    ) -> None:
        self.health = health
        self.timeout = timeout
        last = health.last  # the last plan of pairs(), inlined: once per cache miss
        pairs = last[1] if last[0] is servers else health.pairs(servers)
        # One server (most boxes, a conditional zone's): nothing to order.
        order = pairs if len(pairs) < 2 else _ordered(pairs, now)
        if order and now < order[0][1].down_until:
            # Every server is set aside (order puts any that is not first).
            self._tries = [min(order, key=_down_until)]
            self.deadline = now + min(timeout, total_timeout)
        else:
            self._tries = order + order
            self.deadline = now + total_timeout
        self._index = 0
        self._tcp = False
        self._started = now
        self.done = False
        # The answer; or the most telling error answer while no server answered well.
        self.response: bytes | None = None

    def next_try(self, now: float) -> Try | None:
        """The next try, or None: done (see ``response``), out of servers or out of time."""
        if self.done:
            return None
        remaining = self.deadline - now
        if remaining <= 0.005 or self._index >= len(self._tries):
            self.done = True
            return None
        self._started = now
        server = self._tries[self._index][0]
        wait = self.timeout * 2 if self._tcp else self.timeout
        return _new_try(Try, (server, self._tcp, wait if wait < remaining else remaining))

    def query_result(self, reply: bytes | None, now: float) -> None:
        """Judge the reply to the last try (None: none came: timeout, error, unusable)."""
        server, h = self._tries[self._index]
        if reply is None or len(reply) < 12:
            self.health.failed_h(h, now)
            self._next_server()
            return
        flags = (reply[2] << 8) | reply[3]
        if flags & wire.TC and not self._tcp and server.kind == "udp":
            self._tcp = True  # the same server, over TCP (RFC 7766 §5)
            return
        rcode = flags & wire.RCODE_MASK
        if rcode in TRY_ANOTHER:
            self.health.replied_h(h, now)
            best = self.response
            if best is None or _ERROR_RANK[rcode] > _ERROR_RANK[_rcode(best)]:
                self.response = reply
            # It said what it has to say about this name: no second round for it.
            rest = self._tries[self._index + 1 :]
            self._tries[self._index + 1 :] = [p for p in rest if p[0] != server]
            self._next_server()
            return
        self.health.answered_h(h, now, now - self._started)
        self.response = reply
        self.done = True

    def _next_server(self) -> None:
        self._index += 1
        self._tcp = False


def _down_until(pair: Pair) -> float:
    return pair[1].down_until


def _rcode(reply: bytes) -> int:
    return int(HEADER.unpack_from(reply)[1] & wire.RCODE_MASK)


def is_failure(response: bytes | None) -> bool:
    """True if ``response`` is no usable answer: none at all, or an upstream's error answer."""
    return response is None or len(response) < 12 or _rcode(response) in TRY_ANOTHER


def failure_reply(query: Query, response: bytes | None) -> Reply:
    """The client's reply when ``is_failure(response)``: what went wrong, said plainly.

    None (no upstream replied at all): SERVFAIL with EDE 22 "No Reachable Authority" (RFC 8914
    §4.23). An error answer (every server tried gave one): its rcode, and its Extended DNS
    Errors passed on (a DNSSEC-bogus name keeps its EDE 6), verdict FORWARDED, so nobody
    debugging is told that no upstream answered when one did. FORMERR becomes SERVFAIL: the
    client's query was fine, ours did not suit the upstream.
    """
    if response is None:
        wire_out = responses.make_error(
            query, wire.SERVFAIL, responses.EDE_NO_REACHABLE_AUTHORITY, "no upstream answered"
        )
        return Reply(wire_out, Verdict.SERVFAIL, "upstream")
    if len(response) < 12:  # not a DNS message: ours to fail, as for any malformed reply
        return Reply(responses.make_error(query, wire.SERVFAIL), Verdict.SERVFAIL, "upstream")
    rcode = _rcode(response)
    if rcode not in (wire.REFUSED, wire.NOTIMP):
        rcode = wire.SERVFAIL
    # The upstream's answer passed on: FORWARDED, as any other answer of the upstream's.
    reply = responses.make_response(query, rcode, ede=ede_options(response))
    return Reply(reply, Verdict.FORWARDED, "upstream")


def ede_options(response: bytes) -> bytes:
    """The Extended DNS Error options of ``response``'s OPT record, as wire options (bounded)."""
    try:
        _, rrs = wire.walk(response)
    except wire.WireError:
        return b""
    out = b""
    for rr in rrs:
        if rr.rtype != wire.T_OPT:
            continue
        pos, end = rr.rdata_at, rr.rdata_at + rr.rdlength
        while pos + 4 <= end:
            code, length = U16.unpack_from(response, pos)[0], U16.unpack_from(response, pos + 2)[0]
            if pos + 4 + length > end:
                break
            if code == _EDE and length >= 2 and len(out) + 4 + length <= _EDE_MAX:
                out += response[pos : pos + 4 + length]
            pos += 4 + length
    return out
