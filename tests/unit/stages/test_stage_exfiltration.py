"""The exfiltration stage: evidence per client and registered domain, escalation, modes, bounds."""

from __future__ import annotations

import random
import string

import pytest

from resolver.config.exfiltration import ExfilThresholds, ExfiltrationConfig
from resolver.core.block_answer import BlockAnswer
from resolver.core.query import Query
from resolver.core.steps import CONTINUE, Forward, Reply, Verdict
from resolver.exfil.known_good import KnownGood
from resolver.exfil.redact import UNKNOWN_TLD
from resolver.stages.exfiltration import ExfiltrationStage
from tests.fakes import FakeClock, make_query, parse

T0 = 1_700_000_000.0
B32 = string.ascii_lowercase + "234567"
PUBLIC = Forward(())


def stage(**kw: object) -> ExfiltrationStage:
    known = KnownGood(["sophosxl.net", "in-addr.arpa", "ip6.arpa"])
    return ExfiltrationStage(ExfiltrationConfig(**kw), BlockAnswer(), known)  # type: ignore[arg-type]


def b32(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(B32) for _ in range(n))


def tunnel_name(rng: random.Random, domain: str = "t.evil-example.com", size: int = 60) -> str:
    data = b32(rng, size)
    return ".".join(data[i : i + 50] for i in range(0, len(data), 50)) + "." + domain


def run(
    st: ExfiltrationStage,
    names: list[str],
    qtype: str | int = "A",
    client: str = "192.168.1.7",
    clock: FakeClock | None = None,
    step: float = 0.5,
) -> list[object]:
    clock = clock or FakeClock(T0)
    out: list[object] = []
    for name in names:
        out.append(st.decide(make_query(name, qtype, client=client), clock()))
        clock.advance(step)
    return out


def first_block(steps: list[object]) -> int | None:
    return next((i for i, s in enumerate(steps) if isinstance(s, Reply)), None)


def reason(step: object) -> str:
    assert isinstance(step, Reply)
    return step.reason


# --- detection ----------------------------------------------------------------------------


def test_a_tunnel_is_blocked_within_a_few_queries_with_its_evidence() -> None:
    st = stage()
    rng = random.Random(1)
    steps = run(st, [tunnel_name(rng) for _ in range(20)])
    i = first_block(steps)
    assert i == ExfilThresholds().names - 1  # the 8th distinct data-like name
    reply = steps[i]
    assert isinstance(reply, Reply)
    assert reply.verdict == Verdict.EXFILTRATION
    assert reply.reason.startswith("exfil:names")
    assert reply.category == "exfiltration"
    assert parse(reply.wire).header.rcode == 3  # NXDOMAIN, the default block answer
    assert all(isinstance(s, Reply) for s in steps[i:])  # every later data name too


def test_a_txt_tunnel_is_caught_as_early() -> None:
    rng = random.Random(2)
    steps = run(stage(), [tunnel_name(rng) for _ in range(10)], "TXT")
    i = first_block(steps)
    assert i is not None and i < ExfilThresholds().names


def test_long_names_hit_the_volume_and_information_budgets_first() -> None:
    rng = random.Random(3)
    steps = run(stage(), [tunnel_name(rng, size=200) for _ in range(10)])
    i = first_block(steps)
    assert i is not None and i < 7
    assert "volume" in reason(steps[i]) or "info" in reason(steps[i])


@pytest.mark.parametrize(
    ("names", "qtype", "signal"),
    [
        ([f"q+z8{c}wabA.tun.example.org" for c in "abcd"], "TXT", "odd"),  # dns2tcp's base64
        ([f"paaami{c}i.tun.example.org" for c in "abcd"], "NULL", "qtype"),  # iodine pings
        ([f"paaami{c}i.tun.example.org" for c in "abcd"], 65399, "qtype"),  # private type
    ],
)
def test_strong_signals_cool_the_domain_down_at_once(
    names: list[str], qtype: str | int, signal: str
) -> None:
    st = stage()
    steps = run(st, names, qtype)
    assert first_block(steps) == 2
    assert reason(steps[2]) == f"exfil:cooldown,{signal}"
    assert reason(st.decide(make_query("www.example.org"), T0 + 5)) == f"exfil:cooldown,{signal}"


