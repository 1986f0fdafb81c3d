"""Who may change things from the page: password hashes, logins, sessions, CSRF checks.

The page is readable without a login; a change (allow a name, undo it) needs a session, opened
by an operator's password (``dashboard.operators``, scrypt hashes) or by the dashboard token.
A session is a random id in an HttpOnly, SameSite=Strict cookie, kept in this process's memory
only (a restart logs everyone out). Every form that changes something carries the session's own
CSRF token and must come from the page's own origin (the Origin header, or Sec-Fetch-Site when
a browser sends no Origin): OWASP's "synchronizer token" plus "verifying origin" defences.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

COOKIE: Final = "parafoudre_session"
MAX_SESSIONS: Final = 64  # a mairie has one or two people who log in; the oldest goes first
MAX_PASSWORD: Final = 1024  # scrypt of a megabyte of "password" is a cheap way to burn CPU
# scrypt cost (RFC 7914): N=2^14, r=8, p=1 is the interactive-login figure of the RFC's
# section 2 authors and Python's own documentation; ~50 ms and 16 MB per check.
SCRYPT_N: Final = 1 << 14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
# Failed logins from one address before it must wait; then one try per LOCK_SECONDS.
MAX_FAILURES: Final = 5
LOCK_SECONDS: Final = 30.0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` for ``dashboard.operators[].password_hash``."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (a hash_password line); constant-time compare."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        _, n, r, p, salt, digest = stored.split("$")
        want = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt, validate=True),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(want),
            maxmem=64 << 20,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


@dataclass(frozen=True, slots=True)
class Session:
    """One logged-in browser."""

    id: str
    who: str  # the operator's login, or "token"
    csrf: str  # sent back in every form that changes something
    expires: float


class Sessions:
    """Sessions in memory, bounded, with expiry; and the failed-login throttle."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self._by_id: dict[str, Session] = {}
        self._failures: dict[str, tuple[int, float]] = {}

    def open(self, who: str, now: float) -> Session:
        if len(self._by_id) >= MAX_SESSIONS:
            oldest = min(self._by_id.values(), key=lambda s: s.expires)
            del self._by_id[oldest.id]
        s = Session(secrets.token_urlsafe(32), who, secrets.token_urlsafe(32), now + self.lifetime)
        self._by_id[s.id] = s
        return s

    def get(self, session_id: str | None, now: float) -> Session | None:
        if not session_id:
            return None
        s = self._by_id.get(session_id)
        if s is None:
            return None
        if s.expires <= now:
            del self._by_id[s.id]
            return None
        return s

    def close(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)

    def locked(self, remote: str, now: float) -> bool:
        """Whether ``remote`` failed too often lately and must wait before another try."""
        count, last = self._failures.get(remote, (0, 0.0))
        return count >= MAX_FAILURES and now - last < LOCK_SECONDS

    def failed(self, remote: str, now: float) -> None:
        if len(self._failures) > 4096:  # bounded whatever addresses try
            self._failures.clear()
        count, _ = self._failures.get(remote, (0, 0.0))
        self._failures[remote] = (count + 1, now)

    def succeeded(self, remote: str) -> None:
        self._failures.pop(remote, None)


def csrf_ok(session: Session, given: str) -> bool:
    return hmac.compare_digest(given.encode(), session.csrf.encode())


def same_origin(headers: Mapping[str, str], scheme: str, host: str) -> bool:
    """Whether a state-changing request comes from the page itself.

    Browsers send Origin on every cross-origin POST and on same-origin ones too (Chromium,
    Firefox, Safari); where it is absent, Sec-Fetch-Site says whether the request crossed sites.
    A request with neither (curl, an old browser) is refused: this check fails closed.
    """
    origin = headers.get("Origin")
    if origin is not None:
        return origin == f"{scheme}://{host}"
    return headers.get("Sec-Fetch-Site") == "same-origin"
