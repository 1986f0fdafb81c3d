"""Workers run the package their supervisor runs, whatever directory `parafoudre serve` is
started from (a source tree, or one holding a stray ``resolver/``)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode

from tests.conftest import FakeUpstream, free_port, serve_config

WAIT = 30.0  # seconds: bound on the start of a server on a loaded machine


async def test_workers_ignore_a_resolver_package_in_the_working_directory(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    cwd = tmp_path / "cwd"
    (cwd / "resolver").mkdir(parents=True)
    (cwd / "resolver" / "__init__.py").write_text('raise ImportError("the wrong resolver")\n')
    port = free_port()
    cfg = serve_config(tmp_path, port, upstream.port)
    exe = Path(sys.executable).with_name("parafoudre")  # the console script users run
    assert exe.exists(), "the parafoudre command is not installed beside this Python"
    proc = await asyncio.create_subprocess_exec(
        exe,
        "serve",
        "-c",
        str(cfg),
        "--workers",
        "2",
        cwd=cwd,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        r: dns.message.Message | None = None
        for _ in range(int(WAIT / 0.2)):  # bounded: the workers' start on a loaded machine
            assert proc.returncode is None, "serve exited: a worker imported the wrong package"
            try:
                q = dns.message.make_query("evil.test", "A")
                r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=0.2)
                break
            except dns.exception.Timeout:
                await asyncio.sleep(0.05)
        assert r is not None and r.rcode() == dns.rcode.NXDOMAIN
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"the wrong resolver" not in err
