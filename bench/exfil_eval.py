"""Evaluate the exfiltration stage: real tunnel captures, generated tunnels, benign traffic.

    .venv/bin/python bench/exfil_eval.py [--corpus /work/shared/exfil/corpus] [--markdown]
    .venv/bin/python bench/exfil_eval.py --write-test-data tests/data/exfil

Replays every session through the real stage (queries built as wire bytes and parsed by the
server's own parser) and reports, per family: sessions detected, queries until detection
(median, max), share of tunnel queries blocked, payload characters forwarded before the block,
false positives per benign family, and the stage's median cost per query in process.

Tunnel encodings are generated after the tools' documented formats (dnscat2 protocol.md,
DNSExfiltrator README, Cobalt Strike DNS beacon as seen in published analyses); benign families
after their documented formats (RFC 5782 DNSBL, Spamhaus DQS/HBL, RFC 6376 DKIM, RFC 7489
DMARC, RFC 7208 SPF macros, MS-ADTS DC locator, RFC 6763 DNS-SD, CDN host names, Chromium's
intranet redirect detector probes).
"""

from __future__ import annotations

import argparse
import base64
import gc
import gzip
import hashlib
import json
import random
import statistics
import string
import struct
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dnslib import QTYPE

from resolver.config.exfiltration import ExfiltrationConfig
from resolver.core.block_answer import BlockAnswer
from resolver.core.query import Query, Transport, from_wire
from resolver.core.steps import Forward, Reply
from resolver.core.wire import HEADER
from resolver.exfil import known_good
from resolver.exfil.known_good import KnownGood
from resolver.exfil.psl import RegisteredDomains
from resolver.stages.exfiltration import ExfiltrationStage

CORPUS = Path("/work/shared/exfil/corpus")
CORPUS2 = Path(__file__).resolve().parent / "corpora" / "exfil_benign2.jsonl.gz"
NO_ZONE = Forward(())  # how the pipeline forwards a query to the public upstreams
T0 = 1_700_000_000.0


@dataclass
class Row:
    """One query of a session: presentation-format name (\\DDD escapes), type, seconds; and
    the answer the upstream gave: its RCODE and the octets after the question (-1: a size
    typical of the type, ``answer_size``)."""

    qname: str
    qtype: str
    t: float
    answer: int = -1
    rcode: int = 0
    rdata: str = ""  # hex of the last 4 octets of the answer; "": derived from the name


@dataclass
class Session:
    family: str
    name: str
    label: str  # tunnel | benign
    rows: list[Row] = field(default_factory=list)
    client: str = ""  # "": one address per session; else this machine's (corpus 2)


# --- queries as the server sees them -------------------------------------------------------


def text_labels(name: str) -> list[bytes]:
    """Labels of a presentation-format name (\\DDD and \\X escapes), case kept."""
    out: list[bytes] = []
    cur = bytearray()
    i = 0
    name = name.rstrip(".")
    while i < len(name):
        c = name[i]
        if c == "\\":
            if name[i + 1 : i + 4].isdigit():
                cur.append(int(name[i + 1 : i + 4]))
                i += 4
            else:
                cur += name[i + 1].encode("latin-1")
                i += 2
        elif c == ".":
            out.append(bytes(cur))
            cur = bytearray()
            i += 1
        else:
            cur += c.encode("latin-1")
            i += 1
    if cur or out:
        out.append(bytes(cur))
    return out