def test_many_short_distinct_names_hit_the_rate() -> None:
    names = [f"x{i}.cdn.example.net" for i in range(ExfilThresholds().rate + 50)]
    steps = run(stage(), names, step=0.05)  # all within the 60 s window
    i = first_block(steps)
    assert i == ExfilThresholds().rate - 1
    assert reason(steps[i]) == "exfil:rate"


def test_slow_leak_is_caught_by_the_long_window() -> None:
    rng = random.Random(4)
    names = [tunnel_name(rng, size=40) for _ in range(130)]
    steps = run(stage(), names, step=31.7)  # two names a minute: never 8 in the short window
    i = first_block(steps)
    assert i is not None and i < 100
    assert "slow" in reason(steps[i]) or "beacon" in reason(steps[i])


def test_the_short_window_slides() -> None:
    rng = random.Random(5)
    st = stage()
    clock = FakeClock(T0)
    for _ in range(5):
        steps = run(st, [tunnel_name(rng, size=30) for _ in range(6)], clock=clock, step=1.0)
        assert first_block(steps) is None
        clock.advance(120 + rng.uniform(0, 400))


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


def test_direct_mode_names_under_no_real_tld_are_caught() -> None:
    """dnscat2 without a domain: "dnscat.<hex>", the last label data too (issue 15)."""
    rng = random.Random(20)
    names = [f"dnscat.{rng.randbytes(30).hex()}.{rng.randbytes(8).hex()}" for _ in range(10)]
    st = stage()
    steps = run(st, names, "TXT")
    i = first_block(steps)
    assert i is not None and i < ExfilThresholds().unknown_tld_names  # TXT names count double
    assert reason(steps[i]) == "exfil:cooldown,nxtld"
    assert st.drain()[0].domain == UNKNOWN_TLD
    # the commune's own names under a private TLD are not data: they pass
    assert first_block(run(stage(), [f"pc{i}.mairie.lan" for i in range(50)])) is None


def test_a_beacon_with_small_data_names_is_caught_by_its_period() -> None:
    """A Cobalt-Strike-like check-in every ~300 s, a short data name now and then."""
    rng = random.Random(21)
    st = stage()
    clock = FakeClock(T0)
    steps: list[object] = []
    for k in range(20):
        steps.append(st.decide(make_query("a1b2c3d4.cdn-upd.com"), clock()))
        if k % 2:
            steps.append(st.decide(make_query(f"post.{rng.randbytes(20).hex()}.cdn-upd.com"),
                                   clock() + 1))  # fmt: skip
        clock.advance(300 * rng.uniform(0.8, 1.0))
    i = first_block(steps)
    assert i is not None and i < 20
    assert "beacon" in reason(steps[i])


# --- what is not a tunnel -----------------------------------------------------------------


def test_microsoft_365_dkim_lookups_of_a_mail_server_pass() -> None:
    """RFC 6376 selectors of M365 senders: selector1-<domain>._domainkey.<tenant>.onmicrosoft.com
    (issue 15: one machine's DKIM checks cut off for an hour)."""
    rng = random.Random(22)
    names = []
    for _ in range(400):
        sender = f"{b32(rng, rng.randrange(5, 12))}{rng.randrange(100)}-{b32(rng, 4)}.fr"
        tenant = f"{sender.split('.')[0].replace('-', '')}{b32(rng, 3)}"
        sel = rng.choice(["selector1", "selector2"])
        names.append(f"{sel}-{sender.replace('.', '-')}._domainkey.{tenant}.onmicrosoft.com")
    assert first_block(run(stage(), names, "TXT", step=2.0)) is None


def test_a_dns_test_battery_of_short_hashed_labels_is_never_cut_off() -> None:
    """Distinct short hashes under one domain carry little information (issue 15: a battery
    cut off after 8 names for an hour). Its first 20 pass; past 24 in a minute single names
    are refused, never the domain, whose plain names go on passing."""
    rng = random.Random(23)
    names = [f"c{i}-{rng.randbytes(3).hex()}-{rng.randbytes(3).hex()[:5]}.wild.dnscheck.tools"
             for i in range(80)]  # fmt: skip
    st = stage()
    clock = FakeClock(T0)
    steps = run(st, names, "A", clock=clock, step=0.2)
    assert first_block(steps[:20]) is None
    assert st.decide(make_query("www.dnscheck.tools"), clock()) is CONTINUE
    assert not st.cooldowns.key_list()


