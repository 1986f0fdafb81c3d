"""One policy for every answer (issue 13): the fast lane never answers what the chain would not.

Each case puts a stateful stage in the picture (an exfiltration cool-down, a list swap, an
allowlist change, an empty token bucket) after a name is cached, and asks over a real UDP socket
with dnspython, twice: with the fast lane (cached answers served without the chain) and without
it. Both must give the answer the chain gives now.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import pytest

from resolver.app import App
from tests.conftest import FakeUpstream, make_config, running

TUNNEL = "tunnel-exemple.fr"
SUSPECT = "127.0.0.2"  # the machine that runs the tunnel
NEIGHBOUR = "127.0.0.3"  # another machine of the same commune
FAST = pytest.mark.parametrize("fast", [True, False], ids=["fast-lane", "chain-only"])


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    up = FakeUpstream()
    up.add(f"www.{TUNNEL}. 300 IN A 192.0.2.10")
    up.add("www.mairie-exemple.fr. 300 IN A 192.0.2.20")
    up.add("x.swap-exemple.fr. 300 IN A 192.0.2.30")
    up.add("allowme-exemple.fr. 300 IN A 192.0.2.40")
    up.add("pc1.direct.test. 300 IN A 192.168.1.21")
    up.add("blocked.direct.test. 300 IN A 192.168.1.66")
    for n in range(1, 201):  # fresh names that exist: they tell the chain's judgement
        up.add(f"new{n}.{TUNNEL}. 300 IN A 192.0.2.11")
    await up.start()
    yield up
    await up.stop()


async def ask(
    app: App, name: str, source: str = SUSPECT, rdtype: str = "A"
) -> tuple[str, list[str]] | None:
    """(rcode, answer rdata) as the client sees it, or None when no answer came."""
    q = dns.message.make_query(name, rdtype)
    host, port = app.bound[0]
    try:
        r = await dns.asyncquery.udp(q, host, port=port, timeout=1.5, source=source)
    except dns.exception.Timeout:
        return None
    rdata = sorted(rr.to_text() for rrset in r.answer for rr in rrset)
    return dns.rcode.to_text(r.rcode()), rdata


def tunnel_name(rng: random.Random) -> str:
    """An iodine-like query name: a long base32 label of payload under the tunnel's domain."""
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    return "".join(rng.choice(alphabet) for _ in range(60)) + "." + TUNNEL


async def start_tunnel(app: App, rng: random.Random) -> int:
    """Send tunnel queries until the detector holds the whole domain (a cool-down): a plain
    name never asked before, so never cached, is then blocked too. How many it took."""
    for n in range(1, 201):
        await ask(app, tunnel_name(rng), rdtype="TXT")
        if await ask(app, f"new{n}.{TUNNEL}") == ("NXDOMAIN", []):
            return n
    raise AssertionError("no cool-down within 200 tunnel queries")


@FAST
async def test_a_cool_down_is_not_skipped_by_a_cached_answer(
    tmp_path: Path, upstream: FakeUpstream, fast: bool
) -> None:
    cfg = make_config(tmp_path, upstream.port, "rate_limit:\n  enabled: false\n")
    async with running(cfg) as app:
        app.service.fast = fast
        www = f"www.{TUNNEL}"
        for _ in range(3):  # cached, then served from the cache (and the memo of renderings)
            assert await ask(app, www) == ("NOERROR", ["192.0.2.10"])
        await start_tunnel(app, random.Random(13))
        # The suspect's own cached name under the tunnel's domain is blocked now, every time.
        for _ in range(3):
            assert await ask(app, www) == ("NXDOMAIN", [])
        # A neighbour is not in the cool-down (scope: client): the cached answer still serves.
        for _ in range(3):
            assert await ask(app, www, source=NEIGHBOUR) == ("NOERROR", ["192.0.2.10"])
        # Other names still answer for the suspect.
        assert await ask(app, "www.mairie-exemple.fr") == ("NOERROR", ["192.0.2.20"])
        assert await ask(app, www) == ("NXDOMAIN", [])


@FAST
async def test_a_list_swap_blocks_a_cached_name(
    tmp_path: Path, upstream: FakeUpstream, fast: bool
) -> None:
    lst = tmp_path / "block.txt"
    lst.write_text("other-exemple.fr\n")
    cfg = make_config(tmp_path, upstream.port, f"blocking:\n  lists:\n    - path: {lst}\n")
    async with running(cfg) as app:
        app.service.fast = fast
        for _ in range(3):
            assert await ask(app, "x.swap-exemple.fr") == ("NOERROR", ["192.0.2.30"])
        lst.write_text("other-exemple.fr\nswap-exemple.fr\n")
        assert await app.reload()
        for _ in range(3):
            assert await ask(app, "x.swap-exemple.fr") == ("NXDOMAIN", [])


