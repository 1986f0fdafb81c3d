"""The last stage: everything still undecided goes upstream, to the mairie's own servers for
its conditional-forwarding zones (the Windows domain) and to the default resolvers otherwise.

Routing sits here, at the end of the chain, so a name in a forwarded zone meets the lists and the
exfiltration detector like any other, unless the operator trusts the zone (``trusted: true``,
which local_zone turns into TRUSTED).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from resolver.core.query import Query
from resolver.core.steps import Forward, Step, Upstream


def under(name: str, zone: str) -> bool:
    """``name`` is ``zone`` or a name below it (both lower case, no trailing dot)."""
    return name == zone or name.endswith("." + zone)


class UpstreamStage:
    name: ClassVar[str] = "upstream"
    policy: ClassVar[bool] = False

    def __init__(
        self,
        servers: Sequence[Upstream],
        zones: Sequence[tuple[str, Sequence[Upstream]]] = (),
    ) -> None:
        self.forward = Forward(tuple(servers))
        # Longest zone first, so mairie.local's sub-zone can go elsewhere than mairie.local.
        self.zones = sorted(
            ((z, Forward(tuple(s), z)) for z, s in ((z.rstrip(".").lower(), s) for z, s in zones)),
            key=lambda zf: -len(zf[0]),
        )

    def describe(self) -> str:
        default = ", ".join(str(s) for s in self.forward.servers)
        zones = "".join(f"; {z} to " + ", ".join(str(s) for s in f.servers) for z, f in self.zones)
        return default + zones

    def decide(self, query: Query, now: float) -> Step:
        if self.zones:
            name = query.qname
            for zone, fwd in self.zones:
                if under(name, zone):
                    return fwd
        return self.forward
