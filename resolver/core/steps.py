"""What a policy stage decides: answer, forward, drop, or pass the query on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from resolver.core.cached_answer import CachedAnswer


class Verdict:
    """Why an answer is what it is; the block log, metrics and dashboard read this.

    Plain strings rather than an Enum: an Enum member hashes in Python code, and the hot path
    counts verdicts in a dict on every answer.
    """

    LOCAL: Final = "local"
    CACHED: Final = "cached"
    STALE: Final = "stale"  # served past its TTL while no upstream answers (RFC 8767)
    FORWARDED: Final = "forwarded"
    BLOCKED: Final = "blocked"
    EXFILTRATION: Final = "exfiltration"
    REFUSED: Final = "refused"
    SERVFAIL: Final = "servfail"
    FORMERR: Final = "formerr"
    ALL: Final = (
        LOCAL,
        CACHED,
        STALE,
        FORWARDED,
        BLOCKED,
        EXFILTRATION,
        REFUSED,
        SERVFAIL,
        FORMERR,
    )


# Verdicts that go to the block log.
LOGGED: Final = frozenset({Verdict.BLOCKED, Verdict.EXFILTRATION})


@dataclass(frozen=True, slots=True)
class Upstream:
    """One upstream resolver: plain DNS (UDP, TCP when truncated), DNS over TLS or over HTTPS."""

    host: str  # the address to connect to; for https, "" means: look the URL's host up
    port: int = 53
    kind: str = "udp"  # "udp", "tls" or "https" (resolver.config.upstream_spec.UpstreamKind)
    server_name: str = ""  # the name the server's certificate must carry (tls, https)
    url: str = ""  # https: the DoH URL
    # The hash, computed once: a dataclass's own __hash__ is Python code run on every use, and
    # a cache miss hashes its Forward (with its servers) three times (resolver.net.service).
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = (self.host, self.port, self.kind, self.server_name, self.url)
        object.__setattr__(self, "_hash", hash(key))

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        if self.kind == "https":
            return f"{self.url}#{self.host}" if self.host else self.url
        where = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        return f"tls://{where}#{self.server_name}" if self.kind == "tls" else where


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete answer in wire form (not yet fitted to the client's size limit)."""

    wire: bytes
    verdict: str  # a Verdict constant
    reason: str = ""  # "feed:urlhaus", "local", "acl"
    category: str = ""  # "malware", "phishing", ... for blocks
    # An answer the pipeline may keep in the cache for this question (blocked answers): the
    # next identical question is then served without running the policy stages again.
    entry: CachedAnswer | None = None


@dataclass(frozen=True, slots=True)
class Forward:
    """Ask these servers; ``zone`` is set for conditional forwarding (not cached).

    ``trusted``: an earlier stage said TRUSTED, so the answer skips the policy stages on its
    way back too (the pipeline sets it).
    """

    servers: tuple[Upstream, ...]
    zone: str | None = None
    trusted: bool = False
    _hash: int = field(init=False, repr=False, compare=False)  # computed once, as Upstream's

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.servers, self.zone, self.trusted)))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class Drop:
    """Send nothing."""

    reason: str


@dataclass(frozen=True, slots=True)
class Recheck:
    """A cached answer judged before a change of judgement (a list swap): the pipeline passes
    it through the stages that judge answers (those with ``rechecks``) before serving it."""

    entry: CachedAnswer


class Continue:
    """Pass the query to the next stage."""

    __slots__ = ()


class Trusted:
    """Skip the remaining policy stages (allowlisted); caching and forwarding still run."""

    __slots__ = ()


CONTINUE: Final = Continue()
TRUSTED: Final = Trusted()

Step = Reply | Forward | Drop | Continue | Trusted | Recheck