def test_dnsbl_lookups_pass_ipv4_and_ipv6() -> None:
    rng = random.Random(24)
    v4 = [".".join(str(rng.randrange(256)) for _ in range(4)) + ".zen.spamhaus.org"
          for _ in range(300)]  # fmt: skip
    v6 = [".".join(rng.randbytes(16).hex()[::-1]) + ".zen.spamhaus.org" for _ in range(300)]
    assert first_block(run(stage(), v4 + v6, "A", step=0.1)) is None


def test_a_popular_domain_is_not_cut_on_weak_evidence() -> None:
    rng = random.Random(25)
    st = stage()
    clock = FakeClock(T0)
    for c in range(6):  # six machines of the commune use it
        run(st, ["www.popular-cloud.com"], client=f"192.168.1.{c + 20}", clock=clock)
    names = [tunnel_name(rng, "api.popular-cloud.com") for _ in range(30)]
    assert first_block(run(st, names, clock=clock)) is None
    # but a tunnel's record type is not excused by popularity
    steps = run(st, [f"p{c}aaaa.popular-cloud.com" for c in "abcd"], "NULL", clock=clock)
    assert first_block(steps) == 2


# --- escalation ---------------------------------------------------------------------------


def test_a_first_detection_blocks_that_name_only_then_the_domain_for_that_client() -> None:
    rng = random.Random(9)
    st = stage(cooldown=600.0)
    clock = FakeClock(T0)
    steps = run(st, [tunnel_name(rng, "evil-example.com") for _ in range(8)], clock=clock)
    assert first_block(steps) == 7 and reason(steps[7]) == "exfil:names"
    assert st.decide(make_query("www.evil-example.com"), clock()) is CONTINUE  # not the domain
    assert st.generation == 0 and st.admits("192.168.1.7", clock())
    # more data names: each refused; once 1 KB of information went by, the domain is cut
    steps = run(st, [tunnel_name(rng, "evil-example.com") for _ in range(20)], clock=clock)
    assert all(isinstance(s, Reply) for s in steps)
    escalated = [i for i, s in enumerate(steps) if reason(s).startswith("exfil:cooldown,")]
    assert escalated and escalated[0] < 20
    assert st.generation == 1
    assert not st.admits("192.168.1.7", clock())  # its cached answers take the full path
    assert st.admits("192.168.1.8", clock())
    s = st.decide(make_query("www.evil-example.com"), clock())
    assert reason(s).startswith("exfil:cooldown,names")
    assert isinstance(st.decide(make_query("evil-example.com", "MX"), clock()), Reply)
    # another client, another domain: not concerned
    assert st.decide(make_query("www.evil-example.com", client="192.168.1.8"), clock()) is CONTINUE
    assert st.decide(make_query("www.example.org"), clock()) is CONTINUE
    clock.advance(601)
    assert st.decide(make_query("www.evil-example.com"), clock()) is CONTINUE
    assert st.generation == 2  # the end of the cool-down changes verdicts too
    assert st.admits("192.168.1.7", clock())


def test_scope_all_blocks_every_client() -> None:
    st = stage(scope="all")
    run(st, [f"paaam{c}ii.evil-example.com" for c in "abc"], "NULL")
    s = st.decide(make_query("www.evil-example.com", client="10.1.2.3"), T0 + 10)
    assert isinstance(s, Reply) and s.verdict == Verdict.EXFILTRATION
    assert not st.admits("10.9.9.9", T0 + 10)


def test_the_operator_can_say_a_domain_is_legitimate() -> None:
    st = stage()
    run(st, [f"paaam{c}ii.evil-example.com" for c in "abc"], "NULL")
    generation = st.generation
    st.trust("Evil-Example.com.")
    assert st.generation == generation + 1
    assert st.decide(make_query("www.evil-example.com"), T0 + 10) is CONTINUE
    steps = run(st, [f"paaam{c}ii.evil-example.com" for c in "defgh"], "NULL")
    assert first_block(steps) is None


def test_detect_mode_reports_the_name_then_the_domain_and_never_blocks() -> None:
    rng = random.Random(11)
    st = stage(mode="detect")
    steps = run(st, [tunnel_name(rng, "evil-example.com") for _ in range(50)])
    assert all(s is CONTINUE for s in steps)
    found = st.drain()
    assert [(d.client, d.domain, d.signals[0], d.blocked, d.level) for d in found] == [
        ("192.168.1.7", "evil-example.com", "names", False, "name"),
        ("192.168.1.7", "evil-example.com", "names", False, "domain"),
    ]
    assert st.drain() == []


