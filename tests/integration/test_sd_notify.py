"""systemd readiness (Type=notify): `parafoudre serve` says READY=1 on $NOTIFY_SOCKET once its
signal handlers are in, from the main process only, so systemd holds a reload until then."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import sys
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import pytest

from resolver import sd_notify
from tests.conftest import FakeUpstream, free_port, serve_config

WAIT = 30.0  # seconds: bound on the start of a server on a loaded machine


def test_notify_is_silent_without_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify.notify("READY=1") is False
    assert sd_notify.without_socket({"NOTIFY_SOCKET": "/x", "A": "b"}) == {"A": "b"}


async def _ready_from(
    sock: socket.socket, proc: asyncio.subprocess.Process
) -> list[tuple[bytes, int]]:
    """Every datagram (and its sender's PID) until READY=1 came, bounded by WAIT."""
    got: list[tuple[bytes, int]] = []
    async with asyncio.timeout(WAIT):
        while not any(b"READY=1" in m for m, _ in got):
            assert proc.returncode is None, "serve exited before it was ready"
            try:
                data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except BlockingIOError:
                await asyncio.sleep(0.02)
                continue
            pid = 0
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", raw[:12])[0]
            got.append((data, pid))
    await asyncio.sleep(0.3)  # a second READY (or a worker's) would arrive meanwhile
    while True:
        try:
            got.append((sock.recv(4096), 0))
        except BlockingIOError:
            return got


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCM_CREDENTIALS is Linux's")
@pytest.mark.parametrize("workers", [1, 2])
async def test_serve_says_ready_from_its_main_process_then_takes_a_reload(
    tmp_path: Path, upstream: FakeUpstream, workers: int
) -> None:
    path = tmp_path / "notify"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    listener.setblocking(False)
    port = free_port()
    cfg = serve_config(tmp_path, port, upstream.port)
    env = dict(os.environ, NOTIFY_SOCKET=str(path))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "resolver.cli",
        "serve",
        "-c",
        str(cfg),
        "--workers",
        str(workers),
        env=env,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        got = await _ready_from(listener, proc)
        assert [m for m, _ in got] == [b"READY=1"]  # once, and no worker spoke
        assert got[0][1] == proc.pid
        proc.send_signal(signal.SIGHUP)  # what systemd's ExecReload does once ready
        q = dns.message.make_query("evil.test", "A")
        r: dns.message.Message | None = None
        for _ in range(50):
            try:
                r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=1.0)
                break
            except dns.exception.Timeout:  # workers still starting: READY is the supervisor's
                await asyncio.sleep(0.1)
        assert r is not None and r.rcode() == dns.rcode.NXDOMAIN
        assert proc.returncode is None
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0
        listener.close()
