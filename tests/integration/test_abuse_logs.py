"""Issue 14: what a flood makes the log say, over real sockets.

Each exfiltration detection was a WARNING with the whole query name (the smuggled data), 256
lines a second under a flood; a rate-limited client was never named. Now: one line per client x
domain per cool-down, then counts, never the payload; a limited client named once a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import string
import time
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import pytest

from tests.conftest import FakeUpstream, make_config, running

DOMAINS = 200  # registered domains, each a tunnel
NAMES = 12  # per domain: over the detector's 8 data-like names a minute


def _payload(rng: random.Random) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return ".".join("".join(rng.choice(alphabet) for _ in range(50)) for _ in range(2))


async def _send(host: str, port: int, names: list[str], qtype: str = "TXT") -> None:
    sem = asyncio.Semaphore(50)

    async def one(name: str) -> None:
        async with sem:
            q = dns.message.make_query(name, qtype)
            with contextlib.suppress(dns.exception.Timeout):
                await dns.asyncquery.udp(q, host, port=port, timeout=1)

    await asyncio.wait_for(asyncio.gather(*(one(n) for n in names)), 60)


@pytest.mark.parametrize("mode", ["block", "detect"])
async def test_a_flood_of_detections_makes_a_line_per_client_and_domain_without_payload(
    tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    caplog.set_level(logging.INFO, logger="resolver.app")
    rng = random.Random(14)
    payloads = [_payload(rng) for _ in range(DOMAINS * NAMES)]
    names = [f"{p}.tunnel{i % DOMAINS}.fr" for i, p in enumerate(payloads)]
    extra = f"rate_limit:\n  enabled: false\nexfiltration:\n  mode: {mode}\n"
    cfg = make_config(tmp_path, upstream.port, extra)
    async with running(cfg) as app:
        host, port = app.bound[0]
        started = time.time()
        await _send(host, port, names)
        stage = app.exfiltration
        assert stage is not None
        for _ in range(40):  # the reporter drains once a second: wait for it (bounded, 20 s)
            await asyncio.sleep(0.5)
            if not stage.detections:
                break
        await asyncio.sleep(0.2)  # its lines for what it took last
        # The budget of new pairs is per minute of the clock: the run may span two.
        minutes = int(time.time() // 60) - int(started // 60) + 1
        detected = stage.detected
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("exfiltration")]
    assert detected >= DOMAINS  # each was a line of its own before
    # One per client x domain, and at most 30 new pairs a minute: the rest is one sum a minute
    # (and one at the end for what the last minute left).
    sums = [ln for ln in lines if "not itemised" in ln]
    itemised = [ln for ln in lines if "not itemised" not in ln]
    assert 20 <= len(itemised) <= 30 * minutes, (minutes, lines)
    assert len(sums) <= minutes + 1, sums
    assert all("127.0.0.1" in ln for ln in itemised)
    for p in payloads:  # no label of any payload in the log
        assert p.split(".")[0] not in caplog.text


async def test_a_limited_client_is_named_once_and_an_exempt_one_never_limited(
    tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="resolver.app")
    extra = (
        "rate_limit:\n  rate: 5\n  burst: 10\n  exempt: [127.0.0.2]\nexfiltration:\n  mode: 'off'\n"
    )
    async with running(make_config(tmp_path, upstream.port, extra)) as app:
        host, port = app.bound[0]
        q = dns.message.make_query("example.test", "A")

        async def ask(source: str) -> bool:
            try:
                await dns.asyncquery.udp(q, host, port=port, source=source, timeout=0.3)
            except dns.exception.Timeout:
                return False
            return True

        for _ in range(3):  # three bursts, each over the limit, within a minute
            flood = await asyncio.gather(*(ask("127.0.0.3") for _ in range(40)))
            assert sum(flood) < 40
            dc = await asyncio.gather(*(ask("127.0.0.2") for _ in range(40)))
            assert all(dc)  # the forwarder for the whole mairie is never limited
            await asyncio.sleep(1.2)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rate limit")]
    assert len(lines) == 1, lines
    assert "127.0.0.3" in lines[0] and "rate_limit.exempt" in lines[0]
