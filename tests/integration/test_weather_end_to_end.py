"""Issue 4, end to end: blocks through the running server show on its weather page."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from dashboard.app import start_dashboard
from tests.conftest import FakeUpstream, make_config, running


async def test_a_few_blocks_make_a_cloudy_day_with_the_blocks_listed(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    lst = tmp_path / "block.txt"
    lst.write_text("phish.test\n")
    extra = (
        f"blocking:\n  lists:\n    - path: {lst}\n      name: local\n      category: phishing\n"
        "dashboard:\n  listen: '127.0.0.1:0'\n  thresholds:\n    cloudy: 1\n    rain: 10\n"
        "    storm: 40\n    tornado: 150\n"
    )
    cfg = make_config(tmp_path, upstream.port, extra)
    async with running(cfg) as app:
        runner = await start_dashboard(
            cfg.dashboard, db_path=cfg.blocklog_path(), stats=app.stats, version="test"
        )
        try:
            port = runner.addresses[0][1]
            host, dns_port = app.bound[0]
            for name in ("phish.test", "www.phish.test", "<script>x</script>.phish.test"):
                q = dns.message.make_query(name, "A")
                r = await dns.asyncquery.udp(q, host, port=dns_port, timeout=2)
                assert r.rcode() == dns.rcode.NXDOMAIN
            assert await asyncio.to_thread(app.blocklog.flush)
            async with aiohttp.ClientSession() as http:
                base = f"http://127.0.0.1:{port}"
                async with http.get(f"{base}/api/summary") as resp:
                    summary = await resp.json()
                assert summary["total"] == 3
                assert summary["weather"] == "cloudy"
                async with http.get(f"{base}/api/blocks") as resp:
                    blocks = await resp.json()
                # Odd bytes of a name are kept in DNS presentation form (\DDD, RFC 4343):
                # the hostile label is stored and shown as text, never as markup.
                assert {b["qname"] for b in blocks["items"]} == {
                    "phish.test",
                    "www.phish.test",
                    "\\060script\\062x\\060\\047script\\062.phish.test",
                }
                async with http.get(f"{base}/") as resp:
                    page = await resp.text()
                assert "<script>x</script>" not in page  # shown escaped, never as markup
                assert "cloudy.svg" in page
        finally:
            await runner.cleanup()


async def test_a_running_box_whose_upstream_is_down_says_so_under_fog(
    tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    # The new user: a list loaded, but the internet cut (the upstream drops everything).
    # The page is served on [::1]: its address is logged once, in brackets.
    lst = tmp_path / "block.txt"
    lst.write_text("phish.test\n")
    extra = (
        f"server:\n  listen: ['127.0.0.1:0', '[::1]:0']\n"
        f"blocking:\n  lists:\n    - path: {lst}\n      name: local\n      category: phishing\n"
        "dashboard:\n  listen: '[::1]:0'\n"
    )
    cfg = make_config(tmp_path, upstream.port, extra)
    upstream.silent = True
    caplog.set_level(logging.INFO)
    async with running(cfg) as app:
        runner = await start_dashboard(
            cfg.dashboard, db_path=cfg.blocklog_path(), stats=app.stats, version="test"
        )
        try:
            port = runner.addresses[0][1]
            host, dns_port = app.bound[0]
            q = dns.message.make_query("www.example.org", "A")
            r = await dns.asyncquery.udp(q, host, port=dns_port, timeout=5)
            assert r.rcode() == dns.rcode.SERVFAIL
            async with aiohttp.ClientSession() as http:
                base = f"http://[::1]:{port}"
                async with http.get(f"{base}/api/summary") as resp:
                    summary = await resp.json()
                async with http.get(f"{base}/metrics") as resp:
                    metrics = await resp.text()
                async with http.get(f"{base}/") as resp:
                    page = await resp.text()
        finally:
            await runner.cleanup()
    checks = {c["check"]: c["state"] for c in summary["protection"]["checks"]}
    assert checks == {"feeds": "ok", "upstream": "off", "detector": "ok", "blocklog": "ok"}
    assert summary["protected"] is False and summary["icon"] == "fog"
    assert summary["headline"].startswith("Service interrompu : aucun serveur DNS amont")
    assert "parafoudre_protected 0.0" in metrics
    assert 'parafoudre_protection_check{check="upstream"} 0.0' in metrics
    assert 'parafoudre_protection_problem{problem="upstream_down"} 1.0' in metrics
    assert 'src="/static/fog.svg"' in page and "Service interrompu" in page
    # Start-up lines once; IPv6 addresses in brackets.
    messages = [r.getMessage() for r in caplog.records]
    assert sum("weather page on http://" in m for m in messages) == 1
    assert any(m.startswith(f"weather page on http://[::1]:{port}/") for m in messages)
    listening = [m for m in messages if m.startswith("listening on ")]
    assert len(listening) == 1 and f"[::1]:{app.bound[1][1]}" in listening[0]