def make_query(name: str, qtype: str, client: str) -> Query:
    code = int(qtype) if qtype.isdigit() else int(getattr(QTYPE, qtype))
    labels = b"".join(bytes([len(x)]) + x for x in text_labels(name))
    wire = HEADER.pack(0x4242, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!HH", code, 1)
    return from_wire(wire, client, Transport.UDP)


def prefix_octets(domains: RegisteredDomains, q: Query) -> int:
    """Characters a tunnel controls in this name: the part left of the registered domain."""
    parts = domains.split(q.qname)
    if parts is None:
        return 0
    prefix = parts[0]
    odd = prefix.count("\\")
    return len(prefix) - prefix.count(".") - 3 * odd


# --- the corpus ----------------------------------------------------------------------------


def load_corpus(path: Path) -> list[Session]:
    sessions: dict[str, Session] = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    for r in records:
        s = sessions.get(r["session"])
        if s is None:
            s = sessions[r["session"]] = Session(r["family"], r["session"], r["label"])
        s.rows.append(Row(r["qname"], r["qtype"], float(r["t"])))
    return list(sessions.values())


def load_corpus2(path: Path) -> list[Session]:
    """The held-out commune day: one session per (machine, family), the machine's address."""
    sessions: dict[tuple[str, str], Session] = {}
    hosts: dict[str, str] = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            host = r["session"]
            client = hosts.setdefault(host, f"192.168.1.{len(hosts) + 10}")
            key = (host, r["family"])
            s = sessions.get(key)
            if s is None:
                s = sessions[key] = Session(r["family"], f"{host}/{r['family']}", "benign")
                s.client = client
            s.rows.append(Row(r["qname"], r["qtype"], float(r["t"]), rdata=r.get("rdata", "")))
    return list(sessions.values())


# --- generated tunnels ---------------------------------------------------------------------

HEX = "0123456789abcdef"


def _split(data: str, size: int) -> str:
    return ".".join(data[i : i + size] for i in range(0, len(data), size))


def gen_dnscat2(rng: random.Random, n: int, domain: str) -> Session:
    """dnscat2 with a domain: each packet hex-encoded, labels of up to 63 (protocol.md)."""
    s = Session("dnscat2_gen", f"dnscat2-{domain}", "tunnel")
    sid = rng.randrange(65536)
    seq = rng.randrange(65536)
    t = 0.0
    # hex doubles the size; a name of at most 253 octets leaves ~110 bytes per packet
    room = (250 - len(domain)) * 63 // 64 // 2
    for _ in range(n):
        header = struct.pack("!HBHHH", rng.randrange(65536), 1, sid, seq, rng.randrange(65536))
        size = rng.choice([0, 0, rng.randrange(16, room - 9), room - 9])
        payload = header + rng.randbytes(size)
        seq = (seq + size) % 65536
        s.rows.append(
            Row(_split(payload.hex(), 63) + "." + domain, rng.choice(["TXT", "CNAME", "MX"]), t)
        )
        t += rng.uniform(0.05, 1.0)
    return s


def gen_dnsexfiltrator(rng: random.Random, n: int, domain: str, throttle: float) -> Session:
    """DNSExfiltrator: init.<base32 name|chunks>.base32, then <n>.<base64url data> TXT."""
    family = "dnsexfiltrator_throttled_gen" if throttle else "dnsexfiltrator_gen"
    s = Session(family, f"dnsexfiltrator-{domain}", "tunnel")
    init = base64.b32encode(f"compta-2024.zip|{n}".encode()).decode().rstrip("=").lower()
    s.rows.append(Row(f"init.{init}.base32.{domain}", "TXT", 0.0))
    t = 0.0
    chunk = 240 - len(domain)
    for i in range(n):
        data = base64.urlsafe_b64encode(rng.randbytes(chunk * 3 // 4)).decode().rstrip("=")
        t += throttle or rng.uniform(0.01, 0.05)
        s.rows.append(Row(f"{i}.{_split(data[: chunk - 8], 63)}.{domain}", "TXT", t))
    return s


def gen_cobaltstrike(rng: random.Random, n: int, domain: str, sleep: float) -> Session:
    """Cobalt-Strike-style DNS beacon: A check-ins, api/www6 task fetches, hex post.* output."""
    s = Session(
        "cobaltstrike_gen" if sleep < 5 else "cobaltstrike_slow_gen", f"cs-{domain}", "tunnel"
    )
    bid = f"{rng.randrange(1 << 32):08x}"
    t = 0.0
    out = 0
    while len(s.rows) < n:
        s.rows.append(Row(f"{bid}.{domain}", "A", t))  # check-in (identical each time)
        if rng.random() < 0.5 or sleep < 5:
            nonce = f"{rng.randrange(1 << 28):07x}"
            s.rows.append(Row(f"api.{nonce}.{bid}.{domain}", "TXT", t + 0.01))
            for _ in range(rng.randrange(1, 4) if sleep >= 5 else 6):
                data = rng.randbytes(rng.randrange(20, 84)).hex()
                nonce = f"{rng.randrange(1 << 28):07x}"
                name = f"post.{len(data):x}{_split(data, 56)}.{nonce}.{bid}.{domain}"
                s.rows.append(Row(name, "A", t + 0.02))
                out += 1
        t += sleep * rng.uniform(0.8, 1.2)
    s.rows = s.rows[:n]
    return s


def gen_iodine_like(rng: random.Random, n: int, domain: str, qtype: str) -> Session:
    """iodine forced to a common type (-T): base32 upstream data after a 'p' ping pattern."""
    s = Session(f"iodine_{qtype.lower()}_gen", f"iodine-{qtype}-{domain}", "tunnel")
    alphabet = string.ascii_lowercase + "012345"
    t = 0.0
    for i in range(n):
        if i % 2:
            name = "p" + "".join(rng.choice(alphabet) for _ in range(7))
        else:
            name = _split("".join(rng.choice(alphabet) for _ in range(200 - len(domain))), 57)
        s.rows.append(Row(f"{name}.{domain}", qtype, t))
        t += rng.uniform(0.01, 0.2)
    return s


def gen_dnscat2_direct(rng: random.Random, n: int) -> Session:
    """dnscat2 without a domain (direct mode, protocol.md): "dnscat." + hex, no real TLD."""
    s = Session("dnscat2_direct_gen", f"dnscat2-direct-{rng.randrange(1 << 16)}", "tunnel")
    sid, seq, t = rng.randrange(65536), rng.randrange(65536), 0.0
    for _ in range(n):
        header = struct.pack("!HBHHH", rng.randrange(65536), 1, sid, seq, rng.randrange(65536))
        size = rng.choice([0, 0, rng.randrange(16, 100), 100])
        seq = (seq + size) % 65536
        name = "dnscat." + _split((header + rng.randbytes(size)).hex(), 63)
        s.rows.append(Row(name, rng.choice(["TXT", "CNAME", "MX"]), t, answer=90))
        t += rng.uniform(0.05, 1.0)
    return s


def gen_cs_dns(rng: random.Random, n: int, domain: str, sleep: float, txt: bool) -> Session:
    """Cobalt Strike's DNS beacon in A mode ("mode dns") or TXT mode ("mode dns-txt").

    Check-in: an A query for the beacon id each sleep (jitter up to 20 %). Tasked: a burst of
    task fetches, "<n>.<nonce>.<bid>" A (4 octets each) or "api.<nonce>.<bid>" TXT (up to 189
    octets of base64 each), then output posted as hex in "post.<hex>.<nonce>.<bid>" A queries.
    """
    family = "cobaltstrike_txt_gen" if txt else "cobaltstrike_a300_gen"
    s = Session(family, f"{family}-{domain}", "tunnel")
    bid = f"{rng.randrange(1 << 32):08x}"
    t = 0.0
    while len(s.rows) < n:
        s.rows.append(Row(f"{bid}.{domain}", "A", t))
        if rng.random() < 0.4:  # tasked this round
            task = rng.randrange(2_000, 20_000)
            chunk = 189 if txt else 4
            for i in range(min(task // chunk, 60)):
                nonce = f"{rng.randrange(1 << 28):07x}"
                name = f"api.{nonce}.{bid}.{domain}" if txt else f"{i:x}.{nonce}.{bid}.{domain}"
                data = rng.randbytes(4).hex()  # the task, 4 octets per A record
                s.rows.append(
                    Row(name, "TXT" if txt else "A", t + 0.01 * i, answer=chunk + 12, rdata=data)
                )
            for _ in range(rng.randrange(1, 6)):
                data = rng.randbytes(rng.randrange(20, 60)).hex()
                nonce = f"{rng.randrange(1 << 28):07x}"
                s.rows.append(Row(f"post.{_split(data, 56)}.{nonce}.{bid}.{domain}", "A", t + 1))
        t += sleep * rng.uniform(0.8, 1.0)
    s.rows = s.rows[:n]
    return s


def gen_txt_stager(rng: random.Random, n: int, domain: str) -> Session:
    """A stager pulling its payload down in TXT answers: "l.<n>.ns.<domain>", 255 octets each."""
    s = Session("txt_stager_gen", f"stager-{domain}", "tunnel")
    for i in range(n):
        s.rows.append(Row(f"l.{i}.ns.{domain}", "TXT", i * rng.uniform(0.05, 0.3), answer=267))
    return s


def gen_sunburst(rng: random.Random, n: int, domain: str) -> Session:
    """A SUNBURST-style beacon: a 15-character encoded victim id plus a few encoded octets of
    the victim's domain, under "appsync-api.<region>.", minutes to hours apart (FireEye 2020)."""
    s = Session("sunburst_gen", f"sunburst-{domain}", "tunnel")
    victim = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(15))
    region = rng.choice(["eu-west-1", "us-west-2", "us-east-1"])
    t = 0.0
    for _ in range(n):
        part = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(16))
        s.rows.append(Row(f"{victim}{part}.appsync-api.{region}.{domain}", "A", t))
        t += rng.uniform(60, 600)
    return s


def hard_tunnels(seed: int = 9) -> list[Session]:
    """Slow channels outside the standard targets (issue 15): beacons hours apart."""
    rng = random.Random(seed)
    return [gen_sunburst(rng, 48, f"avsvm{i}cloud.com") for i in range(5)]


def generated_tunnels(seed: int = 5) -> list[Session]:
    rng = random.Random(seed)
    out: list[Session] = []
    for i in range(10):
        out.append(gen_dnscat2(rng, 400, f"c2-{i}.attaquant{i}.fr"))
        out.append(gen_dnsexfiltrator(rng, 200, f"x{i}.exfil-dns{i}.com", 0.0))
        out.append(gen_dnsexfiltrator(rng, 100, f"y{i}.lent{i}.net", 20.0))  # throttled
        out.append(gen_cobaltstrike(rng, 300, f"ns1.cdn-update{i}.com", 0.5))
        out.append(gen_cobaltstrike(rng, 300, f"ns1.beacon{i}.org", 60.0))  # slow beacon
        for qtype in ("TXT", "CNAME", "A"):
            out.append(gen_iodine_like(rng, 300, f"t{i}.iod{i}.eu", qtype))
        out.append(gen_dnscat2_direct(rng, 400))
        out.append(gen_cs_dns(rng, 300, f"cdn.static-upd{i}.net", 300.0, txt=False))
        out.append(gen_cs_dns(rng, 300, f"ns.telemetry-srv{i}.com", 300.0, txt=True))
        out.append(gen_txt_stager(rng, 400, f"stage{i}.dl-cdn{i}.org"))
    return out


# --- generated benign families (issue 5, point 3) -----------------------------------------

DNSBL = [
    "zen.spamhaus.org",
    "bl.spamcop.net",
    "b.barracudacentral.org",
    "dnsbl.sorbs.net",
    "bl.mailspike.net",
    "list.dnswl.org",
    "psbl.surriel.com",
    "ix.dnsbl.manitu.net",
    "dnsbl-1.uceprotect.net",
    "bl.score.senderscore.com",
]
URIBL = ["dbl.spamhaus.org", "multi.uribl.com", "multi.surbl.org"]


def _b32(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(n))


def _rev4(ip: tuple[int, ...]) -> str:
    return ".".join(str(x) for x in reversed(ip))


def _rev6(rng: random.Random) -> str:
    return ".".join(reversed(rng.randbytes(16).hex()))


def dkim_selector(rng: random.Random, domain: str) -> str:
    """Selectors as big senders publish them (RFC 6376 §3.6.2.1)."""
    kind = rng.randrange(7)
    if kind == 0:
        return _b32(rng, 32)  # Amazon SES: 32 base32 characters
    if kind == 1:
        return "selector" + str(rng.randrange(1, 3)) + "-" + domain.replace(".", "-")  # Microsoft
    if kind == 2:
        return str(rng.choice([20161025, 20210112, 20230601]))  # Google
    if kind == 3:
        return rng.choice(["k1", "k2", "k3", "s1", "s2", "mte1", "pm", "smtpapi", "mandrill"])
    if kind == 4:
        return f"{rng.choice(['scph', 'mail', 'key'])}{rng.randrange(1000, 9999)}"
    if kind == 5:
        return uuid.UUID(int=rng.getrandbits(128)).hex  # hashed selectors (Salesforce style)
    return "default"


def gen_mailserver_day(rng: random.Random, senders: list[str], connections: int) -> Session:
    """A town hall's mail server over a day: rDNS, FCrDNS, DNSBL/DQS/HBL, SPF, DKIM, DMARC."""
    s = Session("mailserver_day", "mx-day", "benign")
    key = "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(26))
    t = 0.0
    for _ in range(connections):
        ip = tuple(rng.randrange(1, 255) for _ in range(4))
        rev = _rev4(ip)
        s.rows.append(Row(f"{rev}.in-addr.arpa", "PTR", t))
        if rng.random() < 0.1:
            s.rows.append(Row(f"{_rev6(rng)}.ip6.arpa", "PTR", t))
            s.rows.append(Row(f"{_rev6(rng)}.zen.spamhaus.org", "A", t))
        host = f"mail-{'-'.join(map(str, ip))}.outbound.{rng.choice(senders)}"
        s.rows.append(Row(host, "A", t + 0.01))
        for bl in rng.sample(DNSBL, 5):
            s.rows.append(Row(f"{rev}.{bl}", "A", t + 0.02))
        s.rows.append(Row(f"{rev}.{key}.zen.dq.spamhaus.net", "A", t + 0.02))
        sender = rng.choice(senders)
        s.rows.append(Row(sender, "TXT", t + 0.03))  # SPF (RFC 7208)
        s.rows.append(Row(sender, "MX", t + 0.03))
        if rng.random() < 0.2:  # SPF include and macro (exists:%{i}._spf.mta.salesforce.com)
            s.rows.append(Row("_spf.google.com", "TXT", t + 0.04))
            s.rows.append(Row(f"{'.'.join(map(str, ip))}._spf.mta.salesforce.com", "A", t + 0.04))
            s.rows.append(Row(f"{_b32(rng, 8)}.{'.'.join(map(str, ip))}._spf.{sender}", "A", t))
        s.rows.append(Row(f"{dkim_selector(rng, sender)}._domainkey.{sender}", "TXT", t + 0.05))
        s.rows.append(Row(f"_dmarc.{sender}", "TXT", t + 0.05))
        digest = base64.b32encode(hashlib.sha1(rng.randbytes(8)).digest()).decode().lower()
        s.rows.append(Row(f"{digest.rstrip('=')}._email.{key}.hbl.dq.spamhaus.net", "A", t))
        for _ in range(rng.randrange(0, 4)):  # URLs in the body (RFC 5782 §2.3)
            url_domain = rng.choice(senders)
            s.rows.append(Row(f"{url_domain}.{rng.choice(URIBL)}", "A", t + 0.06))
        if rng.random() < 0.3:  # hashed lookups: Rspamd, MSBL, Team Cymru MHR
            md5 = hashlib.md5(rng.randbytes(8)).hexdigest()
            s.rows.append(Row(f"{md5}.malware.hash.cymru.com", "TXT", t + 0.07))
            s.rows.append(Row(f"{md5}.ebl.msbl.org", "A", t + 0.07))
        t += rng.expovariate(connections / 36000.0)
    return s


def gen_antivirus_day(rng: random.Random, n: int) -> Session:
    """A PC's antivirus cloud lookups over a working day (hashes and URLs in names)."""
    s = Session("antivirus_day", "av-day", "benign")
    t = 0.0
    for _ in range(n):
        sha = hashlib.sha256(rng.randbytes(8)).hexdigest()
        kind = rng.randrange(8)
        if kind == 0:
            name = f"{_b32(rng, 26)}.{rng.randrange(1, 4)}.{rng.choice('fpu')}.sophosxl.net"
        elif kind == 1:
            name = f"0.0.0.0.1.0.0.4e.{_b32(rng, 26)}.avqs.mcafee.com"
        elif kind == 2:
            name = f"{sha[:32]}.{rng.choice('abcd')}.e5.sk"
        elif kind == 3:
            name = f"{sha[:40]}.ksn.kaspersky-labs.com"
        elif kind == 4:
            name = f"{sha[:40]}.{rng.randrange(10)}.icrc.trendmicro.com"
        elif kind == 5:
            name = f"{sha[:32]}.nimbus.bitdefender.net"
        elif kind == 6:
            name = f"{sha[:32]}.malware.hash.cymru.com"
        else:
            name = f"{_b32(rng, 20)}.{rng.randrange(9)}.url.trendmicro.com"
        s.rows.append(Row(name, rng.choice(["A", "TXT"]), t))
        t += rng.expovariate(n / 30000.0)
    return s


def gen_ad_dnssd_day(rng: random.Random, workstations: int) -> list[Session]:
    """Windows DC locator (MS-ADTS 6.3.6), DSA GUID CNAMEs, DNS-SD browsing (RFC 6763)."""
    forest = "mairie-exemple.fr"
    site = "Default-First-Site-Name".lower()
    domain_guid = str(uuid.UUID(int=rng.getrandbits(128)))
    dsas = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(3)]
    out = []
    for w in range(workstations):
        s = Session("ad_dnssd_day", f"ws-{w}", "benign")
        t = 0.0
        for _ in range(rng.randrange(20, 60)):
            for name, qtype in [
                (f"_ldap._tcp.dc._msdcs.{forest}", "SRV"),
                (f"_ldap._tcp.{site}._sites.dc._msdcs.{forest}", "SRV"),
                (f"_kerberos._tcp.{site}._sites.dc._msdcs.{forest}", "SRV"),
                (f"_ldap._tcp.{domain_guid}.domains._msdcs.{forest}", "SRV"),
                (f"_ldap._tcp.pdc._msdcs.{forest}", "SRV"),
                (f"_gc._tcp.{forest}", "SRV"),
                (f"{rng.choice(dsas)}._msdcs.{forest}", "CNAME"),
                (f"b._dns-sd._udp.{forest}", "PTR"),
                (f"lb._dns-sd._udp.{forest}", "PTR"),
                (f"_ipp._tcp.{forest}", "PTR"),
                (f"wpad.{forest}", "A"),
                (f"pc{rng.randrange(40):02d}.{forest}", "A"),
            ]:
                s.rows.append(Row(name, qtype, t))
            t += rng.uniform(60, 900)
        out.append(s)
    return out


def gen_cdn_browsing(rng: random.Random, pages: int) -> Session:
    """Page loads full of CDN, video and ad edge names in their real shapes."""
    s = Session("cdn_browsing", "cdn", "benign")
    t = 0.0
    for _ in range(pages):
        for _ in range(rng.randrange(5, 25)):
            kind = rng.randrange(10)
            if kind == 0:
                name = (
                    f"e{rng.randrange(1, 99999)}.{rng.choice(['dscb', 'dscx', 'a'])}.akamaiedge.net"
                )
            elif kind == 1:
                name = f"a{rng.randrange(1, 9999)}.dscg{rng.randrange(1, 4)}.akamai.net"
            elif kind == 2:
                name = f"d{_b32(rng, 13)}.cloudfront.net"
            elif kind == 3:
                name = f"rr{rng.randrange(1, 9)}---sn-{_b32(rng, 8)}.googlevideo.com"
            elif kind == 4:
                name = f"{rng.randbytes(16).hex()}.safeframe.googlesyndication.com"
            elif kind == 5:
                name = f"scontent-cdg{rng.randrange(1, 5)}-{rng.randrange(1, 3)}.xx.fbcdn.net"
            elif kind == 6:
                name = f"{_b32(rng, 52)}.cdn.ampproject.org"
            elif kind == 7:
                name = (
                    f"{rng.choice(['www', 'static', 'img'])}-{_b32(rng, 6)}.global.ssl.fastly.net"
                )
            elif kind == 8:
                name = f"{_b32(rng, 10)}.azureedge.net"
            else:
                name = f"{rng.randbytes(6).hex()}.cdn.cloudflare.net"
            s.rows.append(Row(name, rng.choice(["A", "AAAA", "HTTPS"]), t))
            t += rng.uniform(0.001, 0.05)
        t += rng.uniform(5, 120)
    return s


def gen_browser_probes(rng: random.Random, starts: int) -> Session:
    """Chromium's three random 7-15 letter probes at each start or network change, bare and
    with the search suffix the DHCP hands out."""
    s = Session("browser_probes", "probes", "benign")
    t = 0.0
    for _ in range(starts):
        for _ in range(3):
            label = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randrange(7, 16)))
            s.rows.append(Row(label, "A", t))
            s.rows.append(Row(f"{label}.mairie-exemple.fr", "A", t + 0.001))
        t += rng.uniform(300, 3600)
    return s


