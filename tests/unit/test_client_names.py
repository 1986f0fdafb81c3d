"""Machines by name: each lease file format, the order of the sources, PTR through the mairie's
own DNS (a real UDP server on loopback), and hostile names kept out."""

from __future__ import annotations

from pathlib import Path

import pytest

from resolver.client_names import ClientNames, parse_leases, read_lease_files
from resolver.config.clients import ClientsConfig
from tests.conftest import FakeUpstream

DATA = Path(__file__).resolve().parents[1] / "data" / "leases"


@pytest.mark.parametrize(
    ("file", "fmt"),
    [("dnsmasq.leases", "dnsmasq"), ("dhcpd.leases", "isc"), ("kea-leases4.csv", "kea")],
)
def test_each_lease_format_is_recognised_and_read(file: str, fmt: str) -> None:
    found, names = parse_leases((DATA / file).read_text())
    assert found == fmt
    assert names["192.168.1.23"] == "accueil-pc"  # the later ISC lease wins; Kea's FQDN cut
    assert names["192.168.1.40"] in ("mairie-compta", "MAIRIE-COMPTA")
    assert "192.168.1.61" not in names  # no host name given
    assert "192.168.1.70" not in names  # "<script>x</script>" is not a host name
    assert "192.168.1.80" not in names  # a declined Kea lease


def test_dnsmasq_ipv6_leases_are_read() -> None:
    assert parse_leases((DATA / "dnsmasq.leases").read_text())[1]["2001:db8:1::23"] == "accueil-pc"


def test_unreadable_lease_files_are_skipped(tmp_path: Path) -> None:
    names = read_lease_files([str(tmp_path / "missing"), str(DATA / "kea-leases4.csv")])
    assert names["192.168.1.40"] == "mairie-compta"


async def test_the_operator_s_names_then_the_leases_then_ptr(upstream: FakeUpstream) -> None:
    upstream.add("23.1.168.192.in-addr.arpa. 300 IN PTR wrong.mairie.local.")
    upstream.add("7.1.168.192.in-addr.arpa. 300 IN PTR secretariat-2.mairie.local.")
    upstream.add("9.1.168.192.in-addr.arpa. 300 IN PTR bad\\032name.mairie.local.")
    cfg = ClientsConfig(
        names=(("192.168.1.40", "bureau-maire"),),
        lease_files=(str(DATA / "dnsmasq.leases"),),
    )
    now = [0.0]
    names = ClientNames(
        cfg, [("mairie.local", [("127.0.0.1", upstream.port)])], clock=lambda: now[0]
    )
    await names.refresh()  # reads the leases
    assert names.name("192.168.1.40") == "bureau-maire"  # the operator's, over the lease's
    assert names.name("192.168.1.23") == "accueil-pc"  # the lease's, no PTR asked
    assert names.label("192.168.1.23") == "accueil-pc (192.168.1.23)"
    assert names.name("192.168.1.7") is None  # not known yet: asked in the background
    assert names.name("192.168.1.9") is None
    await names.refresh()
    assert names.name("192.168.1.7") == "secretariat-2"
    assert names.name("192.168.1.9") is None  # not a plain host name: not shown
    asked = [str(q.q.qname) for q in upstream.queries]
    assert asked.count("7.1.168.192.in-addr.arpa.") == 1
    assert "23.1.168.192.in-addr.arpa." not in asked  # the lease knew it
    # Cached: not asked again until refresh seconds have passed.
    await names.refresh()
    assert [str(q.q.qname) for q in upstream.queries].count("7.1.168.192.in-addr.arpa.") == 1
    now[0] = 301.0
    assert names.name("192.168.1.7") == "secretariat-2"  # still shown while asked again
    await names.refresh()
    assert [str(q.q.qname) for q in upstream.queries].count("7.1.168.192.in-addr.arpa.") == 2


async def test_ptr_goes_to_the_zone_holding_the_reverse_name_and_survives_silence(
    upstream: FakeUpstream,
) -> None:
    silent = FakeUpstream(silent=True)
    await silent.start()
    try:
        upstream.add("5.2.0.10.in-addr.arpa. 300 IN PTR poste-5.mairie.local.")
        zones = [
            ("mairie.local", [("127.0.0.1", silent.port)]),
            ("2.0.10.in-addr.arpa", [("127.0.0.1", upstream.port)]),
        ]
        names = ClientNames(ClientsConfig(), zones)
        assert names.servers_for("10.0.2.5") == (("127.0.0.1", upstream.port),)
        assert names.servers_for("10.9.9.9") == (("127.0.0.1", silent.port),)
        names.name("10.0.2.5")
        names.name("10.9.9.9")
        await names.refresh()  # the silent one costs one timeout, nothing more
        assert names.name("10.0.2.5") == "poste-5"
        assert names.name("10.9.9.9") is None
    finally:
        await silent.stop()


def test_without_forward_zones_or_with_ptr_off_nothing_is_asked() -> None:
    names = ClientNames(ClientsConfig(ptr=False), [("mairie.local", [("127.0.0.1", 9)])])
    assert names.name("192.168.1.7") is None and not names.wanted
    names = ClientNames(ClientsConfig())
    assert names.name("192.168.1.7") is None and not names.wanted


async def test_text_that_is_no_address_is_never_asked(upstream: FakeUpstream) -> None:
    names = ClientNames(ClientsConfig(), [("mairie.local", [("127.0.0.1", upstream.port)])])
    assert names.name("not-an-address") is None
    await names.refresh()  # no exception, nothing sent
    assert names.name("not-an-address") is None and upstream.queries == []
