"""The composition root: builds the chain from the config, binds the sockets, runs the service."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import gc
import ipaddress
import logging
import signal
import socket
import time
from typing import TYPE_CHECKING, Final, NamedTuple

from resolver import compiled, sd_notify
from resolver.blocklist_holder import ListsHolder
from resolver.blocklog.writer import BlockLogWriter
from resolver.config.dga import DgaConfig
from resolver.config.groups import GroupConfig, group_networks
from resolver.config.schema import Config, parse_hostport
from resolver.core.block_answer import BlockAnswer
from resolver.core.groups import GroupedPipeline
from resolver.core.pipeline import Pipeline
from resolver.core.stage import Stage
from resolver.core.steps import Forward, Upstream
from resolver.errors import ParafoudreError
from resolver.log_summary import Summary
from resolver.net import reuseport
from resolver.net.encrypted import EncryptedListeners
from resolver.net.service import Service
from resolver.net.tcp import TcpConnection, TcpLimits
from resolver.net.udp import UdpServer
from resolver.net.upstream_client import UpstreamClient
from resolver.stages.acl import AclStage
from resolver.stages.allowlist import AllowlistStage
from resolver.stages.answer_ip import AnswerIpStage
from resolver.stages.blocklist import BlocklistStage
from resolver.stages.cache import CacheStage
from resolver.stages.canaries import CanaryStage
from resolver.stages.dga import DgaStage
from resolver.stages.exfiltration import Detection, ExfiltrationStage
from resolver.stages.local_zone import LocalZoneStage, parse_record
from resolver.stages.minimal_any import MinimalAnyStage
from resolver.stages.protocol import ProtocolStage
from resolver.stages.rate_limit import ErrorLimiter, RateLimitStage
from resolver.stages.rebinding import RebindingStage
from resolver.stages.recursion import RecursionStage
from resolver.stages.upstream import UpstreamStage
from resolver.stats import StatsSnapshot, upstream_answering
from resolver.upstreams import upstream_addresses

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)


class ListenError(ParafoudreError):
    """A listen address cannot be bound."""


_BIND_HINTS = {
    errno.EACCES: "ports below 1024 need root or CAP_NET_BIND_SERVICE "
    "(see deploy/parafoudre.service)",
    errno.EADDRINUSE: "another program uses this port (on Debian often systemd-resolved or "
    "dnsmasq: `ss -lunp 'sport = 53'` shows which)",
    errno.EADDRNOTAVAIL: "this machine has no such address: check server.listen",
}


def _socket(host: str, port: int, kind: int, workers: int = 1) -> socket.socket:
    """A bound socket, or ListenError naming the address, the protocol and the likely fix."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # [::] and 0.0.0.0 both
        if workers > 1:
            sock.setsockopt(socket.SOL_SOCKET, reuseport.SO_REUSEPORT, 1)
        if kind == socket.SOCK_DGRAM:
            # Room for a burst while the loop is busy (the kernel caps it at rmem_max); the
            # default ~200 KB loses datagrams to a few hundred queries at once.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(256)
        if workers > 1:
            # After listen(): a TCP socket joins its reuseport group only when it listens, and a
            # program attached earlier would give it a group of its own.
            reuseport.attach_steering(sock, workers)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        proto = "TCP" if kind == socket.SOCK_STREAM else "UDP"
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        hint = _BIND_HINTS.get(exc.errno or 0, "check server.listen")
        raise ListenError(f"cannot listen on {where} ({proto}): {exc.strerror} ({hint})") from None
    return sock


class _GroupStages(NamedTuple):
    """The stages a group of clients has its own of."""

    cache: CacheStage
    blocklist: BlocklistStage
    answer_ip: AnswerIpStage
    exfiltration: ExfiltrationStage | None
    dga: DgaStage | None


def _say_how_compiled() -> None:
    """The per-query code's build (setup.py), and any module edited since it was compiled."""
    log.info("per-query code: %s", compiled.status())
    for m in compiled.stale():
        log.warning(
            "%s changed after it was compiled: the compiled copy runs; reinstall "
            "(pip install -e .) to run the edit",
            m.source,
        )


