"""Shared fixtures: a local upstream DNS server and a running Parafoudre on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from dnslib import QTYPE, RCODE, RR, DNSRecord

from resolver import compiled
from resolver.app import App
from resolver.config import Config
from resolver.config.loader import load_text

Handler = Callable[[DNSRecord], DNSRecord | None]


def pytest_sessionstart(session: pytest.Session) -> None:
    # An edited module whose compiled copy (setup.py, mypyc) was built before the edit would be
    # what the tests import: stop, and say how to rebuild, rather than test yesterday's code.
    stale = compiled.stale()
    if stale:
        names = ", ".join(str(m.source) for m in stale)
        pytest.exit(
            f"{names} changed after it was compiled: run ./scripts/test (it reinstalls) or "
            ".venv/bin/pip install -e . to compile the edit",
            returncode=2,
        )


@dataclass
class FakeUpstream:
    """A tiny authoritative-ish DNS server on 127.0.0.1 (UDP and TCP, one port)."""

    zone: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (name, type) -> rr text
    handler: Handler | None = None
    queries: list[DNSRecord] = field(default_factory=list)
    tcp_queries: int = 0
    port: int = 0
    silent: bool = False  # drop everything (an upstream that is down)
    delay: float = 0.0
    truncate_udp: bool = False

    def add(self, text: str) -> None:
        for rr in RR.fromZone(text):
            key = (str(rr.rname).rstrip(".").lower(), QTYPE[rr.rtype])
            self.zone.setdefault(key, []).append(text)

    def answer(self, req: DNSRecord) -> DNSRecord | None:
        self.queries.append(req)
        if self.handler is not None:
            return self.handler(req)
        reply = req.reply()
        qname = str(req.q.qname).rstrip(".").lower()
        qtype = QTYPE[req.q.qtype]
        found = False
        name = qname
        for _ in range(8):  # follow CNAMEs inside the zone, like a recursive resolver would
            rrs = self.zone.get((name, qtype)) or self.zone.get((name, "CNAME"))
            if not rrs:
                break
            found = True
            nxt = None
            for text in rrs:
                for rr in RR.fromZone(text):
                    reply.add_answer(rr)
                    if QTYPE[rr.rtype] == "CNAME" and qtype != "CNAME":
                        nxt = str(rr.rdata.label).rstrip(".").lower()
            if nxt is None:
                break
            name = nxt
        if not found:
            if any(k[0] == qname for k in self.zone):
                pass  # NODATA
            else:
                reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(
                RR.fromZone("test. 300 IN SOA ns.test. admin.test. 1 3600 600 86400 60")[0]
            )
        return reply

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        up = self
        tasks: set[asyncio.Task[None]] = set()

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: Any) -> None:
                self.t = transport

            def datagram_received(self, data: bytes, addr: Any) -> None:
                if up.silent:
                    return
                task = loop.create_task(self.reply(data, addr))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

            async def reply(self, data: bytes, addr: Any) -> None:
                if up.delay:
                    await asyncio.sleep(up.delay)
                r = up.answer(DNSRecord.parse(data))
                if r is None:
                    return
                out = r.pack()
                if up.truncate_udp:
                    r2 = DNSRecord.parse(data).reply()
                    r2.header.tc = 1
                    out = r2.pack()
                self.t.sendto(out, addr)

        async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    data = await reader.readexactly(size)
                    up.tcp_queries += 1
                    if up.silent:
                        continue
                    r = up.answer(DNSRecord.parse(data))
                    if r is not None:
                        out = r.pack()
                        writer.write(struct.pack("!H", len(out)) + out)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        wanted = self.port
        for _ in range(20):  # the kernel's free UDP port may be taken for TCP: try another
            self.udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", wanted))
            self.port = self.udp.get_extra_info("sockname")[1]
            try:
                self.tcp = await asyncio.start_server(on_tcp, "127.0.0.1", self.port)
            except OSError:
                self.udp.close()
                if wanted:
                    raise
                continue
            return
        raise OSError("no port free for both UDP and TCP")

    async def stop(self) -> None:
        self.udp.close()
        self.tcp.close()


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    up = FakeUpstream()
    up.add("example.test. 300 IN A 192.0.2.1")
    up.add("example.test. 300 IN AAAA 2001:db8::1")
    up.add("www.example.test. 300 IN CNAME example.test.")
    await up.start()
    yield up
    await up.stop()


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def make_config(tmp_path: Path, upstream_port: int, extra: str = "") -> Config:
    """A test config: loopback port 0, state in tmp_path, the fake upstream; plus YAML ``extra``."""
    base: dict[str, Any] = {
        "state_dir": str(tmp_path / "state"),
        "server": {"listen": ["127.0.0.1:0"]},
        "upstream": {
            "servers": [f"127.0.0.1:{upstream_port}"],
            "timeout": 0.5,
            "total_timeout": 1.5,
        },
        "blocklog": {"flush_interval": 0.1},
    }
    merged = _merge(base, yaml.safe_load(extra) or {})
    return load_text(yaml.safe_dump(merged), Config, "test.yaml")


def serve_config(tmp_path: Path, port: int, upstream_port: int) -> Path:
    """A config file for `parafoudre serve` as a process: loopback ``port``, the fake upstream,
    ``evil.test`` on a block list, no dashboard."""
    (tmp_path / "block.txt").write_text("evil.test\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"state_dir: {tmp_path / 'state'}\nserver:\n  listen: ['127.0.0.1:{port}']\n"
        f"upstream:\n  servers: ['127.0.0.1:{upstream_port}']\n"
        f"blocking:\n  lists:\n    - path: {tmp_path / 'block.txt'}\n"
        "dashboard:\n  enabled: false\n"
    )
    return cfg


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


@contextlib.asynccontextmanager
async def running(cfg: Config) -> AsyncIterator[App]:
    app = App(cfg)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    def _write(name: str, text: str) -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p

    return _write
