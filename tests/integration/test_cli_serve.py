"""The ``parafoudre`` command as an operator runs it: real process, signals, dig."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sqlite3
import sys
from pathlib import Path

import aiohttp
import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from tests.conftest import FakeUpstream, free_port

PARAFOUDRE = [sys.executable, "-m", "resolver.cli"]


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *PARAFOUDRE, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cache:\n  size: lots\n", "bad.yaml:2: cache.size: expected a whole number"),
        (
            "server:\n  listen:\n    - 127.0.0.1:5353\n  lissen: []\n",
            "bad.yaml:4: server.lissen: unknown key (fix: did you mean 'listen'?)",
        ),
        (
            "acl:\n  allow: [192.168.1.0/33]\n",
            "bad.yaml:2: acl.allow[0]: '192.168.1.0/33' is not a network",
        ),
        (
            "upstream:\n  servers: [dns.google]\n",
            "bad.yaml:2: upstream.servers[0]: 'dns.google' is not an IP address",
        ),
        (
            "blocking:\n  mode: block\n",
            "bad.yaml:2: blocking.mode: 'block' is not one of nxdomain, null, refused, sinkhole",
        ),
        ("server: [\n", "bad.yaml:2: not valid YAML"),
    ],
)
async def test_bad_config_is_one_line_with_file_line_key_and_exit_2(
    tmp_path: Path, text: str, expected: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    for command in ("check-config", "serve"):
        code, _out, err = await run_cli(command, "-c", str(bad))
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith(f"parafoudre: config error: {bad.parent}/")
        assert expected in lines[0]
        assert "Traceback" not in err


async def test_missing_config_file(tmp_path: Path) -> None:
    code, _, err = await run_cli("check-config", "-c", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "nope.yaml: cannot read the file: No such file or directory" in err


async def test_check_config_accepts_default_and_example() -> None:
    assert (await run_cli("check-config"))[0] == 0
    example = Path(__file__).parents[2] / "deploy" / "parafoudre.example.yaml"
    code, out, err = await run_cli("check-config", "-c", str(example))
    assert code == 0, err
    code, out, _ = await run_cli("print-default-config")
    assert code == 0 and "listen:" in out


async def test_port_in_use_is_explained(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        cfg = tmp_path / "c.yaml"
        cfg.write_text(
            f"state_dir: {tmp_path}\nserver:\n  listen: ['127.0.0.1:{port}']\n"
            "dashboard:\n  enabled: false\n"
        )
        code, _, err = await run_cli("serve", "-c", str(cfg))
    assert code == 1
    assert "cannot start" in err and "another program uses this port" in err
    assert "Traceback" not in err


async def _wait_ready(port: int, proc: asyncio.subprocess.Process) -> None:
    q = dns.message.make_query("localhost", "A")
    for _ in range(300):  # bounded: ~30 s on a loaded machine
        if proc.returncode is not None:
            raise AssertionError("server exited early")
        try:
            await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=0.1)
            return
        except dns.exception.Timeout:
            await asyncio.sleep(0.05)
    raise AssertionError("server did not start")


async def dig(port: int, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "dig",
        "@127.0.0.1",
        "-p",
        str(port),
        "+time=2",
        "+tries=1",
        *args,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    return out.decode()


async def test_serve_blocks_reloads_on_sighup_and_flushes_on_sigterm(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    port, web_port = free_port(), free_port()
    blocklist = tmp_path / "block.txt"
    blocklist.write_text("evil.test\n")
    cfg = tmp_path / "parafoudre.yaml"
    cfg.write_text(
        f"""state_dir: {tmp_path / "state"}
server:
  listen: ["127.0.0.1:{port}"]
upstream:
  servers: ["127.0.0.1:{upstream.port}"]
  timeout: 0.5
blocking:
  lists:
    - path: {blocklist}
      name: local
      category: malware
blocklog:
  flush_interval: 30   # only the SIGTERM flush can have written the events
dashboard:
  listen: 127.0.0.1:{web_port}
