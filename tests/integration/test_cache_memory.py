"""Issue 14: a client asking for names whose answers are huge cannot grow a worker's memory.

A real ``parafoudre serve`` process, a local upstream whose every answer is about 61 KB (UDP
truncated, so the resolver fetches it over TCP), and a client that asks for hundreds of
distinct such names over UDP (cheap for it: it gets a truncated answer each time). Before the
cache was bounded in bytes, each answer was kept (10,000 entries allowed): 600 names grew the
worker by ~40 MB. Measured on the worker's own RSS (/proc), in a bounded loop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import pytest
from dnslib import QTYPE, RR, TXT, DNSRecord

from tests.conftest import FakeUpstream, free_port

PARAFOUDRE = [sys.executable, "-m", "resolver.cli"]
NAMES = 600  # x ~61 KB: ~37 MB of answers if they were all kept
CONCURRENCY = 16
MB = 1 << 20


def _huge(req: DNSRecord) -> DNSRecord:
    """About 61 KB: 240 TXT records of 250 octets."""
    reply = req.reply()
    for i in range(240):
        reply.add_answer(
            RR(req.q.qname, QTYPE.TXT, rdata=TXT(f"{i:03d}".encode() + b"x" * 247), ttl=3600)
        )
    return reply


@pytest.fixture
async def huge_upstream() -> AsyncIterator[FakeUpstream]:
    up = FakeUpstream(handler=_huge, truncate_udp=True)
    await up.start()
    yield up
    await up.stop()


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def _ready(port: int, proc: asyncio.subprocess.Process) -> None:
    q = dns.message.make_query("localhost", "A")
    for _ in range(300):  # bounded: ~30 s on a loaded machine
        assert proc.returncode is None, "server exited early"
        try:
            await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=0.1)
            return
        except dns.exception.Timeout:
            await asyncio.sleep(0.05)
    raise AssertionError("server did not start")


async def _ask_many(port: int, prefix: str, count: int) -> int:
    """Ask ``count`` distinct names, CONCURRENCY at a time; how many were answered."""
    sem = asyncio.Semaphore(CONCURRENCY)
    answered = 0

    async def one(i: int) -> None:
        nonlocal answered
        q = dns.message.make_query(f"{prefix}{i}.huge.test", "TXT")
        async with sem:
            try:
                r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=5)
            except dns.exception.Timeout:
                return
        answered += bool(r.flags & dns.flags.TC)  # truncated: the full answer is 61 KB

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), 120)
    return answered


async def _growth(tmp_path: Path, upstream_port: int, cache_yaml: str) -> int:
    """RSS growth of a serving worker over NAMES huge answers, after a warm-up."""
    port = free_port()
    cfg = tmp_path / "parafoudre.yaml"
    cfg.write_text(
        f"state_dir: {tmp_path / 'state'}\n"
        f"server:\n  listen: ['127.0.0.1:{port}']\n"
        f"upstream:\n  servers: ['127.0.0.1:{upstream_port}']\n  timeout: 2\n"
        "dashboard:\n  enabled: false\n"
        "rate_limit:\n  enabled: false\n"
        "exfiltration:\n  mode: 'off'\n" + cache_yaml
    )
    proc = await asyncio.create_subprocess_exec(
        *PARAFOUDRE,
        "serve",
        "-c",
        str(cfg),
        "--workers",
        "1",
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        await _ready(port, proc)
        # Warm-up: the code paths, the TCP client, the allocator's first arenas.
        assert await _ask_many(port, "warm", 40) == 40
        before = _rss(proc.pid)
        assert await _ask_many(port, "n", NAMES) == NAMES
        after = _rss(proc.pid)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)
    return after - before


async def test_huge_answers_are_not_kept_by_default(
    tmp_path: Path, huge_upstream: FakeUpstream
) -> None:
    growth = await _growth(tmp_path, huge_upstream.port, "")
    assert huge_upstream.tcp_queries >= NAMES  # every answer did come, over TCP
    assert growth < 10 * MB, f"RSS grew {growth / MB:.1f} MB"


async def test_cache_holds_huge_answers_within_max_bytes(
    tmp_path: Path, huge_upstream: FakeUpstream
) -> None:
    # The operator allows 64 KB answers in the cache, and 4 MB of cache: ~65 answers kept.
    growth = await _growth(
        tmp_path,
        huge_upstream.port,
        "cache:\n  max_bytes: 4194304\n  max_entry_bytes: 65536\n",
    )
    assert growth < 4 * MB + 10 * MB, f"RSS grew {growth / MB:.1f} MB"
