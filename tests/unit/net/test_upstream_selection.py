"""Upstream selection without sockets: which server next, TCP or not, how long, what a reply means.

dnspython's ``tests/test_resolution.py`` way: hand-built replies fed to the pure ``Resolution``
through the same loop the drivers run, the clock moved by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from dnslib import EDNS0, DNSRecord, EDNSOption

from resolver.core import wire
from resolver.core.resolution import (
    Alarm,
    Resolution,
    Try,
    UpstreamHealth,
    ede_options,
    failure_reply,
    is_failure,
)
from resolver.core.steps import Upstream, Verdict
from resolver.core.wire import HEADER
from tests.fakes import make_query

A, B = Upstream("192.0.2.1"), Upstream("192.0.2.2")
DOT = Upstream("192.0.2.3", 853, "tls", "dns.test")
TIMEOUT, TOTAL = 1.0, 3.0


def reply(
    rcode: int = wire.NOERROR, *, tc: bool = False, ede: tuple[int, str] | None = None
) -> bytes:
    """A reply to ``example.test A`` with this rcode, TC bit and Extended DNS Error."""
    r = DNSRecord.question("example.test", "A").reply()
    r.header.rcode = rcode
    r.header.tc = int(tc)
    if ede is not None:
        code, text = ede
        data = code.to_bytes(2, "big") + text.encode()
        r.add_ar(EDNS0(udp_len=1232, opts=[EDNSOption(15, data)]))
    return bytes(r.pack())


ANSWER, TRUNC = reply(), reply(tc=True)
SERVFAIL, REFUSED = reply(wire.SERVFAIL), reply(wire.REFUSED)
NONE = None  # no reply: timeout, ICMP error, a reply that did not match


@dataclass
class Step:
    """One try the resolution must ask for, what came back, and how long it took."""

    server: Upstream
    tcp: bool
    outcome: bytes | None
    took: float = 0.01


def drive(res: Resolution, steps: list[Step], now: float = 0.0) -> tuple[list[Try], float]:
    """The drivers' loop with scripted outcomes; every asked try must be the scripted one."""
    tries: list[Try] = []
    script = iter(steps)
    while (t := res.next_try(now)) is not None:
        tries.append(t)
        step = next(script, None)
        assert step is not None, f"an unexpected try: {t}"
        assert (t.server, t.tcp) == (step.server, step.tcp), (t, step)
        now += min(step.took, t.wait)
        res.query_result(step.outcome, now)
    assert next(script, None) is None, "the resolution gave up before the script's end"
    return tries, now


CASES = [
    pytest.param([A, B], [Step(A, False, ANSWER)], ANSWER, id="answer-first-try"),
    pytest.param(
        [A, B], [Step(A, False, NONE, 1.0), Step(B, False, ANSWER)], ANSWER, id="timeout-next"
    ),
    pytest.param(
        [A, B], [Step(A, False, TRUNC), Step(A, True, ANSWER)], ANSWER, id="truncated-tcp-same"
    ),
    pytest.param(
        [A, B],
        [Step(A, False, TRUNC), Step(A, True, NONE), Step(B, False, ANSWER)],
        ANSWER,
        id="tcp-fails-next-server",
    ),
    pytest.param(
        [A, B], [Step(A, False, SERVFAIL), Step(B, False, ANSWER)], ANSWER, id="servfail-next"
    ),
    pytest.param(
        [A, B],
        [Step(A, False, REFUSED), Step(B, False, SERVFAIL)],
        SERVFAIL,  # each asked once: an error answer is not retried; SERVFAIL says more
        id="every-server-errs-servfail-kept",
    ),
    pytest.param(
        [A, B],
        [Step(A, False, REFUSED), Step(B, False, NONE, 1.0), Step(B, False, NONE, 1.0)],
        REFUSED,  # an upstream answered: its REFUSED, not "no upstream answered"
        id="refused-and-silence",
    ),
    pytest.param(
        [A, B],
        [Step(A, False, NONE, 0.5), Step(B, False, NONE, 0.5)] * 2,
        None,
        id="all-silent-each-twice",
    ),
    pytest.param(
        [A],
        [Step(A, False, NONE, 1.0), Step(A, False, ANSWER)],
        ANSWER,
        id="one-server-lost-datagram-retried",
    ),
    pytest.param(
        [A],
        [Step(A, False, NONE, 1.0), Step(A, False, NONE, 1.0)],
        None,
        id="one-server-silent",
    ),
    pytest.param(
        [A, B],
        [Step(A, False, NONE, 1.0), Step(B, False, NONE, 1.0), Step(A, False, NONE, 1.0)],
        None,  # 3 s spent: B's second try would start past total_timeout
        id="total-timeout-bounds-the-tries",
    ),
    pytest.param([DOT], [Step(DOT, False, TRUNC)], TRUNC, id="encrypted-never-retried-over-tcp"),
    pytest.param([A], [Step(A, False, b"\x00" * 5), Step(A, False, ANSWER)], ANSWER, id="runt"),
]


