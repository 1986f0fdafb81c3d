"""``parafoudre doctor``: check a running installation and say what to fix, in plain words.

Each check prints one line::

    OK   what was checked
    WARN what looks wrong — what to do
    FAIL what is broken — what to do

and the result is 0 when nothing FAILs (warnings included), 1 otherwise, so the same command
serves a person at a terminal, a monitoring probe and a container HEALTHCHECK.

Every network check is one exchange with a short timeout, sent from this process with blocking
sockets and driven by the resolver's own ``Resolution`` (encrypted upstreams through the
resolver's own DoT/DoH transports, on a short-lived event loop of their own); nothing is sent
anywhere but to the addresses of the configuration (the listen addresses, the upstreams, the
forwarding servers).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import re
import secrets
import shutil
import socket
import sqlite3
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TextIO

from resolver.blocklog.schema import BlockLogError, SchemaError, open_db
from resolver.config.schema import Config, parse_hostport
from resolver.core import wire
from resolver.core.resolution import Resolution, UpstreamHealth
from resolver.core.steps import Upstream
from resolver.net import certificate, framing
from resolver.net.upstream_query import build_probe, matches
from resolver.upstreams import upstream_addresses

OK: Final = "OK"
WARN: Final = "WARN"
FAIL: Final = "FAIL"

TIMEOUT: Final = 2.0  # seconds per query: a healthy box on the LAN answers in milliseconds
FEEDS_MAX_AGE: Final = 2 * 86_400  # the timer runs hourly: two days old means it is stuck
DISK_WARN: Final = 100 * 1024 * 1024
DISK_FAIL: Final = 10 * 1024 * 1024
MIN_YEAR: Final = 2024

_SERVICE_HINT = "start it: `systemctl start parafoudre`, then read `journalctl -u parafoudre -e`"


@dataclass(frozen=True, slots=True)
class _Result:
    status: str
    text: str
    fix: str = ""

    def line(self) -> str:
        fix = f" — {self.fix}" if self.fix and self.status != OK else ""
        return f"{self.status:<4} {self.text}{fix}"


# --- DNS over raw sockets ------------------------------------------------------------------------


class _NoAnswer(Exception):
    """No usable answer: the message says why, in plain words."""


def _query(name: str, qtype: int, qclass: int = wire.C_IN) -> bytes:
    """A query with a fresh random ID, RD and EDNS: the shape ``upstream_query.matches`` reads."""
    return (
        wire.HEADER.pack(secrets.randbits(16), wire.RD, 1, 0, 0, 1)
        + wire.name_to_wire(name)
        + wire.U16.pack(qtype)
        + wire.U16.pack(qclass)
        + wire.build_opt(1232, False)
    )


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _udp_once(host: str, port: int, msg: bytes, wait: float) -> bytes:
    """One try over UDP: the reply that answers ``msg``; TimeoutError or OSError if none."""
    deadline = time.monotonic() + wait
    with socket.socket(_family(host), socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        sock.send(msg)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            reply = sock.recv(65535)
            if matches(reply, msg):
                return reply
            # A stray datagram: keep waiting for ours.


def _tcp_once(host: str, port: int, msg: bytes, wait: float) -> bytes:
    """One try over TCP (RFC 7766 framing): the reply that answers ``msg``, or OSError."""
    deadline = time.monotonic() + wait
    with socket.create_connection((host, port), timeout=wait) as sock:
        sock.sendall(framing.frame(msg))
        buf = bytearray()
        while True:
            reply = framing.pop_frame(buf)
            if reply is not None:
                if matches(reply, msg):
                    return reply
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            chunk = sock.recv(65537)
            if not chunk:
                raise ConnectionResetError(0, "the connection was closed without an answer")
            buf += chunk


def _why(exc: OSError, timeout: float) -> _NoAnswer:
    if isinstance(exc, TimeoutError):
        return _NoAnswer(f"no answer within {timeout:g} s")
    if isinstance(exc, ConnectionRefusedError):
        return _NoAnswer("nothing listens there (connection refused)")
    return _NoAnswer(_oserror(exc))


def ask_udp(host: str, port: int, msg: bytes, timeout: float) -> bytes:
    """Send ``msg`` once over UDP; the reply, or _NoAnswer saying why none came."""
    try:
        return _udp_once(host, port, msg, timeout)
    except OSError as exc:  # TimeoutError included
        raise _why(exc, timeout) from None


def ask_tcp(host: str, port: int, msg: bytes, timeout: float) -> bytes:
    """Send ``msg`` once over TCP; the reply, or _NoAnswer saying why none came."""
    try:
        return _tcp_once(host, port, msg, timeout)
    except OSError as exc:
        raise _why(exc, timeout) from None


def exchange_plain(up: Upstream, make: Callable[[], bytes], timeout: float) -> bytes:
    """Ask a plain DNS server as the resolver does, within ``timeout`` seconds.

    The resolver's own ``Resolution`` (resolver.core.resolution) drives the tries: UDP, the
    same server over TCP when truncated, a lost datagram asked once more. Returns the reply,
    an error answer (REFUSED, SERVFAIL) included; raises _NoAnswer saying why none came.
    ``make`` builds each try's query (a fresh ID each time).
    """
    res = Resolution(UpstreamHealth(), (up,), time.monotonic(), timeout / 2, timeout)
    why = _NoAnswer(f"no answer within {timeout:g} s")
    while (t := res.next_try(time.monotonic())) is not None:
        reply: bytes | None = None
        try:
            reply = (_tcp_once if t.tcp else _udp_once)(up.host, up.port, make(), t.wait)
        except OSError as exc:
            why = _why(exc, timeout)
        res.query_result(reply, time.monotonic())
    if res.response is None:
        raise why
    return res.response


def ask_upstream(up: Upstream, timeout: float, ssl_context: ssl.SSLContext | None) -> bytes:
    """Ask one upstream ``. NS`` as the resolver does (plain DNS, DNS over TLS or over HTTPS)."""
    if up.kind == "udp":
        return exchange_plain(up, lambda: build_probe(secrets.randbits(16)), timeout)
    return asyncio.run(_ask_encrypted(up, build_probe(secrets.randbits(16)), timeout, ssl_context))


async def _ask_encrypted(
    up: Upstream, msg: bytes, wait: float, ssl_context: ssl.SSLContext | None
) -> bytes:
    # The resolver's own transports: the same certificate checks, the same framing. Imported
    # here: aiohttp is loaded only when an https:// upstream is checked.
    from resolver.net.upstream_https import HttpsUpstream
    from resolver.net.upstream_tls import TlsUpstream

    transport: TlsUpstream | HttpsUpstream
    try:
        if up.kind == "tls":
            transport = TlsUpstream(
                up.host, up.port, server_name=up.server_name, ssl_context=ssl_context
            )
        else:
            transport = HttpsUpstream(up.url, address=up.host or None, ssl_context=ssl_context)
    except ValueError as exc:
        raise _NoAnswer(str(exc)) from None
    try:
        return await transport.exchange(msg, wait)
    except ssl.SSLCertVerificationError as exc:
        # aiohttp's ClientConnectorCertificateError is one too, without verify_message.
        why = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or exc
        raise _NoAnswer(
            f"its certificate is refused ({why}): check the name after '#' and the box's clock"
        ) from None
    except ssl.SSLError as exc:
        raise _NoAnswer(f"the TLS handshake failed ({exc.reason or exc})") from None
    except OSError as exc:  # TimeoutError and ConnectionRefusedError included
        raise _why(exc, wait) from None
    except ValueError as exc:
        raise _NoAnswer(str(exc)) from None
    finally:
        await transport.close()


def _rcode(reply: bytes) -> int:
    return int(wire.HEADER.unpack_from(reply)[1] & wire.RCODE_MASK)


def _answer_count(reply: bytes) -> int:
    return int(wire.HEADER.unpack_from(reply)[3])


def _first_txt(reply: bytes) -> str | None:
    """The first string of the first TXT answer, printable, or None."""
    try:
        _, rrs = wire.walk(reply)
    except wire.WireError:
        return None
    for rr in rrs:
        if rr.section == 0 and rr.rtype == wire.T_TXT and rr.rdlength:
            size = reply[rr.rdata_at]
            text = reply[rr.rdata_at + 1 : rr.rdata_at + 1 + size][:64]
            return "".join(chr(c) if 32 < c < 127 else "?" for c in text)
    return None


def _oserror(exc: OSError) -> str:
    if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "no route to it (network unreachable)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "this machine has no such address"
    return exc.strerror or str(exc)


def _rcode_name(rcode: int) -> str:
    names = {
        wire.NOERROR: "NOERROR",
        wire.FORMERR: "FORMERR",
        wire.SERVFAIL: "SERVFAIL",
        wire.NXDOMAIN: "NXDOMAIN",
        wire.NOTIMP: "NOTIMP",
        wire.REFUSED: "REFUSED",
    }
    return names.get(rcode, f"rcode {rcode}")


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- the checks ----------------------------------------------------------------------------------


def _check_config(config_path: Path | None) -> list[_Result]:
    what = str(config_path) if config_path is not None else "the embedded default config"
    return [_Result(OK, f"config: {what} is valid")]


# What Parafoudre answers to id.server CH TXT (RFC 4892): "parafoudre-<host>-w<worker>"
# (resolver.app); another DNS server names itself otherwise, or refuses the question.
_OUR_IDENTITY: Final = re.compile(r"parafoudre-.*-w[0-9]+")


def _identity_problem(host: str, port: int, timeout: float) -> str | None:
    """Why what answers DNS at host:port is not Parafoudre, or None if it is."""
    try:
        reply = ask_udp(host, port, _query("id.server", wire.T_TXT, wire.C_CH), timeout)
    except _NoAnswer as exc:
        return f"it does not say who it is (id.server CH TXT: {exc})"
    name = _first_txt(reply)
    if name is not None and _OUR_IDENTITY.fullmatch(name):
        return None
    if name is not None:
        return f"it calls itself {name!r} (id.server CH TXT)"
    return (
        f"it answers id.server CH TXT with {_rcode_name(_rcode(reply))}, Parafoudre with its name"
    )


def _check_listen(cfg: Config, timeout: float) -> list[_Result]:
    results: list[_Result] = []
    for spec in cfg.server.listen:
        host, port = parse_hostport(spec, 53)
        if port == 0:
            results.append(
                _Result(
                    WARN,
                    f"listen {spec}: port 0 means any free port, so it cannot be checked",
                    "give a fixed port in server.listen (53 in production)",
                )
            )
            continue
        # A wildcard address answers on loopback too.
        target = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
        results.extend(_check_one_listen(target, port, _where(host, port), timeout))
    return results


def _check_one_listen(target: str, port: int, where: str, timeout: float) -> list[_Result]:
    problems: list[_Result] = []
    refused = udp_silent = False
    for proto, ask in (("UDP", ask_udp), ("TCP", ask_tcp)):
        try:
            reply = ask(target, port, _query("localhost", wire.T_A), timeout)
        except _NoAnswer as exc:
            problems.append(_Result(FAIL, f"listen {where} ({proto}): {exc}", _SERVICE_HINT))
            udp_silent = udp_silent or proto == "UDP"
            continue
        rcode, count = _rcode(reply), _answer_count(reply)
        if rcode == wire.REFUSED:
            refused = True
            problems.append(
                _Result(
                    WARN,
                    f"listen {where} ({proto}): answers, but REFUSED this machine",
                    "add the box's own addresses (127.0.0.0/8 and its LAN address) to acl.allow",
                )
            )
        elif rcode != wire.NOERROR or count == 0:
            problems.append(
                _Result(
                    WARN,
                    f"listen {where} ({proto}): answers 'localhost' with "
                    f"{_rcode_name(rcode)} and {count} records",
                    "check local_zone.records for a 'localhost' entry",
                )
            )
    if refused or udp_silent:
        return problems  # nothing answers, or we may not ask: who it is cannot be told
    other = _identity_problem(target, port, timeout)
    if other is not None:
        # Another program holds the address: whatever it answers, Parafoudre protects nobody.
        return [
            _Result(
                FAIL,
                f"listen {where}: something answers DNS there, but not Parafoudre: {other}",
                f"another DNS server holds this address (dnsmasq, systemd-resolved, unbound?): "
                f"`ss -lunp 'sport = :{port}'` names it; stop it or give Parafoudre another "
                "address in server.listen, then start Parafoudre",
            )
        ]
    return problems or [_Result(OK, f"listen {where}: Parafoudre answers over UDP and TCP")]


def _check_upstreams(
    cfg: Config, timeout: float, ssl_context: ssl.SSLContext | None
) -> list[_Result]:
    """Each upstream asked ``. NS``: answers, refuses, fails, or gives no answer at all.

    The advice depends on which: the network only when no upstream replied at all (one that
    REFUSED was reached: the cable is fine).
    """
    outcomes: list[tuple[Upstream, int | _NoAnswer]] = []
    for up in upstream_addresses(cfg.upstream):
        try:
            outcomes.append((up, _rcode(ask_upstream(up, timeout, ssl_context))))
        except _NoAnswer as exc:
            outcomes.append((up, exc))
    good = sum(1 for _, o in outcomes if o in (wire.NOERROR, wire.NXDOMAIN))
    replied = sum(1 for _, o in outcomes if not isinstance(o, _NoAnswer))
    bad = FAIL if good == 0 else WARN  # one bad upstream of several: the others take over
    results: list[_Result] = []
    for up, o in outcomes:
        where = f"upstream {up}"
        if isinstance(o, _NoAnswer):
            fix = _UPSTREAM_NETWORK if replied == 0 else _UPSTREAM_ONE_SILENT
            if good:
                fix = "the others take over; if it stays down, remove it from upstream.servers"
            results.append(_Result(bad, f"{where}: {o}", fix))
        elif o in (wire.NOERROR, wire.NXDOMAIN):
            results.append(_Result(OK, f"{where}: answers"))
        elif o == wire.REFUSED:
            results.append(_Result(bad, f"{where}: reached, but REFUSES our queries", _REFUSED))
        elif o == wire.SERVFAIL:
            results.append(
                _Result(bad, f"{where}: reached, but answers SERVFAIL even for the root", _SERVFAIL)
            )
        else:
            text = f"{where}: reached, but answers {_rcode_name(o)} to a simple query"
            results.append(_Result(bad, text, _UPSTREAM_REPLACE))
    return results


_UPSTREAM_NETWORK: Final = (
    "the box cannot reach any upstream resolver: check its network cable, its gateway "
    "(`ip route`) and that the firewall lets it out (port 53 UDP and TCP for plain "
    "entries, 853 for tls://, 443 for https://)"
)
_UPSTREAM_ONE_SILENT: Final = (
    "other upstreams reply, so the box's network works: this one is down or filtered on the "
    "way; check its address in upstream.servers"
)
_REFUSED: Final = (
    "this server does not serve this box (its access list): if it is your provider's or your "
    "own, allow the box's public address there; otherwise use another in upstream.servers"
)
_SERVFAIL: Final = (
    "it is up but cannot resolve anything now (its own upstreams, or DNSSEC with a wrong "
    "clock on that server): wait and run doctor again, or use another in upstream.servers"
)
_UPSTREAM_REPLACE: Final = "use another resolver in upstream.servers"


def _check_forward_zones(cfg: Config, timeout: float) -> list[_Result]:
    results: list[_Result] = []
    for fz in cfg.local_zone.forward_zones:
        good: list[str] = []
        bad: list[str] = []
        for spec in fz.servers:
            host, port = parse_hostport(spec, 53)
            up = Upstream(host, port)
            try:
                reply = exchange_plain(up, functools.partial(_query, fz.zone, wire.T_SOA), timeout)
            except _NoAnswer as exc:
                bad.append(f"{_where(host, port)} {exc}")
                continue
            rcode = _rcode(reply)
            if rcode in (wire.NOERROR, wire.NXDOMAIN):
                good.append(_where(host, port))
            else:
                bad.append(f"{_where(host, port)} answers {_rcode_name(rcode)}")
        if not bad:
            results.append(_Result(OK, f"forward zone {fz.zone}: {', '.join(good)} answer"))
            continue
        status = WARN if good else FAIL
        fix = (
            "check that this server is up and really hosts this zone (on Windows: DNS Manager, "
            "Forward/Reverse Lookup Zones); a zone it does not host must not be forwarded to it"
        )
        results.append(_Result(status, f"forward zone {fz.zone}: {'; '.join(bad)}", fix))
    return results


def _check_feeds(cfg: Config, config_arg: str, now: float) -> list[_Result]:
    path = cfg.compiled_path()
    update = f"`parafoudre feeds update{config_arg}`"
    try:
        st = path.stat()
    except FileNotFoundError:
        return [
            _Result(
                WARN,
                f"feeds: no compiled blocklist at {path}, only the operator's own lists block",
                f"run {update} (or wait for parafoudre-feeds.timer), then "
                "`systemctl status parafoudre-feeds`",
            )
        ]
    except OSError as exc:
        return [
            _Result(
                FAIL,
                f"feeds: cannot read {path}: {exc.strerror}",
                "check the state directory's owner and permissions",
            )
        ]
    try:
        from resolver import blocklist_file
    except ImportError:  # pragma: no cover - the artifact module ships with the resolver
        version_problem = None
    else:
        try:
            blocklist_file.read(path)
            version_problem = None
        except blocklist_file.BlocklistFileError as exc:
            version_problem = str(exc)
    if version_problem is not None:
        return [
            _Result(
                FAIL,
                f"feeds: the compiled blocklist is refused: {version_problem}",
                f"run {update} with this version of Parafoudre",
            )
        ]
    age = now - st.st_mtime
    when = datetime.fromtimestamp(st.st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")
    if age > FEEDS_MAX_AGE:
        return [
            _Result(
                WARN,
                f"feeds: the compiled blocklist is {age / 86_400:.1f} days old (updated {when})",
                "updates are failing or stopped: `systemctl status parafoudre-feeds.timer`, "
                f"`journalctl -u parafoudre-feeds -e`, or run {update}",
            )
        ]
    return [_Result(OK, f"feeds: compiled blocklist updated {when}")]


def _check_list_files(cfg: Config) -> list[_Result]:
    """The operator's list files, read as the server reads them at a reload.

    One that cannot be read is stale in the running server: it keeps the last copy it read
    (none if it started without the file) until the file is back and the lists are reloaded.
    """
    from resolver.blocklist_holder import operator_files
    from resolver.list_files import ListFileError, read_names

    block, allow = operator_files(cfg)
    results = []
    for f in [*block, *allow]:
        what = f"{'list' if f.kind == 'blocklist' else 'allowlist'} {f.name}"
        if f.optional and not f.path.exists():
            # The operator's allowlist: written at the first `parafoudre allow`, none before.
            results.append(_Result(OK, f"{what}: no name allowed yet ({f.path})"))
            continue
        try:
            count = sum(1 for _ in read_names(f.path))
        except ListFileError as exc:
            results.append(
                _Result(
                    FAIL if f.kind == "blocklist" else WARN,
                    f"{what}: {f.path} cannot be read ({exc.reason}): the server's copy is "
                    "stale (the last one it read, or none if it started without it)",
                    "put the file back or fix its path in the config, then "
                    "`systemctl reload parafoudre`",
                )
            )
            continue
        results.append(_Result(OK, f"{what}: {f.path}, {count} names"))
    return results


def _existing_parent(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _dir_problem(path: Path) -> str | None:
    """Why this process could not write files in ``path`` (created if missing), or None."""
    if path.exists():
        if not path.is_dir():
            return f"{path} is not a directory"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"{path} is not writable by this user (uid {os.getuid()})"
        return None
    parent = _existing_parent(path)
    if not parent.is_dir():
        return f"{path} cannot be created: {parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{path} does not exist and cannot be created here (uid {os.getuid()})"
    return None


def _check_state_dir(cfg: Config) -> list[_Result]:
    path = cfg.state_path()
    problem = _dir_problem(path)
    if problem is None:
        return [_Result(OK, f"state directory {path} is writable")]
    return [
        _Result(
            FAIL,
            f"state directory: {problem}",
            "the service keeps its block log and blocklist there: create it for the "
            f"`parafoudre` user (`install -d -o parafoudre -g parafoudre -m 0750 {path}`) or "
            "set state_dir in the config; run this check as the service's user "
            "(`sudo -u parafoudre parafoudre doctor …`)",
        )
    ]


def _check_blocklog(cfg: Config) -> list[_Result]:
    path = cfg.blocklog_path()
    fix_rights = (
        "the service's user must be able to write the file and its directory "
        f"(`chown -R parafoudre:parafoudre {path.parent}`); run this check as that user "
        "(`sudo -u parafoudre parafoudre doctor …`)"
    )
    if not path.exists():
        problem = _dir_problem(path.parent)
        if problem is not None:
            return [_Result(FAIL, f"block log: {problem}", fix_rights)]
        return [
            _Result(
                WARN,
                f"block log {path} does not exist yet",
                "the service creates it when it starts: is it running?",
            )
        ]
    try:
        conn = open_db(path, readonly=True)
    except SchemaError as exc:
        if exc.older:
            # Parafoudre was upgraded but the running service is still the old one.
            return [
                _Result(
                    WARN,
                    f"block log: {exc}",
                    "restart the service (`systemctl restart parafoudre`): it migrates the "
                    "block log when it starts, keeping every row",
                )
            ]
        return [_Result(FAIL, f"block log: {exc}", "")]
    except BlockLogError as exc:
        return [
            _Result(
                FAIL,
                f"block log: {exc}",
                "if the file is damaged, stop the service, move the file aside and start it "
                "again (a new, empty block log is created)",
            )
        ]
    try:
        conn.execute("SELECT count(*) FROM counters").fetchone()
    except sqlite3.Error as exc:
        return [_Result(FAIL, f"block log {path}: cannot be read: {exc}", "")]
    finally:
        conn.close()
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
        return [
            _Result(
                FAIL,
                f"block log {path} is not writable by this user (uid {os.getuid()})",
                fix_rights,
            )
        ]
    return [_Result(OK, f"block log {path}: schema up to date, writable")]


def _check_disk(cfg: Config, disk_usage: Callable[[Path], tuple[int, int, int]]) -> list[_Result]:
    path = _existing_parent(cfg.state_path())
    try:
        free = disk_usage(path)[2]
    except OSError as exc:
        return [_Result(WARN, f"disk: cannot measure free space on {path}: {exc.strerror}")]
    mb = free // (1024 * 1024)
    fix = (
        "free some space (`journalctl --vacuum-size=100M`, `apt-get clean`) or lower "
        "blocklog.retention_days"
    )
    if free < DISK_FAIL:
        return [_Result(FAIL, f"disk: only {mb} MB free on {path}", fix)]
    if free < DISK_WARN:
        return [_Result(WARN, f"disk: only {mb} MB free on {path}", fix)]
    return [_Result(OK, f"disk: {mb} MB free on {path}")]


def _check_clock(now: float) -> list[_Result]:
    when = datetime.fromtimestamp(now, UTC)
    text = when.strftime("%Y-%m-%d %H:%M UTC")
    if when.year < MIN_YEAR:
        return [
            _Result(
                FAIL,
                f"clock: the box thinks it is {text}",
                "set the time and keep it synchronised (`timedatectl set-ntp true`); with a "
                "wrong clock the feed downloads (HTTPS) fail and the block log dates are wrong",
            )
        ]
    return [_Result(OK, f"clock: {text}")]


def _check_observatory(
    cfg: Config, timeout: float, now: float, ssl_context: ssl.SSLContext | None
) -> list[_Result]:
    """The link to the départemental observatory: reachable, token accepted, last send."""
    obs = cfg.observatory
    if not obs.enabled:
        return []
    from resolver.observatory_push.status import outbox_status, probe

    url = obs.ingest_url()
    answer = probe(obs, timeout=timeout, ssl_context=ssl_context)
    fixes = {
        401: "observatory.token is not the token the observatory's operator gave this commune "
        "(its sha256 is the box's token_sha256 in the observatory's config)",
        403: "the token belongs to another commune (check observatory.insee) or this address "
        "may not report (the observatory's ingest_allow)",
        404: "observatory.url is the observatory's base URL, e.g. https://observatoire.example.fr",
    }
    results = []
    if answer.status is None:
        results.append(
            _Result(
                WARN,
                f"observatory {url}: unreachable ({answer.error})",
                "check the box's Internet link and observatory.url; blocks wait in the outbox "
                "and are sent when it is back",
            )
        )
    elif 200 <= answer.status < 300:
        results.append(_Result(OK, f"observatory {url}: reachable, token accepted"))
    else:
        results.append(
            _Result(
                FAIL,
                f"observatory {url}: refused the box (HTTP {answer.status})",
                fixes.get(answer.status, "read the observatory's log for this box's commune"),
            )
        )
    path = obs.outbox_path(cfg.state_path())
    try:
        pending, last = outbox_status(path)
    except sqlite3.Error as exc:
        return [*results, _Result(WARN, f"observatory outbox {path}: cannot be read: {exc}")]
    late = max(2 * obs.heartbeat, 10 * obs.interval)
    logs = "read `journalctl -u parafoudre -e | grep observatory`"
    if last is None:
        results.append(
            _Result(WARN, "observatory: no successful send recorded yet", f"is it running? {logs}")
        )
    else:
        when = datetime.fromtimestamp(last, UTC).strftime("%Y-%m-%d %H:%M UTC")
        text = f"observatory: last successful send {when}, {pending} batch(es) waiting"
        results.append(_Result(WARN if now - last > late else OK, text, logs))
    return results


def _check_encrypted(cfg: Config, timeout: float) -> list[_Result]:
    """The certificate of the box's own DNS over TLS/HTTPS, its fingerprint to pin, and one
    query over each encrypted address, checked against that very certificate."""
    if not (cfg.server.tls_listen or cfg.server.https_listen):
        return []
    cert, _, self_signed = certificate.configured(cfg.server, cfg.state_path())
    if self_signed and not cert.exists():
        return [
            _Result(
                WARN,
                f"encrypted DNS: no self-signed certificate in {cert.parent} yet",
                "the service makes it at its first start: start it, then run doctor again",
            )
        ]
    try:
        fp = certificate.fingerprint(cert)
        trust = certificate.trusting(cert)
    except (certificate.CertificateError, OSError, ssl.SSLError) as exc:
        return [_Result(FAIL, f"encrypted DNS: {exc}", "check server.certificate")]
    kind = "self-signed certificate" if self_signed else "certificate"
    results = [_Result(OK, f"encrypted DNS: {kind} {cert}, SHA-256 fingerprint {fp}")]
    name = certificate.server_name(cfg.server)
    specs = [("tls", s, 853) for s in cfg.server.tls_listen]
    specs += [("https", s, 443) for s in cfg.server.https_listen]
    for kind_, spec, default in specs:
        results.append(_probe_encrypted(kind_, spec, default, name, trust, timeout))
    return results


def _probe_encrypted(
    kind: str, spec: str, default: int, name: str, trust: ssl.SSLContext, timeout: float
) -> _Result:
    host, port = parse_hostport(spec, default)
    what = "DNS over TLS" if kind == "tls" else "DNS over HTTPS"
    where = _where(host, port)
    if port == 0:
        return _Result(WARN, f"{what} {spec}: port 0 cannot be checked", "give a fixed port")
    target = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
    url = f"https://{name}:{port}/dns-query" if kind == "https" else ""
    up = Upstream(target, port, kind, name, url)
    try:
        reply = asyncio.run(_ask_encrypted(up, _query("localhost", wire.T_A), timeout, trust))
    except _NoAnswer as exc:
        return _Result(
            FAIL,
            f"{what} on {where}: {exc}",
            f"{_SERVICE_HINT}; the certificate must be for {name!r} (server.tls_name)",
        )
    if _rcode(reply) == wire.REFUSED:
        return _Result(WARN, f"{what} on {where}: answers, but REFUSED this machine", "see acl")
    return _Result(OK, f"{what} on {where}: Parafoudre answers with this certificate for {name}")


def run_doctor(
    cfg: Config,
    config_path: Path | None,
    *,
    out: TextIO,
    timeout: float = TIMEOUT,
    now: float | None = None,
    disk_usage: Callable[[Path], tuple[int, int, int]] = shutil.disk_usage,
    ssl_context: ssl.SSLContext | None = None,
) -> int:
    """Check the installation described by ``cfg``; print one line per check; return 0 or 1.

    ``cfg`` was already loaded from ``config_path`` (None: the embedded default). ``timeout``
    bounds each query; ``now``, ``disk_usage`` and ``ssl_context`` (the CAs trusted for
    tls:// and https:// upstreams; default: the system's) are for tests.
    """
    when = time.time() if now is None else now
    config_arg = f" -c {config_path}" if config_path is not None else ""
    checks: list[Callable[[], list[_Result]]] = [
        lambda: _check_config(config_path),
        lambda: _check_listen(cfg, timeout),
        lambda: _check_encrypted(cfg, timeout),
        lambda: _check_upstreams(cfg, timeout, ssl_context),
        lambda: _check_forward_zones(cfg, timeout),
        lambda: _check_feeds(cfg, config_arg, when),
        lambda: _check_list_files(cfg),
        lambda: _check_state_dir(cfg),
        lambda: _check_blocklog(cfg),
        lambda: _check_disk(cfg, disk_usage),
        lambda: _check_clock(when),
        lambda: _check_observatory(cfg, timeout, when, ssl_context),
    ]
    counts = {OK: 0, WARN: 0, FAIL: 0}
    for check in checks:
        try:
            results = check()
        except Exception as exc:  # a bug in one check must not hide the others
            results = [_Result(FAIL, f"a check crashed: {type(exc).__name__}: {exc}", "")]
        for r in results:
            counts[r.status] += 1
            out.write(r.line() + "\n")
            out.flush()
    summary = f"{counts[OK]} OK, {counts[WARN]} warnings, {counts[FAIL]} failures"
    if counts[FAIL]:
        out.write(f"parafoudre doctor: {summary}: fix the FAIL lines above.\n")
        return 1
    state = "working, see the warnings" if counts[WARN] else "healthy"
    out.write(f"parafoudre doctor: {summary}: the box is {state}.\n")
    return 0
