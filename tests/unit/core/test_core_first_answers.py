"""First answers (issue 19): a question the cache has not seen is judged from its name by the
stages' ``on_name`` (``Pipeline.first``), and gives what the full chain gives: the same bytes,
the same block events, the same forward; and a query rebuilt from the fast parse is the one
``from_wire`` gives."""

from __future__ import annotations

import itertools
from pathlib import Path

from dnslib import EDNS0, DNSRecord, EDNSOption
from hypothesis import example, given
from hypothesis import strategies as st

from resolver.app import App
from resolver.blocklog.writer import BlockEvent
from resolver.config import Config
from resolver.config.loader import load_text
from resolver.core import wire
from resolver.core.fastpath import name_text, parse_fast, query_from_fast
from resolver.core.query import Transport, from_wire
from resolver.net.service import Dropped, Pending
from resolver.stages.blocklist import BlocklistStage

NOW = 1_800_000_000.0


def _app(tmp_path: Path, fast: bool, events: list[BlockEvent]) -> App:
    tmp_path.mkdir(parents=True, exist_ok=True)
    lst = tmp_path / "block.txt"
    lst.write_text("evil.test\nbad.mairie.local\nphish.example\n||sub.listed.test^\n")
    cfg = load_text(
        f"state_dir: {tmp_path}\n"
        f"blocking:\n  lists:\n    - path: {lst}\n"
        "allowlist:\n  names: [ok.evil.test]\n"
        "local_zone:\n"
        "  records: ['nas.mairie.local A 192.168.1.10', 'evil.test TXT \"local wins\"']\n"
        "  forward_zones:\n"
        "    - zone: ad.mairie.local\n      servers: ['127.0.0.1:5399']\n      trusted: true\n"
        "    - zone: branch.test\n      servers: ['127.0.0.1:5399']\n"
        "rate_limit:\n  burst: 1000000\n",
        Config,
    )
    app = App(cfg)
    app.lists.load_now()
    app.service.fast = fast
    app.service.prefetch = None
    app.service.clock = lambda: NOW

    def offer(event: BlockEvent) -> bool:
        events.append(event)
        return True

    app.service.offer = offer
    return app


NAMES = [
    "evil.test",
    "a.EVIL.test",
    "ok.evil.test",  # allowlisted under a listed name
    "x.ok.evil.test",
    "bad.mairie.local",
    "nas.mairie.local",  # a local record
    "phish.example",
    "www.phish.example",
    "deep.sub.listed.test",
    "use-application-dns.net",  # the Firefox canary
    "_dns.resolver.arpa",
    "pc1.ad.mairie.local",  # trusted forward zone
    "evil.ad.mairie.local",
    "host.branch.test",  # untrusted forward zone
    "localhost",
    "1.1.168.192.in-addr.arpa",
    "clean.example",
]


def _queries() -> list[bytes]:
    out: list[bytes] = []
    for name, qtype, qclass, edns, cookie in itertools.product(
        NAMES, ["A", "AAAA", "TXT", "ANY", "AXFR", "SVCB"], [1, 3, 4], [False, True], [False, True]
    ):
        if cookie and not edns:
            continue
        q = DNSRecord.question(name, qtype, "IN")
        q.q.qclass = qclass
        q.header.id = len(out) & 0xFFFF
        if edns:
            opts = [EDNSOption(10, bytes(8))] if cookie else []
            q.add_ar(EDNS0(udp_len=1232, opts=opts))
        out.append(bytes(q.pack()))
    return out


def _outcome(out: bytes | Pending | Dropped) -> object:
    if isinstance(out, Pending):
        return ("pending", out.query, out.fwd)
    if isinstance(out, Dropped):
        return ("dropped", out.reason)
    return out


def test_first_answers_are_the_full_chains_answers(tmp_path: Path) -> None:
    fast_events: list[BlockEvent] = []
    full_events: list[BlockEvent] = []
    fast = _app(tmp_path / "f", True, fast_events)
    full = _app(tmp_path / "s", False, full_events)
    queries = _queries()
    for transport in (Transport.UDP, Transport.TCP):
        for data in queries:  # every question new to the fast box's cache, then again
            for _ in range(2):
                a = fast.service.begin(data, "127.0.0.1", transport)
                b = full.service.begin(data, "127.0.0.1", transport)
                assert _outcome(a) == _outcome(b), DNSRecord.parse(data)
            fast.service.inflight = full.service.inflight = 0
        fast.cache.clear()
        full.cache.clear()
    assert fast_events == full_events
    assert fast.service.counts == full.service.counts
    assert fast.service.counts["blocked"] > 100
    assert fast.service.counts["local"] > 10


