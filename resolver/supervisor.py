"""Runs N worker processes that share the listen ports, and keeps them running.

Each worker is a full resolver (its own cache, its own block-log writer on the shared SQLite
file); the kernel steers each client to one worker (resolver/net/reuseport.py). The supervisor
only starts, restarts and signals them: SIGHUP and SIGTERM are passed on.

A worker starts with SIGHUP, SIGTERM and SIGINT blocked (the signal mask is inherited across
fork and exec): one passed on while it still imports stays pending until ``serve`` has its
handlers and unblocks them, so a reload is never lost and a stop never kills a worker by the
default action. The supervisor itself starts with them blocked too (resolver/cli.py `main`) and
unblocks them once its own handlers are in and the workers are spawned.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from resolver import sd_notify

log = logging.getLogger(__name__)

_STARTUP_GRACE = 3.0  # a worker dying this soon after start failed to start: do not loop
_STOP_GRACE = 10.0
# What a worker must handle itself, never by the default action; resolver/app.py `serve`
# unblocks the same set once its handlers are in.
WORKER_SIGNALS = frozenset({signal.SIGHUP, signal.SIGTERM, signal.SIGINT})


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the supervisor dies, even by SIGKILL (Linux prctl)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: an orphaned worker then lives until it is stopped by hand


def _start_worker(serve_args: Sequence[str], i: int, workers: int) -> subprocess.Popen[bytes]:
    """``parafoudre serve SERVE_ARGS --worker i/N``, started with WORKER_SIGNALS blocked."""
    # -P (Python 3.11): the working directory is not put first on the worker's path, so a
    # worker imports the package its supervisor runs, never a source tree or a stray
    # ``resolver/`` it happens to be started from (a clone runs pure Python, the install is
    # compiled; an older checkout is other code).
    cmd = [sys.executable, "-P", "-m", "resolver.cli", "serve", *serve_args]
    cmd += ["--worker", f"{i}/{workers}"]
    # Blocked in the supervisor across the fork, so the child inherits them blocked (see the
    # module docstring) and `forward` cannot run in the child before it execs; the supervisor's
    # own pending signals are handled as soon as they are unblocked again below.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_SIGNALS)
    try:
        # supervisor runs no threads.
        env = sd_notify.without_socket(dict(os.environ))
        return subprocess.Popen(cmd, preexec_fn=_die_with_parent, env=env)  # noqa: S603
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def supervise(serve_args: Sequence[str], workers: int) -> int:
    """Run ``parafoudre serve SERVE_ARGS --worker i/N`` for each i; return the exit code."""
    stopping = False
    procs: dict[int, subprocess.Popen[bytes]] = {}
    started: dict[int, float] = {}
    restarts: dict[int, int] = {}

    def spawn(i: int) -> None:
        procs[i] = _start_worker(serve_args, i, workers)
        started[i] = time.monotonic()

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
            signum = signal.SIGTERM
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    for i in range(workers):
        spawn(i)
    log.info("started %d workers", workers)
    # resolver/cli.py `main` held these since the process started, so a reload or stop sent
    # meanwhile (systemd's ExecReload targets this PID) is pending, not fatal. Unblocked only
    # now that every worker exists, so `forward` passes it on to all of them: workers started
    # after a SIGHUP read the files anyway, but an operator reading the log expects the reload.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
    sd_notify.notify("READY=1")  # systemd may now send a reload (Type=notify)
    exit_code = 0
    while True:
        if stopping:
            deadline = time.monotonic() + _STOP_GRACE
            for p in procs.values():
                try:
                    p.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            return exit_code
        time.sleep(0.2)
        for i, p in list(procs.items()):
            code = p.poll()
            if code is None or stopping:
                continue
            if time.monotonic() - started[i] < _STARTUP_GRACE:
                # It could not start (bad config, port taken): the others cannot either.
                log.error("worker %d exited with code %d at start; stopping", i, code)
                exit_code = code or 1
                stopping = True
                forward(signal.SIGTERM, None)
                break
            restarts[i] = restarts.get(i, 0) + 1
            log.error("worker %d exited with code %d; restarting it", i, code)
            time.sleep(min(30.0, 0.5 * restarts[i]))
            spawn(i)