@FAST
async def test_an_allowlist_change_unblocks_a_cached_block(
    tmp_path: Path, upstream: FakeUpstream, fast: bool
) -> None:
    lst = tmp_path / "block.txt"
    lst.write_text("allowme-exemple.fr\n")
    allow = tmp_path / "allow.txt"
    allow.write_text("")
    extra = f"blocking:\n  lists:\n    - path: {lst}\nallowlist:\n  files: [{allow}]\n"
    async with running(make_config(tmp_path, upstream.port, extra)) as app:
        app.service.fast = fast
        for _ in range(3):  # blocked, then the cached block
            assert await ask(app, "allowme-exemple.fr") == ("NXDOMAIN", [])
        allow.write_text("allowme-exemple.fr\n")
        assert await app.reload()
        for _ in range(3):
            assert await ask(app, "allowme-exemple.fr") == ("NOERROR", ["192.0.2.40"])


@FAST
async def test_an_empty_bucket_drops_cached_answers_too(
    tmp_path: Path, upstream: FakeUpstream, fast: bool
) -> None:
    extra = "rate_limit:\n  rate: 0.5\n  burst: 6\n"
    async with running(make_config(tmp_path, upstream.port, extra)) as app:
        app.service.fast = fast
        got = [await ask(app, "www.mairie-exemple.fr") for _ in range(10)]
    # The burst, then silence (within a second or two: at most one token more).
    answered = [g for g in got if g is not None]
    assert 6 <= len(answered) <= 7
    assert all(g == ("NOERROR", ["192.0.2.20"]) for g in answered)
    assert got[-1] is None


@pytest.mark.parametrize("trusted", [False, True], ids=["judged", "trusted"])
async def test_a_forward_zone_name_on_a_block_list_is_blocked_unless_trusted(
    tmp_path: Path, upstream: FakeUpstream, trusted: bool
) -> None:
    lst = tmp_path / "block.txt"
    lst.write_text("blocked.direct.test\n")
    extra = (
        f"blocking:\n  lists:\n    - path: {lst}\n"
        "local_zone:\n  forward_zones:\n"
        f"    - zone: direct.test\n      servers: ['127.0.0.1:{upstream.port}']\n"
        f"      trusted: {'true' if trusted else 'false'}\n"
    )
    async with running(make_config(tmp_path, upstream.port, extra)) as app:
        for _ in range(2):
            assert await ask(app, "pc1.direct.test") == ("NOERROR", ["192.168.1.21"])
            want = ("NOERROR", ["192.168.1.66"]) if trusted else ("NXDOMAIN", [])
            assert await ask(app, "blocked.direct.test") == want
    assert app.service.counts["blocked"] == (0 if trusted else 2)


async def test_a_tunnel_through_a_forward_zone_is_cut(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    extra = (
        "local_zone:\n  forward_zones:\n"
        f"    - zone: {TUNNEL}\n      servers: ['127.0.0.1:{upstream.port}']\n"
    )
    async with running(make_config(tmp_path, upstream.port, extra)) as app:
        n = await start_tunnel(app, random.Random(5))
        assert n <= 50
        assert await ask(app, f"www.{TUNNEL}") == ("NXDOMAIN", [])


@FAST
async def test_a_list_swap_blocks_a_cached_answer_whose_cname_target_is_listed_since(
    tmp_path: Path, upstream: FakeUpstream, fast: bool
) -> None:
    upstream.add("alias-exemple.fr. 300 IN CNAME cdn.tracker-exemple.fr.")
    upstream.add("cdn.tracker-exemple.fr. 300 IN A 192.0.2.77")
    lst = tmp_path / "block.txt"
    lst.write_text("other-exemple.fr\n")
    cfg = make_config(tmp_path, upstream.port, f"blocking:\n  lists:\n    - path: {lst}\n")
    async with running(cfg) as app:
        app.service.fast = fast
        for _ in range(3):
            assert await ask(app, "alias-exemple.fr") == (
                "NOERROR",
                ["192.0.2.77", "cdn.tracker-exemple.fr."],
            )
        asked = len(upstream.queries)
        lst.write_text("tracker-exemple.fr\n")
        assert await app.reload()
        for _ in range(3):
            assert await ask(app, "alias-exemple.fr") == ("NXDOMAIN", [])
        assert await ask(app, "www.mairie-exemple.fr") == ("NOERROR", ["192.0.2.20"])
        # The cached answer was judged again from the cache, not fetched again.
        assert not any(
            str(q.q.qname).lower() == "alias-exemple.fr." for q in upstream.queries[asked:]
        )


@FAST
async def test_a_list_swap_blocks_a_cached_answer_into_an_address_listed_since(
    tmp_path: Path, upstream: FakeUpstream, fast: bool
) -> None:
    from tests.integration.test_answer_ip import LISTED, compile_excerpt

    upstream.add(f"fresh-c2-exemple.fr. 300 IN A {LISTED}")
    compiled = tmp_path / "state" / "blocklist.pfb"
    async with running(make_config(tmp_path, upstream.port)) as app:
        app.service.fast = fast
        for _ in range(3):  # no list knows the address yet: resolved and cached
            assert await ask(app, "fresh-c2-exemple.fr") == ("NOERROR", [LISTED])
        made = await compile_excerpt(tmp_path / "feeds")  # `parafoudre feeds update`
        compiled.parent.mkdir(parents=True, exist_ok=True)
        made.replace(compiled)
        assert await app.reload()
        for _ in range(3):
            assert await ask(app, "fresh-c2-exemple.fr") == ("NXDOMAIN", [])
