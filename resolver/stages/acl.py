"""Refuse clients outside the allowed networks, so the box is never an open resolver."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import ClassVar

from resolver.core import responses, wire
from resolver.core.query import Query
from resolver.core.steps import CONTINUE, Reply, Step, Verdict

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Clients seen; a commune has a few hundred machines. Past this the memo is simply reset, which
# bounds memory whatever source addresses a flood uses.
_MEMO_MAX = 4096


class AclStage:
    name: ClassVar[str] = "acl"
    policy: ClassVar[bool] = False

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        self.networks = tuple(networks)
        self.memo: dict[str, bool] = {}

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

    def decide(self, query: Query, now: float) -> Step:
        if self.allowed(query.client):
            return CONTINUE
        return Reply(
            responses.make_error(query, wire.REFUSED, responses.EDE_PROHIBITED),
            Verdict.REFUSED,
            "acl",
        )
