"""The ``parafoudre`` command. Errors end as one line and an exit code, never a traceback."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

# Only light imports here: `serve` holds its stop and reload signals at the start of `main`, and
# everything imported before that (asyncio, the config schema: ~0.1 s) widens the window in which
# a SIGHUP kills the process by its default action. The rest is imported where it is used.
from resolver import __version__, compiled
from resolver.errors import ParafoudreError

if TYPE_CHECKING:
    from resolver import config

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


class _Version(argparse.Action):
    """``--version``: which build runs is looked up only when asked (it imports the per-query
    packages: 30 ms that every other command would pay)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"parafoudre {__version__} ({compiled.status()})")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="parafoudre",
        description="A protective DNS resolver: forwards clean names, blocks threats, logs blocks.",
    )
    p.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = p.add_subparsers(dest="command", required=True)
    conf_help = "YAML config file (default: the embedded default config)"
    s = sub.add_parser("serve", help="run the DNS server")
    s.add_argument("-c", "--config", type=Path, help=conf_help)
    s.add_argument(
        "--workers", type=int, help="worker processes (default: server.workers, 0 = one per core)"
    )
    s.add_argument("--worker", help=argparse.SUPPRESS)  # "i/N": set by the supervisor
    c = sub.add_parser("check-config", help="validate a config file without serving")
    c.add_argument("-c", "--config", type=Path, help=conf_help)
    sub.add_parser("print-default-config", help="print the embedded default config")
    o = sub.add_parser("observatory", help="run the départemental observatory (its own config)")
    o.add_argument(
        "action",
        nargs="?",
        choices=("serve", "migrate"),
        default="serve",
        help="serve (default), or migrate: bring its database to this version's schema and exit",
    )
    o.add_argument("-c", "--config", type=Path, required=True, help="the observatory's YAML file")
    d = sub.add_parser("doctor", help="check a running installation and say what to fix")
    d.add_argument("-c", "--config", type=Path, help=conf_help)
    r = sub.add_parser("report", help="the year's figures for the département (CSV or Markdown)")
    r.add_argument("-c", "--config", type=Path, help=conf_help)
    r.add_argument("--year", type=int, help="the year to report (default: the current year)")
    r.add_argument("--format", choices=("csv", "markdown"), default="markdown")
    a = sub.add_parser(
        "allow",
        help="allow a blocked name (and everything under it) within a second, or undo it",
    )
    a.add_argument("name", nargs="?", help="the name, e.g. www.example.com")
    a.add_argument("-c", "--config", type=Path, help=conf_help)
    a.add_argument("--domain", action="store_true", help="allow the name's registered domain")
    a.add_argument("--remove", action="store_true", help="undo: take the name off the list")
    a.add_argument("--list", action="store_true", help="show the names allowed so far")
    ta = sub.add_parser(
        "test-alert", help="send a test alert by the configured e-mail and webhook (alerts:)"
    )
    ta.add_argument("-c", "--config", type=Path, help=conf_help)
    sub.add_parser(
        "hash-password",
        help="read a password and print its hash for dashboard.operators[].password_hash",
    )
    f = sub.add_parser("feeds", help="threat feeds: update, status, catalogue")
    fsub = f.add_subparsers(dest="feeds_command", required=True)
    for name, text in (
        ("update", "download, check and compile the feeds (for cron or the systemd timer)"),
        ("status", "show each feed's last success, entries, rejects and last error"),
        ("catalogue", "list the built-in feeds that can be enabled by name"),
    ):
        fp = fsub.add_parser(name, help=text)
        fp.add_argument("-c", "--config", type=Path, help=conf_help)
    return p


def _err(message: str) -> None:
    print(f"parafoudre: {message}", file=sys.stderr)


# What `serve` must handle itself, never by the default action (terminate): the same set as
# resolver/supervisor.py WORKER_SIGNALS, which is not imported here to keep this first step cheap.
SERVE_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