def gen_telemetry_day(rng: random.Random, n: int) -> Session:
    """OS and office telemetry: vortex/events, footprintdns GUID probes, push, update CDNs."""
    s = Session("telemetry_day", "telemetry", "benign")
    t = 0.0
    for _ in range(n):
        kind = rng.randrange(7)
        if kind == 0:
            name = f"{rng.choice(['v10', 'v20', 'self', 'mobile'])}.events.data.microsoft.com"
        elif kind == 1:
            name = f"{uuid.UUID(int=rng.getrandbits(128))}.clo.footprintdns.com"
        elif kind == 2:
            name = f"{rng.randrange(1, 60)}-courier.push.apple.com"
        elif kind == 3:
            name = f"{rng.randbytes(4).hex()}.tlu.dl.delivery.mp.microsoft.com"
        elif kind == 4:
            name = f"o{rng.randrange(100000, 999999)}.ingest.sentry.io"
        elif kind == 5:
            name = f"l-{rng.randrange(1, 9999):04d}.l-msedge.net"
        else:
            name = rng.choice(
                ["www.msftconnecttest.com", "dns.msftncsi.com", "ctldl.windowsupdate.com"]
            )
        s.rows.append(Row(name, rng.choice(["A", "AAAA"]), t))
        t += rng.expovariate(n / 30000.0)
    return s