def test_block_mode_also_reports_the_detection() -> None:
    rng = random.Random(12)
    st = stage()
    run(st, [tunnel_name(rng, "evil-example.com") for _ in range(40)])
    assert [(d.blocked, d.level) for d in st.drain()] == [(True, "name"), (True, "domain")]


# --- the answer side ----------------------------------------------------------------------


def answer(q: Query, size: int, rcode: int = 0) -> bytes:
    return (
        q.question[:0]
        + bytes([0x42, 0x42, 0x81, 0x80 | rcode])
        + bytes(8)
        + q.question
        + bytes(size)
    )


def test_a_stager_pulling_its_payload_in_txt_answers_is_cut_off() -> None:
    st = stage()
    blocked = None
    for i in range(100):
        q = make_query(f"l.{i}.ns.stage-dl.org", "TXT")
        assert st.decide(q, T0 + i) is CONTINUE or blocked is not None
        late = st.on_answer(q, PUBLIC, answer(q, 255), T0 + i + 0.1)
        if late is not None and blocked is None:
            blocked = i
            assert reason(late).startswith("exfil:") and "answers" in reason(late)
    assert blocked is not None and blocked < 20
    assert isinstance(st.decide(make_query("l.99.ns.stage-dl.org", "TXT"), T0 + 200), Reply)


def test_ordinary_answers_and_local_zones_add_nothing() -> None:
    st = stage()
    for i in range(200):
        q = make_query(f"host{i % 9}.example.org", "TXT")
        st.decide(q, T0 + i)
        assert st.on_answer(q, PUBLIC, answer(q, 300), T0 + i) is None  # 9 names, repeats pass
    q = make_query("a.b.mairie.lan", "TXT")
    assert st.on_answer(q, Forward((), zone="mairie.lan"), answer(q, 9000), T0) is None


def test_a_flood_of_nxdomain_answers_counts_as_evidence() -> None:
    rng = random.Random(26)
    st = stage()
    got = []
    for i in range(40):
        q = make_query(f"{b32(rng, 20)}.gone-away.net", "A")
        if st.decide(q, T0 + i * 0.5) is CONTINUE:
            got.append(st.on_answer(q, PUBLIC, answer(q, 0, rcode=3), T0 + i * 0.5))
    assert any(r is not None and "nxdomain" in reason(r) for r in got)


# --- modes and bounds ---------------------------------------------------------------------


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
    st = stage(max_tracked=500, max_cooldowns=50, max_detections=10, max_domains=100, scope="all")
    clock = FakeClock(T0)
    for i in range(5_000):
        client = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
        st.decide(make_query(tunnel_name(rng, f"d{i}.example.com"), "NULL", client=client), clock())
        clock.advance(0.001)
    assert len(st.tracks) <= 500 and len(st.audience) <= 100
    # many detections (3 NULL names under one domain each), yet bounded cool-downs and reports
    for i in range(300):
        run(st, [f"p{j}.x{i}-example.net" for j in range(3)], "NULL", clock=clock, step=0.01)
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
    assert "3 known-good" in text and "after 3 detections" in text


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        ExfilThresholds(window=120, long_window=60)
    with pytest.raises(ValueError, match="names"):
        ExfilThresholds(names=0)
    with pytest.raises(ValueError, match="cooldown"):
        ExfiltrationConfig(cooldown=-1)


def test_detections_that_go_on_past_a_minute_cut_the_domain() -> None:
    """Repeated evidence: little information per name, but not one burst."""
    rng = random.Random(27)
    st = stage()
    clock = FakeClock(T0)
    names = [f"{b32(rng, 10)}{rng.randrange(10)}{b32(rng, 6)}.wild-x.com" for _ in range(120)]
    steps = run(st, names, clock=clock, step=1.0)  # one name a second
    first = first_block(steps)
    assert first is not None and reason(steps[first]) == "exfil:names"
    cut = next(i for i, s in enumerate(steps) if isinstance(s, Reply) and "cooldown" in s.reason)
    assert 55 <= cut - first <= 65  # names refused one by one for a minute, then the domain


# --- the mairie's own zones -----------------------------------------------------------------


