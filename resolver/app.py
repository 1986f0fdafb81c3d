"""The composition root: builds the chain from the config, binds the sockets, runs the service."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import signal
import socket
from pathlib import Path

from resolver.blocklist_holder import ListsHolder
from resolver.blocklog.writer import BlockLogWriter
from resolver.config.schema import Config, parse_hostport
from resolver.core.pipeline import Pipeline
from resolver.core.responses import BlockAnswer
from resolver.core.stage import Stage
from resolver.core.steps import Upstream
from resolver.net.service import Service
from resolver.net.tcp import TcpConnection, TcpLimits
from resolver.net.udp import UdpServer
from resolver.net.upstream_client import UpstreamClient
from resolver.stages.acl import AclStage
from resolver.stages.allowlist import AllowlistStage
from resolver.stages.blocklist import BlocklistStage
from resolver.stages.cache import CacheStage
from resolver.stages.local_zone import LocalZoneStage, parse_record
from resolver.stages.upstream import UpstreamStage

log = logging.getLogger(__name__)


def _same(proto: UdpServer) -> UdpServer:
    return proto


class App:
    """One running resolver: stages, lists, block log, listeners."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.cache = CacheStage(cfg.cache.size, cfg.cache.min_ttl, cfg.cache.max_ttl)
        self.lists = ListsHolder(cfg, self.cache.clear)
        b = cfg.blocking
        answer = BlockAnswer.build(b.mode, b.ttl, b.sinkhole_ipv4, b.sinkhole_ipv6)
        self.allowlist = AllowlistStage(self.lists.allowlist)
        self.blocklist = BlocklistStage(self.lists.blocklist, answer)
        forwards = [
            (fz.zone, tuple(Upstream(*parse_hostport(s, 53)) for s in fz.servers))
            for fz in cfg.local_zone.forward_zones
        ]
        stages: list[Stage] = [
            # Strangers first: nothing else runs for them, so the box is never an open resolver.
            AclStage(ipaddress.ip_network(n, strict=False) for n in cfg.acl.allow),
            # Internal names never reach the feeds' judgement nor the public upstreams.
            LocalZoneStage(
                [parse_record(r) for r in cfg.local_zone.records],
                forwards,
                cfg.local_zone.private_reverse,
            ),
            # The operator's word beats every feed: TRUSTED skips the policy stages below.
            self.allowlist,
            # Threat lists, read from the current immutable snapshot.
            self.blocklist,
            # After policy, so a newly listed name is never answered from cache.
            self.cache,
            # Always decides: the chain cannot fall off its end.
            UpstreamStage(cfg.upstream.addresses()),
        ]
        self.stages = stages
        self.pipeline = Pipeline(stages, self.cache, self.allowlist, self.blocklist)
        self.blocklog = BlockLogWriter(
            cfg.blocklog_path(),
            queue_size=cfg.blocklog.queue_size,
            batch_size=cfg.blocklog.batch_size,
            flush_interval=cfg.blocklog.flush_interval,
            retention_days=cfg.blocklog.retention_days,
        )
        self.upstream = UpstreamClient(cfg.upstream.timeout, cfg.upstream.total_timeout)
        self.service = Service(
            self.pipeline,
            self.upstream,
            self.blocklog.offer,
            server_payload=cfg.server.udp_payload,
            max_inflight=cfg.server.max_inflight,
        )
        self.tcp_limits = TcpLimits(
            cfg.server.tcp_idle_timeout,
            cfg.server.tcp_max_connections,
            cfg.server.tcp_max_pipelined,
        )
        self.udp: list[tuple[asyncio.DatagramTransport, UdpServer]] = []
        self.tcp: list[asyncio.Server] = []
        self.bound: list[tuple[str, int]] = []  # (host, port) actually bound, for tests and logs
        self._watch: asyncio.Task[None] | None = None

    def describe(self) -> list[str]:
        return [f"-> {s.name}: {s.describe()}" for s in self.stages]

    async def start(self) -> None:
        """Load lists, open the block log, bind every listen address (UDP and TCP)."""
        self.lists.load_now()
        self.blocklog.start()
        loop = asyncio.get_running_loop()
        for spec in self.cfg.server.listen:
            host, port = parse_hostport(spec, 53)
            port = await self._bind(loop, host, port)
            self.bound.append((host, port))
        self._watch = loop.create_task(self.lists.watch())
        for line in self.describe():
            log.info("%s", line)
        log.info("listening on %s", ", ".join(f"{h}:{p}" for h, p in self.bound))

    async def _bind(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> int:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # With port 0, take the UDP port the kernel picks and ask for the same one over TCP.
        for _ in range(20):
            proto = UdpServer(self.service)
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(_same, proto), local_addr=(host, port), family=family
            )
            bound_port = int(transport.get_extra_info("sockname")[1])
            try:
                server = await loop.create_server(
                    lambda: TcpConnection(self.service, self.tcp_limits),
                    host,
                    bound_port,
                    family=family,
                    reuse_address=True,
                    backlog=256,
                )
            except OSError:
                transport.close()
                if port:
                    raise
                continue
            self.udp.append((transport, proto))
            self.tcp.append(server)
            return bound_port
        raise OSError(f"could not bind UDP and TCP on one port of {host}")

    async def reload(self) -> bool:
        return await self.lists.reload(everything=True)

    async def stop(self, drain: float = 2.0) -> None:
        """Stop listening, let in-flight queries finish, flush the block log."""
        if self._watch is not None:
            self._watch.cancel()
        for server in self.tcp:
            server.close()
        pending = [t for _, p in self.udp for t in p.tasks]
        pending += [t for c in list(self.tcp_limits.connections) for t in c.tasks]
        if pending:
            await asyncio.wait(pending, timeout=drain)
        for transport, _ in self.udp:
            transport.close()
        for conn in list(self.tcp_limits.connections):
            conn.close()
        await asyncio.to_thread(self.blocklog.close)


async def serve(cfg: Config, ready: asyncio.Event | None = None) -> int:
    """Run until SIGTERM or SIGINT; SIGHUP reloads the lists. Returns the exit code."""
    app = App(cfg)
    await app.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task[bool]] = set()

    def on_hup() -> None:
        t = loop.create_task(app.reload())
        reloads.add(t)
        t.add_done_callback(reloads.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("stopping: draining queries and flushing the block log")
    await app.stop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(sig)
    log.info("stopped")
    return 0


def state_dir_hint(path: Path) -> str:
    return f"create {path} or set state_dir in the config to a writable directory"