def generated_benign(senders: list[str], seed: int = 3) -> list[Session]:
    rng = random.Random(seed)
    out = [
        gen_mailserver_day(rng, senders, 3000),
        gen_antivirus_day(rng, 5000),
        gen_cdn_browsing(rng, 400),
        gen_browser_probes(rng, 40),
        gen_telemetry_day(rng, 3000),
    ]
    out += gen_ad_dnssd_day(rng, 20)
    return out


# --- replay and figures --------------------------------------------------------------------


@dataclass
class Result:
    session: Session
    queries: int = 0
    blocked: int = 0
    first: int | None = None  # 1-based index of the first blocked query
    leaked_before: int = 0  # prefix characters forwarded before the first block
    leaked_total: int = 0
    signals: str = ""
    bad: int = 0  # names that cannot be put on the wire (over-long labels in captures)
    down_before: int = 0  # answer octets (not A) received before the first block
    blocked_names: list[str] = field(default_factory=list)


# Octets after the question in a typical answer of each type (one record, compressed owner).
TYPICAL_ANSWER = {"A": 16, "AAAA": 28, "PTR": 30, "CNAME": 40, "MX": 30, "SRV": 40, "TXT": 180}


def answer_size(row: Row) -> int:
    if row.answer >= 0:
        return row.answer
    return TYPICAL_ANSWER.get(row.qtype, 60)


