"""Generated domains (issue 20), over real sockets: a machine running a DGA is named, its live
command server blocked with an Extended DNS Error, the page says so; Chromium's probes and a
search suffix from the same machine are never blocked."""

from __future__ import annotations

import random
import string
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.message
import dns.rcode
import pytest

from resolver.app import App
from tests.conftest import FakeUpstream, make_config, running

INFECTED = "127.0.0.2"
NEIGHBOUR = "127.0.0.3"
LIVE = "qxvtrnbmkwplzh.com"  # the one name of the day the operator registered


def family(n: int, seed: int = 7) -> list[str]:
    """Names drawn letter by letter at random (an arithmetic DGA's shape)."""
    rng = random.Random(seed)
    return [
        "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(12, 16))) + ".com"
        for _ in range(n)
    ]


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    up = FakeUpstream()
    up.add(f"{LIVE}. 300 IN A 203.0.113.66")
    up.add("www.mairie-exemple.fr. 300 IN A 192.0.2.20")
    up.add("mairie-exemple.fr. 300 IN A 192.0.2.20")
    await up.start()
    yield up
    await up.stop()


async def ask(app: App, name: str, source: str = INFECTED) -> dns.message.Message:
    q = dns.message.make_query(name, "A", use_edns=0)
    host, port = app.bound[0]
    return await dns.asyncquery.udp(q, host, port=port, timeout=2.0, source=source)


def ede(r: dns.message.Message) -> list[tuple[int, str]]:
    return [(o.code, o.text or "") for o in r.options if isinstance(o, dns.edns.EDEOption)]


async def test_a_generated_family_is_named_and_its_live_name_blocked(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    cfg = make_config(tmp_path, upstream.port, "rate_limit:\n  enabled: false\n")
    async with running(cfg) as app:
        # Before: the live name resolves (no feed knows it).
        r = await ask(app, LIVE)
        assert r.rcode() == dns.rcode.NOERROR and r.answer
        blocked_at = None
        for i, name in enumerate(family(50)):
            r = await ask(app, name)
            if ede(r):
                blocked_at = i
                break
        assert blocked_at is not None and blocked_at < 20
        # Its next tries are blocked before they leave the box.
        sent = len(upstream.queries)
        for name in family(50)[blocked_at + 1 : blocked_at + 4]:
            assert ede(await ask(app, name)) == [(15, "dga")]
        assert len(upstream.queries) == sent
        # After: the live command server is answered as blocked, with EDE 15 "dga" ...
        r = await ask(app, LIVE)
        assert r.rcode() == dns.rcode.NXDOMAIN and not r.answer
        assert ede(r) == [(15, "dga")]
        # ... for the infected machine only; its ordinary browsing goes on.
        assert (await ask(app, LIVE, NEIGHBOUR)).rcode() == dns.rcode.NOERROR
        assert (await ask(app, "www.mairie-exemple.fr")).rcode() == dns.rcode.NOERROR
        assert app.dga is not None and app.dga.named == 1
    # The block log has the machine's tries with category "dga"; the page names it.
    from dashboard import i18n
    from dashboard.summary import load_summary
    from resolver.blocklog.schema import open_db
    from resolver.config.dashboard import DashboardConfig

    conn = open_db(cfg.blocklog_path(), readonly=True)
    try:
        rows = conn.execute(
            "SELECT DISTINCT client, qname, reason, category FROM blocks WHERE category = 'dga'"
        ).fetchall()
        (last,) = conn.execute("SELECT MAX(ts) FROM blocks").fetchone()
        summary = load_summary(conn, DashboardConfig(), last)
    finally:
        conn.close()
    assert (INFECTED, LIVE, "dga", "dga") in rows
    h = summary.highlight
    assert h is not None and (h.client, h.category) == (INFECTED, "dga")
    sentence = i18n.highlight_sentence("fr", h.category_count, h.category, h.kind, h.client)
    assert sentence.startswith(f"Le poste {INFECTED} cherche des centaines de domaines inventés")
    assert "probablement infecté" in sentence


async def test_chromium_probes_and_search_suffixes_are_never_blocked(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    cfg = make_config(tmp_path, upstream.port, "rate_limit:\n  enabled: false\n")
    rng = random.Random(5)
    async with running(cfg) as app:
        for _ in range(10):  # ten browser starts or network changes in a row
            for _ in range(3):
                probe = "".join(rng.choice(string.ascii_lowercase) for _ in range(12))
                for name in (probe, f"{probe}.mairie-exemple.fr", f"{probe}.mairie.local"):
                    r = await ask(app, name)
                    assert not ede(r), name
            for name in ("wpad.mairie-exemple.fr", "isatap.mairie.local"):
                assert not ede(await ask(app, name))
        assert app.dga is not None and app.dga.named == 0


@pytest.mark.parametrize("fast", [True, False], ids=["fast-lane", "chain-only"])
async def test_a_cached_live_name_is_not_served_once_the_machine_is_judged(
    tmp_path: Path, upstream: FakeUpstream, fast: bool
) -> None:
    """The fast lane never answers what the chain would not (issue 13), with this stage too."""
    cfg = make_config(tmp_path, upstream.port, "rate_limit:\n  enabled: false\n")
    async with running(cfg) as app:
        app.service.fast = fast
        for _ in range(3):  # cached, then served from the cache (and the memo of renderings)
            r = await ask(app, LIVE)
            assert r.rcode() == dns.rcode.NOERROR and r.answer
        for name in family(20, seed=11):
            if ede(await ask(app, name)):
                break
        for _ in range(3):
            assert ede(await ask(app, LIVE)) == [(15, "dga")]
            r = await ask(app, LIVE, NEIGHBOUR)
            assert r.rcode() == dns.rcode.NOERROR and r.answer