def main(argv: Sequence[str] | None = None) -> int:
    # systemd sends `ExecReload` SIGHUP to the main PID as soon as it is forked (Type=simple): a
    # reload racing with a start would kill the service if it came before `serve` has its
    # handlers (resolver/supervisor.py `supervise`, resolver/app.py `serve`), ~1 s of imports,
    # config and list loading later. Held from here, it stays pending and is handled once
    # those handlers are in and unblock it; child processes inherit the mask (see supervisor).
    held = _serving(sys.argv[1:] if argv is None else argv)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SERVE_SIGNALS) if held else None
    try:
        return _main(argv)
    except BrokenPipeError:  # `parafoudre feeds catalogue | head`
        return EXIT_OK
    finally:
        if old is not None:  # serve returned (or failed to start): back as the caller had it
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _serving(argv: Sequence[str]) -> bool:
    """Whether the command is ``serve``, told before argparse: its first positional word."""
    return next((a for a in argv if not a.startswith("-")), None) == "serve"


def _main(argv: Sequence[str] | None) -> int:
    from resolver import config
    from resolver.config.errors import ConfigError

    args = _parser().parse_args(argv)
    if args.command == "print-default-config":
        sys.stdout.write(config.default_text())
        return EXIT_OK
    if args.command == "hash-password":
        return _hash_password()
    if args.command == "observatory":
        from observatory.server import run_observatory

        return run_observatory(args.config, action=args.action)
    try:
        cfg = config.load(args.config)
    except ConfigError as exc:
        _err(f"config error: {exc}")
        return EXIT_CONFIG
    if args.command == "doctor":
        from resolver.doctor import run_doctor

        return run_doctor(cfg, args.config, out=sys.stdout)
    if args.command == "report":
        from dashboard.report import run_report
        from resolver.client_names import ClientNames, read_lease_files

        names = ClientNames(cfg.clients)  # the operator's names and the leases; no PTR here
        names.leases = read_lease_files(cfg.clients.lease_files)
        return run_report(
            cfg.blocklog_path(),
            args.year,
            args.format,
            sys.stdout,
            cfg.dashboard,
            names=names.name,
        )
    if args.command == "feeds":
        return _feeds(cfg, args.feeds_command)
    if args.command == "allow":
        return _allow(cfg, args)
    if args.command == "test-alert":
        return _test_alert(cfg)
    if args.command == "check-config":
        return _check_config(cfg, args.config)
    return _serve(cfg, args)


def _check_config(cfg: config.Config, path: Path | None) -> int:
    """The config as the server and the updater read it: the feeds section is checked as
    `feeds update` checks it (catalogue names, URLs, formats, match modes), not only its
    types, so a feed the updater would refuse is refused here first."""
    from feeds.errors import FeedError
    from feeds.sources import resolve_sources

    where = path or "embedded default config"
    try:
        resolve_sources(cfg.feeds_config())
    except FeedError as exc:
        _err(f"config error: {where}: {exc}")
        return EXIT_CONFIG
    print(f"{where}: OK")
    return EXIT_OK


def _test_alert(cfg: config.Config) -> int:
    """Send one test alert now by each configured channel; say how each went."""
    import asyncio
    import socket

    from dashboard.alerts import send_test

    if not cfg.alerts.enabled():
        _err("no alert channel: set alerts.email.to (and alerts.email.host) or alerts.webhook.url")
        return EXIT_CONFIG
    box = socket.gethostname()[:64]
    results = asyncio.run(send_test(cfg.alerts, cfg.dashboard.language, box))
    for channel, error in results:
        if error:
            _err(f"test-alert: {channel} not delivered: {error}")
        else:
            print(f"test-alert: {channel} sent")
    return EXIT_FAILED if any(error for _, error in results) else EXIT_OK


def _hash_password() -> int:
    import getpass

    from dashboard.auth import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            _err("the two passwords differ")
            return EXIT_FAILED
    else:  # piped: the first line
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        _err("use a password of 8 characters or more")
        return EXIT_FAILED
    print(hash_password(password))
    return EXIT_OK


def _who() -> str:
    """Who runs the command, for the block log: the sudo caller if any, else the user."""
    import getpass
    import os

    user = os.environ.get("SUDO_USER") or getpass.getuser()
    return f"cli:{user}"


# The service's state directory under systemd (deploy/parafoudre.service StateDirectory=).
SERVICE_STATE_DIR = Path("/var/lib/parafoudre")


