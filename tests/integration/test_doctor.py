"""``parafoudre doctor`` on a healthy local instance and on broken ones, in plain words.

The server and the fake upstreams run on this test's event loop; ``run_doctor`` is synchronous
and does blocking socket I/O, so it runs in a thread. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dnslib import RCODE, DNSRecord

from resolver.app import App
from resolver.blocklog.schema import MIGRATIONS, open_db
from resolver.config import Config
from resolver.doctor import run_doctor
from tests.conftest import FakeUpstream, make_config, running

QUICK = 0.5  # seconds per query: everything is local


def closed_port() -> int:
    """A UDP/TCP port with nothing listening on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_listen(cfg: Config, *specs: str) -> Config:
    return dataclasses.replace(cfg, server=dataclasses.replace(cfg.server, listen=specs))


def bound(app: App) -> tuple[str, ...]:
    return tuple(f"{h}:{p}" for h, p in app.bound)


def write_artifact(cfg: Config) -> Path:
    from resolver import blocklist_file
    from resolver.core.blocklist import SUBTREE

    path = cfg.compiled_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    blocklist_file.write_atomic(path, [("bad.test", SUBTREE, 0)], [("test-feed", "malware")])
    return path


async def doctor(cfg: Config, path: Path | None = None, **kw: object) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = await asyncio.to_thread(
        run_doctor,
        cfg,
        path,
        out=out,
        timeout=QUICK,
        **kw,  # type: ignore[arg-type]
    )
    return code, out.getvalue().splitlines()


def lines_with(lines: list[str], status: str, *words: str) -> list[str]:
    return [ln for ln in lines if ln.startswith(status) and all(w in ln for w in words)]


async def wait_for_blocklog(cfg: Config) -> None:
    for _ in range(50):
        if cfg.blocklog_path().exists():
            return
        await asyncio.sleep(0.05)


async def test_healthy_instance_is_all_ok(tmp_path: Path, upstream: FakeUpstream) -> None:
    dc = FakeUpstream()
    dc.add("mairie.local. 300 IN SOA dc1.mairie.local. admin.mairie.local. 1 900 600 86400 60")
    await dc.start()
    try:
        cfg = make_config(
            tmp_path,
            upstream.port,
            f"local_zone:\n  forward_zones:\n"
            f"    - zone: mairie.local\n      servers: ['127.0.0.1:{dc.port}']\n",
        )
        write_artifact(cfg)
        async with running(cfg) as app:
            await wait_for_blocklog(cfg)
            live = with_listen(cfg, *bound(app))
            code, lines = await doctor(live, tmp_path / "parafoudre.yaml")
    finally:
        await dc.stop()
    assert code == 0, lines
    assert not [ln for ln in lines[:-1] if not ln.startswith("OK ")], lines
    assert lines_with(lines, "OK", "config:", "parafoudre.yaml is valid")
    assert lines_with(lines, "OK", "listen 127.0.0.1:", "Parafoudre answers over UDP and TCP")
    assert lines_with(lines, "OK", f"upstream 127.0.0.1:{upstream.port}", "answers")
    assert lines_with(lines, "OK", "forward zone mairie.local")
    assert lines_with(lines, "OK", "feeds: compiled blocklist updated")
    assert lines_with(lines, "OK", "block log", "writable")
    assert lines_with(lines, "OK", "state directory")
    assert lines_with(lines, "OK", "disk:")
    assert lines_with(lines, "OK", "clock:")
    assert lines[-1].startswith("parafoudre doctor: ") and "healthy" in lines[-1]
    # The doctor asked the real upstream and the DC one question each, nothing else.
    assert any(str(q.q.qname) == "." for q in upstream.queries)
    assert [str(q.q.qname) for q in dc.queries] == ["mairie.local."]