@pytest.mark.parametrize(("servers", "steps", "expected"), CASES)
def test_resolution_table(
    servers: list[Upstream], steps: list[Step], expected: bytes | None
) -> None:
    res = Resolution(UpstreamHealth(), servers, 0.0, TIMEOUT, TOTAL)
    tries, _ = drive(res, steps)
    assert res.response == expected
    assert res.done
    assert all(0 < t.wait <= (2 * TIMEOUT if t.tcp else TIMEOUT) for t in tries)


def test_no_servers_no_try() -> None:
    res = Resolution(UpstreamHealth(), [], 0.0, TIMEOUT, TOTAL)
    assert res.next_try(0.0) is None and res.response is None and res.done


def test_waits_never_pass_the_deadline() -> None:
    res = Resolution(UpstreamHealth(), [A, B], 0.0, TIMEOUT, 2.5)
    tries, end = drive(
        res, [Step(A, False, NONE, 1.0), Step(B, False, NONE, 1.0), Step(A, False, NONE, 1.0)]
    )
    assert tries[-1].wait == pytest.approx(0.5)
    assert end == pytest.approx(2.5)


def test_tcp_after_truncation_waits_twice_the_try() -> None:
    res = Resolution(UpstreamHealth(), [A], 0.0, TIMEOUT, TOTAL)
    tries, _ = drive(res, [Step(A, False, TRUNC), Step(A, True, ANSWER)])
    assert tries[1] == Try(A, True, 2 * TIMEOUT)


def test_health_bookkeeping_per_outcome() -> None:
    health = UpstreamHealth((0.005, 0.05))
    drive(
        Resolution(health, [A, B], 0.0, TIMEOUT, TOTAL),
        [
            Step(A, False, NONE, 1.0),
            Step(B, False, ANSWER, 0.02),
        ],
    )
    assert (health[A].fails, health[A].failed, health[A].down_until) == (1, 1, 2.0)
    assert health[B].answered == 1 and health[B].srtt == pytest.approx(0.02)
    assert health.failures == 1
    assert health.latency_counts == [0, 1, 0] and health.latency_sum == pytest.approx(0.02)
    # An error answer is not a failure: the server is up, only this name is a problem.
    drive(Resolution(health, [A], 5.0, TIMEOUT, TOTAL), [Step(A, False, SERVFAIL)])
    assert (health[A].fails, health[A].down_until) == (0, 0.0)
    assert health.failures == 1 and health[A].answered == 0  # and no latency sample


def test_backoff_stays_bounded_through_a_long_outage() -> None:
    # Found by the soak: 2.0 ** fails overflowed after ~1,000 failures.
    health = UpstreamHealth()
    for _ in range(5000):
        health.failed(A, 100.0)
    assert health[A].down_until == 160.0
    health.answered(A, 101.0, 0.01)
    assert (health[A].fails, health[A].down_until) == (0, 0.0)


def test_order_prefers_healthy_then_fast() -> None:
    health = UpstreamHealth()
    health.answered(A, 0.0, 0.050)
    health.answered(B, 0.0, 0.010)
    assert health.order([A, B], 0.0) == [B, A]
    health.failed(B, 0.0)
    assert health.order([A, B], 0.5) == [A, B]  # B set aside for a second
    assert health.order([A, B], 1.5) == [B, A]  # and tried first again once it may be back


