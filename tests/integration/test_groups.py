"""Policy groups (issue 21.3): each network of the commune gets its own protection, and a
cached answer never crosses from one group to another. Real sockets, dnspython as the client,
the clients told apart by their 127.0.0.x source address."""

from __future__ import annotations

import asyncio
import json
import random
import string
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.message
import dns.rcode
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dashboard.app import create_app
from dashboard.metrics import _resolver_metrics
from resolver.app import App
from resolver.blocklog.schema import open_db
from resolver.config.groups import group_networks
from resolver.core.groups import GroupedPipeline
from resolver.core.pipeline import Pipeline
from resolver.stages.answer_ip import AnswerIpStage
from resolver.stages.dga import DgaStage
from tests.conftest import FakeUpstream, make_config, running
from tests.integration.cdp import CHROMIUM, chromium_page

ADMIN = "127.0.0.4"  # group "admin": threats only (malware)
WIFI = "127.0.0.2"  # the default group: every category, adult content included
DC = "127.0.0.5"  # group "dc": never filtered
LAB = "127.0.0.6"  # group "lab": generated domains only detected (dga: detect)


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    up = FakeUpstream()
    up.add("adult-exemple.fr. 300 IN A 192.0.2.50")
    up.add("malware-exemple.fr. 300 IN A 192.0.2.66")
    up.add("www.mairie-exemple.fr. 300 IN A 192.0.2.20")
    await up.start()
    yield up
    await up.stop()


def groups_config(tmp_path: Path, port: int) -> str:
    adult = tmp_path / "adult.txt"
    adult.write_text("adult-exemple.fr\n")
    malware = tmp_path / "malware.txt"
    malware.write_text("malware-exemple.fr\n")
    return (
        "blocking:\n  lists:\n"
        f"    - path: {adult}\n      category: adult\n"
        f"    - path: {malware}\n      category: malware\n"
        "groups:\n"
        f"  - name: admin\n    networks: [{ADMIN}/32]\n    categories: [malware]\n"
        f"  - name: dc\n    networks: [{DC}/32]\n    filter: false\n"
    )


async def ask(app: App, name: str, source: str) -> str:
    q = dns.message.make_query(name, "A")
    host, port = app.bound[0]
    r = await dns.asyncquery.udp(q, host, port=port, timeout=2, source=source)
    return dns.rcode.to_text(r.rcode())


