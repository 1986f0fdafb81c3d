"""`parafoudre allow NAME` against a real `serve --workers 3`: every worker lets the name through
within a second, without a restart, cached answers included; `--remove` blocks it again; both
changes are in the block log with who did them."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode

from tests.conftest import FakeUpstream
from tests.integration.test_workers import _serve

SOURCES = [f"127.0.0.{i}" for i in range(1, 10)]  # spread over the workers by the kernel


async def _rcodes(port: int, name: str) -> set[int]:
    out = set()
    for src in SOURCES:
        q = dns.message.make_query(name, "A")
        r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, source=src, timeout=2)
        out.add(r.rcode())
    return out


async def _until(port: int, name: str, rcode: int, limit: float) -> float:
    """Seconds until every source gets ``rcode`` for ``name``; fails after ``limit``."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if await _rcodes(port, name) == {rcode}:
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name}: not {dns.rcode.to_text(rcode)} everywhere after {limit} s")


async def _cli(cfg: Path, *args: str) -> tuple[int, str, str]:
    env = dict(os.environ, SUDO_USER="marie")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "resolver.cli",
        *args,
        "-c",
        str(cfg),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_allow_from_the_command_line_reaches_every_worker_within_a_second(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.add("www.example.test. 300 IN A 192.0.2.9")  # a CNAME in the fixture: a plain A here
    upstream.zone.pop(("www.example.test", "CNAME"), None)
    blocklist = tmp_path / "block.txt"
    blocklist.write_text("example.test\n")
    cfg = tmp_path / "c.yaml"
    proc, port = await _serve(
        cfg,
        lambda port: (
            f"state_dir: {tmp_path / 'state'}\nserver:\n  listen: ['127.0.0.1:{port}']\n"
            f"upstream:\n  servers: ['127.0.0.1:{upstream.port}']\n"
            f"blocking:\n  lists:\n    - path: {blocklist}\n"
            "dashboard:\n  enabled: false\n"
        ),
        3,
    )
    try:
        await asyncio.sleep(0.5)  # let every worker bind
        assert await _rcodes(port, "www.example.test") == {dns.rcode.NXDOMAIN}
        assert await _rcodes(port, "other.test") == {dns.rcode.NXDOMAIN}  # not in the zone

        code, out, err = await _cli(cfg, "allow", "www.example.test")
        assert code == 0, err
        assert "www.example.test: allowed" in out
        took = await _until(port, "www.example.test", dns.rcode.NOERROR, 3.0)
        assert took < 1.0, took
        # The parent stays blocked: only the name and what is under it were allowed.
        assert await _rcodes(port, "example.test") == {dns.rcode.NXDOMAIN}
        # Now in every worker's cache; the undo must reach cached answers too.
        assert await _rcodes(port, "www.example.test") == {dns.rcode.NOERROR}

        code, out, err = await _cli(cfg, "allow", "--list")
        assert code == 0 and "www.example.test" in out and "cli:marie" in out, out

        code, out, err = await _cli(cfg, "allow", "--remove", "www.example.test")
        assert code == 0, err
        took = await _until(port, "www.example.test", dns.rcode.NXDOMAIN, 3.0)
        assert took < 1.0, took

        code, out, err = await _cli(cfg, "allow", "--remove", "www.example.test")
        assert code == 1 and "is not on the operator's allowlist" in err
        code, out, err = await _cli(cfg, "allow", "com")
        assert code == 1 and "not a domain name" in err and "Traceback" not in err
        code, out, err = await _cli(cfg, "allow", "github.io")
        assert code == 1 and "public suffix" in err and "Traceback" not in err
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 20)
    db = sqlite3.connect(tmp_path / "state" / "blocks.sqlite")
    rows = db.execute("SELECT who, action, name FROM operator_actions ORDER BY id").fetchall()
    db.close()
    assert rows == [
        ("cli:marie", "allow", "www.example.test"),
        ("cli:marie", "remove", "www.example.test"),
    ]
