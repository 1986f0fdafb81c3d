"""Bypass canaries and resolver.arpa answered by the box itself, never forwarded (issue 21.1).

A real server on loopback, queried with dnspython over UDP and TCP; the fake upstream records
every question it gets, so "never forwarded" is checked where it would show.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.conftest import FakeUpstream, make_config, running

WAIT = 3.0

CANARIES = ("use-application-dns.net", "mask.icloud.com", "mask-h2.icloud.com")


async def ask(port: int, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    if tcp:
        return await dns.asyncquery.tcp(q, "127.0.0.1", port=port, timeout=WAIT)
    return await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=WAIT)


def bypass_rows(db: Path) -> list[tuple[str, str, str, str, int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT client, qname, reason, category, SUM(count) FROM blocks"
            " WHERE category = 'bypass' GROUP BY client, qname, reason ORDER BY qname"
        ).fetchall()


async def test_canaries_nxdomain_never_forwarded(tmp_path: Path, upstream: FakeUpstream) -> None:
    cfg = make_config(tmp_path, upstream.port)
    async with running(cfg) as app:
        port = app.bound[0][1]
        for name in CANARIES:
            for rdtype in ("A", "AAAA", "HTTPS"):
                r = await ask(port, name, rdtype)
                assert r.rcode() == dns.rcode.NXDOMAIN, (name, rdtype)
                assert not r.answer
            r = await ask(port, name, "A", tcp=True)
            assert r.rcode() == dns.rcode.NXDOMAIN
        # A name under a canary is an ordinary name.
        r = await ask(port, "example.test")
        assert r.rcode() == dns.rcode.NOERROR and r.answer
        assert [str(q.q.qname).rstrip(".") for q in upstream.queries] == ["example.test"]
        assert app.canaries.hits == {"canary:firefox": 4, "canary:private-relay": 8}
    # Each logged as a "bypass" block of this machine, so the page can name it.
    deadline = time.monotonic() + WAIT
    rows = bypass_rows(cfg.blocklog_path())
    while len(rows) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        rows = bypass_rows(cfg.blocklog_path())
    assert rows == [
        ("127.0.0.1", "mask-h2.icloud.com", "canary:private-relay", "bypass", 4),
        ("127.0.0.1", "mask.icloud.com", "canary:private-relay", "bypass", 4),
        ("127.0.0.1", "use-application-dns.net", "canary:firefox", "bypass", 4),
    ]


async def test_private_relay_switch_off_forwards_it(tmp_path: Path, upstream: FakeUpstream) -> None:
    upstream.add("mask.icloud.com. 300 IN A 192.0.2.9")
    cfg = make_config(tmp_path, upstream.port, "canaries: {icloud_private_relay: false}")
    async with running(cfg) as app:
        port = app.bound[0][1]
        r = await ask(port, "mask.icloud.com")
        assert r.rcode() == dns.rcode.NOERROR
        assert r.answer[0][0].address == "192.0.2.9"
        # Firefox's canary is still answered by the box.
        assert (await ask(port, "use-application-dns.net")).rcode() == dns.rcode.NXDOMAIN
    assert [str(q.q.qname).rstrip(".") for q in upstream.queries] == ["mask.icloud.com"]


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [
        ("resolver.arpa", "A"),
        ("resolver.arpa", "SOA"),
        ("_dns.resolver.arpa", "SVCB"),  # no encrypted endpoint configured: nothing to say
        ("_dns.resolver.arpa", "A"),
        ("x.y.resolver.arpa", "AAAA"),
        ("RESOLVER.ARPA", "TXT"),
    ],
)
async def test_resolver_arpa_nodata_locally(
    tmp_path: Path, upstream: FakeUpstream, name: str, rdtype: str
) -> None:
    cfg = make_config(tmp_path, upstream.port)
    async with running(cfg) as app:
        r = await ask(app.bound[0][1], name, rdtype)
        assert r.rcode() == dns.rcode.NOERROR
        assert not r.answer
        assert r.flags & dns.flags.AA
    assert upstream.queries == []
    # An ordinary name that merely ends like it is forwarded.
    cfg2 = make_config(tmp_path / "b", upstream.port)
    async with running(cfg2) as app:
        await ask(app.bound[0][1], "notresolver.arpa")
    assert [str(q.q.qname).rstrip(".") for q in upstream.queries] == ["notresolver.arpa"]


async def test_canary_before_the_allowlist_and_the_cache(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """Allowlisting icloud.com does not let the canary through: the switch is the way."""
    cfg = make_config(tmp_path, upstream.port, "allowlist: {names: [icloud.com]}")
    async with running(cfg) as app:
        port = app.bound[0][1]
        for _ in range(3):
            assert (await ask(port, "mask.icloud.com")).rcode() == dns.rcode.NXDOMAIN
    assert upstream.queries == []


async def test_a_machine_that_keeps_trying_is_named_on_the_page(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """Three canary answers today (the page's highlight_min) and the page names the machine."""
    from dashboard import i18n
    from dashboard.summary import load_summary
    from resolver.blocklog.schema import open_db
    from resolver.config.dashboard import DashboardConfig

    cfg = make_config(tmp_path, upstream.port)
    async with running(cfg) as app:
        for _ in range(3):
            await ask(app.bound[0][1], "use-application-dns.net")
    conn = open_db(cfg.blocklog_path(), readonly=True)
    try:
        # "Today" is the day of the blocks themselves: no flake across midnight.
        (last,) = conn.execute("SELECT MAX(ts) FROM blocks").fetchone()
        summary = load_summary(conn, DashboardConfig(), last)
    finally:
        conn.close()
    h = summary.highlight
    assert h is not None
    assert (h.client, h.category, h.category_count) == ("127.0.0.1", "bypass", 3)
    assert i18n.highlight_sentence("fr", h.category_count, h.category, h.kind, h.client) == (
        "3 tentatives pour contourner le filtre (DNS chiffré extérieur, VPN, relais) "
        "depuis le poste 127.0.0.1 : faites-le vérifier."
    )