def _service_state(cfg: config.Config) -> config.Config:
    """The config with the service's state directory when a shell would miss it: systemd gives
    the service STATE_DIRECTORY=/var/lib/parafoudre, `sudo parafoudre allow` has no such
    variable and would write under ~/.local/state, where the server never looks."""
    import dataclasses
    import os

    if cfg.state_dir or os.environ.get("STATE_DIRECTORY") or not SERVICE_STATE_DIR.is_dir():
        return cfg
    return dataclasses.replace(cfg, state_dir=str(SERVICE_STATE_DIR))


def _allow(cfg: config.Config, args: argparse.Namespace) -> int:
    from resolver.operator_allowlist import OperatorAllowlist, operator_path

    cfg = _service_state(cfg)
    allowing = OperatorAllowlist(operator_path(cfg), cfg.blocklog_path())
    try:
        if args.list or not args.name:
            entries = allowing.entries()
            for e in entries:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.at)) if e.at else "?"
                print(
                    f"{e.name}\tallowed {when} by {e.who or '?'}"
                    + (f": {e.detail}" if e.detail else "")
                )
            if not entries:
                print(f"no name allowed by the operator ({allowing.path})")
            return EXIT_OK
        if args.remove:
            if not allowing.remove(args.name, who=_who()):
                _err(f"{args.name[:255]} is not on the operator's allowlist ({allowing.path})")
                return EXIT_FAILED
            print(f"{args.name[:255]}: no longer allowed; the lists apply again within a second")
            return EXIT_OK
        scope: Literal["name", "domain"] = "domain" if args.domain else "name"
        entry = allowing.allow(args.name, who=_who(), scope=scope, detail="parafoudre allow")
    except (ParafoudreError, OSError) as exc:
        _err(f"allow: {exc}")
        return EXIT_FAILED
    print(f"{entry.name}: allowed with every name under it, in force within a second")
    print(f"(in {allowing.path}; undo: parafoudre allow --remove {entry.name})")
    return EXIT_OK


def _feeds(cfg: config.Config, command: str) -> int:
    import logging

    from feeds import cli as feeds_cli
    from feeds.errors import FeedError
    from feeds.never_block import upstream_names

    logging.basicConfig(level=logging.WARNING, format="parafoudre feeds: %(message)s")
    fcfg = cfg.feeds_config()
    try:
        if command == "catalogue":
            return feeds_cli.print_catalogue(out=sys.stdout, cfg=fcfg)
        if command == "status":
            return feeds_cli.print_status(fcfg, out=sys.stdout, artifact_path=cfg.compiled_path())
        return feeds_cli.update(
            fcfg,
            artifact_path=cfg.compiled_path(),
            out=sys.stdout,
            interactive=sys.stdout.isatty(),
            upstreams=upstream_names(cfg.upstream.specs()),  # never blocked, even by bypass feeds
        )
    except (FeedError, ParafoudreError) as exc:
        _err(f"feeds: {exc}")
        return feeds_cli.EXIT_CONFIG
    except KeyboardInterrupt:
        return feeds_cli.EXIT_NOTHING


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop  # the faster event loop where it is installed
    except ImportError:
        import asyncio

        return asyncio.run(coro)
    return int(uvloop.run(coro))


def _serve(cfg: config.Config, args: argparse.Namespace) -> int:
    from resolver import app, logsetup

    logsetup.setup(cfg.logging.level)
    worker, workers = 0, 1
    if args.worker:
        w, _, n = args.worker.partition("/")
        worker, workers = int(w), int(n)
    else:
        workers = args.workers if args.workers is not None else cfg.server.worker_count()
        if workers < 1:
            _err("--workers must be at least 1")
            return EXIT_CONFIG
        if workers > 1 and any(s.endswith(":0") for s in cfg.server.listen):
            workers = 1  # port 0 means "any port": workers could not share it
        if workers > 1:
            from resolver.supervisor import supervise

            serve_args = ["-c", str(args.config)] if args.config else []
            return supervise(serve_args, workers)
    try:
        return _run(app.serve(cfg, worker=worker, workers=workers))
    except KeyboardInterrupt:
        return EXIT_OK
    except ParafoudreError as exc:
        _err(f"cannot start: {exc}")
        return EXIT_FAILED
    except OSError as exc:
        _err(f"cannot start: {exc}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
