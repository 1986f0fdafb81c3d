"""Tell systemd the service is ready (sd_notify(3), ``Type=notify``): a datagram on the socket
named by ``$NOTIFY_SOCKET``; nothing when it is not set (run by hand, in a container, in tests).

Why: with ``Type=simple`` systemd counts the service started at exec, so an ``ExecReload``
(``kill -HUP $MAINPID``) could reach the process during the interpreter's own start, before any
code of ours can hold the signal, and the default action kills it. With ``Type=notify`` a
reload job waits for READY=1, sent once the signal handlers are in.
"""

from __future__ import annotations

import os
import socket

_ENV = "NOTIFY_SOCKET"


def notify(state: str) -> bool:
    """Send ``state`` (e.g. "READY=1") to systemd; True if it was sent. Never raises."""
    path = os.environ.get(_ENV, "")
    if not path:
        return False
    # "@name" is an abstract socket (Linux): its address starts with a NUL byte.
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode("ascii"), address)
    except OSError:
        return False  # systemd gone or the socket refused: nothing to do about it here
    return True


def without_socket(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a child process: only the main process speaks to systemd
    (``NotifyAccess=main``; a worker's message would be refused and logged)."""
    return {k: v for k, v in env.items() if k != _ENV}
