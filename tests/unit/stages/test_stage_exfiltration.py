"""The exfiltration stage: evidence per client and registered domain, cool-down, modes, bounds."""

from __future__ import annotations

import random
import string

import pytest

from resolver.config.exfiltration import ExfilThresholds, ExfiltrationConfig
from resolver.core.block_answer import BlockAnswer
from resolver.core.steps import CONTINUE, Reply, Verdict
from resolver.exfil.known_good import KnownGood
from resolver.stages.exfiltration import ExfiltrationStage
from tests.fakes import FakeClock, make_query, parse

T0 = 1_700_000_000.0
B32 = string.ascii_lowercase + "234567"


def stage(**kw: object) -> ExfiltrationStage:
    known = KnownGood(["sophosxl.net", "in-addr.arpa", "ip6.arpa"])
    return ExfiltrationStage(ExfiltrationConfig(**kw), BlockAnswer(), known)  # type: ignore[arg-type]


def b32(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(B32) for _ in range(n))


def tunnel_name(rng: random.Random, domain: str = "t.evil.example.com", size: int = 60) -> str:
    data = b32(rng, size)
    return ".".join(data[i : i + 50] for i in range(0, len(data), 50)) + "." + domain


def run(
    st: ExfiltrationStage,
    names: list[str],
    qtype: str = "A",
    client: str = "192.168.1.7",
    clock: FakeClock | None = None,
    step: float = 0.5,
) -> list[object]:
    clock = clock or FakeClock(T0)
    out = []
    for name in names:
        out.append(st.decide(make_query(name, qtype, client=client), clock()))
        clock.advance(step)
    return out


def first_block(steps: list[object]) -> int | None:
    return next((i for i, s in enumerate(steps) if isinstance(s, Reply)), None)


def test_a_tunnel_is_blocked_within_a_few_queries_with_its_evidence() -> None:
    st = stage()
    rng = random.Random(1)
    steps = run(st, [tunnel_name(rng) for _ in range(20)])
    i = first_block(steps)
    assert i == ExfilThresholds().names - 1  # the 8th distinct data-like name
    reply = steps[i]
    assert isinstance(reply, Reply)
    assert reply.verdict == Verdict.EXFILTRATION
    assert reply.reason == "exfil:names"
    assert reply.category == "exfiltration"
    msg = parse(reply.wire)
    assert msg.header.rcode == 3  # NXDOMAIN, the default block answer
    assert all(isinstance(s, Reply) for s in steps[i:])  # and the domain stays blocked


def test_weak_types_count_double() -> None:
    rng = random.Random(2)
    steps = run(stage(), [tunnel_name(rng) for _ in range(10)], "TXT")
    assert first_block(steps) == 3  # 4 names x weight 2


def test_long_names_hit_the_volume_budget_first() -> None:
    rng = random.Random(3)
    steps = run(stage(), [tunnel_name(rng, size=200) for _ in range(10)])
    i = first_block(steps)
    assert i == 5  # 6 x 200 chars >= 1200
    assert steps[i].reason == "exfil:volume"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("names", "qtype", "signal"),
    [
        ([f"q+z8{c}wabA.tun.example.org" for c in "abcd"], "TXT", "odd"),  # dns2tcp's base64
        ([f"paaami{c}i.tun.example.org" for c in "abcd"], "NULL", "qtype"),  # iodine pings
        ([f"paaami{c}i.tun.example.org" for c in "abcd"], 65399, "qtype"),  # private type
    ],
)
def test_single_strong_signals(names: list[str], qtype: str | int, signal: str) -> None:
    steps = run(stage(), names, qtype)  # type: ignore[arg-type]
    assert first_block(steps) == 2
    assert steps[2].reason == f"exfil:{signal}"  # type: ignore[attr-defined]


def test_many_short_distinct_names_hit_the_rate() -> None:
    names = [f"x{i}.cdn.example.net" for i in range(ExfilThresholds().rate + 50)]
    steps = run(stage(), names, step=0.05)  # all within the 60 s window
    i = first_block(steps)
    assert i == ExfilThresholds().rate - 1
    assert steps[i].reason == "exfil:rate"  # type: ignore[attr-defined]


def test_slow_leak_is_caught_by_the_long_window() -> None:
    rng = random.Random(4)
    names = [tunnel_name(rng, size=40) for _ in range(130)]
    steps = run(stage(), names, step=30.0)  # two names a minute: never 8 in the short window
    i = first_block(steps)
    assert i is not None and i < 100
    assert steps[i].reason == "exfil:slow"  # type: ignore[attr-defined]


def test_the_short_window_slides() -> None:
    rng = random.Random(5)
    st = stage()
    clock = FakeClock(T0)
    for _ in range(5):
        steps = run(st, [tunnel_name(rng) for _ in range(6)], clock=clock, step=1.0)
        assert first_block(steps) is None
        clock.advance(120)


