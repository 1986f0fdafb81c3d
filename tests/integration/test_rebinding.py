"""Issue 14: DNS rebinding over real sockets. A public name answered with a private address is
dropped (NODATA, EDE 15, a "rebinding" block); local names keep theirs."""

from __future__ import annotations

from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode

from tests.conftest import FakeUpstream, make_config, running


async def _ask(host: str, port: int, name: str, qtype: str = "A") -> dns.message.Message:
    q = dns.message.make_query(name, qtype, use_edns=0)
    return await dns.asyncquery.udp(q, host, port=port, timeout=3)


async def test_private_answers_for_public_names_dropped_local_names_kept(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.add("rebind.attacker.test. 1 IN A 192.168.1.1")
    upstream.add("loop.attacker.test. 1 IN AAAA ::1")
    upstream.add("nas.example.test. 300 IN A 192.168.1.20")  # allowed by the operator
    upstream.add("dc.corp.test. 300 IN A 10.1.2.3")  # a forwarded (local) zone
    upstream.add("public.test. 300 IN A 192.0.2.7")
    extra = (
        "rebinding:\n  allow: [nas.example.test]\n"
        "local_zone:\n  forward_zones:\n"
        f"    - zone: corp.test\n      servers: ['127.0.0.1:{upstream.port}']\n"
        "  records: ['printer.box.test A 192.168.1.30']\n"
    )
    async with running(make_config(tmp_path, upstream.port, extra)) as app:
        host, port = app.bound[0]
        for name, qtype in (("rebind.attacker.test", "A"), ("loop.attacker.test", "AAAA")):
            r = await _ask(host, port, name, qtype)
            assert r.rcode() == dns.rcode.NOERROR and r.answer == [], name
            assert [e.code for e in r.extended_errors()] == [15]
            # Not cached either: asked again, it is judged again.
            r = await _ask(host, port, name, qtype)
            assert r.answer == []
        kept = {
            "nas.example.test": "192.168.1.20",
            "dc.corp.test": "10.1.2.3",
            "printer.box.test": "192.168.1.30",
            "public.test": "192.0.2.7",
        }
        for name, address in kept.items():
            r = await _ask(host, port, name)
            assert r.answer and r.answer[0][0].to_text() == address, name
        assert app.rebinding is not None and app.rebinding.dropped == 4


async def test_rebinding_guard_can_be_turned_off(tmp_path: Path, upstream: FakeUpstream) -> None:
    upstream.add("rebind.attacker.test. 1 IN A 192.168.1.1")
    cfg = make_config(tmp_path, upstream.port, "rebinding:\n  enabled: false\n")
    async with running(cfg) as app:
        host, port = app.bound[0]
        r = await _ask(host, port, "rebind.attacker.test")
        assert r.answer[0][0].to_text() == "192.168.1.1"
