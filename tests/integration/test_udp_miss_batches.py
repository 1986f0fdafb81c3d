"""Answers to cache misses leave in batches (issue 19): all the upstream answers that land in one
turn of the loop go out in one sendmmsg, each to the client that asked, over IPv4 and IPv6."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from tests.conftest import FakeUpstream, make_config, running

CLIENTS = 8
PER_CLIENT = 40
WAIT = 10.0


async def _client(family: int, host: str, port: int, names: list[str]) -> dict[int, str]:
    """Send every query from one socket at once; return ID -> the name each answer carries."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        for i, name in enumerate(names):
            q = dns.message.make_query(name, "A", use_edns=0)
            q.id = i
            await loop.sock_sendto(sock, q.to_wire(), (host, port))
        got: dict[int, str] = {}
        async with asyncio.timeout(WAIT):
            while len(got) < len(names):
                r = dns.message.from_wire(await loop.sock_recv(sock, 65535))
                assert r.rcode() == dns.rcode.NOERROR
                got[r.id] = r.answer[0].name.to_text(omit_final_dot=True)
        return got
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
async def test_each_client_gets_its_own_answers_to_misses(
    tmp_path: Path, upstream: FakeUpstream, family: int, host: str
) -> None:
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    for c in range(CLIENTS):
        for i in range(PER_CLIENT):
            upstream.add(f"n{i}.c{c}.miss.test. 300 IN A 192.0.2.{i + 1}")
    upstream.delay = 0.05  # answers pile up, so several land in one turn of the loop
    listen = f"[{host}]:0" if ":" in host else f"{host}:0"
    extra = f"server:\n  listen: ['{listen}']\nrate_limit:\n  burst: 100000\n"
    async with running(make_config(tmp_path, upstream.port, extra)) as app:
        port = app.bound[0][1]
        server = app.udp[0]
        if not server.batched:
            pytest.skip("recvmmsg/sendmmsg are not available on this platform")
        names = [[f"n{i}.c{c}.miss.test" for i in range(PER_CLIENT)] for c in range(CLIENTS)]
        results = await asyncio.gather(*(_client(family, host, port, n) for n in names))
        for mine, got in zip(names, results, strict=True):
            assert got == dict(enumerate(mine))  # every answer, to its own asker, none astray
        assert app.service.counts["forwarded"] == CLIENTS * PER_CLIENT
        assert app.service.inflight == 0
        assert server.flushed == CLIENTS * PER_CLIENT
        assert server.flushes < server.flushed  # several answers left in one sendmmsg