def test_repeats_carry_no_new_data() -> None:
    rng = random.Random(6)
    name = tunnel_name(rng, size=100)
    assert first_block(run(stage(), [name] * 500, "TXT")) is None


def test_counts_are_per_registered_domain_private_suffixes_included() -> None:
    rng = random.Random(7)
    # 7 names under each of many duckdns.org customers: never 8 under one registered domain
    names = [tunnel_name(rng, f"c{i}.duckdns.org") for i in range(20) for _ in range(7)]
    assert first_block(run(stage(), names, step=0.1)) is None
    names = [tunnel_name(rng, "one.duckdns.org") for _ in range(8)]
    assert first_block(run(stage(), names)) == 7


def test_known_good_domains_are_never_judged() -> None:
    rng = random.Random(8)
    names = [f"{b32(rng, 26)}.3.f.sophosxl.net" for _ in range(500)]
    names += [".".join(b32(rng, 1) for _ in range(32)) + ".ip6.arpa" for _ in range(200)]
    assert first_block(run(stage(), names, "TXT", step=0.05)) is None


def test_cool_down_blocks_the_domain_for_the_client_then_ends() -> None:
    rng = random.Random(9)
    st = stage(cooldown=600.0)
    clock = FakeClock(T0)
    run(st, [tunnel_name(rng, "evil.example") for _ in range(8)], clock=clock)
    s = st.decide(make_query("www.evil.example"), clock())
    assert isinstance(s, Reply) and s.reason == "exfil:cooldown,names"
    s = st.decide(make_query("evil.example", "MX"), clock())
    assert isinstance(s, Reply)
    # another client is not concerned with scope "client"
    assert st.decide(make_query("www.evil.example", client="192.168.1.8"), clock()) is CONTINUE
    clock.advance(601)
    assert st.decide(make_query("www.evil.example"), clock()) is CONTINUE


def test_scope_all_blocks_every_client() -> None:
    rng = random.Random(10)
    st = stage(scope="all")
    run(st, [tunnel_name(rng, "evil.example") for _ in range(8)])
    s = st.decide(make_query("www.evil.example", client="10.1.2.3"), T0 + 10)
    assert isinstance(s, Reply) and s.verdict == Verdict.EXFILTRATION


def test_detect_mode_reports_once_and_never_blocks() -> None:
    rng = random.Random(11)
    st = stage(mode="detect")
    steps = run(st, [tunnel_name(rng, "evil.example") for _ in range(50)])
    assert all(s is CONTINUE for s in steps)
    found = st.drain()
    assert len(found) == 1
    d = found[0]
    assert (d.client, d.domain, d.signals, d.blocked) == (
        "192.168.1.7",
        "evil.example",
        ("names",),
        False,
    )
    assert st.drain() == []


def test_block_mode_also_reports_the_detection() -> None:
    rng = random.Random(12)
    st = stage()
    run(st, [tunnel_name(rng, "evil.example") for _ in range(20)])
    assert [d.blocked for d in st.drain()] == [True]


def test_off_mode_passes_everything() -> None:
    rng = random.Random(13)
    st = stage(mode="off")
    assert all(s is CONTINUE for s in run(st, [tunnel_name(rng) for _ in range(50)], "NULL"))
    assert st.describe() == "disabled"


@pytest.mark.parametrize("name", ["localhost", "com", "co.uk", "qwhfgdtskl", "example.com"])
def test_names_without_a_part_to_judge_pass(name: str) -> None:
    st = stage()
    assert all(s is CONTINUE for s in run(st, [name] * 20, "NULL"))
    assert len(st.tracks) == 0


def test_a_flood_of_random_names_and_clients_keeps_state_bounded() -> None:
    rng = random.Random(14)
    st = stage(max_tracked=500, max_cooldowns=50, max_detections=10, scope="all")
    clock = FakeClock(T0)
    for i in range(5_000):
        client = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
        st.decide(make_query(tunnel_name(rng, f"d{i}.example"), "NULL", client=client), clock())
        clock.advance(0.001)
    assert len(st.tracks) <= 500
    # many detections (3 NULL names under one domain each), yet bounded cool-downs and reports
    for i in range(300):
        run(st, [f"p{j}.x{i}.example" for j in range(3)], "NULL", clock=clock, step=0.01)
    assert st.detected >= 300
    assert len(st.cooldowns) <= 50
    assert len(st.detections) <= 10


def test_one_plain_name_passes() -> None:
    st = stage()
    q = make_query("a.b.example.com")
    assert st.decide(q, T0) is CONTINUE  # plain names: no evidence beyond a distinct name


def test_describe_mentions_mode_and_thresholds() -> None:
    text = stage().describe()
    assert text.startswith("block, scope client")
    assert "3 known-good" in text


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        ExfilThresholds(window=120, long_window=60)
    with pytest.raises(ValueError, match="names"):
        ExfilThresholds(names=0)
    with pytest.raises(ValueError, match="cooldown"):
        ExfiltrationConfig(cooldown=-1)