async def test_old_or_missing_feeds_warn_but_pass(tmp_path: Path, upstream: FakeUpstream) -> None:
    cfg = make_config(tmp_path, upstream.port)
    async with running(cfg) as app:
        await wait_for_blocklog(cfg)
        live = with_listen(cfg, *bound(app))
        code, lines = await doctor(live)
        assert code == 0, lines
        assert lines_with(lines, "WARN", "feeds: no compiled blocklist", "feeds update"), lines
        assert lines_with(lines, "OK", "config: the embedded default config")

        path = write_artifact(cfg)
        three_days_ago = time.time() - 3 * 86_400
        os.utime(path, (three_days_ago, three_days_ago))
        code, lines = await doctor(live)
    assert code == 0, lines
    warn = lines_with(lines, "WARN", "feeds:", "days old", "parafoudre-feeds")
    assert warn, lines
    assert " — " in warn[0]  # the fix follows the dash
    assert "warnings" in lines[-1]


async def test_broken_instance_says_what_to_fix(tmp_path: Path) -> None:
    # No server on the listen port, the upstream is dead, the state directory cannot exist
    # (its parent is a file: not writable whoever runs the test, root included).
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    port, dead = closed_port(), closed_port()
    cfg = make_config(tmp_path, dead, f"state_dir: {blocker / 'state'}\n")
    cfg = with_listen(cfg, f"127.0.0.1:{port}")
    code, lines = await doctor(cfg)
    assert code == 1, lines
    listen = lines_with(lines, "FAIL", f"listen 127.0.0.1:{port}")
    assert len(listen) == 2, lines  # UDP and TCP
    assert all("systemctl start parafoudre" in ln for ln in listen)
    assert any("nothing listens" in ln or "no answer" in ln for ln in listen)
    up = lines_with(lines, "FAIL", f"upstream 127.0.0.1:{dead}", "cannot reach any upstream")
    assert up, lines
    state = lines_with(lines, "FAIL", "state directory", "not a directory")
    assert state and "state_dir" in state[0], lines
    assert lines_with(lines, "FAIL", "block log", "not a directory"), lines
    assert "fix the FAIL lines" in lines[-1]