def answer_wire(q: Query, row: Row) -> bytes:
    """A response of the right RCODE and size (only those two matter to ``on_answer``)."""
    head = HEADER.pack(0x4242, 0x8180 | row.rcode, 1, 1, 0, 0)
    size = answer_size(row)
    # Each name its own address (the worst case for the detector), unless the row says
    # otherwise: a wildcard zone's one address, a tunnel's data.
    tail = bytes.fromhex(row.rdata) if row.rdata else hashlib.sha1(q.question).digest()[:4]
    return head + q.question + bytes(max(size - 4, 0)) + tail[: min(size, 4)]


@dataclass
class Replayed:
    """A query of a session ready to replay: its session's result, the query, the time."""

    result: Result
    query: Query
    row: Row
    at: float


def prepare(sessions: list[Session], interleave: bool) -> list[Replayed]:
    """Queries of every session as wire-parsed Query objects, each session its own client.

    ``interleave``: all sessions run at once from T0 (a commune's day: machines ask side by
    side, which popularity across clients needs); else one after the other, two hours apart.
    """
    out: list[Replayed] = []
    offset = 0.0
    for i, s in enumerate(sessions):
        client = s.client or f"10.{(i >> 8) & 255}.{i & 255}.{7 + (i >> 16)}"
        r = Result(s)
        for row in s.rows:
            try:
                out.append(Replayed(r, make_query(row.qname, row.qtype, client), row, 0.0))
            except Exception:
                r.bad += 1
            else:
                out[-1].at = T0 + offset + row.t
        if not interleave:
            offset += (s.rows[-1].t if s.rows else 0.0) + 7200.0
    if interleave:
        out.sort(key=lambda x: x.at)
    return out


