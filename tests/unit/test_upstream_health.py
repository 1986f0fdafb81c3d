"""Upstream health bookkeeping: backoff bounded, recovery clears it, order by health and speed."""

from __future__ import annotations

from resolver.core.steps import Upstream
from resolver.net.upstream_client import UpstreamClient

A, B = Upstream("192.0.2.1"), Upstream("192.0.2.2")


def test_backoff_stays_bounded_through_a_long_outage() -> None:
    # Found by the soak: 2.0 ** fails overflowed after ~1,000 failures (a minute of outage at
    # a few hundred queries a second) and every later query became a SERVFAIL.
    client = UpstreamClient(1.0, 3.0)
    for _ in range(5000):
        client._failed(A, 100.0)
    assert client.health[A].down_until == 160.0
    client._answered(A, 0.01)
    assert client.health[A].fails == 0 and client.health[A].down_until == 0.0


def test_order_prefers_healthy_then_fast() -> None:
    client = UpstreamClient(1.0, 3.0)
    client._answered(A, 0.050)
    client._answered(B, 0.010)
    assert client.order([A, B], 0.0) == [B, A]
    client._failed(B, 0.0)
    assert client.order([A, B], 0.5) == [A, B]  # B set aside for a second
    assert client.order([A, B], 1.5) == [B, A]  # and tried first again once it may be back