def test_order_of_three_keeps_the_configuration_order_between_equals() -> None:
    c = Upstream("192.0.2.4")
    health = UpstreamHealth()
    assert health.order((A, B, c), 0.0) == [A, B, c]  # none measured yet
    health.answered(c, 0.0, 0.010)
    health.answered(A, 0.0, 0.050)
    health.answered(B, 0.0, 0.050)
    assert health.order((A, B, c), 0.0) == [c, A, B]
    health.failed(c, 0.0)
    assert health.order((A, B, c), 0.5) == [A, B, c]


def test_a_kept_server_tuple_and_a_new_one_share_the_health_records() -> None:
    """Resolutions over a Forward's tuple (kept by identity) and over equal new tuples or lists
    judge the same servers: one health record per server, whichever way it was named."""
    health = UpstreamHealth((0.005, 0.05))
    servers = (A, B)
    res = Resolution(health, servers, 0.0, TIMEOUT, TOTAL)
    drive(res, [Step(A, False, NONE, 1.0), Step(B, False, ANSWER, 0.02)])
    assert health[A].failed == 1 and health[B].answered == 1
    # A equal tuple built anew, then a list: the same records (A is set aside, B first).
    for again in (tuple([A, B]), [A, B]):
        res = Resolution(health, again, 1.5, TIMEOUT, TOTAL)
        drive(res, [Step(B, False, ANSWER, 0.02)], now=1.5)
    assert health[B].answered == 3 and len(health.servers) == 2
    assert health.latency_counts == [0, 3, 0]


def test_a_list_of_servers_changed_between_two_resolutions_is_read_again() -> None:
    health = UpstreamHealth()
    servers = [A]
    drive(Resolution(health, servers, 0.0, TIMEOUT, TOTAL), [Step(A, False, ANSWER)])
    servers[0] = B
    drive(Resolution(health, servers, 1.0, TIMEOUT, TOTAL), [Step(B, False, ANSWER)], now=1.0)
    assert health[A].answered == 1 and health[B].answered == 1


def test_many_server_tuples_are_kept_within_a_bound() -> None:
    health = UpstreamHealth()
    for i in range(500):  # e.g. a caller building a new tuple per query
        drive(
            Resolution(health, (A,), float(i), TIMEOUT, TOTAL), [Step(A, False, ANSWER)], float(i)
        )
    assert len(health._plans) <= 64 and health[A].answered == 500


def test_all_down_one_try_to_the_server_due_first() -> None:
    """While every server is set aside, a client waits one try, not total_timeout."""
    health = UpstreamHealth()
    for _ in range(3):
        health.failed(A, 10.0)  # down until 14
    health.failed(B, 10.0)  # down until 11
    res = Resolution(health, [A, B], 10.5, TIMEOUT, TOTAL)
    tries, end = drive(res, [Step(B, False, NONE, 5.0)], now=10.5)
    assert tries == [Try(B, False, TIMEOUT)]
    assert res.response is None and end == pytest.approx(11.5)
    # That try is a probe too: the server's return is found by the next client's query.
    res = Resolution(health, [A, B], 12.0, TIMEOUT, TOTAL)
    drive(res, [Step(B, False, ANSWER)], now=12.0)
    assert res.response == ANSWER and not health.is_down(B, 12.1)
    assert Resolution(health, [A, B], 12.1, TIMEOUT, TOTAL).next_try(12.1) == Try(B, False, TIMEOUT)


def test_alarm_after_silence_then_once_a_minute_with_a_count_then_once_when_back() -> None:
    health = UpstreamHealth(alarm_after=10.0, alarm_every=60.0)
    assert not health.watching and health.next_check(0.0) is None
    health.failed(A, 0.0)
    assert health.watching
    assert health.alarm(5.0) is None
    assert health.next_check(5.0) == pytest.approx(5.0)  # A's probe is due (down until 1 s)
    for t in range(1, 10):
        health.failed(A, float(t))
    assert health.alarm(10.0) == Alarm(True, 10.0, 10)
    assert health.alarm(11.0) is None  # said once
    health.failed(B, 30.0)
    assert health.alarm(69.0) is None
    assert health.alarm(70.0) == Alarm(True, 70.0, 1)  # a minute later, with the count
    health.replied(B, 75.0)
    assert health.next_check(75.0) == 75.0
    assert health.alarm(75.5) == Alarm(False, 75.0)
    assert health.alarm(76.0) is None and not health.watching