def replay(
    sessions: list[Session], known: KnownGood, timings: list[int], per_session_stage: bool
) -> list[Result]:
    """Tunnel sessions: a fresh stage each. Benign: one stage for all, sessions interleaved."""
    domains = RegisteredDomains()
    results = []
    groups = [[s] for s in sessions] if per_session_stage else [sessions]
    for group in groups:
        stage = ExfiltrationStage(ExfiltrationConfig(), BlockAnswer(), known, domains)
        seen: dict[int, Result] = {}
        for item in prepare(group, interleave=not per_session_stage):
            r, q = item.result, item.query
            seen.setdefault(id(r), r)
            t0 = time.perf_counter_ns()
            step = stage.decide(q, item.at)
            timings.append(time.perf_counter_ns() - t0)
            r.queries += 1
            octets = prefix_octets(domains, q)
            if isinstance(step, Reply):
                r.blocked += 1
                if r.first is None:
                    r.first = r.queries
                    r.signals = step.reason
                if len(r.blocked_names) < 5:
                    r.blocked_names.append(q.qname)
                continue
            late = stage.on_answer(q, NO_ZONE, answer_wire(q, item.row), item.at + 0.01)
            if isinstance(late, Reply):  # the answer replaced: its payload never arrives
                r.blocked += 1
                if r.first is None:
                    r.first = r.queries
                    r.signals = late.reason
                continue
            r.leaked_total += octets
            if r.first is None:
                r.leaked_before += octets
                r.down_before += answer_size(item.row) if item.row.qtype != "A" else 0
        results += list(seen.values())
    return results


