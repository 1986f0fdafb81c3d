"""Several worker processes on one port: each client always reaches the same worker."""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.message
import dns.rcode
import dns.rdataclass
import pytest

from tests.conftest import FakeUpstream, free_port, serve_config


def _identity(port: int, source: str) -> str:
    """Ask id.server CH TXT from a fresh socket (so a fresh source port) bound to ``source``."""
    q = dns.message.make_query("id.server", "TXT", rdclass=dns.rdataclass.CH)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(2)
        s.sendto(q.to_wire(), ("127.0.0.1", port))
        r = dns.message.from_wire(s.recv(4096))
    return r.answer[0][0].strings[0].decode()


async def _wait(port: int, proc: asyncio.subprocess.Process) -> None:
    for _ in range(200):
        assert proc.returncode is None, "server exited"
        try:
            await asyncio.to_thread(_identity, port, "127.0.0.1")
            return
        except (TimeoutError, OSError):
            await asyncio.sleep(0.05)
    raise AssertionError("server did not start")


async def _serve(
    cfg: Path, text: Callable[[int], str], workers: int
) -> tuple[asyncio.subprocess.Process, int]:
    """Start `serve --workers N` on a free port; try another if that one was taken meanwhile."""
    for _ in range(3):
        port = free_port()
        cfg.write_text(text(port))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "resolver.cli",
            "serve",
            "-c",
            str(cfg),
            "--workers",
            str(workers),
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await _wait(port, proc)
            return proc, port
        except AssertionError:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
    raise AssertionError("could not start the server on a free port")


async def test_clients_are_steered_to_one_worker_and_blocks_logged_once(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    blocklist = tmp_path / "block.txt"
    blocklist.write_text("evil.test\n")
    proc, port = await _serve(
        tmp_path / "c.yaml",
        lambda port: (
            f"state_dir: {tmp_path / 'state'}\nserver:\n  listen: ['127.0.0.1:{port}']\n"
            f"upstream:\n  servers: ['127.0.0.1:{upstream.port}']\n"
            f"blocking:\n  lists:\n    - path: {blocklist}\n"
            "dashboard:\n  enabled: false\n"
        ),
        4,
    )
    try:
        await asyncio.sleep(0.5)  # let every worker bind
        sources = [f"127.0.0.{i}" for i in range(1, 13)]
        seen: dict[str, set[str]] = {}
        for src in sources:
            for _ in range(8):  # eight fresh source ports each
                seen.setdefault(src, set()).add(await asyncio.to_thread(_identity, port, src))
        assert all(len(ids) == 1 for ids in seen.values()), seen
        workers = {next(iter(ids)) for ids in seen.values()}
        assert len(workers) == 4, workers  # and the clients are spread over all of them
        # one block from each source: each logged exactly once, whichever worker took it
        for src in sources:
            q = dns.message.make_query("evil.test", "A")
            r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, source=src, timeout=2)
            assert r.rcode() == dns.rcode.NXDOMAIN
        # SIGHUP reaches every worker
        blocklist.write_text("evil.test\nexample.test\n")
        proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(1.0)
        for src in sources:
            q = dns.message.make_query("example.test", "A")
            r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, source=src, timeout=2)
            assert r.rcode() == dns.rcode.NXDOMAIN, src
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    db = sqlite3.connect(tmp_path / "state" / "blocks.sqlite")
    rows = db.execute("SELECT client, qname FROM blocks ORDER BY client, qname").fetchall()
    assert sorted(rows) == sorted(
        [(s, "evil.test") for s in sources] + [(s, "example.test") for s in sources]
    )


