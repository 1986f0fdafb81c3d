"""`feeds update` end to end against a local aiohttp server on 127.0.0.1 (no internet)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from feeds import update as update_module
from feeds.cli import print_status
from feeds.state import StateStore
from feeds.update import EXIT_CONFIG, EXIT_NOTHING, EXIT_OK, EXIT_PARTIAL, run_update
from resolver import blocklist_file
from resolver.config.feeds import FeedsConfig, FeedSource

DATA = Path(__file__).resolve().parents[1] / "data" / "feeds"


class FeedServer:
    """Serves feed bodies by name with ETags; tests change bodies, statuses and delays."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.status: dict[str, int] = {}  # name -> forced HTTP status
        self.delay: dict[str, float] = {}
        self.compress: set[str] = set()  # names served with Content-Encoding: gzip
        self.hits: Counter[str] = Counter()
        self.conditional: Counter[str] = Counter()
        self.base = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits[name] += 1
        if name in self.delay:
            await asyncio.sleep(self.delay[name])
        if name in self.status:
            return web.Response(status=self.status[name], text="nope")
        body = self.bodies.get(name)
        if body is None:
            return web.Response(status=404)
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match"):
            self.conditional[name] += 1
            if request.headers["If-None-Match"] == etag:
                return web.Response(status=304, headers={"ETag": etag})
        resp = web.Response(body=body, headers={"ETag": etag})
        if name in self.compress:
            resp.enable_compression()
        return resp


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    srv = FeedServer()
    app = web.Application()
    app.router.add_get("/{name}", srv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    srv.base = f"http://127.0.0.1:{port}"
    try:
        yield srv
    finally:
        await runner.cleanup()


def config(srv: FeedServer, tmp_path: Path, **kw: object) -> FeedsConfig:
    sources = (
        FeedSource(name="ransom", url=f"{srv.base}/ransom", format="hosts", category="malware"),
        FeedSource(
            name="filter",
            url=f"{srv.base}/filter",
            format="domains",
            match="exact",
            category="malware",
        ),
        FeedSource(name="tf", url=f"{srv.base}/tf", format="threatfox-csv", category="c2"),
    )
    cfg = FeedsConfig(
        catalogue=(),
        sources=sources,
        state_dir=str(tmp_path / "state"),
        retries=2,
        retry_backoff=0.01,
        connect_timeout=2.0,
        total_timeout=2.0,
    )
    return replace(cfg, **kw)  # type: ignore[arg-type]


def serve_defaults(srv: FeedServer) -> None:
    srv.bodies["ransom"] = (DATA / "ransomware.hosts.txt").read_bytes()
    srv.bodies["filter"] = (DATA / "urlhaus-filter-domains.txt.gz").read_bytes()  # a .gz file
    srv.bodies["tf"] = (DATA / "synthetic_threatfox_native.csv").read_bytes()


async def update(cfg: FeedsConfig, artifact: Path) -> tuple[int, str]:
    """The exit code and everything printed (what went well on out, failures on err)."""
    code, out, err = await update_streams(cfg, artifact)
    return code, out + err


async def update_streams(cfg: FeedsConfig, artifact: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await run_update(cfg, artifact_path=artifact, out=out, interactive=False, err=err)
    return code, out.getvalue(), err.getvalue()


def line_of(text: str, feed: str) -> str:
    return next(ln for ln in text.splitlines() if ln.startswith(f"feed {feed}:"))


async def test_first_run_then_unchanged_costs_nothing(server: FeedServer, tmp_path: Path) -> None:
    serve_defaults(server)
    server.compress.add("ransom")  # Content-Encoding: gzip on the wire
    cfg = config(server, tmp_path)
    artifact = tmp_path / "blocklist.pfb"

    code, text = await update(cfg, artifact)
    assert code == EXIT_OK, text
    assert line_of(text, "ransom").startswith(
        "feed ransom: updated, 150 entries (+150 -0), 0 rejected"
    )
    assert "40 rejected" in line_of(text, "filter")  # the IP lines of the excerpt
    bl = blocklist_file.read(artifact)
    assert bl.match("27c73bq66y4xqoh7.dorfact.at") is not None
    assert bl.match("x.27c73bq66y4xqoh7.dorfact.at") is None  # hosts entries are EXACT
    m = bl.match("c2.evil.example")
    assert m is not None and m.source == "feed:tf" and m.category == "c2"
    inode = artifact.stat().st_ino

    code, text = await update(cfg, artifact)
    assert code == EXIT_OK, text
    assert "unchanged" in line_of(text, "ransom")
    assert "blocklist: unchanged" in text
    assert artifact.stat().st_ino == inode  # not rewritten: the server has nothing to reload
    assert server.conditional["ransom"] == 1  # If-None-Match sent, answered 304


async def test_changed_feed_reports_added_and_removed(server: FeedServer, tmp_path: Path) -> None:
    serve_defaults(server)
    cfg = config(server, tmp_path)
    artifact = tmp_path / "blocklist.pfb"
    assert (await update(cfg, artifact))[0] == EXIT_OK
    lines = server.bodies["ransom"].decode().split("\n")
    hosts = [ln for ln in lines if ln.startswith("0.0.0.0 ")]
    server.bodies["ransom"] = "\n".join([*hosts[10:], "0.0.0.0 new-one.example\n"]).encode()
    code, text = await update(cfg, artifact)
    assert code == EXIT_OK, text
    assert "updated, 141 entries (+1 -10)" in line_of(text, "ransom")
    bl = blocklist_file.read(artifact)
    assert bl.match("new-one.example") is not None
    assert bl.match(hosts[0].split()[1]) is None


async def test_failures_keep_the_last_good_copy(server: FeedServer, tmp_path: Path) -> None:
    serve_defaults(server)
    cfg = config(server, tmp_path)
    artifact = tmp_path / "blocklist.pfb"
    assert (await update(cfg, artifact))[0] == EXIT_OK
    server.hits.clear()

    server.status["ransom"] = 503  # retried, then kept
    server.bodies["filter"] = b"<!DOCTYPE html><html><body>Rate limited</body></html>"
    # would shrink from 5 entries to 0: 4 names and the ip:port row's address (answer-ip)
    server.bodies["tf"] = b"# nothing today\n"
    code, text = await update(cfg, artifact)
    assert code == EXIT_PARTIAL, text
    assert server.hits["ransom"] == 3  # 1 + 2 retries
    assert (
        "FAILED, HTTP 503 Service Unavailable (after 3 attempts); last good copy kept, 150 entries"
    ) in text
    assert "HTML page" in line_of(text, "filter")
    assert "shrank from 5 to 0" in line_of(text, "tf")
    bl = blocklist_file.read(artifact)
    assert bl.match("27c73bq66y4xqoh7.dorfact.at") is not None
    assert bl.match("c2.evil.example") is not None

    status = io.StringIO()
    assert print_status(cfg, out=status, artifact_path=artifact) == EXIT_PARTIAL
    table = status.getvalue()
    assert "ransom" in table and "failed" in table and "HTTP 503" in table
    assert "blocklist: " in table


async def test_a_gzip_feed_cut_short_fails_alone_and_keeps_its_last_copy(
    server: FeedServer, tmp_path: Path
) -> None:
    """A mirror that serves half a .gz file (or its first two bytes): that feed fails with a
    plain reason, the others are compiled, the list keeps the feed's last good entries."""
    serve_defaults(server)
    cfg = config(server, tmp_path)
    artifact = tmp_path / "blocklist.pfb"
    assert (await update(cfg, artifact))[0] == EXIT_OK
    whole = server.bodies["filter"]
    for cut in (whole[: len(whole) // 2], whole[:2]):
        server.bodies["filter"] = cut
        hosts = (DATA / "ransomware.hosts.txt").read_bytes()
        server.bodies["ransom"] = hosts + f"0.0.0.0 cut-{len(cut)}.example\n".encode()
        code, text = await update(cfg, artifact)
        assert code == EXIT_PARTIAL, text
        assert "Traceback" not in text
        assert line_of(text, "filter") == (
            "feed filter: FAILED, the feed is a damaged or incomplete gzip file (a download cut"
            " short?); last good copy kept, 162 entries, 40 rejected"
        )
        assert "updated, 151 entries" in line_of(text, "ransom")
        bl = blocklist_file.read(artifact)
        assert bl.match(f"cut-{len(cut)}.example") is not None  # the other feeds went on
        assert bl.match("a-basamhgrp.com") is not None  # the cut feed's last good copy


async def test_shrink_threshold_is_configurable(server: FeedServer, tmp_path: Path) -> None:
    serve_defaults(server)
    cfg = config(server, tmp_path, max_shrink=1.0)
    artifact = tmp_path / "blocklist.pfb"
    assert (await update(cfg, artifact))[0] == EXIT_OK
    server.bodies["tf"] = b"# nothing today\n"
    code, text = await update(cfg, artifact)
    assert code == EXIT_OK, text
    assert "updated, 0 entries (+0 -4)" in line_of(text, "tf")


async def test_size_cap_and_timeout(server: FeedServer, tmp_path: Path) -> None:
    serve_defaults(server)
    server.bodies["ransom"] = b"0.0.0.0 big.example\n" * 10_000
    server.delay["tf"] = 1.5
    cfg = config(server, tmp_path, max_bytes=100_000, total_timeout=0.5, retries=0)
    code, text = await update(cfg, tmp_path / "b.pfb")
    assert code == EXIT_PARTIAL, text
    assert "cap" in line_of(text, "ransom") and "no good copy" in line_of(text, "ransom")
    assert "did not answer in time" in line_of(text, "tf")
    assert "updated" in line_of(text, "filter")


async def test_nothing_usable_leaves_the_old_list(server: FeedServer, tmp_path: Path) -> None:
    artifact = tmp_path / "blocklist.pfb"
    blocklist_file.write_atomic(artifact, [("old.example", 1, 0)], [("feed:old", "malware")])
    server.status.update({"ransom": 404, "filter": 500, "tf": 403})
    code, text = await update(config(server, tmp_path, retries=0), artifact)
    assert code == EXIT_NOTHING, text
    assert "no usable feed" in text
    assert blocklist_file.read(artifact).match("old.example") is not None


async def test_local_files_and_sighup(tmp_path: Path) -> None:
    got: list[int] = []
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: got.append(signum))
    try:
        pid_file = tmp_path / "parafoudre.pid"
        pid_file.write_text(f"{os.getpid()}\n")
        cfg = FeedsConfig(
            catalogue=(),
            sources=(
                FeedSource(name="local", url=str(DATA / "urlhaus-filter-agh.txt"), format="auto"),
                FeedSource(name="rpz", url=(DATA / "twitone_urlhaus.excerpt.rpz").as_uri()),
            ),
            state_dir=str(tmp_path / "state"),
            pid_file=str(pid_file),
        )
        code, text = await update(cfg, tmp_path / "b.pfb")
        assert code == EXIT_OK, text
        assert got == [signal.SIGHUP]
        bl = blocklist_file.read(tmp_path / "b.pfb")
        assert bl.match("a.b.0022a601.pphost.net") is not None  # ||x^ is SUBTREE
        code, text = await update(cfg, tmp_path / "b.pfb")
        assert "unchanged" in line_of(text, "local") and got == [signal.SIGHUP]
    finally:
        signal.signal(signal.SIGHUP, previous)


async def test_configuration_errors(tmp_path: Path) -> None:
    bad = FeedsConfig(catalogue=("no-such-feed",), state_dir=str(tmp_path))
    assert (await update(bad, tmp_path / "b.pfb"))[0] == EXIT_CONFIG
    no_match = FeedsConfig(
        catalogue=(), sources=(FeedSource(name="x", url="/x", format="domains"),)
    )
    code, text = await update(replace(no_match, state_dir=str(tmp_path)), tmp_path / "b.pfb")
    assert code == EXIT_CONFIG and "match" in text
    ftp = FeedsConfig(catalogue=(), sources=(FeedSource(name="x", url="ftp://h/x"),))
    assert (await update(replace(ftp, state_dir=str(tmp_path)), tmp_path / "b.pfb"))[0] == 2


async def test_auto_detected_domain_list_needs_a_match_mode(tmp_path: Path) -> None:
    cfg = FeedsConfig(
        catalogue=(),
        sources=(FeedSource(name="plain", url=str(DATA / "ransomware-nl.domains.txt")),),
        state_dir=str(tmp_path / "state"),
    )
    code, text = await update(cfg, tmp_path / "b.pfb")
    assert code == EXIT_NOTHING
    assert "match: exact or match: subtree" in line_of(text, "plain")


async def test_progress_on_a_terminal_and_one_run_at_a_time(
    server: FeedServer, tmp_path: Path
) -> None:
    serve_defaults(server)
    cfg = config(server, tmp_path)
    out = io.StringIO()
    code = await run_update(cfg, artifact_path=tmp_path / "b.pfb", out=out, interactive=True)
    assert code == EXIT_OK
    assert "\rdownloading" in out.getvalue().replace("\x1b[K", "")
    assert "\r" not in out.getvalue().splitlines()[-1]  # the summary lines stay plain

    with StateStore(cfg.state_path()).lock() as held:
        assert held
        code, text = await update(cfg, tmp_path / "b.pfb")
    assert code == EXIT_NOTHING and "another update is running" in text


# --- offline: every failure said once, in plain words, with one diagnosis ------------------------


def refused_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def no_public_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names under .invalid (RFC 6761) do not resolve, without asking any DNS server: the
    lookup never leaves this machine. Other names (127.0.0.1) resolve as usual."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".invalid"):
            asked.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


async def test_offline_update_says_each_failure_once_with_one_diagnosis(
    tmp_path: Path, no_public_dns: list[str]
) -> None:
    port = refused_port()
    cfg = FeedsConfig(
        catalogue=(),
        sources=(
            FeedSource(name="refused", url=f"http://127.0.0.1:{port}/list", format="hosts"),
            FeedSource(name="nodns", url="https://feeds.parafoudre.invalid/x", format="hosts"),
        ),
        state_dir=str(tmp_path / "state"),
    )  # the default retries and backoff: what an operator runs
    started = time.monotonic()
    code, out, err = await update_streams(cfg, tmp_path / "b.pfb")
    elapsed = time.monotonic() - started
    assert elapsed < 30, elapsed  # the issue saw 70 s; neither failure is worth a retry
    assert code == EXIT_NOTHING
    assert out == ""  # nothing went well; nothing said twice
    lines = err.splitlines()
    assert lines == [
        f"feed refused: FAILED, 127.0.0.1 port {port} refused the connection;"
        " no good copy, feed skipped",
        "feed nodns: FAILED, cannot resolve feeds.parafoudre.invalid (Name or service not"
        " known); no good copy, feed skipped",
        "diagnosis: this box cannot resolve public names: check its DNS and gateway",
        "blocklist: no usable feed; the current blocklist stays in place",
    ]
    assert "Client" not in err and "Traceback" not in err and "ssl:default" not in err
    # The class is kept for the weather page, which says it in French.
    store = StateStore(cfg.state_path())
    assert store.load("refused").error_class == "refused"
    assert store.load("nodns").error_class == "dns"
    assert no_public_dns == ["feeds.parafoudre.invalid"]  # asked once, not retried


async def test_with_the_network_absent_the_other_feeds_are_not_waited_for(
    tmp_path: Path, no_public_dns: list[str]
) -> None:
    sources = tuple(
        FeedSource(name=f"f{i}", url=f"https://host{i}.invalid/list", format="hosts")
        for i in range(12)
    )
    cfg = FeedsConfig(catalogue=(), sources=sources, state_dir=str(tmp_path / "state"))
    code, out, err = await update_streams(cfg, tmp_path / "b.pfb")
    assert code == EXIT_NOTHING and out == ""
    failed = [ln for ln in err.splitlines() if ln.startswith("feed ")]
    assert len(failed) == 12  # one line per feed
    assert sum("not tried: the network is absent" in ln for ln in failed) >= 8
    assert len(no_public_dns) <= 4  # the first wave only
    assert err.count("diagnosis:") == 1


async def test_the_update_gives_up_when_no_server_answers_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A black hole: connections neither succeed nor fail. The give-up delay is shortened here;
    # in use it is GIVE_UP_OFFLINE, 25 s.
    monkeypatch.setattr(update_module, "GIVE_UP_OFFLINE", 0.5)
    hung: list[asyncio.Future[None]] = []

    async def black_hole(request: web.Request) -> web.Response:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        hung.append(waiter)
        await asyncio.wait_for(waiter, 5)
        return web.Response(text="late")

    # Requests reach a handler that never answers: the headers never come back.
    app = web.Application()
    app.router.add_get("/{name}", black_hole)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        cfg = FeedsConfig(
            catalogue=(),
            sources=(FeedSource(name="hole", url=f"http://127.0.0.1:{port}/h", format="hosts"),),
            state_dir=str(tmp_path / "state"),
        )
        started = time.monotonic()
        code, _, err = await update_streams(cfg, tmp_path / "b.pfb")
        assert time.monotonic() - started < 3
    finally:
        for waiter in hung:
            waiter.cancel()
        await runner.cleanup()
    assert code == EXIT_NOTHING
    assert "feed hole: FAILED, gave up after 0.5 s: no feed server answered" in err
    assert "diagnosis: the feed servers do not answer in time" in err
