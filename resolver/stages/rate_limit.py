"""One runaway machine must not starve the others: a token bucket per client address.

Also here: the limit on error answers per source network (``ErrorLimiter``), which runs where
those answers are made (the ACL's REFUSED, the transport's FORMERR/NOTIMP), before any client
bucket: a stranger never gets one.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable
from typing import ClassVar, Final

from resolver.core.query import Query
from resolver.core.steps import CONTINUE, Drop, Step

_DROP = Drop("rate_limit")
_INF: Final = float("inf")
# Limited clients whose drops are counted by name between two reports (``drain_limited``);
# past this, a flood of forged sources is counted in one sum.
_LIMITED_MAX: Final = 1024

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(client: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped  # dual-stack sockets show IPv4 clients as ::ffff:a.b.c.d
    return addr


class RateLimitStage:
    name: ClassVar[str] = "rate_limit"
    policy: ClassVar[bool] = False

    def __init__(
        self,
        rate: float,
        burst: int,
        max_clients: int = 65536,
        exempt: Iterable[IPNetwork] = (),
    ) -> None:
        self.rate = rate  # tokens (queries) per second
        self.burst = float(burst)
        self.max_clients = max_clients  # buckets kept; the least recently seen go first
        # Networks never limited: a domain controller or a router that forwards for the whole
        # mairie is one client with everyone's queries.
        self.exempt = tuple(exempt)
        # client -> [tokens, last refill time]; a list so the hot path updates in place.
        self.buckets: OrderedDict[str, list[float]] = OrderedDict()
        self.limited = 0
        # Drops per client since the shell last asked (``drain_limited``): it says in the log,
        # off the query path, which client is being limited.
        self.limited_by: dict[str, int] = {}
        self.limited_others = 0

    def describe(self) -> str:
        exempt = f", except {', '.join(map(str, self.exempt))}" if self.exempt else ""
        return f"{self.rate:g} queries/s per client, bursts of {self.burst:g}{exempt}"

    def meter(self, client: str, now: float) -> Drop | None:
        """Take a token for this query (cached ones too: the pipeline's fast lane calls this)."""
        b = self.buckets.get(client)
        if b is None:
            if len(self.buckets) >= self.max_clients:
                self.buckets.popitem(last=False)
            if self.exempt and self._exempt(client):
                # Infinite tokens, refilled at a time never reached: the code below then never
                # limits this client, and the hot path has no test of its own for exemption.
                self.buckets[client] = [_INF, _INF]
                return None
            self.buckets[client] = [self.burst - 1.0, now]
            return None
        tokens = b[0]
        elapsed = now - b[1]
        if elapsed > 0:  # a clock stepped back refills nothing, and takes nothing away
            tokens += elapsed * self.rate
            if tokens > self.burst:
                tokens = self.burst
            b[1] = now
        if tokens < 1.0:
            b[0] = tokens
            return self._limit(client)
        b[0] = tokens - 1.0
        self.buckets.move_to_end(client)
        return None

    def _limit(self, client: str) -> Drop:
        self.limited += 1
        by = self.limited_by
        n = by.get(client)
        if n is not None:
            by[client] = n + 1
        elif len(by) < _LIMITED_MAX:
            by[client] = 1
        else:
            self.limited_others += 1
        return _DROP

    def _exempt(self, client: str) -> bool:
        addr = _address(client)
        return addr is not None and any(addr in net for net in self.exempt)

    def drain_limited(self) -> tuple[dict[str, int], int]:
        """Drops per client since the last call, and those of clients past the bound."""
        by, others = self.limited_by, self.limited_others
        self.limited_by = {}
        self.limited_others = 0
        return by, others

    def allow(self, client: str, now: float) -> bool:
        return self.meter(client, now) is None

    def decide(self, query: Query, now: float) -> Step:
        drop = self.meter(query.client, now)
        return CONTINUE if drop is None else drop

    def on_name(self, name: str, qtype: int, qclass: int, client: str, now: float) -> Drop | None:
        return self.meter(client, now)


class ErrorLimiter:
    """Error answers per source network, RRL-style (BIND's ``errors-per-second`` and ``slip``).

    REFUSED to a client outside ``acl.allow`` and FORMERR/NOTIMP to a malformed query cost the
    box an answer each; with forged sources they are sent at a victim. Each source network
    (/24 for IPv4, /56 for IPv6, as RRL) has ``rate`` answers a second with bursts of
    ``burst``; past that, one in ``slip`` is still answered (a real client is told) and the
    others are dropped (0: all dropped). UDP only: a TCP client's address is proven by its
    handshake, and it is told by the connection anyway.
    """

    def __init__(self, rate: float, burst: int, slip: int, max_sources: int = 4096) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.slip = slip
        self.max_sources = max_sources
        # source network -> [tokens, last refill, answers dropped since the last slip]
        self.buckets: dict[str, list[float]] = {}
        self.dropped = 0

    @staticmethod
    def source(client: str) -> str:
        """The source network of ``client``: its /24 (IPv4) or /56 (IPv6)."""
        if "." in client:  # IPv4, or IPv4-mapped IPv6: the last octet goes
            return client.rpartition(".")[0]
        try:
            return ipaddress.IPv6Address(client.split("%", 1)[0]).packed[:7].hex()
        except ValueError:
            return client

    def allow(self, client: str, now: float) -> bool:
        """May this error answer be sent? Called only when one is about to be."""
        key = self.source(client)
        b = self.buckets.get(key)
        if b is None:
            if len(self.buckets) >= self.max_sources:
                self.buckets.clear()  # bounded whatever sources a flood forges
            self.buckets[key] = [self.burst - 1.0, now, 0.0]
            return True
        elapsed = now - b[1]
        if elapsed > 0:
            b[0] = min(self.burst, b[0] + elapsed * self.rate)
            b[1] = now
        if b[0] >= 1.0:
            b[0] -= 1.0
            return True
        b[2] += 1.0
        if self.slip and b[2] >= self.slip:
            b[2] = 0.0
            return True
        self.dropped += 1
        return False