def by_family(results: list[Result]) -> dict[str, list[Result]]:
    out: dict[str, list[Result]] = {}
    for r in results:
        out.setdefault(r.session.family, []).append(r)
    return out


def tunnel_table(results: list[Result]) -> Iterator[str]:
    yield (
        "| family | sessions | detected | queries to detection (median / max) "
        "| tunnel queries blocked | chars leaked before block (median / max) | first signals |"
    )
    yield "|---|---|---|---|---|---|---|"
    for fam, rs in by_family(results).items():
        firsts = [r.first for r in rs if r.first is not None]
        leaked = [r.leaked_before for r in rs]
        total = sum(r.queries for r in rs)
        blocked = sum(r.blocked for r in rs)
        sig = sorted({r.signals for r in rs if r.signals})
        med = f"{statistics.median(firsts):g} / {max(firsts)}" if firsts else "-"
        yield (
            f"| {fam} | {len(rs)} | {len(firsts)} | {med} | {100 * blocked / max(total, 1):.1f} % "
            f"({blocked:,}/{total:,}) | {statistics.median(leaked):g} / {max(leaked)} | "
            f"{' '.join(sig)} |"
        )


def benign_table(results: list[Result], title: str) -> Iterator[str]:
    yield f"| {title} | sessions | queries | blocked | false positives per 100,000 | examples |"
    yield "|---|---|---|---|---|---|"
    for fam, rs in by_family(results).items():
        total = sum(r.queries for r in rs)
        blocked = sum(r.blocked for r in rs)
        ex = ", ".join(n for r in rs for n in r.blocked_names[:1])[:120]
        rate = 100000 * blocked / max(total, 1)
        yield f"| {fam} | {len(rs)} | {total:,} | {blocked} | {rate:.1f} | {ex} |"


def senders_from(corpus: Path, rng: random.Random) -> list[str]:
    top = corpus.parent / "data" / "top-65535.txt"
    names = [n.strip() for n in top.read_text().splitlines() if n.strip()] if top.exists() else []
    base = ["gmail.com", "outlook.com", "orange.fr", "laposte.net", "free.fr", "wanadoo.fr"]
    return base * 20 + (rng.sample(names, 2000) if names else [f"sender{i}.fr" for i in range(500)])