async def test_two_groups_get_their_own_verdicts_and_never_each_others_cache(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    cfg = make_config(tmp_path, upstream.port, groups_config(tmp_path, upstream.port))
    async with running(cfg) as app:
        for _ in range(3):  # resolved and cached for the administration ...
            assert await ask(app, "adult-exemple.fr", ADMIN) == "NOERROR"
        for _ in range(3):  # ... yet blocked for the public Wi-Fi, from the cache too
            assert await ask(app, "adult-exemple.fr", WIFI) == "NXDOMAIN"
        assert await ask(app, "adult-exemple.fr", ADMIN) == "NOERROR"
        # Threats are blocked in both groups.
        assert await ask(app, "malware-exemple.fr", ADMIN) == "NXDOMAIN"
        assert await ask(app, "malware-exemple.fr", WIFI) == "NXDOMAIN"
        assert await ask(app, "www.mairie-exemple.fr", WIFI) == "NOERROR"
    asked = [q for q in upstream.queries if str(q.q.qname).lower() == "adult-exemple.fr."]
    assert len(asked) == 1  # only the administration's lookup: the Wi-Fi's were blocked


async def test_a_group_that_is_not_filtered_lets_a_listed_name_through_for_it_only(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    cfg = make_config(tmp_path, upstream.port, groups_config(tmp_path, upstream.port))
    async with running(cfg) as app:
        for _ in range(2):
            assert await ask(app, "malware-exemple.fr", DC) == "NOERROR"
            assert await ask(app, "malware-exemple.fr", WIFI) == "NXDOMAIN"
        assert any("group dc" in line for line in app.describe())


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        (
            "  - name: a\n    networks: [192.168.1.0/24]\n"
            "  - name: b\n    networks: [192.168.1.2/32]\n",
            "overlaps 192.168.1.0/24 of group 'a'",
        ),
        ("  - name: Wi Fi\n    networks: [10.0.0.0/8]\n", "is not a group name"),
        ("  - name: a\n    networks: [10.0.0.300/8]\n", "is not a network"),
        ("  - name: a\n    filter: false\n", "group 'a' covers no client"),
        (
            "  - name: a\n    networks: [10.0.0.0/8]\n  - name: b\n    clients: [accueil-pc]\n",
            "'accueil-pc' is not a name of clients.names (fix: did you mean 'accueil-pc2'?)",
        ),
        (
            "  - name: a\n    networks: [192.168.1.0/24]\n"
            "  - name: b\n    clients: [Accueil-PC2]\n",
            "client Accueil-PC2 (192.168.1.23) of group 'b' is also in group 'a'",
        ),
    ],
)
def test_a_bad_group_config_is_refused_in_one_line(
    tmp_path: Path, groups: str, message: str
) -> None:
    conf = tmp_path / "p.yaml"
    names = "clients:\n  names:\n    192.168.1.23: accueil-pc2\n"
    conf.write_text(f"state_dir: {tmp_path}\ngroups:\n{groups}{names}")
    r = subprocess.run(
        [sys.executable, "-m", "resolver.cli", "check-config", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert message in lines[0] and "p.yaml:" in lines[0] and "groups" in lines[0]
    assert "Traceback" not in r.stderr


async def test_blocks_are_counted_per_group(tmp_path: Path, upstream: FakeUpstream) -> None:
    cfg = make_config(tmp_path, upstream.port, groups_config(tmp_path, upstream.port))
    async with running(cfg) as app:
        for _ in range(3):
            await ask(app, "adult-exemple.fr", WIFI)  # blocked: the default group
        await ask(app, "malware-exemple.fr", ADMIN)  # blocked: admin
        await ask(app, "malware-exemple.fr", DC)  # not filtered
        stats = app.stats()
    assert stats.blocks_by_group == {"default": 3, "admin": 1}
    families = {m.name: m for m in _resolver_metrics(stats)}
    samples = {s.labels["group"]: s.value for s in families["parafoudre_group_blocks"].samples}
    assert samples == {"default": 3, "admin": 1}


def family(n: int, seed: int) -> list[str]:
    """Names drawn letter by letter at random (an arithmetic DGA's shape)."""
    rng = random.Random(seed)
    return [
        "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(12, 16))) + ".com"
        for _ in range(n)
    ]


async def dga_blocked(app: App, source: str, seed: int, n: int = 40) -> int | None:
    """Run a generated family from ``source``: the index of the first try answered as blocked
    with EDE 15 "dga", or None when none was."""
    host, port = app.bound[0]
    for i, name in enumerate(family(n, seed)):
        q = dns.message.make_query(name, "A", use_edns=0)
        r = await dns.asyncquery.udp(q, host, port=port, timeout=2, source=source)
        if any(isinstance(o, dns.edns.EDEOption) and o.text == "dga" for o in r.options):
            return i
    return None


def pipeline(app: App, group: str) -> Pipeline:
    assert isinstance(app.chain, GroupedPipeline)
    return next(p for p in app.chain.pipelines if p.name == group)


def stage_of(app: App, group: str, kind: type[object]) -> list[object]:
    return [s for s in pipeline(app, group).stages if isinstance(s, kind)]


async def test_each_group_has_its_generated_domain_mode(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """dga.mode block for the default group; a group in detect mode only names its infected
    machine; the domain controller (filter: false) is never judged at all."""
    extra = groups_config(tmp_path, upstream.port) + (
        f"  - name: lab\n    networks: [{LAB}/32]\n    dga: detect\nrate_limit:\n  enabled: false\n"
    )
    cfg = make_config(tmp_path, upstream.port, extra)
    async with running(cfg) as app:
        at = await dga_blocked(app, WIFI, seed=7)
        assert at is not None and at < 20  # the default group: blocked once judged
        assert await dga_blocked(app, LAB, seed=8) is None  # detect: named, never blocked
        assert await dga_blocked(app, DC, seed=9) is None  # not filtered: never judged
        (lab,) = stage_of(app, "lab", DgaStage)
        assert isinstance(lab, DgaStage) and lab is not app.dga
        assert lab.named == 1 and not lab.block
        assert app.dga is not None and app.dga.named == 1
        assert stage_of(app, "dc", DgaStage) == []
        # One knowledge of what the commune resolves, whichever group resolved it.
        assert lab.resolved is app.dga.resolved
        assert any(
            "group lab" in line and "generated domains detect" in line for line in app.describe()
        )


async def test_a_group_may_block_generated_domains_where_the_default_does_not(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    extra = (
        "dga:\n  mode: 'off'\n"
        f"groups:\n  - name: lab\n    networks: [{LAB}/32]\n    dga: block\n"
        "rate_limit:\n  enabled: false\n"
    )
    cfg = make_config(tmp_path, upstream.port, extra)
    async with running(cfg) as app:
        assert app.dga is None
        assert await dga_blocked(app, WIFI, seed=7) is None
        at = await dga_blocked(app, LAB, seed=8)
        assert at is not None and at < 20


def test_a_group_that_is_not_filtered_has_no_policy_stage(tmp_path: Path) -> None:
    """filter: false: no list, answer-ip, detector nor rebinding guard in its chain; a group
    with its own block mode answers listed addresses in that mode too. Built without a loop."""
    extra = groups_config(tmp_path, 53) + (
        f"  - name: lab\n    networks: [{LAB}/32]\n    block_mode: refused\n"
    )
    app = App(make_config(tmp_path, 53, extra))
    dc = {s.name for s in pipeline(app, "dc").stages}
    assert not dc & {"allowlist", "blocklist", "answer-ip", "exfiltration", "dga", "rebinding"}
    (lab,) = stage_of(app, "lab", AnswerIpStage)
    assert isinstance(lab, AnswerIpStage) and lab.answer.mode == "refused"
    assert app.answer_ip.answer.mode == "nxdomain"


def test_a_named_client_is_refused_at_its_own_line(tmp_path: Path) -> None:
    from resolver.config import ConfigError, load

    conf = tmp_path / "p.yaml"
    conf.write_text(
        "groups:\n"
        "  - name: accueil\n"
        "    clients:\n"
        "      - accueil-pc\n"
        "      - imprimante\n"  # line 5
        "clients:\n  names:\n    192.168.1.23: accueil-pc\n"
    )
    with pytest.raises(ConfigError) as err:
        load(conf)
    assert (err.value.line, err.value.key) == (5, "groups[0].clients[1]")


async def test_a_group_may_name_its_clients(tmp_path: Path, upstream: FakeUpstream) -> None:
    """clients: [accueil-pc] covers the address clients.names gives that machine, and only it."""
    accueil = "127.0.0.7"
    extra = groups_config(tmp_path, upstream.port) + (
        "  - name: accueil\n    clients: [Accueil-PC]\n    categories: [malware]\n"
        f"clients:\n  names:\n    {accueil}: accueil-pc\n    ::1: accueil-pc\n"
    )
    cfg = make_config(tmp_path, upstream.port, extra)
    async with running(cfg) as app:
        assert await ask(app, "adult-exemple.fr", accueil) == "NOERROR"
        assert await ask(app, "malware-exemple.fr", accueil) == "NXDOMAIN"
        assert await ask(app, "adult-exemple.fr", "127.0.0.8") == "NXDOMAIN"  # default group
        assert isinstance(app.chain, GroupedPipeline)
        assert app.chain.group_of(accueil) == "accueil"
        assert app.chain.group_of("::1") == "accueil"  # both its addresses (a /128 too)
        assert app.chain.group_of("127.0.0.8") == "default"
        assert any("group accueil (Accueil-PC)" in line for line in app.describe())


async def test_the_page_and_the_api_show_blocks_per_group(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """Real blocks from real queries, through the resolver's block log, then the page over
    HTTP: today's blocks per group, each machine in the group the config puts it in (networks
    and named clients); a canary is a bypass attempt, not a threat."""
    accueil = "127.0.0.7"
    extra = groups_config(tmp_path, upstream.port) + (
        "  - name: accueil\n    clients: [accueil-pc]\n"
        f"clients:\n  names:\n    {accueil}: accueil-pc\n"
    )
    cfg = make_config(tmp_path, upstream.port, extra)
    async with running(cfg) as app:
        for _ in range(3):
            await ask(app, "adult-exemple.fr", WIFI)  # the default group
        await ask(app, "adult-exemple.fr", "127.0.0.9")  # the default group, another machine
        await ask(app, "malware-exemple.fr", ADMIN)
        await ask(app, "malware-exemple.fr", DC)  # not filtered: no block
        await ask(app, "malware-exemple.fr", accueil)
        await ask(app, "use-application-dns.net", accueil)  # Firefox's canary: bypass
    page = create_app(
        cfg.dashboard,
        db_path=cfg.blocklog_path(),
        groups=group_networks(cfg.groups, cfg.clients.names),
    )
    async with TestClient(TestServer(page, host="127.0.0.1")) as client:
        resp = await client.get("/api/summary?lang=en")
        assert resp.status == 200
        groups = {g["group"]: g for g in (await resp.json())["groups"]}
        html = await (await client.get("/?lang=en")).text()
    assert list(groups) == ["admin", "dc", "accueil", "default"]  # the config's order
    counts = {name: (g["count"], g["bypass"], g["clients"]) for name, g in groups.items()}
    assert counts == {
        "admin": (1, 0, 1),
        "dc": (0, 0, 0),
        "accueil": (1, 1, 1),
        "default": (4, 0, 2),
    }
    assert groups["default"]["label"] == "other machines (default)"
    assert "s blocks per group</h2>" in html  # Today's, escaped
    assert '<tr data-group="accueil"><td>accueil</td><td>1</td><td>1</td><td>1</td></tr>' in html
    assert '<tr data-group="default"><td>other machines (default)</td><td>4</td>' in html


async def test_without_groups_the_page_shows_none(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, 53)
    cfg.blocklog_path().parent.mkdir(parents=True)
    open_db(cfg.blocklog_path()).close()  # an empty block log, as the resolver creates it
    page = create_app(cfg.dashboard, db_path=cfg.blocklog_path())
    async with TestClient(TestServer(page, host="127.0.0.1")) as client:
        assert (await (await client.get("/api/summary")).json())["groups"] == []
        assert 'id="groups-section"' not in await (await client.get("/")).text()


ROWS = """JSON.stringify([...document.querySelectorAll("#groups tr")].map(
  tr => [...tr.children].map(td => td.textContent)))"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
async def test_the_open_page_keeps_its_groups_table_current(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """In headless Chromium: the page refreshes itself from /api/summary (static/app.js), the
    per-group table included, while the resolver keeps blocking."""
    extra = groups_config(tmp_path, upstream.port) + "dashboard:\n  refresh: 5\n"
    cfg = make_config(tmp_path, upstream.port, extra)
    async with running(cfg) as app:
        await ask(app, "malware-exemple.fr", ADMIN)
        assert await asyncio.to_thread(app.blocklog.flush, 10)  # in the log before the page
        page_app = create_app(
            cfg.dashboard,
            db_path=cfg.blocklog_path(),
            groups=group_networks(cfg.groups, cfg.clients.names),
        )
        runner = web.AppRunner(page_app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/?lang=en"
        try:
            async with chromium_page(tmp_path / "profile") as page:
                await page.goto(url)
                await page.wait_for("document.body.dataset.refreshed")
                first = await page.evaluate("document.body.dataset.refreshed")
                assert json.loads(await page.evaluate(ROWS)) == [
                    ["admin", "1", "0", "1"],
                    ["dc", "0", "0", "0"],
                    ["other machines (default)", "0", "0", "0"],
                ]
                for _ in range(2):
                    await ask(app, "adult-exemple.fr", WIFI)
                # The next refresh (every 5 s) after the block log's write window shows them.
                want = ["other machines (default)", "2", "0", "1"]
                last = json.dumps(json.dumps(want, separators=(",", ":")))
                await page.wait_for(f"JSON.stringify(JSON.parse({ROWS}).at(-1)) === {last}", 15)
                rows = json.loads(await page.evaluate(ROWS))
                assert await page.evaluate("document.body.dataset.refreshed") != first
        finally:
            await runner.cleanup()
    assert rows[0] == ["admin", "1", "0", "1"]


async def test_answers_into_listed_addresses_follow_each_groups_choices(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """answer-ip (a feed's IP lines) per group: blocked for the default group, answered in the
    group's own block mode, let through where the group keeps other categories only, and never
    judged for a group that is not filtered."""
    from tests.integration.test_answer_ip import LISTED, compile_excerpt

    compiled = await compile_excerpt(tmp_path)  # URLhaus's IP lines, category malware
    upstream.add(f"fresh-c2-exemple.fr. 300 IN A {LISTED}")
    extra = (
        f"blocking:\n  compiled: {compiled}\n"
        "groups:\n"
        f"  - name: school\n    networks: [{ADMIN}/32]\n    categories: [adult]\n"
        f"  - name: dc\n    networks: [{DC}/32]\n    filter: false\n"
        f"  - name: lab\n    networks: [{LAB}/32]\n    block_mode: refused\n"
    )
    cfg = make_config(tmp_path, upstream.port, extra)
    async with running(cfg) as app:
        for _ in range(2):  # the second time from each group's own cache, or judged again
            assert await ask(app, "fresh-c2-exemple.fr", WIFI) == "NXDOMAIN"
            assert await ask(app, "fresh-c2-exemple.fr", LAB) == "REFUSED"
            assert await ask(app, "fresh-c2-exemple.fr", ADMIN) == "NOERROR"
            assert await ask(app, "fresh-c2-exemple.fr", DC) == "NOERROR"
