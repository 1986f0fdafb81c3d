"""A reload or stop sent to `parafoudre serve` while it starts (systemd's ExecReload targets the
main PID, a supervisor when there are workers) must be handled, never kill it by the default."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from resolver.cli import SERVE_SIGNALS
from resolver.supervisor import WORKER_SIGNALS
from tests.conftest import FakeUpstream, free_port, serve_config

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads the signal masks in /proc (Linux)"
)


def _masks(pid: int) -> tuple[int, int]:
    """The process's blocked and caught signal sets (SigBlk, SigCgt in /proc/PID/status)."""
    fields = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["SigBlk"], 16), int(fields["SigCgt"], 16)


def _bit(signum: int) -> int:
    return 1 << (signum - 1)


async def _hup_at_first_hold(proc: asyncio.subprocess.Process) -> bool:
    """Send SIGHUP the moment the process holds it; return whether its handler was not yet in
    (so the signal landed in the window between start and handler, the one under test)."""
    for _ in range(20_000):  # bounded: ~20 s of 1 ms polls, far beyond the interpreter's start
        assert proc.returncode is None, "serve exited before holding its signals"
        blocked, caught = _masks(proc.pid)
        if blocked & _bit(signal.SIGHUP):
            proc.send_signal(signal.SIGHUP)
            return not caught & _bit(signal.SIGHUP)
        await asyncio.sleep(0.001)
    raise AssertionError("serve never held SIGHUP: a reload during its start would kill it")


async def _serve_hup_stop(tmp_path: Path, upstream: FakeUpstream, workers: int) -> bool:
    """Start serve, SIGHUP it at once, check it reloads and answers, SIGTERM it, check it stops
    cleanly. Returns whether the SIGHUP came before its handler was installed."""
    tmp_path.mkdir()
    port = free_port()
    cfg = serve_config(tmp_path, port, upstream.port)
    cmd = (sys.executable, "-m", "resolver.cli", "serve", "-c", str(cfg), "--workers")
    proc = await asyncio.create_subprocess_exec(*cmd, str(workers), stderr=asyncio.subprocess.PIPE)
    lines: list[str] = []

    async def read_all() -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            lines.append(line.decode())

    reader = asyncio.create_task(read_all())
    try:
        early = await _hup_at_first_hold(proc)
        for _ in range(300):  # bounded: ~30 s on a loaded machine
            if sum("lists reloaded" in x for x in lines) >= workers:
                break
            assert proc.returncode is None, "killed by the reload:\n" + "".join(lines)
            await asyncio.sleep(0.1)
        # Survived, and each worker (or the one server) reloaded exactly once.
        assert sum("lists reloaded" in x for x in lines) == workers, "".join(lines)
        r = await dns.asyncquery.udp(
            dns.message.make_query("evil.test", "A"), "127.0.0.1", port=port, timeout=2
        )
        assert r.rcode() == dns.rcode.NXDOMAIN
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
        await asyncio.wait_for(reader, 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reader.cancel()
    text = "".join(lines)
    assert proc.returncode == 0, text
    assert sum("resolver.app: stopped" in x for x in lines) == workers, text  # log flushed
    assert "Traceback" not in text
    return early


@pytest.mark.parametrize("workers", [2, 1], ids=["supervisor", "single"])
async def test_a_reload_sent_as_serve_starts_is_handled_then_it_stops_cleanly(
    tmp_path: Path, upstream: FakeUpstream, workers: int
) -> None:
    # Repeated: the window is a race, one lucky run proves little.
    early = [await _serve_hup_stop(tmp_path / str(i), upstream, workers) for i in range(3)]
    # The SIGHUP did land before the handler in some run (else this test proves nothing).
    assert any(early), early


def test_serve_holds_the_signals_its_workers_start_with() -> None:
    # The supervisor unblocks WORKER_SIGNALS: what main held must be exactly that set.
    assert set(SERVE_SIGNALS) == WORKER_SIGNALS