def test_machine_names_of_the_mairies_own_zone_are_not_data_under_an_unknown_tld() -> None:
    """A forwarded AD zone (mairie.local) is under no public TLD; Windows' default machine
    names (DESKTOP-7F3K2LQ) there are the mairie's, not a direct-mode tunnel."""
    rng = random.Random(3)
    alnum = string.ascii_lowercase + string.digits
    names = [
        "desktop-" + "".join(rng.choice(alnum) for _ in range(7)) + ".mairie.local"
        for _ in range(60)
    ]
    known = KnownGood([])
    judged = ExfiltrationStage(ExfiltrationConfig(), BlockAnswer(), known, zones=["mairie.local"])
    assert first_block(run(judged, names, step=1.0)) is None
    unzoned = ExfiltrationStage(ExfiltrationConfig(), BlockAnswer(), known)
    assert first_block(run(unzoned, names, step=1.0)) is not None  # what the zone prevents


def test_a_tunnel_through_the_mairies_own_zone_is_still_caught() -> None:
    rng = random.Random(4)
    st = ExfiltrationStage(
        ExfiltrationConfig(), BlockAnswer(), KnownGood([]), zones=["Mairie.Local."]
    )
    names = [tunnel_name(rng, "mairie.local") for _ in range(30)]
    first = first_block(run(st, names))
    assert first is not None and first < 15


def battery_names(rng: random.Random, n: int) -> list[str]:
    return [f"c{i}-{rng.randbytes(3).hex()}-{rng.randbytes(3).hex()[:5]}.wild.dnscheck.tools"
            for i in range(n)]  # fmt: skip


def test_a_test_battery_answered_by_its_wildcard_passes_whole() -> None:
    """Each name carries a counter and a short hash (~9 octets): lookup keys, not data; the
    zone's wildcard answers them all with one address (issue 15, held-out corpus)."""
    st = stage()
    clock = FakeClock(T0)
    for name in battery_names(random.Random(31), 60):
        q = make_query(name, "A")
        assert st.decide(q, clock()) is CONTINUE
        wire = answer(q, 12)[:-4] + bytes([203, 0, 113, 7])  # the wildcard's one address
        assert st.on_answer(q, PUBLIC, wire, clock()) is None
        clock.advance(0.05)
    assert st.detected == 0


def beacon_round(
    st: ExfiltrationStage, rng: random.Random, bid: str, clock: FakeClock, tasks: int
) -> list[object]:
    """A Cobalt-Strike-style round: the check-in (the same name each time), then ``tasks``
    task names answered with varied addresses (4 octets of the task each)."""
    steps: list[object] = []
    q = make_query(f"{bid}.cdn.static-upd.net", "A")
    steps.append(st.decide(q, clock()))
    for i in range(tasks):
        clock.advance(0.01)
        q = make_query(f"{i:x}.{rng.randrange(1 << 28):07x}.{bid}.cdn.static-upd.net", "A")
        step = st.decide(q, clock())
        steps.append(step)
        if step is CONTINUE:
            st.on_answer(q, PUBLIC, answer(q, 12)[:-4] + rng.randbytes(4), clock())
    return steps


def test_a_beacons_heartbeat_after_its_refused_tasks_cuts_the_domain() -> None:
    """The check-in repeated after the tasks were refused one by one: the heartbeat."""
    rng = random.Random(5)
    st = stage()
    clock = FakeClock(T0)
    steps = beacon_round(st, rng, "3da876fc", clock, 60)
    assert any(isinstance(s, Reply) for s in steps) and not st.cooldowns.key_list()
    clock.advance(280.0)
    step = beacon_round(st, rng, "3da876fc", clock, 0)[0]
    assert reason(step) == "exfil:cooldown,beacon"


def test_task_fetches_answered_with_scattered_addresses_are_refused_early() -> None:
    """Cobalt Strike's A mode fetches its task 4 octets per answer: addresses all over the
    address space, which no zone's hosts are; refused from the 9th name, not the 25th."""
    steps = beacon_round(stage(), random.Random(4), "45802f93", FakeClock(T0), 60)
    i = first_block(steps)
    assert i is not None and i <= 10


def test_task_fetches_bringing_their_payload_down_in_txt_are_refused_early() -> None:
    """Cobalt Strike's TXT mode: 4 octets of nonce up, 189 octets of task down per name; what
    comes down counts toward the information bound of the pair."""
    rng = random.Random(12)
    st = stage()
    clock = FakeClock(T0)
    first = None
    for i in range(40):
        q = make_query(f"api.{rng.randrange(1 << 28):07x}.539817ee.ns.telemetry-srv.com", "TXT")
        step = st.decide(q, clock())
        if step is CONTINUE:
            st.on_answer(q, PUBLIC, answer(q, 201), clock())
        elif first is None:
            first = i
        clock.advance(0.01)
    assert first is not None and first <= 8