async def test_a_worker_that_cannot_start_stops_the_whole_server(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))  # no SO_REUSEPORT: the workers cannot join
        port = busy.getsockname()[1]
        cfg = tmp_path / "c.yaml"
        cfg.write_text(
            f"state_dir: {tmp_path}\nserver:\n  listen: ['127.0.0.1:{port}']\n"
            "dashboard:\n  enabled: false\n"
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "resolver.cli",
            "serve",
            "-c",
            str(cfg),
            "--workers",
            "2",
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    assert "cannot listen on 127.0.0.1" in err.decode()
    assert "Traceback" not in err.decode()


@pytest.mark.parametrize("n", [1, 3])
def test_steering_program_is_three_instructions(n: int) -> None:
    from resolver.net.reuseport import steering_program

    assert len(steering_program(socket.AF_INET, n)) == 3 * 8


def _tunnel_queries_until_blocked(port: int, source: str, limit: int = 60) -> int:
    """Send iodine-like names from fresh source ports; return how many until the first block."""
    import base64
    import random

    rng = random.Random(5)
    for n in range(1, limit + 1):
        label = base64.b32encode(rng.randbytes(30)).decode().rstrip("=").lower()
        q = dns.message.make_query(f"{label}.t.tun.test", "TXT", use_edns=0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((source, 0))
            s.settimeout(2)
            s.sendto(q.to_wire(), ("127.0.0.1", port))
            r = dns.message.from_wire(s.recv(4096))
        texts = [o.text or "" for o in r.options if isinstance(o, dns.edns.EDEOption)]
        if any(t.startswith("exfil:") for t in texts):
            return n
    return limit + 1


async def _cut_at(tmp_path: Path, upstream_port: int, workers: int) -> int:
    state = tmp_path / f"state{workers}"
    proc, port = await _serve(
        tmp_path / f"c{workers}.yaml",
        lambda port: (
            f"state_dir: {state}\nserver:\n  listen: ['127.0.0.1:{port}']\n"
            f"upstream:\n  servers: ['127.0.0.1:{upstream_port}']\n"
            "dashboard:\n  enabled: false\n"
        ),
        workers,
    )
    try:
        await asyncio.sleep(0.5)
        return await asyncio.to_thread(_tunnel_queries_until_blocked, port, "127.0.0.7")
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)


async def test_a_tunnel_is_cut_as_fast_with_4_workers_as_with_one(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    one = await _cut_at(tmp_path, upstream.port, 1)
    four = await _cut_at(tmp_path, upstream.port, 4)
    # Same evidence whatever the number of workers: the kernel sends the client to one worker.
    # Split four ways, the detector would need about four times as many queries.
    assert one <= 12, one
    assert four == one


async def _start_and_signal(
    tmp_path: Path, upstream: FakeUpstream, signum: int
) -> tuple[asyncio.subprocess.Process, int, list[str], asyncio.Task[None]]:
    """Start 2 workers and send ``signum`` the moment they are spawned, while they import."""
    port = free_port()
    cfg = serve_config(tmp_path, port, upstream.port)
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "resolver.cli", "serve", "-c", str(cfg), "--workers", "2"),
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    for _ in range(200):  # bounded: the supervisor's first lines
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        assert line, "server exited: " + "".join(lines)
        lines.append(line)
        if "started 2 workers" in line:
            break
    proc.send_signal(signum)  # the workers are just forked: no handler of theirs is in yet

    async def read_rest() -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            lines.append(line.decode())

    return proc, port, lines, asyncio.create_task(read_rest())


async def test_a_reload_sent_while_workers_start_is_not_lost(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    proc, port, lines, reader = await _start_and_signal(tmp_path, upstream, signal.SIGHUP)
    try:
        for _ in range(300):  # bounded: ~30 s on a loaded machine
            if sum("lists reloaded" in x for x in lines) >= 2:
                break
            assert proc.returncode is None, "".join(lines)
            await asyncio.sleep(0.1)
        # Each worker got the reload (held until its handler was in), none was killed by it.
        assert sum("lists reloaded" in x for x in lines) == 2, "".join(lines)
        q = dns.message.make_query("evil.test", "A")
        r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=2)
        assert r.rcode() == dns.rcode.NXDOMAIN
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
        await asyncio.wait_for(reader, 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, "".join(lines)
    assert sum("resolver.app: stopped" in x for x in lines) == 2, "".join(lines)


async def test_a_stop_sent_while_workers_start_stops_them_cleanly(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    proc, _port, lines, reader = await _start_and_signal(tmp_path, upstream, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 40)
        await asyncio.wait_for(reader, 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, "".join(lines)
    # Not killed by SIGTERM's default action: both ran their stop (block log flushed).
    assert sum("resolver.app: stopped" in x for x in lines) == 2, "".join(lines)
    assert "Traceback" not in "".join(lines)
