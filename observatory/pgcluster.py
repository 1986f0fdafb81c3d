"""A throw-away PostgreSQL cluster on 127.0.0.1 for tests, benchmarks and a quick trial.

Uses Debian's ``postgresql`` package binaries (``/usr/lib/postgresql/<version>/bin``). PostgreSQL
refuses to run as root, so under root the cluster runs as ``nobody`` in a directory it owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 30.0


def pg_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None when none is installed."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class Cluster:
    port: int
    root: Path  # also the Unix socket's directory
    superuser: str = "postgres"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def as_superuser(self, cmd: list[str]) -> list[str]:
        """``cmd`` (psql, createdb...) run as the cluster's owner, as ``sudo -u postgres`` does
        on Debian: with Debian's authentication, peer over the socket makes it the superuser.
        """
        return _as_owner(cmd)


def owner_name() -> str:
    """The system user the cluster runs as."""
    return "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "nobody", "--", *cmd]
    return cmd


@contextlib.contextmanager
def temp_cluster(*, durable: bool = False, debian_auth: bool = False) -> Iterator[Cluster]:
    """Start a cluster (trust auth, loopback only, a free port) and remove it afterwards.

    ``durable`` keeps PostgreSQL's default fsync and commit settings (for honest benchmark
    figures); tests turn them off, a throw-away cluster need not survive a power cut.
    ``debian_auth`` authenticates as a fresh Debian cluster does (``pg_createcluster``): peer
    over the Unix socket, scram-sha-256 over TCP, and the superuser named after the system
    user running the cluster (Debian's ``postgres``).

    Raises FileNotFoundError when PostgreSQL is not installed, RuntimeError if it does not start.
    """
    bindir = pg_bin_dir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL binaries not found (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="parafoudre-pg-"))
    data = root / "data"
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "nobody", "nogroup")
        if debian_auth:
            # Debian's socket directory (/var/run/postgresql) is open to every user: peer
            # authentication then decides who is who.
            root.chmod(0o755)
        superuser = owner_name() if debian_auth else "postgres"
        auth = (
            ["--auth-local=peer", "--auth-host=scram-sha-256"] if debian_auth else ["--auth=trust"]
        )
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", superuser, *auth]
        _run([*initdb, "--no-sync", "-E", "UTF8", "--locale=C"], timeout=120)
        port = free_port()
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log")]
        _run([*pg_ctl, "-w", "-t", str(int(START_TIMEOUT)), "start"], timeout=START_TIMEOUT + 10)
        _wait_port(port)
        try:
            yield Cluster(port=port, root=root, superuser=superuser)
        finally:
            _run(
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                timeout=60,
                check=False,
            )
    except subprocess.CalledProcessError as exc:
        log = (root / "log").read_text(errors="replace") if (root / "log").exists() else ""
        raise RuntimeError(
            f"PostgreSQL did not start: {exc.stderr.decode(errors='replace')} {log}"
        ) from exc
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(cmd: list[str], *, timeout: float, check: bool = True) -> None:
    """A PostgreSQL tool as the cluster's owner; CalledProcessError (with stderr) if it fails."""
    subprocess.run(  # noqa: S603 (our own argument list, no shell)
        _as_owner(cmd), check=check, capture_output=True, timeout=timeout
    )


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not open port {port}") from None
            time.sleep(0.05)