def test_a_tunnel_resuming_after_its_cool_down_is_cut_again_at_its_first_detection() -> None:
    rng = random.Random(6)
    st = stage(cooldown=600.0)
    clock = FakeClock(T0)
    run(st, [tunnel_name(rng) for _ in range(40)], clock=clock, step=5.0)
    assert st.cooldowns.key_list()
    clock.advance(601.0)
    steps = run(st, [tunnel_name(rng) for _ in range(10)], clock=clock)
    i = first_block(steps)  # its record was kept: its first detection cuts the domain
    assert i is not None and reason(steps[i]).startswith("exfil:cooldown,")
    assert st.decide(make_query("www.example.org"), clock()) is CONTINUE  # other domains pass


def test_a_slow_beacon_with_random_sleeps_is_caught_by_its_persistence() -> None:
    """SUNBURST-style: an encoded id plus a few encoded octets, one name every 1 to 10
    minutes: under every volume bound, too irregular for a period; data hour after hour."""
    rng = random.Random(7)
    alnum = string.ascii_lowercase + string.digits
    victim = "".join(rng.choice(alnum) for _ in range(15))
    st = stage()
    t = T0
    steps: list[object] = []
    for _ in range(48):
        part = "".join(rng.choice(alnum) for _ in range(16))
        steps.append(st.decide(make_query(f"{victim}{part}.appsync-api.eu-west-1.avsvm.com"), t))
        t += rng.uniform(60, 600)
    i = first_block(steps)
    assert i is not None and i < 35 and "persist" in reason(steps[i])


def test_a_few_data_names_a_day_are_not_persistent() -> None:
    """An update check with a hashed name every hour: present, but in few of the slots."""
    rng = random.Random(8)
    st = stage()
    names = [tunnel_name(rng, "updates.example-vendor.com", 40) for _ in range(24)]
    assert first_block(run(st, names, step=3600.0)) is None


def test_a_telemetry_request_id_every_few_minutes_all_day_is_not_a_beacon() -> None:
    """A fresh UUID per request, for hours: persistent, but each name a 16-octet key."""
    rng = random.Random(9)
    st = stage()
    t = T0
    for _ in range(100):
        uid = "-".join(rng.randbytes(n).hex() for n in (4, 2, 2, 2, 6))
        assert st.decide(make_query(f"{uid}.clo.telemetry-vendor.com"), t) is CONTINUE
        t += rng.uniform(60, 600)


def test_the_record_of_a_cool_down_fades_after_a_long_window() -> None:
    """A false detection is not held against the pair all day."""
    rng = random.Random(6)
    st = stage(cooldown=600.0)
    clock = FakeClock(T0)
    run(st, [tunnel_name(rng) for _ in range(40)], clock=clock, step=5.0)
    assert st.cooldowns.key_list()
    clock.advance(600.0 + ExfilThresholds().long_window + 1)
    steps = run(st, [tunnel_name(rng) for _ in range(10)], clock=clock)
    i = first_block(steps)
    assert i is not None and reason(steps[i]) == "exfil:names"  # a name, not the domain


def test_popularity_forgets_machines_quiet_for_the_long_window() -> None:
    """A domain is popular while ``popular_clients`` machines asked it within the long window;
    the audience skips its scan while none can have gone quiet, with the same answers as a scan
    on every query, also across a clock set back."""
    rng = random.Random(9)
    for need, long_window in ((2, 60.0), (5, 3600.0)):
        th = ExfilThresholds(popular_clients=need, long_window=long_window)
        st = stage(thresholds=th)
        seen: dict[str, float] = {}
        now = T0
        for _ in range(600):
            now += rng.choice([0.0, 1.0, long_window / 3, long_window * 1.5, -long_window / 2])
            client = f"10.0.0.{rng.randrange(12)}"
            seen[client] = now
            popular = st._popular("cdn-example.com", client, now)
            if len(seen) >= need:
                seen = {c: at for c, at in seen.items() if at >= now - long_window}
                assert popular == (len(seen) >= need)
            else:
                assert not popular
            assert st._is_popular("cdn-example.com", now) == (len(seen) >= need)
