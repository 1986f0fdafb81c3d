"""What leaves the block log of an exfiltration block: the registered domain, a short prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard import queries
from resolver.blocklog.schema import open_db
from resolver.exfil.redact import ELLIPSIS, UNKNOWN_TLD, default_redactor, is_exfiltration

PAYLOAD = "kjswc3raijshk4dpnz2ca4rruzcgkidmmeqfaylj"  # base32 of a name and address


@pytest.mark.parametrize(
    ("qname", "registered"),
    [
        (f"{PAYLOAD}.tun.exfil-evil.fr", "exfil-evil.fr"),
        (f"{PAYLOAD}.Exfil-Evil.FR.", "exfil-evil.fr"),
        (f"{PAYLOAD}.customer.duckdns.org", "customer.duckdns.org"),  # private suffix
        (f"{PAYLOAD}.x.co.uk", "x.co.uk"),
        ("dnscat.4a65616e2044757060.6f6e74", UNKNOWN_TLD),  # direct mode: the TLD is data
        (f"{PAYLOAD}.tun.test", UNKNOWN_TLD),
        ("com", "com"),
    ],
)
def test_registered_domain_never_holds_the_payload(qname: str, registered: str) -> None:
    assert default_redactor().registered(qname) == registered


def test_shown_names_keep_a_short_prefix_and_the_domain() -> None:
    r = default_redactor()
    assert r.shown(f"{PAYLOAD}.tun.exfil-evil.fr") == f"kjswc3ra{ELLIPSIS}.exfil-evil.fr"
    assert r.shown("www.exfil-evil.fr") == "www.exfil-evil.fr"  # nothing to hide
    assert r.shown("dnscat.4a65616e2044757060.6f6e74") == f"dnscat.4{ELLIPSIS}{UNKNOWN_TLD}"
    assert (
        r.row_name(f"{PAYLOAD}.a.fr", "exfiltration", "exfil:names") == f"kjswc3ra{ELLIPSIS}.a.fr"
    )
    assert r.row_name(f"{PAYLOAD}.a.fr", "exfiltration", "exfil:names", full=True).startswith(
        PAYLOAD
    )
    assert r.row_name(f"{PAYLOAD}.a.fr", "blocked", "feed:urlhaus") == f"{PAYLOAD}.a.fr"
    assert is_exfiltration("blocked", "exfil:cooldown,names")
    assert not is_exfiltration("blocked", "feed:exfil")


def test_dashboard_queries_cut_exfiltration_names(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "blocks.sqlite")
    rows = [
        (1000.0, "192.168.1.9", f"{PAYLOAD}.tun.exfil-evil.fr", 16, "exfiltration", "exfil:names"),
        (1001.0, "192.168.1.9", f"{PAYLOAD}.feed.test", 1, "blocked", "feed:urlhaus"),
    ]
    for ts, client, qname, qtype, verdict, reason in rows:
        conn.execute(
            "INSERT INTO blocks (ts, client, qname, qtype, verdict, reason, category, count)"
            " VALUES (?, ?, ?, ?, ?, ?, 'exfiltration', 1)",
            (ts, client, qname, qtype, verdict, reason),
        )
    _, _, page = queries.blocks_page(conn, 0, 2000, category=None, client=None, limit=10, offset=0)
    assert [b.qname for b in page] == [f"{PAYLOAD}.feed.test", f"kjswc3ra{ELLIPSIS}.exfil-evil.fr"]
    _, _, full = queries.blocks_page(
        conn, 0, 2000, category=None, client=None, limit=10, offset=0, full_names=True
    )
    assert full[1].qname == f"{PAYLOAD}.tun.exfil-evil.fr"  # the operator may ask for it
    top = {n.qname for n in queries.top_names(conn, 0, 2000, 10)}
    assert top == {f"{PAYLOAD}.feed.test", f"kjswc3ra{ELLIPSIS}.exfil-evil.fr"}
    conn.close()