def write_test_data(dest: Path, corpus: Path) -> None:
    """Small excerpts for the unit tests, which must run without /work/shared."""
    dest.mkdir(parents=True, exist_ok=True)
    rng = random.Random(11)
    tunnels = load_corpus(corpus / "tunnel_external.jsonl.gz")
    with (dest / "tunnel_excerpt.tsv").open("w") as f:
        for s in tunnels:
            for r in s.rows[:60]:
                f.write(f"{s.family}\t{s.name}\t{r.t}\t{r.qtype}\t{r.qname}\n")
    benign = load_corpus(corpus / "benign_real.jsonl.gz")
    with (dest / "benign_excerpt.tsv").open("w") as f:
        for s in rng.sample(benign, 4):
            for r in s.rows:
                f.write(f"{s.family}\t{s.name}\t{r.t}\t{r.qtype}\t{r.qname}\n")
    fams = generated_benign(senders_from(corpus, rng)[:400], seed=21)
    with (dest / "benign_families.tsv").open("w") as f:
        for s in fams[:10]:  # five families, then five of the twenty AD workstations
            for r in s.rows[:400]:
                f.write(f"{s.family}\t{s.name}\t{r.t:.3f}\t{r.qtype}\t{r.qname}\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--corpus2", type=Path, default=CORPUS2)
    ap.add_argument("--write-test-data", type=Path)
    args = ap.parse_args()
    if args.write_test_data:
        write_test_data(args.write_test_data, args.corpus)
        return 0
    known = known_good.read()
    timings_benign: list[int] = []
    timings_tunnel: list[int] = []
    rng = random.Random(1)
    real_tunnels = load_corpus(args.corpus / "tunnel_external.jsonl.gz")
    real_benign = load_corpus(args.corpus / "benign_real.jsonl.gz")
    gen_t = generated_tunnels()
    gen_b = generated_benign(senders_from(args.corpus, rng))

    t_res = replay(real_tunnels, known, timings_tunnel, True)
    g_res = replay(gen_t, known, timings_tunnel, True)
    b_res = replay(real_benign, known, timings_benign, False)
    f_res = replay(gen_b, known, timings_benign, False)
    f_bare = replay(gen_b, KnownGood(), [], False)
    timings_c2: list[int] = []
    c2_res = replay(load_corpus2(args.corpus2), known, timings_c2, False)
    h_res = replay(hard_tunnels(), known, [], True)

    print("## Real tunnel captures (corpus/tunnel_external.jsonl.gz)\n")
    print("\n".join(tunnel_table(t_res)))
    print("\n## Generated tunnel encodings\n")
    print("\n".join(tunnel_table(g_res)))
    print("\n## Benign: real names (corpus/benign_real.jsonl.gz)\n")
    print("\n".join(benign_table(b_res, "family")))
    print("\n## Benign: generated families of point 3, with the shipped known-good list\n")
    print("\n".join(benign_table(f_res, "family")))
    print("\n## The same families without any known-good list (what the list is for)\n")
    print("\n".join(benign_table(f_bare, "family")))
    print("\n## Benign corpus 2, held out of tuning (bench/corpora/exfil_benign2.jsonl.gz)\n")
    print("\n".join(benign_table(c2_res, "family")))
    c2q = sum(r.queries for r in c2_res)
    c2b = sum(r.blocked for r in c2_res)
    print(f"\nCorpus 2: {c2q:,} queries, blocked {c2b} ({100000 * c2b / c2q:.2f} per 100,000).")
    print(f"Stage cost per query: {cost(timings_c2)} (wall clock, one query at a time); ")
    print(f"{cpu_cost(load_corpus2(args.corpus2), known)} with answers, GC off.")
    print("\n## Corpus 2 without any known-good list (what generalises without it)\n")
    print(
        "\n".join(
            benign_table(replay(load_corpus2(args.corpus2), KnownGood(), [], False), "family")
        )
    )
    print("\n## Hard channels (outside the standard targets)\n")
    print("\n".join(tunnel_table(h_res)))
    all_t = t_res + g_res
    standard = [
        r for r in all_t if "slow" not in r.session.family and "throttled" not in r.session.family
    ]
    firsts = [r.first for r in standard if r.first is not None]
    print("\n## Totals\n")
    print(
        f"- standard tunnel sessions: {len(standard)}, detected {len(firsts)}, "
        f"queries to detection median {statistics.median(firsts):g}, max {max(firsts)}"
    )
    tq = sum(r.queries for r in standard)
    tb = sum(r.blocked for r in standard)
    print(f"- standard tunnel queries blocked: {100 * tb / tq:.2f} % ({tb:,}/{tq:,})")
    print(
        f"- chars forwarded before the block, max over sessions: "
        f"{max(r.leaked_before for r in all_t)}"
    )
    bq = sum(r.queries for r in b_res + f_res)
    bb = sum(r.blocked for r in b_res + f_res)
    print(f"- benign queries: {bq:,}, blocked {bb} ({100000 * bb / bq:.2f} per 100,000)")
    print(f"- stage cost per benign query (passed on), corpus 1: {cost(timings_benign)}")
    print(f"- the same in CPU time: {cpu_cost(real_benign + gen_b, known)}")
    print(f"- stage cost per tunnel query (mostly blocked): {cost(timings_tunnel)}")
    return 0


def cpu_cost(sessions: list[Session], known: KnownGood) -> str:
    """CPU time of the stage per query, decide and on_answer, in a tight loop without the
    cyclic GC (the server manages it): the box's CPU, whatever else the machine runs."""
    items = prepare(sessions, interleave=True)
    answers = [answer_wire(i.query, i.row) for i in items]
    stage = ExfiltrationStage(ExfiltrationConfig(), BlockAnswer(), known, RegisteredDomains())
    gc.collect()
    gc.disable()
    try:
        t0 = time.process_time()
        for item, wire in zip(items, answers, strict=True):
            if not isinstance(stage.decide(item.query, item.at), Reply):
                stage.on_answer(item.query, NO_ZONE, wire, item.at)
        spent = time.process_time() - t0
    finally:
        gc.enable()
    return f"{spent / max(len(items), 1) * 1e6:.1f} µs CPU per query ({len(items):,} queries)"


def cost(timings: list[int]) -> str:
    ordered = sorted(timings)
    return (
        f"median {statistics.median(ordered) / 1000:.1f} µs, "
        f"mean {statistics.fmean(ordered) / 1000:.1f} µs, "
        f"p99 {ordered[int(len(ordered) * 0.99)] / 1000:.1f} µs"
    )


if __name__ == "__main__":
    raise SystemExit(main())