def test_a_short_silence_is_not_reported() -> None:
    health = UpstreamHealth(alarm_after=10.0)
    health.failed(A, 0.0)
    health.answered(B, 3.0, 0.01)
    assert health.alarm(20.0) is None and not health.watching
    assert health.next_check(20.0) is None


def test_an_answer_between_two_checks_is_still_reported() -> None:
    health = UpstreamHealth(alarm_after=10.0)
    health.failed(A, 0.0)
    assert health.alarm(10.0) is not None
    health.replied(A, 12.0)
    health.failed(A, 12.5)  # silent again before the watchdog looked
    assert health.alarm(13.0) == Alarm(False, 12.0)


def test_probes_due_while_silent_once_per_server_until_it_ends() -> None:
    health = UpstreamHealth()
    health.answered(B, 0.0, 0.01)
    assert health.probes_due(0.0) == []
    health.failed(A, 1.0)  # down until 2
    assert health.probes_due(1.5) == []
    assert health.probes_due(2.0) == [A]
    assert health.probes_due(2.5) == []  # one on its way already
    health.probe_ended(A)
    health.failed(A, 3.0)  # the probe failed: down until 5
    assert health.probes_due(4.0) == [] and health.probes_due(5.0) == [A]
    health.probe_ended(A)
    for t in range(6, 12):
        health.failed(A, float(t))  # a long outage: set aside for a minute
    assert health.probes_due(9.0) == []
    assert health.next_check(9.0) == pytest.approx(10.0)  # probed every 5 s all the same
    assert health.probes_due(10.0) == [A]


# --- what a failure means for the client -----------------------------------------------------


def reply_ede(resp: bytes) -> list[tuple[int, str]]:
    out = []
    for rr in DNSRecord.parse(resp).ar:
        if rr.rtype == 41:
            for opt in rr.rdata:
                if opt.code == 15:
                    out.append((int.from_bytes(opt.data[:2], "big"), opt.data[2:].decode()))
    return out


@pytest.mark.parametrize(
    ("upstream", "rcode", "verdict", "ede"),
    [
        (None, wire.SERVFAIL, Verdict.SERVFAIL, [(22, "no upstream answered")]),
        (SERVFAIL, wire.SERVFAIL, Verdict.FORWARDED, []),
        (reply(wire.SERVFAIL, ede=(6, "bogus")), wire.SERVFAIL, Verdict.FORWARDED, [(6, "bogus")]),
        (reply(wire.REFUSED, ede=(18, "")), wire.REFUSED, Verdict.FORWARDED, [(18, "")]),
        (reply(wire.FORMERR), wire.SERVFAIL, Verdict.FORWARDED, []),
        (reply(wire.NOTIMP), wire.NOTIMP, Verdict.FORWARDED, []),
    ],
)
def test_upstream_failure_reply(
    upstream: bytes | None, rcode: int, verdict: str, ede: list[tuple[int, str]]
) -> None:
    q = make_query("example.test")
    assert is_failure(upstream)
    out = failure_reply(q, upstream)
    assert out.verdict == verdict
    assert HEADER.unpack_from(out.wire)[0] == q.id
    assert HEADER.unpack_from(out.wire)[1] & wire.RCODE_MASK == rcode
    assert reply_ede(out.wire) == ede


@pytest.mark.parametrize("rcode", [wire.NOERROR, wire.NXDOMAIN])
def test_answers_are_not_failures(rcode: int) -> None:
    assert not is_failure(reply(rcode))
    assert not is_failure(TRUNC)  # a truncated answer is an answer (over TCP, ours to retry)


def test_no_opt_for_a_client_without_edns() -> None:
    q = make_query("example.test", edns=False)
    out = failure_reply(q, reply(wire.SERVFAIL, ede=(6, "bogus")))
    assert HEADER.unpack_from(out.wire)[5] == 0  # RFC 6891 §7


def test_upstream_ede_options_are_bounded() -> None:
    big = reply(wire.SERVFAIL, ede=(0, "x" * 600))
    assert ede_options(big) == b""
    assert ede_options(b"\x00" * 12 + b"\xff") == b""  # malformed: nothing, no exception
