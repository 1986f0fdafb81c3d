"""The known-good list: parsing, suffix matching, the shipped default."""

from __future__ import annotations

from pathlib import Path

from resolver.exfil import known_good
from resolver.exfil.known_good import KnownGood


def test_parse_skips_comments_and_normalises() -> None:
    lines = ["# a comment", "", "  Sophosxl.NET.  # inline", "*.avqs.mcafee.com", "bad name"]
    assert known_good.parse(lines) == ["sophosxl.net", "avqs.mcafee.com"]


def test_covers_the_name_and_below_only() -> None:
    k = KnownGood(["sophosxl.net", "avqs.mcafee.com"])
    assert k.covers("sophosxl.net")
    assert k.covers("abc.3.f.sophosxl.net")
    assert k.covers("0.0.0.0.1.0.0.4e.13cm7g7j.avqs.mcafee.com")
    assert not k.covers("www.mcafee.com")
    assert not k.covers("notsophosxl.net")
    assert not k.covers("sophosxl.net.evil.com")
    assert not KnownGood().covers("anything.example")


def test_shipped_list_loads_and_covers_the_issue_families() -> None:
    k = known_good.read()
    assert len(k) > 50
    for name in [
        "2.0.0.127.zen.spamhaus.org",
        "2.0.0.127.abcdefghijklmnopqrstuvwxyz.zen.dq.spamhaus.net",
        "p4z6ai2jmwiy7r7v5c3g3dxfuu.3.f.sophosxl.net",
        "0.0.0.0.1.0.0.4e.13cm7g7j4u4b6oa8rkq6lro11y.avqs.mcafee.com",
        "1.0.0.127.in-addr.arpa",
        "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa",
    ]:
        assert k.covers(name), name
    assert not k.covers("hidemyself.org")


def test_read_a_file_plus_extra_names(tmp_path: Path) -> None:
    p = tmp_path / "kg.txt"
    p.write_text("# mine\nmail-provider.example\n")
    k = known_good.read(str(p), ["other.example"])
    assert k.covers("x.mail-provider.example") and k.covers("y.other.example")
    assert len(k) == 2
