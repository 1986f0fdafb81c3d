"""Capture real upstream answers for the walker's equivalence test (issue 19 part 3).

Starts NSD (authoritative, a small zone with every record type the walker cares about) and
unbound (recursive, forwarding to NSD, ``ede: yes``) on loopback ports, asks each a few
questions over UDP and writes the raw answers to ``upstream_answers.json`` as hex. NSD and
unbound compress names in RDATA and order sections as real servers do, which dnslib's packer
does not imitate. Run by hand: ``.venv/bin/python tests/data/make_upstream_answers.py``.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "upstream_answers.json"
ZONE = f"""$ORIGIN walk.test.
$TTL 300
@        3600 IN SOA ns1.walk.test. hostmaster.walk.test. 2026120601 3600 600 86400 60
@        IN NS   ns1
@        IN NS   ns2.elsewhere.test.
ns1      IN A    192.0.2.53
ns1      IN AAAA 2001:db8::53
@        IN A    192.0.2.1
@        IN AAAA 2001:db8::1
@        IN MX   10 mail
@        IN MX   20 Mail2.Walk.Test.
mail     IN A    192.0.2.25
Mail2    IN A    192.0.2.26
@        IN TXT  "v=spf1 -all" "second string"
www      IN CNAME cdn.walk.test.
cdn      60 IN CNAME edge.cdn.walk.test.
edge.cdn 45 IN A 192.0.2.80
edge.cdn 45 IN A 192.0.2.81
old      IN DNAME new.walk.test.
www.new  IN A    192.0.2.90
_sip._udp IN SRV 10 60 5060 sip.walk.test.
sip      IN A    192.0.2.60
MiXeD    IN A    192.0.2.77
big      IN TXT  "{"a" * 82}"
"""
QUESTIONS = [
    ("walk.test", 1),
    ("WALK.test", 28),
    ("walk.test", 15),
    ("walk.test", 16),
    ("walk.test", 2),
    ("walk.test", 6),
    ("www.walk.test", 1),
    ("www.old.walk.test", 1),
    ("_sip._udp.walk.test", 33),
    ("nothing.walk.test", 1),
    ("cdn.walk.test", 28),  # NODATA behind a CNAME
    ("mixed.walk.test", 1),
    ("big.walk.test", 16),
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def query(name: str, qtype: int, qid: int, edns: bool, do: bool = False) -> bytes:
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1 if edns else 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack("!HH", qtype, 1)
    if edns:
        q += b"\x00" + struct.pack("!HHIH", 41, 1232, 0x8000 if do else 0, 0)
    return q


def ask(port: int, q: bytes, wait: float = 8.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(wait)
        s.sendto(q, ("127.0.0.1", port))
        return s.recvfrom(65535)[0]


def wait_ready(port: int) -> None:
    for _ in range(100):
        try:
            ask(port, query("walk.test", 1, 1, False), 0.1)
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing answers on {port}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "walk.zone").write_text(ZONE)
        nsd_port, ub_port, dead_port = free_port(), free_port(), free_port()
        (t / "nsd.conf").write_text(
            f"server:\n  ip-address: 127.0.0.1@{nsd_port}\n  do-ip6: no\n  server-count: 1\n"
            f'  username: ""\n  chroot: ""\n  zonesdir: "{t}"\n  database: ""\n'
            f'  zonelistfile: "{t}/zone.list"\n  pidfile: "{t}/nsd.pid"\n'
            f'  xfrdfile: "{t}/xfrd.state"\n  xfrdir: "{t}"\n  logfile: "{t}/nsd.log"\n'
            "  rrl-ratelimit: 0\nremote-control:\n  control-enable: no\n"
            f'zone:\n  name: walk.test\n  zonefile: "{t}/walk.zone"\n'
        )
        (t / "unbound.conf").write_text(
            f"server:\n  interface: 127.0.0.1@{ub_port}\n  do-ip6: no\n"
            f'  do-not-query-localhost: no\n  username: ""\n  chroot: ""\n'
            f'  directory: "{t}"\n  pidfile: "{t}/ub.pid"\n  use-syslog: no\n'
            '  module-config: "iterator"\n  qname-minimisation: no\n  ede: yes\n'
            '  access-control: 127.0.0.0/8 allow\n  local-zone: "test." nodefault\n'
            '  domain-insecure: "test."\n  local-zone: "refused.test." always_refuse\n'
            '  local-zone: "gone.test." always_nxdomain\n'
            "  outbound-msg-retry: 1\n"
            'forward-zone:\n  name: "walk.test."\n'
            f"  forward-addr: 127.0.0.1@{nsd_port}\n"
            'forward-zone:\n  name: "dead.test."\n'
            f"  forward-addr: 127.0.0.1@{dead_port}\n"
            "remote-control:\n  control-enable: no\n"
        )
        nsd = subprocess.Popen(["nsd", "-d", "-c", str(t / "nsd.conf")])
        ub = subprocess.Popen(["unbound", "-d", "-c", str(t / "unbound.conf")])
        try:
            wait_ready(nsd_port)
            wait_ready(ub_port)
            out: dict[str, str] = {}
            qid = 0x1000
            for server, port in (("nsd", nsd_port), ("unbound", ub_port)):
                for name, qtype in QUESTIONS:
                    for edns in (True, False):
                        qid += 1
                        key = f"{server} {name} {qtype}{' edns' if edns else ''}"
                        out[key] = ask(port, query(name, qtype, qid, edns, do=edns)).hex()
            for name in ("x.refused.test", "x.gone.test", "x.dead.test"):
                qid += 1
                out[f"unbound {name} 1 edns"] = ask(ub_port, query(name, 1, qid, True), 30).hex()
        finally:
            nsd.terminate()
            ub.terminate()
            nsd.wait(5)
            ub.wait(5)
    OUT.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"{len(out)} answers written to {OUT}")


if __name__ == "__main__":
    main()
