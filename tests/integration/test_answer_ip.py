"""Answers into listed addresses (issue 20.3): the feeds' IP lines compiled into the artifact,
every A/AAAA answer checked against them, over a real socket with a local upstream."""

from __future__ import annotations

import io
import ipaddress
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.message
import dns.rcode

from feeds.update import EXIT_OK, run_update
from resolver import blocklist_file
from resolver.config.feeds import FeedsConfig, FeedSource
from tests.conftest import FakeUpstream, make_config, running

REPO = Path(__file__).resolve().parents[2]
# A real excerpt of the URLhaus filter in AdGuard Home format: hosts and 40 IP lines (ORIGIN.md).
EXCERPT = REPO / "tests" / "data" / "feeds" / "urlhaus-filter-agh.txt"
LISTED = "1.0.209.238"  # ||1.0.209.238^ in the excerpt


async def compile_excerpt(tmp_path: Path) -> Path:
    compiled = tmp_path / "blocklist.pfb"
    fcfg = FeedsConfig(
        catalogue=(),
        sources=(
            FeedSource(name="urlhaus-agh", url=str(EXCERPT), format="adblock", category="malware"),
        ),
        state_dir=str(tmp_path / "feeds"),
    )
    out, err = io.StringIO(), io.StringIO()
    code = await run_update(fcfg, artifact_path=compiled, out=out, interactive=False, err=err)
    assert code == EXIT_OK, out.getvalue() + err.getvalue()
    return compiled


async def test_the_feeds_ip_lines_reach_the_artifact(tmp_path: Path) -> None:
    art = blocklist_file.read(await compile_excerpt(tmp_path))
    assert art.version == blocklist_file.VERSION
    assert art.ranges == 40
    m = art.match_ip(ipaddress.ip_address(LISTED).packed)
    assert m is not None and (m.source, m.category) == ("feed:urlhaus-agh", "malware")
    assert art.match_ip(ipaddress.ip_address("1.0.209.239").packed) is None


async def test_an_answer_into_a_listed_address_is_blocked(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    compiled = await compile_excerpt(tmp_path)
    upstream.add(f"fresh-c2-exemple.fr. 300 IN A {LISTED}")
    upstream.add("alias-exemple.fr. 300 IN CNAME fresh-c2-exemple.fr.")
    upstream.add("clean-exemple.fr. 300 IN A 192.0.2.80")
    cfg = make_config(tmp_path, upstream.port, f"blocking: {{compiled: {compiled}}}")
    async with running(cfg) as app:
        host, port = app.bound[0]

        async def ask(name: str) -> dns.message.Message:
            q = dns.message.make_query(name, "A", use_edns=0)
            return await dns.asyncquery.udp(q, host, port=port, timeout=2.0)

        for name in ("fresh-c2-exemple.fr", "alias-exemple.fr"):
            r = await ask(name)
            assert r.rcode() == dns.rcode.NXDOMAIN and not r.answer, name
            (opt,) = [o for o in r.options if isinstance(o, dns.edns.EDEOption)]
            assert opt.code == 15 and opt.text == f"feed:urlhaus-agh answer-ip:{LISTED}"
        # Asked again: blocked again (the cache never kept the address).
        assert (await ask("fresh-c2-exemple.fr")).rcode() == dns.rcode.NXDOMAIN
        r = await ask("clean-exemple.fr")
        assert r.rcode() == dns.rcode.NOERROR and r.answer
