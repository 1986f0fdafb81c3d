"""The generated-domain stage in process: evidence from NXDOMAIN answers, naming, blocking."""

from __future__ import annotations

import random
import string
import struct

import pytest

from resolver.config.dga import DgaConfig
from resolver.core import wire
from resolver.core.block_answer import BlockAnswer
from resolver.core.cached_answer import CachedAnswer
from resolver.core.query import Query, Transport, from_wire
from resolver.core.steps import CONTINUE, Forward, Reply, Verdict
from resolver.dga.charmodel import CharModel
from resolver.stages.dga import DgaStage

FWD = Forward(())
MODEL = CharModel.shipped()


def query(name: str, client: str = "192.168.1.20", qtype: int = 1) -> Query:
    labels = b"".join(bytes([len(x)]) + x.encode() for x in name.split("."))
    msg = wire.HEADER.pack(7, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!HH", qtype, 1)
    return from_wire(msg, client, Transport.UDP)


NX = CachedAnswer(3, 0, 0, 0, b"", (), (), 0.0, 0)
A = CachedAnswer(
    0, 1, 0, 0, b"\xc0\x0c" + wire.RR_FIXED.pack(1, 1, 60, 4) + bytes(4), (4,), (60,), 0.0, 60
)


def ask(stage: DgaStage, name: str, answer: CachedAnswer, now: float, client: str = "192.168.1.20"):
    q = query(name, client)
    step = stage.decide(q, now)
    if step is not CONTINUE:
        return step
    return stage.on_answer(q, FWD, answer, now)


def random_names(n: int, seed: int = 1, tld: str = "com") -> list[str]:
    rng = random.Random(seed)
    return [
        "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(10, 16))) + "." + tld
        for _ in range(n)
    ]


def stage(mode: str = "block") -> DgaStage:
    return DgaStage(DgaConfig(mode=mode), BlockAnswer(), MODEL)  # type: ignore[arg-type]


def test_the_model_tells_random_labels_from_real_ones() -> None:
    for real in ("google", "leboncoin", "mairie", "weatherforecast", "servicepublic"):
        assert MODEL.randomness(real) < 0, real
    for drawn in ("xkqzjfhewq", "qwhgfkdsla", "a1b2c3d4e5f6", "9f86d081884c7d659a2f"):
        assert MODEL.randomness(drawn) > 0, drawn


def test_a_random_family_is_named_and_its_live_name_blocked_with_ede() -> None:
    s = stage()
    names = random_names(20)
    now = 1000.0
    judged_at = None
    for i, name in enumerate(names[:15]):
        out = ask(s, name, NX, now + i)
        if isinstance(out, Reply):
            judged_at = i
            break
    assert judged_at is not None and judged_at < 15
    assert s.generation == 1
    assert not s.admits("192.168.1.20", now + 20)
    assert s.admits("192.168.1.99", now + 20)  # another machine: not judged
    # The name the operator registered resolves: blocked all the same, EDE 15, category dga.
    live = query(names[15])
    step = s.decide(live, now + 30)
    assert isinstance(step, Reply)
    assert (step.verdict, step.reason, step.category) == (Verdict.BLOCKED, "dga", "dga")
    assert step.wire[3] & 0xF == wire.NXDOMAIN  # blocking.mode (EDE: tests/integration)
    # Ordinary names of the same machine still resolve.
    assert s.decide(query("www.leboncoin.fr"), now + 31) is CONTINUE
    assert s.decide(query("cdn.example.net"), now + 31) is CONTINUE


def test_a_dictionary_family_is_named_too() -> None:
    words = [
        "house",
        "table",
        "river",
        "summer",
        "garden",
        "window",
        "market",
        "letter",
        "mother",
        "forest",
        "silver",
        "doctor",
        "animal",
        "bright",
        "engine",
        "family",
    ]
    rng = random.Random(4)
    s = stage()
    named = None
    for i in range(40):
        name = rng.choice(words) + rng.choice(words) + ".net"
        if isinstance(ask(s, name, NX, 1000.0 + i * 2), Reply):
            named = i
            break
    assert named is not None and named < 30


def test_detect_mode_names_without_blocking() -> None:
    s = stage("detect")
    for i, name in enumerate(random_names(15)):
        assert ask(s, name, NX, 1000.0 + i) is None
    assert s.named == 1 and s.drain()[0].client == "192.168.1.20"
    assert s.generation == 0 and s.admits("192.168.1.20", 1016.0)  # nothing judged differently
    assert s.decide(query(random_names(1, seed=9)[0]), 1020.0) is CONTINUE


def test_the_judgement_ends_when_the_bursts_stop() -> None:
    s = stage()
    for i, name in enumerate(random_names(15)):
        ask(s, name, NX, 1000.0 + i)
    assert s.infected
    later = 1015.0 + s.cfg.hold + 1
    assert s.decide(query(random_names(1, seed=9)[0]), later) is CONTINUE
    assert not s.infected and s.admits("192.168.1.20", later)
    # A cleaned machine starts afresh: one more NXDOMAIN names nothing.
    assert ask(s, random_names(1, seed=10)[0], NX, later + 1) is None
    assert not s.infected


def test_benign_random_looking_traffic_never_names_a_machine() -> None:
    s = stage()
    rng = random.Random(2)
    now = 1000.0
    for start in range(30):  # Chromium: three random probes per start or network change
        for _ in range(3):
            probe = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(7, 15)))
            ask(s, probe, NX, now)
            ask(s, probe + ".mairie-exemple.fr", NX, now)  # the search suffix appended
            ask(s, probe + ".mairie.local", NX, now)
        ask(s, "wpad.mairie-exemple.fr", NX, now)
        ask(s, "isatap.mairie.local", NX, now)
        ask(s, "wpad.box", NX, now)  # WPAD devolution: "box" is a search suffix here
        for _ in range(3):  # the same probes with that suffix appended
            ask(s, "".join(rng.choice(string.ascii_lowercase) for _ in range(9)) + ".box", NX, now)
        # CDN hashes, antivirus cloud, DKIM, reverse DNS: hosts under existing domains.
        ask(s, f"d{rng.getrandbits(40):x}.cloudfront.net", A, now)
        ask(s, f"{rng.getrandbits(64):x}.avqs.mcafee.com", NX, now)
        ask(s, f"s{start}._domainkey.gmail.com", NX, now)
        ask(s, f"{start}.1.168.192.in-addr.arpa", NX, now)
        now += 600
    assert not s.infected and s.named == 0


