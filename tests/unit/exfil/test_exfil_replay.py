"""Replays of real tunnel captures and benign traffic (excerpts in tests/data/exfil)."""

from __future__ import annotations

import csv
import gzip
import json
import struct
from collections import defaultdict
from pathlib import Path

import dns.message
import dns.name
import dns.rdatatype
import pytest

from resolver.config.exfiltration import ExfiltrationConfig
from resolver.core.block_answer import BlockAnswer
from resolver.core.query import Transport, from_wire
from resolver.core.steps import Reply
from resolver.exfil import known_good
from resolver.stages.exfiltration import ExfiltrationStage

DATA = Path(__file__).resolve().parents[2] / "data" / "exfil"
T0 = 1_700_000_000.0


def sessions(name: str) -> dict[tuple[str, str], list[tuple[float, str, str]]]:
    out: dict[tuple[str, str], list[tuple[float, str, str]]] = defaultdict(list)
    with (DATA / name).open(newline="") as f:
        for family, session, t, qtype, qname in csv.reader(f, delimiter="\t"):
            out[(family, session)].append((float(t), qtype, qname))
    return out


def replay(rows: list[tuple[float, str, str]], client: str) -> list[bool]:
    stage = ExfiltrationStage(ExfiltrationConfig(), BlockAnswer(), known_good.read())
    blocked = []
    for t, qtype, qname in rows:
        # dnspython reads the \DDD escapes of the captures' binary labels
        wire = dns.message.make_query(dns.name.from_text(qname), qtype, use_edns=0).to_wire()
        q = from_wire(wire, client, Transport.UDP)
        blocked.append(isinstance(stage.decide(q, T0 + t), Reply))
    return blocked


@pytest.mark.parametrize("key", sorted(sessions("tunnel_excerpt.tsv")), ids=lambda k: k[1])
def test_real_tunnel_captures_are_blocked_early(key: tuple[str, str]) -> None:
    blocked = replay(sessions("tunnel_excerpt.tsv")[key], "192.168.1.66")
    assert True in blocked[:20]
    first = blocked.index(True)
    assert all(blocked[first:])  # the cool-down holds the rest


@pytest.mark.parametrize("name", ["benign_excerpt.tsv", "benign_families.tsv"])
def test_benign_traffic_passes_untouched(name: str) -> None:
    for i, rows in enumerate(sessions(name).values()):
        assert not any(replay(rows, f"192.168.1.{i + 10}")), rows[0]


HELD_OUT = Path(__file__).resolve().parents[3] / "bench" / "corpora" / "exfil_benign2.jsonl.gz"
# Issue 15: "none in mail-server, antivirus, CDN, reverse-DNS or AD traffic".
NEVER = ("mail_", "antivirus", "cloud_cdn", "reverse_dns", "ad_dnssd")


def test_held_out_day_mail_antivirus_cdn_rdns_and_ad_pass() -> None:
    """The commune day of bench/exfil_corpus2.py (built after tuning), machines side by side."""
    rows = []
    hosts: dict[str, str] = {}
    with gzip.open(HELD_OUT, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["family"].startswith(NEVER):
                client = hosts.setdefault(r["session"], f"192.168.1.{len(hosts) + 10}")
                rows.append((float(r["t"]), client, r["qtype"], r["qname"], r["family"]))
    rows.sort()
    assert len(rows) > 60_000
    stage = ExfiltrationStage(ExfiltrationConfig(), BlockAnswer(), known_good.read())
    blocked = []
    types = {name: dns.rdatatype.from_text(name) for name in {r[2] for r in rows}}
    for t, client, qtype, qname, family in rows:
        name = dns.name.from_text(qname).to_wire()
        assert name is not None  # without a file, to_wire returns the bytes
        question = name + struct.pack("!HH", types[qtype], 1)
        wire = b"\x42\x42\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + question
        if isinstance(stage.decide(from_wire(wire, client, Transport.UDP), T0 + t), Reply):
            blocked.append((family, qname))
    assert blocked == []
