"""Passwords, sessions and the same-origin rule of the page's changes (dashboard/auth.py)."""

from __future__ import annotations

from dashboard.auth import (
    MAX_FAILURES,
    Sessions,
    csrf_ok,
    hash_password,
    same_origin,
    verify_password,
)
from resolver.config.dashboard import _password_hash


def test_a_hash_checks_its_password_only_and_is_accepted_by_the_config() -> None:
    h = hash_password("correct horse battery")
    assert _password_hash(h) == h
    assert verify_password("correct horse battery", h)
    assert not verify_password("correct horse batterz", h)
    assert not verify_password("x" * 5000, h)  # bounded before scrypt runs
    assert not verify_password("anything", "scrypt$1$1$1$bad$bad")
    assert hash_password("same") != hash_password("same")  # salted


def test_sessions_expire_and_are_bounded() -> None:
    s = Sessions(lifetime=60)
    a = s.open("marie", 0.0)
    assert s.get(a.id, 59.0) == a and s.get(a.id, 61.0) is None and s.get(a.id, 1.0) is None
    assert csrf_ok(s.open("paul", 0.0), "") is False
    ids = [s.open(f"u{i}", float(i)).id for i in range(70)]
    assert s.get(ids[0], 1.0) is None and s.get(ids[-1], 1.0) is not None


def test_failed_logins_lock_an_address_for_a_while() -> None:
    s = Sessions(lifetime=60)
    for _ in range(MAX_FAILURES):
        assert not s.locked("192.0.2.7", 10.0)
        s.failed("192.0.2.7", 10.0)
    assert s.locked("192.0.2.7", 11.0) and not s.locked("192.0.2.8", 11.0)
    assert not s.locked("192.0.2.7", 100.0)


def test_same_origin_needs_the_page_s_own_origin() -> None:
    assert same_origin({"Origin": "http://10.0.0.1:8053"}, "http", "10.0.0.1:8053")
    assert not same_origin({"Origin": "http://evil.example"}, "http", "10.0.0.1:8053")
    assert not same_origin({"Origin": "null"}, "http", "10.0.0.1:8053")
    assert same_origin({"Sec-Fetch-Site": "same-origin"}, "http", "10.0.0.1:8053")
    assert not same_origin({"Sec-Fetch-Site": "cross-site"}, "http", "10.0.0.1:8053")
    assert not same_origin({}, "http", "10.0.0.1:8053")  # fails closed
