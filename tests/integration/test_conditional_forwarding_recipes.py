"""The recipes of deploy/CONDITIONAL-FORWARDING.md are valid configs that route as they promise.

Every ```yaml block of the document is loaded as a Config; then the real server runs with it,
each domain controller address replaced by a fake DC on 127.0.0.1, and queries show that AD names
(SRV, A, PTR) reach the DC, public names reach the public upstream, and the DC never sees a
public name.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import yaml

from resolver.config import Config
from resolver.config.loader import load_text
from resolver.config.schema import parse_hostport
from tests.conftest import FakeUpstream, make_config, running

DOC = Path(__file__).resolve().parents[2] / "deploy" / "CONDITIONAL-FORWARDING.md"


def yaml_blocks() -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.M | re.S)


BLOCKS = yaml_blocks()


def test_the_document_has_recipes() -> None:
    assert len(BLOCKS) >= 5
    # The first recipe is the example config's: the domain, _msdcs and the /24 reverse zone.
    first = load_text(BLOCKS[0], Config, "recipe 1")
    assert [fz.zone for fz in first.local_zone.forward_zones] == [
        "mairie.local",
        "_msdcs.mairie.local",
        "1.168.192.in-addr.arpa",
    ]


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"recipe{i + 1}")
def test_recipe_is_a_valid_config(index: int) -> None:
    cfg = load_text(BLOCKS[index], Config, f"{DOC.name} yaml block {index + 1}")
    assert cfg.local_zone.forward_zones
    for fz in cfg.local_zone.forward_zones:
        assert fz.servers
        # Zones are written without a trailing dot, lower case, as the loader normalises them.
        assert fz.zone == fz.zone.lower().rstrip(".")


def probes(zone: str, domains: list[str]) -> list[tuple[str, str, str]]:
    """(name, type, zone-file rr) the fake DC holds for ``zone``, for queries under it."""
    labels = zone.split(".")
    if zone.endswith("in-addr.arpa"):
        octets = len(labels) - 2
        name = ".".join(["2"] * (4 - octets) + labels)
        return [(name, "PTR", f"{name}. 300 IN PTR dc1.{domains[0]}.")]
    if zone.endswith("ip6.arpa"):
        nibbles = len(labels) - 2
        name = ".".join(["2"] + ["0"] * (31 - nibbles) + labels)
        return [(name, "PTR", f"{name}. 300 IN PTR dc1.{domains[0]}.")]
    if zone.startswith("_msdcs."):
        domain = zone.removeprefix("_msdcs.")
        name = f"_ldap._tcp.dc.{zone}"
        return [(name, "SRV", f"{name}. 600 IN SRV 0 100 389 dc1.{domain}.")]
    return [
        (f"dc1.{zone}", "A", f"dc1.{zone}. 3600 IN A 192.168.1.2"),
        (
            f"_kerberos._tcp.{zone}",
            "SRV",
            f"_kerberos._tcp.{zone}. 600 IN SRV 0 100 88 dc1.{zone}.",
        ),
    ]


@pytest.fixture
async def dcs() -> AsyncIterator[dict[str, FakeUpstream]]:
    """Fake domain controllers, one per address a recipe names; started on demand."""
    started: dict[str, FakeUpstream] = {}
    yield started
    for dc in started.values():
        await dc.stop()


async def ask(port: int, name: str, rdtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    return await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=3)


def under(name: str, zone: str) -> bool:
    name = name.rstrip(".").lower()
    return name == zone or name.endswith("." + zone)


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"recipe{i + 1}")
async def test_recipe_routes_ad_names_to_the_dc(
    index: int, tmp_path: Path, upstream: FakeUpstream, dcs: dict[str, FakeUpstream]
) -> None:
    recipe = load_text(BLOCKS[index], Config, f"recipe {index + 1}")
    zones = recipe.local_zone.forward_zones
    domains = [fz.zone for fz in zones if not fz.zone.endswith(".arpa")]
    domains = [d for d in domains if not d.startswith("_msdcs.")]
    # One fake DC per distinct address of the recipe; each holds every zone's probe records.
    for fz in zones:
        for server in fz.servers:
            if server not in dcs:
                dcs[server] = FakeUpstream()
                await dcs[server].start()
    all_probes = [(fz.zone, p) for fz in zones for p in probes(fz.zone, domains)]
    for dc in dcs.values():
        for _, (_, _, rr) in all_probes:
            dc.add(rr)
    forward_yaml = yaml.safe_dump(
        {
            "local_zone": {
                "forward_zones": [
                    {"zone": fz.zone, "servers": [f"127.0.0.1:{dcs[s].port}" for s in fz.servers]}
                    for fz in zones
                ]
            }
        }
    )
    cfg = make_config(tmp_path, upstream.port, forward_yaml)
    public = [("example.test", "A"), ("www.example.test", "AAAA"), ("mairie-exemple.fr", "A")]
    async with running(cfg) as app:
        port = app.bound[0][1]
        for zone, (name, rdtype, _) in all_probes:
            before = len(upstream.queries)
            r = await ask(port, name, rdtype)
            assert r.rcode() == dns.rcode.NOERROR, (zone, name, r)
            got = [rrset for rrset in r.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype)]
            assert got, (name, rdtype, r)
            assert len(upstream.queries) == before, f"{name} leaked to the public upstream"
            # The zone's own DCs answered (any of them: the resolver may fail over).
            zone_dcs = [dcs[s] for fz in zones if fz.zone == zone for s in fz.servers]
            assert any(under(str(q.q.qname), name) for d in zone_dcs for q in d.queries), name
        for name, rdtype in public:
            r = await ask(port, name, rdtype)
            assert any(under(str(q.q.qname), name) for q in upstream.queries), name
        # A private reverse name outside the recipe's zones is answered by the box itself.
        before = len(upstream.queries)
        r = await ask(port, "7.7.16.172.in-addr.arpa", "PTR")
        assert r.rcode() == dns.rcode.NXDOMAIN
        assert len(upstream.queries) == before
    forwarded = [fz.zone for fz in zones]
    for server, dc in dcs.items():
        for q in dc.queries:
            qname = str(q.q.qname)
            assert any(under(qname, z) for z in forwarded), f"DC {server} was asked {qname}"
        # Only the recipe's DC addresses were used, and parse as the config says.
        parse_hostport(server, 53)


async def test_first_recipe_names_from_the_issue(
    tmp_path: Path, upstream: FakeUpstream, dcs: dict[str, FakeUpstream]
) -> None:
    """The exact names of a Windows logon, through recipe 1, with the DC's own answers."""
    recipe = load_text(BLOCKS[0], Config, "recipe 1")
    dc = FakeUpstream()
    await dc.start()
    dcs["dc"] = dc
    dc.add("_ldap._tcp.dc._msdcs.mairie.local. 600 IN SRV 0 100 389 dc1.mairie.local.")
    dc.add("dc1.mairie.local. 3600 IN A 192.168.1.2")
    dc.add("2.1.168.192.in-addr.arpa. 3600 IN PTR dc1.mairie.local.")
    zones = [
        {"zone": fz.zone, "servers": [f"127.0.0.1:{dc.port}"]}
        for fz in recipe.local_zone.forward_zones
    ]
    cfg = make_config(
        tmp_path, upstream.port, yaml.safe_dump({"local_zone": {"forward_zones": zones}})
    )
    async with running(cfg) as app:
        port = app.bound[0][1]
        srv = await ask(port, "_ldap._tcp.dc._msdcs.mairie.local", "SRV")
        assert "389 dc1.mairie.local." in srv.answer[0].to_text()
        a = await ask(port, "dc1.mairie.local", "A")
        assert a.answer[0][0].to_text() == "192.168.1.2"
        ptr = await ask(port, "2.1.168.192.in-addr.arpa", "PTR")
        assert ptr.answer[0][0].to_text() == "dc1.mairie.local."
        missing = await ask(port, "nobody.mairie.local", "A")
        assert missing.rcode() == dns.rcode.NXDOMAIN  # the DC's word, not the Internet's
        pub = await ask(port, "example.test", "A")
        assert pub.answer[0][0].to_text() == "192.0.2.1"
    asked_dc = {str(q.q.qname).rstrip(".") for q in dc.queries}
    assert asked_dc == {
        "_ldap._tcp.dc._msdcs.mairie.local",
        "dc1.mairie.local",
        "2.1.168.192.in-addr.arpa",
        "nobody.mairie.local",
    }
    asked_public = {str(q.q.qname).rstrip(".") for q in upstream.queries}
    assert asked_public == {"example.test"}