def test_a_listed_name_is_blocked_by_the_name_lane_not_the_cache(tmp_path: Path) -> None:
    events: list[BlockEvent] = []
    app = _app(tmp_path, True, events)
    q = DNSRecord.question("never-seen.evil.test", "A")
    q.add_ar(EDNS0(udp_len=1232))
    data = bytes(q.pack())
    app.service.begin(data, "127.0.0.1", Transport.UDP)  # admits the client
    app.cache.clear()
    n_lookups = app.cache.misses
    out = app.service.begin(data, "127.0.0.1", Transport.UDP)
    assert isinstance(out, bytes)
    r = DNSRecord.parse(out)
    assert r.header.rcode == wire.NXDOMAIN and r.header.id == q.header.id
    assert app.cache.misses == n_lookups  # the cache stage's decide never ran
    assert events[-1][:7] == (
        NOW,
        "127.0.0.1",
        "never-seen.evil.test",
        1,
        "blocked",
        events[-1].reason,
        events[-1].category,
    )
    # Not kept: a burst of distinct listed names must not evict the commune's answers.
    key = from_wire(data, "127.0.0.1", Transport.UDP).cache_key
    assert app.cache.hit(key, NOW) is None
    assert app.service.begin(data, "127.0.0.1", Transport.UDP)[2:] == out[2:]  # type: ignore[index]


_LABEL = st.binary(min_size=1, max_size=20)


@given(st.lists(_LABEL, min_size=0, max_size=6))
@example([b"a.b", b"c"])
@example([b"\xe0\xa0", b"x"])
@example([b"A", b"B"])
@example([b"-", b"0", b"*"])
@example([b"a b", b"\\"])
def test_name_text_is_the_text_of_the_labels(labels: list[bytes]) -> None:
    name = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    if len(name) > wire.MAX_NAME:
        return
    q = wire.HEADER.pack(1, 0x0100, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01"
    fq = parse_fast(q)
    assert fq is not None
    assert name_text(fq[0]) == wire.labels_to_text(labels)


@given(
    st.lists(_LABEL, min_size=1, max_size=4),
    st.sampled_from([1, 28, 16, 255, 65]),
    st.sampled_from([None, 512, 1232, 4096, 100]),
    st.booleans(),
    st.booleans(),
    st.integers(0, 255),
    st.sampled_from([Transport.UDP, Transport.TCP]),
)
def test_a_query_rebuilt_from_the_fast_parse_is_from_wires(
    labels: list[bytes],
    qtype: int,
    payload: int | None,
    do: bool,
    cd: bool,
    ext_rcode: int,
    transport: Transport,
) -> None:
    name = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    if len(name) > wire.MAX_NAME:
        return
    flags = 0x0100 | (wire.CD if cd else 0)
    arcount = 0 if payload is None else 1
    q = (
        wire.HEADER.pack(0xBEEF, flags, 1, 0, 0, arcount)
        + name
        + wire.U16.pack(qtype)
        + b"\x00\x01"
    )
    if payload is not None:
        ttl = (ext_rcode << 24) | (0x8000 if do else 0)
        q += b"\x00" + wire.RR_FIXED.pack(wire.T_OPT, payload, ttl, 0)
    fq = parse_fast(q)
    assert fq is not None
    rebuilt = query_from_fast(q, fq, name_text(fq[0]), "192.0.2.1", transport, 1232)
    assert rebuilt == from_wire(q, "192.0.2.1", transport, 1232)


class _Broken:
    """A list whose lookup fails: a bug in a stage's hook."""

    def match(self, name: str) -> None:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1


def test_a_bug_in_a_name_judge_is_a_servfail_and_serving_goes_on(tmp_path: Path) -> None:
    events: list[BlockEvent] = []
    app = _app(tmp_path, True, events)
    q = DNSRecord.question("first.example", "A")
    data = bytes(q.pack())
    app.service.begin(data, "127.0.0.1", Transport.UDP)  # admits the client
    app.service.inflight = 0
    stage = next(s for s in app.pipeline.stages if isinstance(s, BlocklistStage))
    good = stage.lists.current
    stage.lists.current = _Broken()
    out = app.service.begin(
        bytes(DNSRecord.question("second.example", "A").pack()), "127.0.0.1", Transport.UDP
    )
    assert isinstance(out, bytes) and DNSRecord.parse(out).header.rcode == wire.SERVFAIL
    stage.lists.current = good
    again = app.service.begin(
        bytes(DNSRecord.question("a.evil.test", "A").pack()), "127.0.0.1", Transport.UDP
    )
    assert isinstance(again, bytes) and DNSRecord.parse(again).header.rcode == wire.NXDOMAIN