"""
    )
    env = dict(os.environ, JOURNAL_STREAM="8:1234")  # as under systemd
    proc = await asyncio.create_subprocess_exec(
        *PARAFOUDRE,
        "serve",
        "-c",
        str(cfg),
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,  # so cleanup can stop the supervisor and its workers together
    )
    try:
        await _wait_ready(port, proc)
        q = dns.message.make_query("example.test", "A")
        r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=2)
        assert r.answer[0][0].to_text() == "192.0.2.1"
        r = await dns.asyncquery.tcp(
            dns.message.make_query("www.evil.test", "A"), "127.0.0.1", port=port, timeout=2
        )
        assert r.rcode() == dns.rcode.NXDOMAIN
        if shutil.which("dig"):
            out = await dig(port, "example.test", "A")
            assert "status: NOERROR" in out and "192.0.2.1" in out
            out = await dig(port, "evil.test", "AAAA")
            assert "status: NXDOMAIN" in out and "EDE: 15 (Blocked)" in out
        # The operator adds a name and reloads: blocked without a restart, no query lost.
        blocklist.write_text("evil.test\nexample.test\n")
        proc.send_signal(signal.SIGHUP)
        for _ in range(200):  # bounded: ~10 s on a loaded machine
            r = await dns.asyncquery.udp(
                dns.message.make_query("example.test", "A"), "127.0.0.1", port=port, timeout=2
            )
            if r.rcode() == dns.rcode.NXDOMAIN:
                break
            await asyncio.sleep(0.05)
        assert r.rcode() == dns.rcode.NXDOMAIN
        # The weather page of the same process answers, with its security headers.
        async with aiohttp.ClientSession() as http:
            for _ in range(100):  # the first worker starts the page just after its sockets
                try:
                    async with http.get(f"http://127.0.0.1:{web_port}/api/health") as resp:
                        assert resp.status == 200
                    break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.1)
            else:
                proc.send_signal(signal.SIGTERM)
                _, err = await asyncio.wait_for(proc.communicate(), 40)
                raise AssertionError("weather page never answered: " + err.decode()[-3000:])
            async with http.get(f"http://127.0.0.1:{web_port}/") as resp:
                assert resp.status == 200
                assert "Content-Security-Policy" in resp.headers
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 40)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode == 0
    text = err.decode()
    assert "<6>resolver.app: stopped" in text  # journald priority prefixes
    assert "Traceback" not in text
    db = sqlite3.connect(tmp_path / "state" / "blocks.sqlite")
    # (rows in any order: with a worker per core each worker writes its own blocks)
    names = {r[0] for r in db.execute("SELECT qname FROM blocks")}
    assert {"www.evil.test", "example.test"} <= names


@pytest.mark.skipif(
    shutil.which("dig") is None, reason="dig (Debian package dnsutils) is not installed"
)
async def test_dig_case_and_tcp(tmp_path: Path, upstream: FakeUpstream) -> None:
    port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"state_dir: {tmp_path}\nserver:\n  listen: ['127.0.0.1:{port}']\n"
        f"upstream:\n  servers: ['127.0.0.1:{upstream.port}']\n"
        "dashboard:\n  enabled: false\n"
    )
    proc = await asyncio.create_subprocess_exec(
        *PARAFOUDRE, "serve", "-c", str(cfg), stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await _wait_ready(port, proc)
        out = await dig(port, "+tcp", "ExAmPlE.TeSt", "A")
        assert "ExAmPlE.TeSt." in out and "192.0.2.1" in out and "(TCP)" in out
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


async def _blocked(port: int, source: str) -> bool:
    """Whether ``evil.test`` is blocked for ``source`` (NXDOMAIN with EDE 15, RFC 8914)."""
    q = dns.message.make_query("evil.test", "A", use_edns=0)
    r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, source=source, timeout=2)
    return r.rcode() == dns.rcode.NXDOMAIN and any(e.code == 15 for e in r.extended_errors())


async def test_a_block_list_removed_before_sighup_keeps_blocking_and_shows_stale(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.add("evil.test. 300 IN A 192.0.2.66")  # what a client would get without the list
    port, web_port = free_port(), free_port()
    blocklist = tmp_path / "block.txt"
    blocklist.write_text("evil.test\n")
    cfg = tmp_path / "parafoudre.yaml"
    cfg.write_text(
        f"""state_dir: {tmp_path / "state"}
server:
  listen: ["127.0.0.1:{port}"]
upstream:
  servers: ["127.0.0.1:{upstream.port}"]
blocking:
  lists:
    - {{path: {blocklist}, name: local, category: malware}}
dashboard:
  listen: 127.0.0.1:{web_port}
  language: en
"""
    )
    proc = await asyncio.create_subprocess_exec(
        *PARAFOUDRE,
        *("serve", "-c", str(cfg), "--workers", "2"),
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stderr is not None
    stderr = proc.stderr
    lines: list[str] = []

    async def read_stderr() -> None:
        while line := await stderr.readline():
            lines.append(line.decode())

    async def wait_lines(text: str, count: int) -> None:
        for _ in range(300):  # bounded: ~30 s on a loaded machine
            if sum(text in x for x in lines) >= count:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"never {count} x {text!r}: " + "".join(lines)[-3000:])

    async def feed_rows(http: aiohttp.ClientSession) -> list[dict[str, object]]:
        async with http.get(f"http://127.0.0.1:{web_port}/api/feeds") as resp:
            rows: list[dict[str, object]] = (await resp.json())["feeds"]
        return [r for r in rows if r["name"] == "local"]  # not the feeds of the default config

    reader = asyncio.create_task(read_stderr())
    sources = ["127.0.0.1", "127.0.0.2"]  # steered to one worker each
    try:
        await wait_lines("listening on", 2)  # both workers hold their lists
        await _wait_ready(port, proc)
        assert all([await _blocked(port, s) for s in sources])
        blocklist.unlink()
        proc.send_signal(signal.SIGHUP)
        # One line per worker, saying the file is unreadable and its last copy is kept.
        await wait_lines("cannot be read (No such file or directory): keeping its last good", 2)
        assert all([await _blocked(port, s) for s in sources]), "blocking stopped"
        async with aiohttp.ClientSession() as http:
            for _ in range(100):  # the first worker starts the page just after its sockets
                try:
                    rows = await feed_rows(http)
                    break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.1)
            [row] = rows
            assert (row["name"], row["status"], row["entries"]) == ("local", "stale", 1)
            assert row["status_text"] == "file unreadable: last good copy in use"
            async with http.get(f"http://127.0.0.1:{web_port}/") as resp:
                page = await resp.text()
            assert "status-stale" in page and "file unreadable: last good copy in use" in page
            code, out, _ = await run_cli("doctor", "-c", str(cfg))
            assert code == 1  # a FAIL: monitoring notices
            assert f"FAIL list local: {blocklist} cannot be read (No such file or directory)" in out
            # Back with a change: read again, no longer stale.
            blocklist.write_text("evil.test\nexample.test\n")
            proc.send_signal(signal.SIGHUP)
            await wait_lines("can be read again: 2 names", 2)
            assert await feed_rows(http) == []
        r = await dns.asyncquery.udp(
            dns.message.make_query("example.test", "A"), "127.0.0.1", port=port, timeout=2
        )
        assert r.rcode() == dns.rcode.NXDOMAIN
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 40)
        await asyncio.wait_for(reader, 10)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode == 0, "".join(lines)[-3000:]
    assert "Traceback" not in "".join(lines)
