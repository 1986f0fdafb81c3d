"""The box's encrypted listeners, DNS over TLS and DNS over HTTPS, opened and closed together.

Both serve through the one Service (ACL, rate limit, policy chain) with the certificate the
config names, or a self-signed one made at first start (``resolver.net.certificate``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable
from pathlib import Path

from resolver.config.server import ServerConfig
from resolver.config.values import parse_hostport
from resolver.net import certificate, doh_server, dot_server
from resolver.net.doh_server import DohServer
from resolver.net.service import Service
from resolver.net.tcp import TcpLimits
from resolver.stages.canaries import Endpoint

log = logging.getLogger(__name__)

Bind = Callable[[str, int], socket.socket]  # a bound, listening, non-blocking TCP socket


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class EncryptedListeners:
    def __init__(self, service: Service, cfg: ServerConfig, state_dir: Path) -> None:
        self.cfg = cfg
        self.state_dir = state_dir
        self.name = certificate.server_name(cfg)
        self.limits = TcpLimits(
            cfg.encrypted_idle_timeout, cfg.encrypted_max_connections, cfg.tcp_max_pipelined
        )
        # Made in start(): aiohttp's server wants the running loop, and App() is built without.
        self.doh: DohServer | None = None
        self.service = service
        self.servers: list[asyncio.Server] = []
        self.bound: list[tuple[str, str, int]] = []  # (kind "dot"/"doh", host, port)
        self.certificate: Path | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.cfg.tls_listen or self.cfg.https_listen)

    def _hosts(self) -> list[str]:
        specs = (*self.cfg.tls_listen, *self.cfg.https_listen)
        return list(dict.fromkeys(parse_hostport(s, 0)[0] for s in specs))

    async def start(self, loop: asyncio.AbstractEventLoop, bind: Bind) -> None:
        """Make or read the certificate, then bind every TLS and HTTPS address."""
        cert, key, self_signed = certificate.configured(self.cfg, self.state_dir)
        if self_signed:
            directory = certificate.self_signed_dir(self.state_dir)
            cert, key = await asyncio.to_thread(
                certificate.ensure_self_signed, directory, self.name, self._hosts()
            )
        self.certificate = cert
        for kind, specs, alpn in (
            ("dot", self.cfg.tls_listen, "dot"),
            ("doh", self.cfg.https_listen, "http/1.1"),
        ):
            if not specs:
                continue
            ctx = certificate.server_context(cert, key)
            ctx.set_alpn_protocols([alpn])
            default = dot_server.DEFAULT_PORT if kind == "dot" else doh_server.DEFAULT_PORT
            for spec in specs:
                host, port = parse_hostport(spec, default)
                sock = bind(host, port)
                if kind == "dot":
                    server = await dot_server.start_dot(loop, self.service, sock, ctx, self.limits)
                else:
                    if self.doh is None:
                        cfg = self.cfg
                        self.doh = DohServer(
                            self.service, cfg.encrypted_idle_timeout, cfg.encrypted_max_connections
                        )
                    server = await doh_server.start_doh(loop, self.doh, sock, ctx)
                self.servers.append(server)
                self.bound.append((kind, host, int(sock.getsockname()[1])))

    def endpoints(self) -> list[Endpoint]:
        """One per distinct (kind, port): what DDR advertises."""
        return list(dict.fromkeys(Endpoint(kind, port) for kind, _, port in self.bound))

    def hints(self) -> list[str]:
        """The specific addresses listened on (not 0.0.0.0 nor ::): DDR's address hints."""
        hosts = dict.fromkeys(h for _, h, _ in self.bound)
        return [h for h in hosts if not ipaddress.ip_address(h).is_unspecified]

    def describe(self) -> str:
        parts = [
            f"DNS over TLS on {_where(h, p)}"
            if k == "dot"
            else f"DNS over HTTPS on https://{_where(h, p)}{doh_server.PATH}"
            for k, h, p in self.bound
        ]
        return "; ".join(parts) + f" (certificate {self.certificate})"

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for conn in list(self.limits.connections):
            conn.close()
        if self.doh is not None:
            self.doh.stop()