class App:
    """One running resolver: stages, lists, block log, listeners."""

    def __init__(self, cfg: Config, worker: int = 0, workers: int = 1) -> None:
        self.cfg = cfg
        self.worker = worker  # index of this process among the workers sharing the ports
        self.workers = workers
        # A swapped list changes the blocklist's and the allowlist's judgement: Pipeline.changed.
        self.lists = ListsHolder(cfg, lambda: self.chain.changed())
        b = cfg.blocking
        self.answer = BlockAnswer.build(b.mode, b.ttl, b.sinkhole_ipv4, b.sinkhole_ipv6)
        self.allowlist = AllowlistStage(self.lists.allowlist)
        rl = cfg.rate_limit
        exempt = [ipaddress.ip_network(n, strict=False) for n in rl.exempt]
        self.rate_limit = (
            RateLimitStage(rl.rate, rl.burst, rl.max_clients, exempt) if rl.enabled else None
        )
        self.errors = (
            ErrorLimiter(rl.errors_rate, rl.errors_burst, rl.errors_slip)
            if rl.errors_rate > 0
            else None
        )
        self.canaries = CanaryStage(cfg.canaries.firefox, cfg.canaries.icloud_private_relay)
        self.rebinding = self._rebinding(cfg)
        # Shared by every group's chain: they judge the client or the name, never per group.
        self._shared = self._shared_stages(cfg, worker)
        self._dga_base: DgaStage | None = None  # what the commune resolves, for every group
        default = self._group_stages(cfg, None)
        self.cache, self.blocklist, self.answer_ip, self.exfiltration, self.dga = default
        self._owned = [default]  # every group's stages, for the detections' log
        self.stages = self._chain(cfg, worker, default, filtered=True)
        self.pipeline = Pipeline(self.stages, self.cache)
        self.chain: Pipeline | GroupedPipeline = self.pipeline
        if cfg.groups:
            self.chain = GroupedPipeline(self.pipeline, self._groups(cfg, worker, default))
        self.blocklog = BlockLogWriter(
            cfg.blocklog_path(),
            queue_size=cfg.blocklog.queue_size,
            batch_size=cfg.blocklog.batch_size,
            flush_interval=cfg.blocklog.flush_interval,
            retention_days=cfg.blocklog.retention_days,
        )
        self.upstream = UpstreamClient(cfg.upstream.timeout, cfg.upstream.total_timeout)
        self.service = self._service(cfg)
        self.tcp_limits = TcpLimits(
            cfg.server.tcp_idle_timeout,
            cfg.server.tcp_max_connections,
            cfg.server.tcp_max_pipelined,
        )
        # DNS over TLS and over HTTPS (server.tls_listen, https_listen), same Service.
        self.encrypted = EncryptedListeners(self.service, cfg.server, cfg.state_path())
        self.udp: list[UdpServer] = []
        self.tcp: list[asyncio.Server] = []
        self.bound: list[tuple[str, int]] = []  # (host, port) actually bound, for tests and logs
        self._watch: asyncio.Task[None] | None = None
        self._detections: asyncio.Task[None] | None = None
        self.started_at = time.time()

    def _service(self, cfg: Config) -> Service:
        return Service(
            self.chain,
            self.upstream,
            self.blocklog.offer,
            server_payload=cfg.server.udp_payload,
            max_inflight=cfg.server.max_inflight,
            stale_max_age=cfg.cache.stale_max_age,
            stale_answer_after=cfg.cache.stale_answer_after,
            prefetch=Forward(upstream_addresses(cfg.upstream)) if cfg.cache.prefetch else None,
            errors=self.errors.allow if self.errors is not None else None,
        )

    def _group_stages(self, cfg: Config, group: GroupConfig | None) -> _GroupStages:
        """The stages each group has its own of: cache (answers never cross groups), and the
        lists and detectors where the group's choices differ from the default's."""
        c = cfg.cache
        cache = CacheStage(c.size, c.min_ttl, c.max_ttl, c.max_bytes, c.max_entry_bytes)
        if group is not None and not group.filter:
            # Nothing judges its clients' names (the chain leaves these out): build nothing.
            return _GroupStages(cache, self.blocklist, self.answer_ip, None, None)
        if group is not None and not (
            group.categories or group.sources or group.block_mode or group.exfiltration or group.dga
        ):
            return _GroupStages(cache, self.blocklist, self.answer_ip, self.exfiltration, self.dga)
        answer = self.answer
        if group is not None and group.block_mode:
            b = cfg.blocking
            answer = BlockAnswer.build(group.block_mode, b.ttl, b.sinkhole_ipv4, b.sinkhole_ipv6)
        blocklist = BlocklistStage(
            self.lists.blocklist,
            answer,
            self.lists.allowlist,
            group.categories if group is not None else (),
            group.sources if group is not None else (),
        )
        ex = cfg.exfiltration
        if group is not None and group.exfiltration:
            ex = dataclasses.replace(ex, mode=group.exfiltration)
        zones = [z.zone for z in cfg.local_zone.forward_zones]
        exfil = ExfiltrationStage(ex, answer, zones=zones) if ex.mode != "off" else None
        answer_ip = AnswerIpStage(
            self.lists.blocklist,
            answer,
            group.categories if group is not None else (),
            group.sources if group is not None else (),
        )
        mode = group.dga if group is not None and group.dga else cfg.dga.mode
        dga = self._dga(dataclasses.replace(cfg.dga, mode=mode), answer) if mode != "off" else None
        return _GroupStages(cache, blocklist, answer_ip, exfil, dga)

    def _dga(self, dcfg: DgaConfig, answer: BlockAnswer) -> DgaStage:
        """A group's generated-domain detector. Its judgements are its own (a machine is in one
        group), but what the commune resolves is one knowledge: a domain any machine resolved
        is no generated name, whichever group it is in. The character model and the public
        suffix list are read once."""
        base = self._dga_base
        if base is None:
            self._dga_base = DgaStage(dcfg, answer)
            return self._dga_base
        stage = DgaStage(dcfg, answer, base.model, base.domains)
        stage.resolved = base.resolved
        stage.suffixes = base.suffixes
        return stage

    def _groups(
        self, cfg: Config, worker: int, default: _GroupStages
    ) -> list[tuple[list[ipaddress.IPv4Network | ipaddress.IPv6Network], Pipeline]]:
        out = []
        # Networks, then the named clients' addresses (clients.names), checked at load.
        nets = group_networks(cfg.groups, cfg.clients.names)
        for g, (_, covered) in zip(cfg.groups, nets, strict=True):
            gs = self._group_stages(cfg, g)
            self._owned.append(gs)
            chain = self._chain(cfg, worker, gs, g.filter)
            out.append((covered, Pipeline(chain, gs.cache, g.name)))
        return out

    def _chain(self, cfg: Config, worker: int, own: _GroupStages, filtered: bool) -> list[Stage]:
        """The order of the stages: written here only, with the reason for each place.

        ``filtered`` False (a group such as the domain controller): no list, allowlist or
        detector judges its clients' names.
        """
        acl, protocol, local_zone, recursion, minimal_any, upstream = self._shared
        optional = (self.rate_limit, own.exfiltration if filtered else None)
        rate, exfiltration = ([s] if s is not None else [] for s in optional)
        dga = [own.dga] if own.dga is not None and filtered else []
        rebinding = [self.rebinding] if self.rebinding is not None and filtered else []
        policy: list[Stage] = [self.allowlist, own.blocklist, own.answer_ip] if filtered else []
        return [
            # Strangers first: nothing else runs for them, so the box is never an open resolver.
            acl,
            # Right after the ACL, before any work is spent on a client that floods us; it
            # meters cached answers too (the pipeline's fast lane calls it).
            *rate,
            # Zone transfers, meta-types and classes a forwarder does not serve: answered as
            # unbound does, before any stage below could answer or forward them.
            protocol,
            # Bypass canaries and resolver.arpa (RFC 9462) answered here whatever their type,
            # before any stage could forward them or a list or allowlist could judge them.
            self.canaries,
            # Names the box answers itself (records, private reverse zones, localhost) never
            # leave it; a trusted forwarded zone is TRUSTED here, an untrusted one judged below.
            local_zone,
            # Without RD only the box's own data (above) answers: the cache is not for snooping.
            recursion,
            # The operator's word beats every feed: TRUSTED skips the policy stages below.
            # Threat lists, read from the current immutable snapshot; on the way back, the
            # answer's CNAME targets are checked against them before the cache keeps it, then
            # its addresses against the feeds' IP ranges (answer-ip).
            *policy,
            # ANY is answered minimally (RFC 8482), so it amplifies nothing. After the lists, so
            # a listed name is answered as blocked whatever the type asked; before the detector
            # and the cache, for it never leaves the box.
            minimal_any,
            # Tunnels and data smuggled out in names: what no list knows yet. After the lists,
            # so known-bad names are reported as such; before the cache, so it sees misses.
            *exfiltration,
            # Machines judged to try generated domains (DGA malware): their tries are blocked
            # here, after the lists (a listed name is reported as such); on the way back it
            # counts NXDOMAIN answers, so it must stand before the cache, which sees misses.
            *dga,
            # Private addresses behind public names (DNS rebinding) judged on the way back:
            # after the lists (a listed name is reported as such), before the cache, so it
            # never keeps such an answer.
            *rebinding,
            # After policy, so a newly listed name is never answered from cache; on the way
            # back, after policy too, so it keeps only what policy let through. One per group.
            own.cache,
            # Always decides: conditional-forwarding zones to the mairie's servers, the rest to
            # the default upstreams. Last, so every name above was judged first.
            upstream,
        ]

    @staticmethod
    def _rebinding(cfg: Config) -> RebindingStage | None:
        """The rebinding guard, with the names local by configuration: the forwarded zones,
        the box's own records, and ``rebinding.allow``."""
        rb = cfg.rebinding
        if not rb.enabled:
            return None
        lz = cfg.local_zone
        local = [z.zone for z in lz.forward_zones] + [parse_record(r).name for r in lz.records]
        return RebindingStage([*local, *rb.allow], rb.networks)

    def _shared_stages(
        self, cfg: Config, worker: int
    ) -> tuple[AclStage, ProtocolStage, LocalZoneStage, RecursionStage, MinimalAnyStage, Stage]:
        zones = cfg.local_zone.forward_zones
        routes = [
            (z.zone, tuple(Upstream(*parse_hostport(s, 53)) for s in z.servers)) for z in zones
        ]
        return (
            AclStage((ipaddress.ip_network(n, strict=False) for n in cfg.acl.allow), self.errors),
            ProtocolStage(),
            LocalZoneStage(
                [parse_record(r) for r in cfg.local_zone.records],
                [(z.zone, z.trusted) for z in zones],
                cfg.local_zone.private_reverse,
                f"parafoudre-{socket.gethostname()[:40]}-w{worker}",
            ),
            RecursionStage(),
            MinimalAnyStage(),
            UpstreamStage(upstream_addresses(cfg.upstream), routes),
        )

    def stats(self) -> StatsSnapshot:
        """The counters now; called by the dashboard and /metrics, never per query."""
        svc = self.service
        return StatsSnapshot(
            started_at=self.started_at,
            queries_by_verdict=dict(svc.counts),
            malformed=svc.malformed,
            dropped=svc.dropped,
            cache_hits=sum(c.hits for c in self._caches()),
            cache_misses=sum(c.misses for c in self._caches()),
            cache_entries=sum(len(c.entries) for c in self._caches()),
            upstream_failures=self.upstream.failures,
            upstream_latency_counts=tuple(self.upstream.latency_counts),
            upstream_latency_sum=self.upstream.latency_sum,
            blocklist_entries=len(self.lists.blocklist.current),
            list_reloads=self.lists.reloads,
            list_reload_failures=self.lists.failures,
            stale_lists=self.lists.stale(),
            blocks_by_group=dict(svc.blocks_by_group or {}),
            blocklog_dropped=self.blocklog.dropped,
            blocklog_written=self.blocklog.written,
            blocklog_write_failed=self.blocklog.write_failed,
            upstream_answering=upstream_answering(
                self.upstream.health.get(u) for u in upstream_addresses(self.cfg.upstream)
            ),
            detector_mode=self.cfg.exfiltration.mode,
            blocklog_failing=self.blocklog.failing,
        )

    def _caches(self) -> list[CacheStage]:
        chain = self.chain
        pipelines = chain.pipelines if isinstance(chain, GroupedPipeline) else (chain,)
        return [p.cache for p in pipelines if isinstance(p.cache, CacheStage)]

    def describe(self) -> list[str]:
        lines = [f"-> {s.name}: {s.describe()}" for s in self.stages]
        for g in self.cfg.groups:
            what = "not filtered" if not g.filter else "its own cache"
            if g.filter and (g.categories or g.sources):
                what += ", blocks only " + ", ".join((*g.categories, *g.sources))
            if g.filter and g.block_mode:
                what += f", answer {g.block_mode}"
            if g.filter and g.exfiltration:
                what += f", exfiltration {g.exfiltration}"
            if g.filter and g.dga:
                what += f", generated domains {g.dga}"
            lines.append(f"-> group {g.name} ({', '.join((*g.networks, *g.clients))}): {what}")
        return lines

    async def start(self) -> None:
        """Load lists, open the block log, bind every listen address (UDP and TCP)."""
        self.lists.load_now()
        self.blocklog.start()
        loop = asyncio.get_running_loop()
        for spec in self.cfg.server.listen:
            host, port = parse_hostport(spec, 53)
            port = await self._bind(loop, host, port)
            self.bound.append((host, port))
        if self.encrypted.enabled:
            await self._start_encrypted(loop)
        self._watch = loop.create_task(self.lists.watch())
        self._detections = loop.create_task(self._report_detections())
        if self.worker == 0:  # every worker has the same chain: say it once
            for line in self.describe():
                log.info("%s", line)
            _say_how_compiled()
            if not len(self.lists.blocklist.current):
                # A fresh install blocks nothing until the feeds are downloaded: say so first,
                # with what to do (issue 22), not as an INFO count among others.
                log.warning(
                    "no threat list is loaded: nothing is blocked by name until you run "
                    "`parafoudre feeds update -c FILE` (deploy/parafoudre-feeds.timer runs it "
                    "every hour)"
                )
        # IPv6 in brackets, as in the config: "[::1]:53", never the ambiguous "::1:53".
        where = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.bound)
        if self.workers > 1:
            log.info("worker %d of %d listening on %s", self.worker + 1, self.workers, where)
        else:
            log.info("listening on %s", where)

    async def _start_encrypted(self, loop: asyncio.AbstractEventLoop) -> None:
        enc = self.encrypted
        await enc.start(loop, lambda h, p: _socket(h, p, socket.SOCK_STREAM, self.workers))
        if self.cfg.server.ddr:  # RFC 9462: clients that ask resolver.arpa learn of them
            self.canaries.advertise(enc.name, enc.endpoints(), enc.hints())
        if self.worker == 0:
            log.info("encrypted DNS: %s", enc.describe())

    async def _report_detections(self, interval: float = 1.0) -> None:
        """What the stages noticed, said in the log off the query path, a few lines whatever
        the flood (issue 14): each machine judged infected (DGA); each exfiltration client x
        domain once per cool-down, then as counts, never the name's payload; each client being
        rate-limited, and the rebinding answers dropped, once a minute while it lasts."""
        exfil: Summary[tuple[str, str]] = Summary(self.cfg.exfiltration.cooldown)
        limited: Summary[str] = Summary(60.0)
        rebound: Summary[str] = Summary(60.0)
        seen_rebinding = 0
        minute = int(time.time() // 60)
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            dgas, exfils = self._detectors()
            for dga in dgas:
                self._report_dga(dga)
            for ex in exfils:
                _report_exfiltration(ex.drain(), exfil, now)
            if self.rate_limit is not None:
                _report_limited(self.rate_limit, limited, now)
            if self.rebinding is not None:
                seen_rebinding = _report_rebinding(self.rebinding, rebound, seen_rebinding, now)
            if int(now // 60) != minute:  # once a minute: what no line itemised
                minute = int(now // 60)
                _report_others(exfil.take_others(), limited.take_others())

    def _detectors(self) -> tuple[list[DgaStage], list[ExfiltrationStage]]:
        """Each group's detectors, each once (groups without choices of their own share the
        default's)."""
        dgas = {id(o.dga): o.dga for o in self._owned if o.dga is not None}
        exfils = {
            id(o.exfiltration): o.exfiltration for o in self._owned if o.exfiltration is not None
        }
        return list(dgas.values()), list(exfils.values())

    @staticmethod
    def _report_dga(stage: DgaStage) -> None:
        for j in stage.drain():
            log.warning(
                "generated domains: client %s looks up many invented names (%d never-resolved "
                "domains, last %r, TLDs %s): probably infected%s",
                j.client,
                j.domains,
                j.qname[:255],
                ",".join(j.tlds),
                "; its lookups of that shape are blocked" if j.blocked else " (detect mode)",
            )

    async def _bind(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> int:
        # With port 0, take the UDP port the kernel picks and ask for the same one over TCP.
        for _ in range(20):
            udp_sock = _socket(host, port, socket.SOCK_DGRAM, self.workers)
            bound_port = int(udp_sock.getsockname()[1])
            try:
                tcp_sock = _socket(host, bound_port, socket.SOCK_STREAM, self.workers)
            except ListenError:
                udp_sock.close()
                if port:
                    raise
                continue
            udp = UdpServer(self.service, udp_sock)
            udp.start(loop)
            server = await loop.create_server(
                lambda: TcpConnection(self.service, self.tcp_limits), sock=tcp_sock, backlog=256
            )
            self.udp.append(udp)
            self.tcp.append(server)
            return bound_port
        raise ListenError(f"cannot listen on {host}: no port free for both UDP and TCP")

    async def reload(self) -> bool:
        return await self.lists.reload(everything=True)

    async def stop(self, drain: float = 2.0) -> None:
        """Stop listening, let in-flight queries finish, flush the block log."""
        if self._watch is not None:
            self._watch.cancel()
        if self._detections is not None:
            self._detections.cancel()
        for server in self.tcp:
            server.close()
        # Cache misses are forwarded with callbacks (Service.forward): no task to wait for.
        until = time.monotonic() + drain
        while self.service.inflight > 0 and time.monotonic() < until:  # noqa: ASYNC110 -- a counter, no event to wait on
            await asyncio.sleep(0.01)
        for udp in self.udp:
            udp.close()
        await self.encrypted.stop()
        for conn in list(self.tcp_limits.connections):
            conn.close()
        await self.upstream.close()
        await asyncio.to_thread(self.blocklog.close)


def _report_exfiltration(
    found: list[Detection], summary: Summary[tuple[str, str]], now: float
) -> None:
    """One line per client x registered domain per cool-down, then counts. The name's labels
    left of the domain are the payload (data smuggled out): only their size is said."""
    for d in found:
        if summary.event((d.client, d.domain), now):
            log.warning(
                "exfiltration %s: client %s, domain %r, signals %s (a %d-character name of "
                "type %d; further detections for this pair are counted)",
                "blocked" if d.blocked else "detected (detect mode, not blocked)",
                d.client,
                d.domain[:255],
                ",".join(d.signals),
                len(d.qname),
                d.qtype,
            )
    for (client, domain), n in summary.due(now):
        log.warning(
            "exfiltration: client %s, domain %r: %d more detections in the last %.0f s",
            client,
            domain[:255],
            n,
            summary.every,
        )


def _report_limited(stage: RateLimitStage, summary: Summary[str], now: float) -> None:
    """Each limited client named once a minute while it is (never per query)."""
    by_client, others = stage.drain_limited()
    summary.others += others
    for client, n in by_client.items():
        if summary.event(client, now, n):
            log.warning(
                "rate limit: client %s sends more than %g queries/s; %d dropped so far (a "
                "forwarder for the whole mairie belongs in rate_limit.exempt)",
                client,
                stage.rate,
                n,
            )
    for client, n in summary.due(now):
        log.warning(
            "rate limit: client %s still limited, %d queries dropped in a minute", client, n
        )


def _report_rebinding(stage: RebindingStage, summary: Summary[str], seen: int, now: float) -> int:
    """Rebinding answers dropped, once a minute while they come; returns the count seen."""
    new = stage.dropped - seen
    if new and summary.event("rebinding", now, new):
        log.warning(
            "rebinding: an answer with a private address for the public name %r was dropped "
            "(rebinding.allow lets a name through)",
            stage.last_name[:255],
        )
    for _, n in summary.due(now):
        log.warning(
            "rebinding: %d more answers dropped in a minute (last %r)", n, stage.last_name[:255]
        )
    return stage.dropped


def _report_others(exfiltrations: int, limited: int) -> None:
    if exfiltrations:
        log.warning("exfiltration: %d more detections not itemised (too many pairs)", exfiltrations)
    if limited:
        log.warning("rate limit: %d more queries dropped from clients not itemised", limited)


# Young-generation size before the cyclic GC runs (CPython's default is 700). A query waiting for
# its upstream lives for milliseconds: with the default, a busy server's collections catch
# thousands of them in flight, promote them to the old generation, and that triggers full
# collections over the whole answer cache (measured: a fifth of the CPU of a cache miss). With a
# larger young generation they die before any collection sees them.
GC_YOUNG: Final = 50_000


def _tune_gc() -> None:
    """Once started: freeze what start-up built, and collect the young generation less often."""
    gc.collect()
    # Start-up objects (modules, config, lists) live as long as the process: out of every
    # future collection's way.
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, older, oldest)


def _log_pusher_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        # The observatory is a report, not a service: DNS goes on without it.
        log.error("observatory push stopped: %s", task.exception())


async def _start_page(
    app: App, cfg: Config
) -> tuple[web.AppRunner | None, list[asyncio.Task[None]]]:
    """For the first worker only (the block log is shared): the weather page, the machines'
    names it shows and the alerts, kept going by tasks. No runner when the page is off or
    cannot start."""
    if not cfg.dashboard.enabled and not cfg.alerts.enabled():
        return None, []  # nobody to show a name to
    from resolver.client_names import ClientNames
    from resolver.feeds_status import feeds_status

    loop = asyncio.get_running_loop()
    fcfg = cfg.feeds_config()
    zones = [
        (z.zone, [parse_hostport(s, 53) for s in z.servers]) for z in cfg.local_zone.forward_zones
    ]
    names = ClientNames(cfg.clients, zones)
    tasks = [loop.create_task(names.run())]
    if cfg.alerts.enabled():
        from dashboard.alerts import Alerter

        alerter = Alerter(
            cfg.alerts,
            cfg.dashboard,
            db_path=cfg.blocklog_path(),
            state_path=cfg.state_path() / "alerts.json",
            feeds_status=lambda: feeds_status(fcfg),
            names=names.name,
        )
        tasks.append(loop.create_task(alerter.run()))
    if not cfg.dashboard.enabled:
        return None, tasks
    from dashboard.app import start_dashboard
    from resolver import __version__
    from resolver.operator_allowlist import OperatorAllowlist

    try:
        runner = await start_dashboard(
            cfg.dashboard,
            db_path=cfg.blocklog_path(),
            stats=app.stats,
            feeds_status=lambda: feeds_status(fcfg),
            version=__version__,
            # Allowing from the page writes the file every worker watches (lists.watch).
            allowing=OperatorAllowlist(app.lists.operator_path, cfg.blocklog_path()),
            client_names=names.name,
            # Blocks per group: each machine's group judged from the config (networks, names).
            groups=group_networks(cfg.groups, cfg.clients.names),
        )
    except ParafoudreError as exc:
        # The page is a convenience; the commune's DNS must not stop for it.
        log.error("weather page not started, DNS goes on: %s", exc)
        return None, tasks
    return runner, tasks


def _start_push(cfg: Config, stop: asyncio.Event) -> asyncio.Task[None] | None:
    """One outbox per box: the first worker pushes the (shared) block log's new rows."""
    if not cfg.observatory.enabled:
        return None
    from resolver.observatory_push.outbox import run_pusher

    task = asyncio.get_running_loop().create_task(
        run_pusher(
            cfg.observatory,
            blocklog_path=cfg.blocklog_path(),
            state_dir=cfg.state_path(),
            stop=stop,
        )
    )
    task.add_done_callback(_log_pusher_end)
    return task


async def serve(
    cfg: Config, ready: asyncio.Event | None = None, worker: int = 0, workers: int = 1
) -> int:
    """Run until SIGTERM or SIGINT; SIGHUP reloads the lists. Returns the exit code."""
    app = App(cfg, worker, workers)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task[bool]] = set()
    started = False
    hup_pending = False

    def on_hup() -> None:
        nonlocal hup_pending
        if not started:
            hup_pending = True  # reload once started: the files may have changed meanwhile
            return
        t = loop.create_task(app.reload())
        reloads.add(t)
        t.add_done_callback(reloads.discard)

    # Before binding: a SIGHUP or SIGTERM that arrives while the sockets already answer (the
    # supervisor passes them on at any time) must not hit the default action and kill us.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    # A worker starts with them blocked (resolver/supervisor.py): what came meanwhile is
    # delivered now, to the handlers above.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGHUP, signal.SIGTERM, signal.SIGINT))
    await app.start()
    started = True
    # Answering now: systemd (Type=notify) may send a reload. A worker of the supervisor has no
    # NOTIFY_SOCKET: the supervisor speaks for them all.
    sd_notify.notify("READY=1")
    if hup_pending:
        on_hup()
    dashboard, page_tasks = await _start_page(app, cfg) if worker == 0 else (None, [])
    push_stop = asyncio.Event()
    push_task = _start_push(cfg, push_stop) if worker == 0 else None
    _tune_gc()
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("stopping: draining queries and flushing the block log")
    for task in page_tasks:
        task.cancel()
    if dashboard is not None:
        await dashboard.cleanup()
    if push_task is not None:
        push_stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(push_task, 5)
    await app.stop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(sig)
    log.info("stopped")
    return 0
