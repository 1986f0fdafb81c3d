"""Refuse clients outside the allowed networks, so the box is never an open resolver; at a
limited rate per source network (``ErrorLimiter``), so it is no reflector either."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import ClassVar

from resolver.core import responses, wire
from resolver.core.query import Query, Transport
from resolver.core.steps import CONTINUE, Drop, Reply, Step, Verdict
from resolver.stages.rate_limit import ErrorLimiter

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Clients seen; a commune has a few hundred machines. Past this the memo is simply reset, which
# bounds memory whatever source addresses a flood uses.
_MEMO_MAX = 4096
_LIMITED = Drop("acl_limit")
_UDP = Transport.UDP


class AclStage:
    name: ClassVar[str] = "acl"
    policy: ClassVar[bool] = False
    passes_names: ClassVar[bool] = True  # its on_name says None: left out of the lane

    def __init__(self, networks: Iterable[IPNetwork], errors: ErrorLimiter | None = None) -> None:
        self.networks = tuple(networks)
        self.memo: dict[str, bool] = {}
        # UDP refusals are limited per source network: unlimited, a forged flood had the box
        # send 30,000 REFUSED in 3 s at whoever it named as the source. TCP's source cannot be
        # forged (its handshake proves it), so it is not limited, as BIND's RRL.
        self.errors = errors

    def describe(self) -> str:
        return "allow " + ", ".join(str(n) for n in self.networks)

    def allowed(self, client: str) -> bool:
        ok = self.memo.get(client)
        if ok is None:
            try:
                addr = ipaddress.ip_address(client.split("%", 1)[0])
            except ValueError:
                ok = False
            else:
                if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
                    addr = (
                        addr.ipv4_mapped
                    )  # dual-stack sockets show IPv4 clients as ::ffff:a.b.c.d
                ok = any(addr in net for net in self.networks)
            if len(self.memo) >= _MEMO_MAX:
                self.memo.clear()
            self.memo[client] = ok
        return ok

    def admits(self, client: str, now: float) -> bool:
        """Strangers never get the fast lane: their every query meets ``decide``."""
        return self.allowed(client)

    def on_name(self, name: str, qtype: int, qclass: int, client: str, now: float) -> None:
        """The lane runs for admitted clients only: ``allowed``, so ``decide`` passes them."""
        return None

    def decide(self, query: Query, now: float) -> Step:
        if self.allowed(query.client):
            return CONTINUE
        errors = self.errors
        if errors is not None and query.transport is _UDP and not errors.allow(query.client, now):
            return _LIMITED
        return Reply(
            responses.make_error(query, wire.REFUSED, responses.EDE_PROHIBITED),
            Verdict.REFUSED,
            "acl",
        )
