"""upstream: conditional-forwarding zones go to the mairie's servers, longest zone first."""

from __future__ import annotations

import pytest

from resolver.core.steps import Forward, Upstream
from resolver.stages.upstream import UpstreamStage
from tests.fakes import make_query

DEFAULT = (Upstream("9.9.9.9"),)
DC1 = (Upstream("192.168.1.2"),)
DC2 = (Upstream("192.168.1.3", 5353),)
ZONES = [("mairie.local", DC1), ("_msdcs.mairie.local", DC2)]


@pytest.mark.parametrize("zones", [ZONES, ZONES[::-1]], ids=["short-first", "long-first"])
@pytest.mark.parametrize(
    ("name", "servers", "zone"),
    [
        ("pc1.mairie.local", DC1, "mairie.local"),
        ("mairie.local", DC1, "mairie.local"),
        ("_msdcs.mairie.local", DC2, "_msdcs.mairie.local"),
        ("_ldap._tcp.dc._msdcs.mairie.local", DC2, "_msdcs.mairie.local"),
        ("PC1.MAIRIE.LOCAL", DC1, "mairie.local"),
    ],
)
def test_longest_forward_zone_wins(
    zones: list[tuple[str, tuple[Upstream, ...]]],
    name: str,
    servers: tuple[Upstream, ...],
    zone: str,
) -> None:
    step = UpstreamStage(DEFAULT, zones).decide(make_query(name.lower(), "SRV", wire_name=name), 0)
    assert step == Forward(servers, zone)


@pytest.mark.parametrize("name", ["notmairie.local", "mairie.localx", "local", "example.test"])
def test_names_outside_forward_zones_go_to_the_default_servers(name: str) -> None:
    assert UpstreamStage(DEFAULT, ZONES).decide(make_query(name), 0.0) == Forward(DEFAULT)


def test_zone_names_are_normalised_and_described() -> None:
    st = UpstreamStage(DEFAULT, [("Mairie.Local.", DC1)])
    assert st.decide(make_query("pc1.mairie.local"), 0.0) == Forward(DC1, "mairie.local")
    assert st.describe() == "9.9.9.9:53; mairie.local to 192.168.1.2:53"
