"""Machines by name on a real box: the operator's name and the domain controller's PTR answer
shown on the page and in the API beside the address, and in the yearly report."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import dns.asyncquery
import dns.message

from tests.conftest import FakeUpstream, free_port
from tests.integration.test_workers import _serve


async def test_names_on_the_page_in_the_api_and_in_the_report(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.add("bad.example.test. 300 IN A 192.0.2.66")
    # The "domain controller": the mairie's zone and, as it usually does, the reverse ones.
    upstream.add("3.0.0.127.in-addr.arpa. 300 IN PTR compta.mairie.test.")
    blocklist = tmp_path / "block.txt"
    blocklist.write_text("bad.example.test\n")
    dport = free_port()
    cfg = tmp_path / "c.yaml"
    proc, port = await _serve(
        cfg,
        lambda port: (
            f"state_dir: {tmp_path / 'state'}\nserver:\n  listen: ['127.0.0.1:{port}']\n"
            f"upstream:\n  servers: ['127.0.0.1:{upstream.port}']\n"
            f"local_zone:\n  forward_zones:\n    - zone: mairie.test\n"
            f"      servers: ['127.0.0.1:{upstream.port}']\n"
            f"blocking:\n  lists:\n    - {{path: {blocklist}, category: malware}}\n"
            "blocklog:\n  flush_interval: 0.2\n"
            "clients:\n  names: {127.0.0.2: accueil-pc}\n"
            f"dashboard:\n  listen: 127.0.0.1:{dport}\n  highlight_min: 1\n"
        ),
        1,
    )
    try:
        for src in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
            q = dns.message.make_query("bad.example.test", "A")
            await dns.asyncquery.udp(q, "127.0.0.1", port=port, source=src, timeout=2)
        url = f"http://127.0.0.1:{dport}"
        by_client: dict[str, str] = {}
        async with aiohttp.ClientSession() as http:
            for _ in range(60):  # the block log's flush, then the PTR asked in the background
                async with http.get(f"{url}/api/blocks") as r:
                    if r.status == 200:
                        items = (await r.json())["items"]
                        by_client = {i["client"]: i["client_text"] for i in items}
                if by_client.get("127.0.0.3", "").startswith("compta"):
                    break
                await asyncio.sleep(0.1)
            async with http.get(f"{url}/?lang=en") as r:
                page = await r.text()
        assert by_client == {
            "127.0.0.2": "accueil-pc (127.0.0.2)",  # the operator's name
            "127.0.0.3": "compta (127.0.0.3)",  # the domain controller's PTR answer
            "127.0.0.4": "127.0.0.4",  # nobody knows it: the address alone
        }
        assert "accueil-pc (127.0.0.2)" in page and "compta (127.0.0.3)" in page
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 20)
    report = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "resolver.cli", "report", "-c", str(cfg),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(report.communicate(), 30)
    assert report.returncode == 0, err.decode()
    text = out.decode()
    assert "## Postes les plus concernés" in text
    assert "| accueil-pc (127.0.0.2) | 1 |" in text
    assert "| 127.0.0.3 | 1 |" in text  # the report asks no DNS server: config and leases only
