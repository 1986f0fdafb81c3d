"""``parafoudre doctor``: check a running installation and say what to fix, in plain words.

Each check prints one line::

    OK   what was checked
    WARN what looks wrong — what to do
    FAIL what is broken — what to do

and the result is 0 when nothing FAILs (warnings included), 1 otherwise, so the same command
serves a person at a terminal, a monitoring probe and a container HEALTHCHECK.

Every network check is one query with a short timeout, sent from this process with blocking
sockets (encrypted upstreams through the resolver's own DoT/DoH transports, on a short-lived
event loop of their own); nothing is sent anywhere but to the addresses of the configuration
(the listen addresses, the upstreams, the forwarding servers).
"""

from __future__ import annotations

import asyncio
import errno
import os
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
from resolver.core.steps import Upstream
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


def _query(name: str, qtype: int) -> tuple[int, bytes]:
    qid = secrets.randbits(16)
    msg = (
        wire.HEADER.pack(qid, wire.RD, 1, 0, 0, 1)
        + wire.name_to_wire(name)
        + wire.U16.pack(qtype)
        + wire.U16.pack(wire.C_IN)
        + wire.build_opt(1232, False)
    )
    return qid, msg


def _check_reply(reply: bytes, qid: int) -> tuple[int, int]:
    """(rcode, answer count) of ``reply``, or _NoAnswer if it does not answer our query."""
    if len(reply) < 12:
        raise _NoAnswer("a reply too short to be DNS")
    rid, flags, _, ancount, _, _ = wire.HEADER.unpack_from(reply)
    if rid != qid or not flags & wire.QR:
        raise _NoAnswer("a reply that does not match the query")
    return flags & wire.RCODE_MASK, ancount


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def ask_udp(host: str, port: int, name: str, qtype: int, timeout: float) -> tuple[int, int]:
    """Send one query over UDP; return (rcode, answer count) or raise _NoAnswer."""
    qid, msg = _query(name, qtype)
    deadline = time.monotonic() + timeout
    with socket.socket(_family(host), socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((host, port))
            sock.send(msg)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _NoAnswer(f"no answer within {timeout:g} s")
                sock.settimeout(left)
                reply = sock.recv(65535)
                try:
                    return _check_reply(reply, qid)
                except _NoAnswer:
                    continue  # a stray datagram: keep waiting for ours
        except TimeoutError:
            raise _NoAnswer(f"no answer within {timeout:g} s") from None
        except ConnectionRefusedError:
            raise _NoAnswer("nothing listens there (connection refused)") from None
        except OSError as exc:
            raise _NoAnswer(_oserror(exc)) from None


def ask_tcp(host: str, port: int, name: str, qtype: int, timeout: float) -> tuple[int, int]:
    """Send one query over TCP (RFC 7766 framing); return (rcode, answer count) or _NoAnswer."""
    qid, msg = _query(name, qtype)
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(wire.U16.pack(len(msg)) + msg)
            size = wire.U16.unpack(_read_exactly(sock, 2, deadline, timeout))[0]
            return _check_reply(_read_exactly(sock, size, deadline, timeout), qid)
    except TimeoutError:
        raise _NoAnswer(f"no answer within {timeout:g} s") from None
    except ConnectionRefusedError:
        raise _NoAnswer("nothing listens there (connection refused)") from None
    except OSError as exc:
        raise _NoAnswer(_oserror(exc)) from None


def ask_upstream(
    up: Upstream, name: str, qtype: int, timeout: float, ssl_context: ssl.SSLContext | None
) -> tuple[int, int]:
    """Ask one upstream as the resolver does (plain UDP, DNS over TLS or over HTTPS)."""
    if up.kind == "udp":
        return ask_udp(up.host, up.port, name, qtype, timeout)
    return asyncio.run(_ask_encrypted(up, name, qtype, timeout, ssl_context))


async def _ask_encrypted(
    up: Upstream, name: str, qtype: int, wait: float, ssl_context: ssl.SSLContext | None
) -> tuple[int, int]:
    # The resolver's own transports: the same certificate checks, the same framing.
    from resolver.net.upstream_https import HttpsUpstream
    from resolver.net.upstream_tls import TlsUpstream

    qid, msg = _query(name, qtype)
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
        reply = await transport.exchange(msg, wait)
    except ssl.SSLCertVerificationError as exc:
        raise _NoAnswer(
            f"its certificate is refused ({exc.verify_message or exc.reason}): check the name "
            "after '#' and the box's clock"
        ) from None
    except ssl.SSLError as exc:
        raise _NoAnswer(f"the TLS handshake failed ({exc.reason or exc})") from None
    except TimeoutError:
        raise _NoAnswer(f"no answer within {wait:g} s") from None
    except ConnectionRefusedError:
        raise _NoAnswer("nothing listens there (connection refused)") from None
    except OSError as exc:
        raise _NoAnswer(_oserror(exc)) from None
    except ValueError as exc:
        raise _NoAnswer(str(exc)) from None
    finally:
        await transport.close()
    return _check_reply(reply, qid)


def _read_exactly(sock: socket.socket, n: int, deadline: float, timeout: float) -> bytes:
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _NoAnswer(f"no answer within {timeout:g} s")
        sock.settimeout(left)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise _NoAnswer("the connection was closed without an answer")
        buf += chunk
    return buf


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
        where = _where(host, port)
        problems: list[_Result] = []
        for proto, ask in (("UDP", ask_udp), ("TCP", ask_tcp)):
            try:
                rcode, count = ask(target, port, "localhost", wire.T_A, timeout)
            except _NoAnswer as exc:
                problems.append(_Result(FAIL, f"listen {where} ({proto}): {exc}", _SERVICE_HINT))
                continue
            if rcode == wire.REFUSED:
                problems.append(
                    _Result(
                        WARN,
                        f"listen {where} ({proto}): answers, but REFUSED this machine",
                        "add the box's own addresses (127.0.0.0/8 and its LAN address) to "
                        "acl.allow",
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
        results.extend(problems or [_Result(OK, f"listen {where}: answers over UDP and TCP")])
    return results


def _check_upstreams(
    cfg: Config, timeout: float, ssl_context: ssl.SSLContext | None
) -> list[_Result]:
    results: list[_Result] = []
    ok = 0
    servers = upstream_addresses(cfg.upstream)
    for up in servers:
        where = str(up)
        try:
            rcode, _ = ask_upstream(up, ".", wire.T_NS, timeout, ssl_context)
        except _NoAnswer as exc:
            results.append(_Result(FAIL, f"upstream {where}: {exc}", ""))
            continue
        if rcode in (wire.NOERROR, wire.NXDOMAIN):
            ok += 1
            results.append(_Result(OK, f"upstream {where}: answers"))
        else:
            results.append(
                _Result(
                    FAIL,
                    f"upstream {where}: answers {_rcode_name(rcode)} to a simple query",
                    "",
                )
            )
    # One dead upstream is a warning (the resolver fails over); all dead is a failure.
    fix_all = (
        "the box cannot reach any upstream resolver: check its network cable, its gateway "
        "(`ip route`) and that the firewall lets it out (port 53 UDP and TCP for plain "
        "entries, 853 for tls://, 443 for https://)"
    )
    fix_one = "the others take over; if it stays down, remove it from upstream.servers"
    return [
        r
        if r.status == OK
        else _Result(FAIL if ok == 0 else WARN, r.text, fix_all if ok == 0 else fix_one)
        for r in results
    ]


def _check_forward_zones(cfg: Config, timeout: float) -> list[_Result]:
    results: list[_Result] = []
    for fz in cfg.local_zone.forward_zones:
        good: list[str] = []
        bad: list[str] = []
        for spec in fz.servers:
            host, port = parse_hostport(spec, 53)
            try:
                rcode, _ = ask_udp(host, port, fz.zone, wire.T_SOA, timeout)
            except _NoAnswer as exc:
                bad.append(f"{_where(host, port)} {exc}")
                continue
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
        lambda: _check_upstreams(cfg, timeout, ssl_context),
        lambda: _check_forward_zones(cfg, timeout),
        lambda: _check_feeds(cfg, config_arg, when),
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
