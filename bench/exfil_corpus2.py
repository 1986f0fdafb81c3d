"""A second benign corpus, held out of the detector's tuning: a commune's working day.

    .venv/bin/python bench/exfil_corpus2.py --write bench/corpora/exfil_benign2.jsonl.gz

Built after the detector's thresholds were set, in the documented real formats below, and
replayed by ``bench/exfil_eval.py`` as it is (never used to choose a threshold). 25 machines over
8 hours, interleaved: a mail server, a domain controller, 20 office PCs (browsing, antivirus,
telemetry, Active Directory and DNS-SD), an admin PC that runs a DNS test battery, a file
server. Each query carries its family, so false positives are counted per family.

Formats and their sources:

* mail: RFC 5782 DNSBL (reversed IPv4; IPv6 as 32 reversed nibbles, §2.4) and RHSBL
  (``<domain>.dbl.spamhaus.org``), Spamhaus DQS (``<ip>.<key>.zen.dq.spamhaus.net``), Abusix
  (``<ip>.<key>.combined.mail.abusix.zone``); RFC 6376 DKIM selectors of the big senders:
  Microsoft 365 (``selector1._domainkey.<d>`` and its target
  ``selector1-<d-dashed>._domainkey.<tenant>.onmicrosoft.com``), Google (``20230601``,
  ``google``), Amazon SES (32 base32 characters), Mailchimp (``k1``), SendGrid (``s1``/``s2``),
  Brevo (``mail``), Mailjet (``mailjet``), Salesforce (hashed); RFC 7489 ``_dmarc``; RFC 7208 SPF
  TXT, includes and macros: Valimail's ``%{i}._ip.%{h}._ehlo.%{d}._spf.vali.email``, Salesforce's
  ``%{i}._spf.mta.salesforce.com``; RFC 8461 ``_mta-sts``, RFC 8460 ``_smtp._tls``, BIMI
  ``default._bimi``; PTR and forward-confirmed rDNS.
* antivirus clouds: Sophos Live Protection (``<b32>.<n>.<x>.sophosxl.net``), McAfee GTI
  (``0.0.0.0.1.0.0.4e.<b32>.avqs.mcafee.com``), ESET LiveGrid (``<hex>.<x>.e5.sk``), Team Cymru
  MHR (``<md5>.malware.hash.cymru.com``), Trend Micro (``<hex>.<n>.icrc.trendmicro.com``).
* CDN and cloud host names: EC2 (``ec2-<ip>.<region>.compute.amazonaws.com``), S3, API Gateway,
  CloudFront, Azure Blob, App Service, Front Door (``<name>-<hash>.z01.azurefd.net``), Cloud Run
  (``<svc>-<hash>-<region>.a.run.app``), App Engine, Cloudflare Workers, Akamai (``e<n>.a.
  akamaiedge.net``), Fastly, Google video (``rr<n>---sn-<id>.googlevideo.com``).
* AD and DNS-SD: MS-ADTS §6.3.6 DC locator names (sites, GUIDs, gc, pdc, kerberos, kpasswd,
  DomainDnsZones), RFC 6763 browsing and instances with escaped spaces.
* telemetry: Windows (``v10.events.data.microsoft.com``, ``settings-win.data.microsoft.com``),
  Office latency probes (``<guid>.clo.footprintdns.com``), Apple push, Sentry
  (``o<n>.ingest.sentry.io``), Mozilla, Chromium's random probes.
* a DNS test battery: ``c<n>-<hex6>-<hex5>.wild.<domain>`` (the shape issue 15 reports).
* browsing: names of the shared popularity list that the first corpus did not sample.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import string
import uuid
from collections.abc import Callable
from pathlib import Path

DAY = 8 * 3600.0
B32 = "abcdefghijklmnopqrstuvwxyz234567"
TOPLIST = Path("/work/shared/exfil/data/top-65535.txt")
CORPUS1 = Path("/work/shared/exfil/corpus/benign_real.jsonl.gz")

Query = tuple[float, str, str, str]  # seconds, family, qname, qtype
# The one address a wildcard test zone gives every name (TEST-NET-3, RFC 5737).
WILDCARD = "cb00710a"
Host = tuple[str, str, list[Query]]  # host name, role, queries


def b32(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(B32) for _ in range(n))


def rev4(ip: tuple[int, ...]) -> str:
    return ".".join(str(x) for x in reversed(ip))


def nibbles(rng: random.Random) -> str:
    return ".".join(reversed(rng.randbytes(16).hex()))


# --- the mail server ------------------------------------------------------------------------

MSFT_TENANT_WORDS = ["mairie", "cabinet", "notaires", "groupe", "assoc", "ecole", "sarl", "sas"]


def sender_domains(rng: random.Random, n: int) -> list[str]:
    tlds = ["fr", "com", "eu", "org", "net", "de", "be"]
    out = []
    for _ in range(n):
        word = (
            rng.choice(MSFT_TENANT_WORDS) + "-" + "".join(rng.choices(string.ascii_lowercase, k=6))
        )
        out.append(f"{word}{rng.choice(['', str(rng.randrange(100))])}.{rng.choice(tlds)}")
    return out


def dkim_queries(rng: random.Random, d: str) -> list[tuple[str, str]]:
    """The DKIM key lookups a verifier makes for one message (RFC 6376 §3.6.2.1)."""
    kind = rng.randrange(9)
    if kind <= 2:  # Microsoft 365: the sender's CNAME, then its target in the tenant
        sel = rng.choice(["selector1", "selector2"])
        tenant = d.split(".")[0].replace("-", "") + rng.choice(["", "fr", "365"])
        dashed = d.replace(".", "-")
        return [
            (f"{sel}._domainkey.{d}", "TXT"),
            (f"{sel}-{dashed}._domainkey.{tenant}.onmicrosoft.com", "TXT"),
        ]
    if kind == 3:
        return [(f"{rng.choice(['20230601', '20221208', 'google'])}._domainkey.{d}", "TXT")]
    if kind == 4:
        return [(f"{b32(rng, 32)}._domainkey.{d}", "TXT")]  # Amazon SES
    if kind == 5:
        return [(f"{rng.choice(['k1', 'k2', 'k3'])}._domainkey.{d}", "TXT")]  # Mailchimp
    if kind == 6:
        return [(f"{rng.choice(['s1', 's2'])}._domainkey.{d}", "TXT")]  # SendGrid
    if kind == 7:
        return [(f"{rng.choice(['mail', 'mailjet', 'brevo'])}._domainkey.{d}", "TXT")]
    return [(f"{hashlib.md5(d.encode()).hexdigest()[:16]}._domainkey.{d}", "TXT")]  # Salesforce


def spf_queries(
    rng: random.Random, d: str, ip: tuple[int, ...], helo: str
) -> list[tuple[str, str]]:
    """SPF (RFC 7208): the policy, its includes, and macro-expanded exists/include names."""
    dotted = ".".join(map(str, ip))
    out = [(d, "TXT")]
    roll = rng.random()
    if roll < 0.3:
        out += [("spf.protection.outlook.com", "TXT"), ("spfd.protection.outlook.com", "TXT")]
    elif roll < 0.5:
        out += [("_spf.google.com", "TXT"), ("_netblocks.google.com", "TXT")]
    elif roll < 0.6:  # Valimail: include:%{i}._ip.%{h}._ehlo.%{d}._spf.vali.email
        out.append((f"{dotted}._ip.{helo}._ehlo.{d}._spf.vali.email", "TXT"))
    elif roll < 0.7:  # Salesforce: exists:%{i}._spf.mta.salesforce.com
        out += [("_spf.salesforce.com", "TXT"), (f"{dotted}._spf.mta.salesforce.com", "A")]
    return out


def mail_server(rng: random.Random, connections: int) -> list[Query]:
    senders = sender_domains(rng, 400) + ["gmail.com", "outlook.com", "orange.fr", "free.fr"] * 20
    key = "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(26))
    abusix = "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(32))
    out: list[Query] = []
    for _ in range(connections):
        t = rng.uniform(0, DAY)
        ip = tuple(rng.randrange(1, 255) for _ in range(4))
        helo = f"mail-{'-'.join(map(str, ip))}.outbound.{rng.choice(senders)}"
        d = rng.choice(senders)
        names: list[tuple[str, str, str]] = [
            ("mail_rdns", f"{rev4(ip)}.in-addr.arpa", "PTR"),
            ("mail_rdns", helo, "A"),
        ]
        for zone in ("zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org"):
            names.append(("mail_dnsbl", f"{rev4(ip)}.{zone}", "A"))
        names.append(("mail_dnsbl", f"{rev4(ip)}.{key}.zen.dq.spamhaus.net", "A"))
        names.append(("mail_dnsbl", f"{rev4(ip)}.{abusix}.combined.mail.abusix.zone", "A"))
        if rng.random() < 0.15:  # an IPv6 peer (RFC 5782 §2.4)
            n6 = nibbles(rng)
            names += [
                ("mail_rdns", f"{n6}.ip6.arpa", "PTR"),
                ("mail_dnsbl", f"{n6}.zen.spamhaus.org", "A"),
            ]
        names.append(("mail_rhsbl", f"{d}.dbl.spamhaus.org", "A"))
        names += [("mail_spf", n, q) for n, q in spf_queries(rng, d, ip, helo)]
        names += [("mail_dkim", n, q) for n, q in dkim_queries(rng, d)]
        names.append(("mail_dmarc", f"_dmarc.{d}", "TXT"))
        if rng.random() < 0.2:
            names += [
                ("mail_policy", f"_mta-sts.{d}", "TXT"),
                ("mail_policy", f"_smtp._tls.{d}", "TXT"),
                ("mail_policy", f"default._bimi.{d}", "TXT"),
            ]
        names.append(("mail_mx", d, "MX"))
        for i, (fam, n, q) in enumerate(names):
            out.append((t + 0.002 * i, fam, n, q))
    return out


# --- office PCs -------------------------------------------------------------------------------


def antivirus(rng: random.Random, n: int) -> list[Query]:
    vendor = rng.randrange(5)
    out = []
    for _ in range(n):
        h = hashlib.sha256(rng.randbytes(8)).hexdigest()
        if vendor == 0:
            name = f"{b32(rng, 26)}.{rng.randrange(1, 4)}.{rng.choice('fpu')}.sophosxl.net"
        elif vendor == 1:
            name = f"0.0.0.0.1.0.0.4e.{b32(rng, 26)}.avqs.mcafee.com"
        elif vendor == 2:
            name = f"{h[:32]}.{rng.choice('abcd')}.e5.sk"
        elif vendor == 3:
            name = f"{h[:32]}.malware.hash.cymru.com"
        else:
            name = f"{h[:40]}.{rng.randrange(10)}.icrc.trendmicro.com"
        out.append((rng.uniform(0, DAY), "antivirus", name, rng.choice(["A", "TXT"])))
    return out


REGIONS = ["eu-west-3", "eu-west-1", "eu-central-1", "us-east-1"]


def cloud_name(rng: random.Random) -> str:
    kind = rng.randrange(12)
    region = rng.choice(REGIONS)
    if kind == 0:
        ip = "-".join(str(rng.randrange(1, 255)) for _ in range(4))
        return f"ec2-{ip}.{region}.compute.amazonaws.com"
    if kind == 1:
        return (
            f"{rng.choice(['media', 'static', 'assets'])}-{b32(rng, 8)}.s3.{region}.amazonaws.com"
        )
    if kind == 2:
        return f"{rng.randbytes(5).hex()}.execute-api.{region}.amazonaws.com"
    if kind == 3:
        return f"d{b32(rng, 13)}.cloudfront.net"
    if kind == 4:
        return f"{b32(rng, 12)}.blob.core.windows.net"
    if kind == 5:
        return f"app-{b32(rng, 6)}-{rng.randbytes(4).hex()}.azurewebsites.net"
    if kind == 6:
        return f"{b32(rng, 6)}-{rng.randbytes(8).hex()}.z01.azurefd.net"
    if kind == 7:
        return f"{b32(rng, 6)}-{rng.randbytes(5).hex()}-ew.a.run.app"
    if kind == 8:
        return f"{b32(rng, 8)}.{b32(rng, 8)}.workers.dev"
    if kind == 9:
        return f"e{rng.randrange(1, 99999)}.a.akamaiedge.net"
    if kind == 10:
        return f"{b32(rng, 10)}.global.ssl.fastly.net"
    return f"rr{rng.randrange(1, 9)}---sn-{b32(rng, 8)}-{b32(rng, 4)}.googlevideo.com"


def telemetry(rng: random.Random) -> tuple[str, str]:
    kind = rng.randrange(7)
    if kind == 0:
        return rng.choice(["v10.events.data.microsoft.com", "settings-win.data.microsoft.com"]), "A"
    if kind == 1:
        return f"{uuid.UUID(int=rng.getrandbits(128))}.clo.footprintdns.com", "A"
    if kind == 2:
        return f"{rng.randrange(1, 60)}-courier.push.apple.com", "A"
    if kind == 3:
        return f"o{rng.randrange(10**5, 10**7)}.ingest.sentry.io", "A"
    if kind == 4:
        return "incoming.telemetry.mozilla.org", "A"
    if kind == 5:  # Chromium's intranet redirect probes: three random single labels
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randrange(7, 16))), "A"
    return "www.msftconnecttest.com", "A"


def ad_dnssd(rng: random.Random, forest: str, guids: list[str], site: str) -> list[tuple[str, str]]:
    printer = rng.choice(["HP LaserJet M404 [A1B2C3]", "Canon iR-ADV C5535", "Brother MFC-L8900"])
    instance = printer.replace(" ", "\\032").replace("[", "\\[").replace("]", "\\]")
    return [
        (f"_ldap._tcp.{site}._sites.dc._msdcs.{forest}", "SRV"),
        (f"_kerberos._tcp.{site}._sites.dc._msdcs.{forest}", "SRV"),
        (f"_ldap._tcp.{guids[0]}.domains._msdcs.{forest}", "SRV"),
        (f"{rng.choice(guids[1:])}._msdcs.{forest}", "CNAME"),
        (f"_gc._tcp.{site}._sites.{forest}", "SRV"),
        (f"_kpasswd._udp.{forest}", "SRV"),
        (f"_ldap._tcp.pdc._msdcs.{forest}", "SRV"),
        (f"domaindnszones.{forest}", "A"),
        (f"_services._dns-sd._udp.{forest}", "PTR"),
        (f"_ipps._tcp.{forest}", "PTR"),
        (f"{instance}._ipps._tcp.{forest}", "SRV"),
    ]


def office_pc(rng: random.Random, browse: list[str], forest: str, guids: list[str]) -> list[Query]:
    out: list[Query] = []
    site = rng.choice(["mairie-centre", "annexe-ecole", "default-first-site-name"])
    t = rng.uniform(0, 1800)
    while t < DAY:  # a page or an app every minute or two, in bursts
        for _ in range(rng.randrange(2, 12)):
            roll = rng.random()
            if roll < 0.45:
                out.append((t, "browsing", rng.choice(browse), rng.choice(["A", "AAAA", "HTTPS"])))
            elif roll < 0.75:
                out.append((t, "cloud_cdn", cloud_name(rng), rng.choice(["A", "AAAA"])))
            else:
                name, q = telemetry(rng)
                out.append((t, "telemetry", name, q))
            t += rng.uniform(0.005, 0.3)
        if rng.random() < 0.08:  # logon, group policy refresh, printer browsing
            out += [
                (t + 0.01 * i, "ad_dnssd", n, q)
                for i, (n, q) in enumerate(ad_dnssd(rng, forest, guids, site))
            ]
        t += rng.expovariate(1 / 90)
    out += antivirus(rng, rng.randrange(200, 900))
    return out


def test_battery(rng: random.Random, domain: str) -> list[Query]:
    """An admin checks the resolver with a web DNS test: distinct hashed names, once."""
    t = rng.uniform(3600, DAY - 3600)
    return [
        (t + 0.05 * i, "dns_test_battery",
         f"c{i}-{rng.randbytes(3).hex()}-{rng.randbytes(3).hex()[:5]}.wild.{domain}", "A")
        for i in range(rng.randrange(30, 60))
    ]  # fmt: skip


def browsing_names(rng: random.Random) -> list[str]:
    """Names of the popularity list that the first corpus did not sample (held out)."""
    if not TOPLIST.exists():
        return [f"site{i}.example.com" for i in range(2000)]
    used = set()
    if CORPUS1.exists():
        with gzip.open(CORPUS1, "rt", encoding="utf-8") as f:
            used = {json.loads(line)["qname"].rstrip(".").lower() for line in f}
    names = [n.strip().lower() for n in TOPLIST.read_text().splitlines() if n.strip()]
    fresh = [n for n in names if n not in used]
    return rng.sample(fresh, min(len(fresh), 5000))


def commune_day(seed: int = 2026) -> list[Host]:
    rng = random.Random(seed)
    forest = "mairie-saint-exemple.fr"
    guids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(4)]
    browse = browsing_names(rng)
    hosts: list[Host] = [("mx", "mailserver", mail_server(rng, 2500))]
    dc: list[Query] = []
    for _ in range(400):  # the DC's own locator and replication lookups
        t = rng.uniform(0, DAY)
        dc += [
            (t + 0.01 * i, "ad_dnssd", n, q)
            for i, (n, q) in enumerate(ad_dnssd(rng, forest, guids, "mairie-centre"))
        ]
    hosts.append(("dc", "server", dc))
    make: Callable[[], list[Query]] = lambda: office_pc(rng, browse, forest, guids)  # noqa: E731
    hosts += [(f"pc{i:02d}", "pc", make()) for i in range(20)]
    admin = make() + test_battery(rng, "dnscheck.tools")
    hosts.append(("admin", "pc", admin))
    files = [
        (
            rng.uniform(0, DAY),
            "reverse_dns",
            f"{rng.randrange(2, 250)}.1.168.192.in-addr.arpa",
            "PTR",
        )
        for _ in range(2000)
    ]
    hosts.append(("files", "server", files))
    hosts.append(
        (
            "printer",
            "server",
            [(rng.uniform(0, DAY), "telemetry", "time.windows.com", "A") for _ in range(50)],
        )
    )
    return [(h, role, sorted(qs)) for h, role, qs in hosts]


def write(path: Path, hosts: list[Host]) -> int:
    """JSON lines in the format of /work/shared/exfil/README.md (session = host)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for host, role, queries in hosts:
            for seq, (t, family, qname, qtype) in enumerate(queries):
                row: dict[str, object] = {
                    "session": host,
                    "seq": seq,
                    "t": round(t, 3),
                    "qname": qname + ".",
                    "qtype": qtype,
                    "label": "benign",
                    "family": family,
                    "source": "bench/exfil_corpus2.py (documented formats, seed 2026)",
                    "role": role,
                }
                if family == "dns_test_battery":
                    row["rdata"] = WILDCARD  # a wildcard zone: one address for every name
                f.write(json.dumps(row) + "\n")
                n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", type=Path, required=True)
    args = ap.parse_args()
    print(f"{write(args.write, commune_day())} queries written to {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