async def test_one_dead_upstream_of_two_is_a_warning(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    silent = FakeUpstream(silent=True)
    await silent.start()
    try:
        cfg = make_config(
            tmp_path,
            upstream.port,
            f"upstream:\n  servers: ['127.0.0.1:{upstream.port}', '127.0.0.1:{silent.port}']\n",
        )
        async with running(cfg) as app:
            await wait_for_blocklog(cfg)
            write_artifact(cfg)
            code, lines = await doctor(with_listen(cfg, *bound(app)))
    finally:
        await silent.stop()
    assert code == 0, lines
    warn = lines_with(lines, "WARN", f"upstream 127.0.0.1:{silent.port}", "no answer within")
    assert warn and "the others take over" in warn[0], lines
    assert lines_with(lines, "OK", f"upstream 127.0.0.1:{upstream.port}")


async def test_refused_and_dead_domain_controller(tmp_path: Path, upstream: FakeUpstream) -> None:
    dead = closed_port()
    cfg = make_config(
        tmp_path,
        upstream.port,
        "acl:\n  allow: [10.0.0.0/8]\n"
        f"local_zone:\n  forward_zones:\n"
        f"    - zone: mairie.local\n      servers: ['127.0.0.1:{dead}']\n",
    )
    async with running(cfg) as app:
        write_artifact(cfg)
        code, lines = await doctor(with_listen(cfg, *bound(app)))
    assert code == 1, lines
    assert lines_with(lines, "WARN", "REFUSED this machine", "acl.allow"), lines
    fz = lines_with(lines, "FAIL", "forward zone mairie.local", "DNS Manager")
    assert fz, lines


async def test_newer_block_log_schema_fails_clearly(tmp_path: Path, upstream: FakeUpstream) -> None:
    cfg = make_config(tmp_path, upstream.port)
    path = cfg.blocklog_path()
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    before = path.read_bytes()
    code, lines = await doctor(with_listen(cfg, f"127.0.0.1:{closed_port()}"))
    assert code == 1
    fail = lines_with(lines, "FAIL", "block log", str(path), "v99", "upgrade Parafoudre")
    assert fail, lines
    assert path.read_bytes() == before


async def test_block_log_of_the_previous_schema_asks_for_a_restart(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    # Parafoudre upgraded, the service not restarted yet: it migrates the file when it starts.
    cfg = make_config(tmp_path, upstream.port)
    path = cfg.blocklog_path()
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    before = path.read_bytes()
    _, lines = await doctor(with_listen(cfg, f"127.0.0.1:{closed_port()}"))
    warn = lines_with(lines, "WARN", "block log", "v1", "systemctl restart parafoudre")
    assert warn, lines
    assert not lines_with(lines, "FAIL", "block log"), lines
    assert path.read_bytes() == before


async def test_block_log_ok_schema(tmp_path: Path, upstream: FakeUpstream) -> None:
    cfg = make_config(tmp_path, upstream.port)
    open_db(cfg.blocklog_path()).close()  # created and migrated as the service would
    _, lines = await doctor(with_listen(cfg, f"127.0.0.1:{closed_port()}"))
    assert lines_with(lines, "OK", "block log", "schema up to date"), lines


async def test_low_disk_and_wrong_clock(tmp_path: Path, upstream: FakeUpstream) -> None:
    cfg = make_config(tmp_path, upstream.port)
    (tmp_path / "state").mkdir()

    def nearly_full(path: Path) -> tuple[int, int, int]:
        return (10**10, 10**10 - 50 * 1024 * 1024, 50 * 1024 * 1024)

    _, lines = await doctor(
        with_listen(cfg, f"127.0.0.1:{closed_port()}"), now=0.0, disk_usage=nearly_full
    )
    assert lines_with(lines, "WARN", "disk: only 50 MB free", "retention_days"), lines
    clock = lines_with(lines, "FAIL", "clock: the box thinks it is 1970-01-01", "timedatectl")
    assert clock, lines

    def full(path: Path) -> tuple[int, int, int]:
        return (10**10, 10**10, 1024)

    _, lines = await doctor(with_listen(cfg, f"127.0.0.1:{closed_port()}"), disk_usage=full)
    assert lines_with(lines, "FAIL", "disk: only 0 MB free"), lines
    assert lines_with(lines, "OK", "clock:"), lines


async def test_port_zero_cannot_be_checked(tmp_path: Path, upstream: FakeUpstream) -> None:
    cfg = make_config(tmp_path, upstream.port)  # listens on 127.0.0.1:0
    _, lines = await doctor(cfg)
    assert lines_with(lines, "WARN", "listen 127.0.0.1:0", "fixed port"), lines


async def test_dns_over_tls_upstream(tmp_path: Path) -> None:
    """tls:// upstreams are checked with the resolver's own transport, certificate included."""
    trustme = pytest.importorskip("trustme", reason="trustme (test extra) makes the test CA")
    import ssl
    import struct

    from dnslib import DNSRecord

    from resolver.net.upstream_tls import default_ssl_context

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("dns.test").configure_cert(server_ctx)
    client_ctx = default_ssl_context()
    ca.configure_trust(client_ctx)

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                out = DNSRecord.parse(await reader.readexactly(size)).reply().pack()
                writer.write(struct.pack("!H", len(out)) + out)
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        cfg = make_config(tmp_path, closed_port())
        cfg = dataclasses.replace(
            cfg,
            upstream=dataclasses.replace(
                cfg.upstream, servers=(f"tls://127.0.0.1:{port}#dns.test",)
            ),
        )
        where = f"tls://127.0.0.1:{port}#dns.test"
        _, lines = await doctor(cfg, ssl_context=client_ctx)
        assert lines_with(lines, "OK", f"upstream {where}: answers"), lines
        # The system's CAs do not know the test CA: refused, and said so.
        _, lines = await doctor(cfg)
        refused = lines_with(lines, "FAIL", f"upstream {where}", "certificate is refused")
        assert refused and "clock" in refused[0], lines
    finally:
        server.close()


# --- issue 22.3: what answered, and who ----------------------------------------------------------


def rcode_handler(rcode: int) -> Callable[[DNSRecord], DNSRecord]:
    def handler(req: DNSRecord) -> DNSRecord:
        r = req.reply()
        r.header.rcode = rcode
        return r

    return handler


@pytest.mark.parametrize(
    ("rcode", "said", "advice"),
    [
        (RCODE.REFUSED, "reached, but REFUSES our queries", "access list"),
        (RCODE.SERVFAIL, "reached, but answers SERVFAIL even for the root", "cannot resolve"),
    ],
)
async def test_an_upstream_that_refuses_or_fails_is_not_a_network_problem(
    tmp_path: Path, rcode: int, said: str, advice: str
) -> None:
    up = FakeUpstream(handler=rcode_handler(rcode))
    await up.start()
    try:
        cfg = make_config(tmp_path, up.port)
        code, lines = await doctor(with_listen(cfg, f"127.0.0.1:{closed_port()}"))
    finally:
        await up.stop()
    assert code == 1, lines
    line = lines_with(lines, "FAIL", f"upstream 127.0.0.1:{up.port}", said, advice)
    assert line, lines
    assert not [ln for ln in lines if "network cable" in ln], lines
    assert len(up.queries) == 1  # an error answer is not asked again


async def test_no_upstream_replies_is_a_network_problem(tmp_path: Path) -> None:
    dead, silent = closed_port(), FakeUpstream(silent=True)
    await silent.start()
    try:
        cfg = make_config(
            tmp_path,
            dead,
            f"upstream:\n  servers: ['127.0.0.1:{dead}', '127.0.0.1:{silent.port}']\n",
        )
        code, lines = await doctor(with_listen(cfg, f"127.0.0.1:{closed_port()}"))
    finally:
        await silent.stop()
    assert code == 1, lines
    assert lines_with(lines, "FAIL", f"upstream 127.0.0.1:{dead}", "nothing listens", "cable")
    assert lines_with(lines, "FAIL", f"upstream 127.0.0.1:{silent.port}", "no answer", "cable")


async def test_one_refusing_upstream_beside_a_silent_one(tmp_path: Path) -> None:
    refusing, silent = FakeUpstream(handler=rcode_handler(RCODE.REFUSED)), FakeUpstream(silent=True)
    await refusing.start()
    await silent.start()
    try:
        servers = f"['127.0.0.1:{refusing.port}', '127.0.0.1:{silent.port}']"
        cfg = make_config(tmp_path, refusing.port, f"upstream:\n  servers: {servers}\n")
        _, lines = await doctor(with_listen(cfg, f"127.0.0.1:{closed_port()}"))
    finally:
        await refusing.stop()
        await silent.stop()
    # One upstream was reached: the box's network works, so no cable advice for the other.
    assert lines_with(lines, "FAIL", f"upstream 127.0.0.1:{silent.port}", "network works"), lines
    assert not [ln for ln in lines if "network cable" in ln], lines


@pytest.mark.parametrize(
    ("identity", "said"),
    [
        (None, "id.server CH TXT with NXDOMAIN"),  # answers every name, not the identity
        ("unbound-box", "it calls itself 'unbound-box'"),
    ],
)
async def test_another_dns_server_on_the_listen_address_is_not_parafoudre(
    tmp_path: Path, upstream: FakeUpstream, identity: str | None, said: str
) -> None:
    other = FakeUpstream()
    other.add("localhost. 300 IN A 127.0.0.1")
    if identity is not None:
        other.add(f'id.server. 0 CH TXT "{identity}"')
    await other.start()
    try:
        cfg = make_config(tmp_path, upstream.port)
        code, lines = await doctor(with_listen(cfg, f"127.0.0.1:{other.port}"))
    finally:
        await other.stop()
    assert code == 1, lines
    fail = lines_with(lines, "FAIL", f"listen 127.0.0.1:{other.port}", "not Parafoudre", said)
    assert fail and "ss -lunp" in fail[0], lines
    assert not lines_with(lines, "OK", "listen"), lines