def test_a_domain_another_machine_resolves_is_no_evidence() -> None:
    s = stage()
    names = random_names(12)
    for name in names:
        ask(s, name, A, 999.0, client="192.168.1.50")  # resolved elsewhere (then gone)
    for i, name in enumerate(names):
        ask(s, name, NX, 1000.0 + i)
    assert not s.infected


def test_memory_is_bounded_under_a_flood_of_random_names() -> None:
    cfg = DgaConfig(max_clients=64, max_domains=256)
    s = DgaStage(cfg, BlockAnswer(), MODEL)
    rng = random.Random(3)
    for i in range(20_000):
        client = f"10.0.{i % 250}.{i % 199}"
        name = f"{rng.getrandbits(48):x}x.com"
        ask(s, name, NX if i % 3 else A, 1000.0 + i * 0.001, client)
    assert len(s.suspects) <= 64
    assert len(s.resolved) <= 256
    assert len(s.infected) <= 2 * 64
    assert all(len(x.recent) <= 64 and len(x.tlds) <= 24 for x in s.suspects._d.values())


@pytest.mark.parametrize("mode", ["block", "detect"])
def test_forward_zones_are_not_judged(mode: str) -> None:
    s = stage(mode)
    for i, name in enumerate(random_names(20)):
        assert s.on_answer(query(name), Forward((), zone="mairie.fr"), NX, 1000.0 + i) is None
    assert not s.infected


def test_a_mail_server_looking_up_spam_senders_is_not_named() -> None:
    s = stage()
    for i, name in enumerate(random_names(60, seed=8)):
        q = query(name, "192.168.1.5", qtype=15)  # MX first (RFC 5321 §5.1) ...
        assert s.on_answer(q, FWD, NX, 1000.0 + i) is None
        assert ask(s, name, NX, 1000.0 + i, "192.168.1.5") is None  # ... then the address
    assert not s.infected


def test_wpad_com_does_not_make_com_names_pass() -> None:
    s = stage()
    ask(s, "wpad.com", NX, 999.0)
    for i, name in enumerate(random_names(15)):
        ask(s, name, NX, 1000.0 + i)
    assert s.infected


def test_a_slow_random_family_is_named_too() -> None:
    s = DgaStage(DgaConfig(half_life=60.0), BlockAnswer(), MODEL)  # no burst can add up
    for i, name in enumerate(random_names(60)):
        if isinstance(ask(s, name, NX, 1000.0 + 120 * i), Reply):
            assert i + 1 == s.cfg.slow_domains
            break
    assert s.infected
