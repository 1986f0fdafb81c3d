"""Protocol conformance (issue 7 part 8): a battery of cases sent to the running server over UDP
and TCP, each compared with unbound forwarding to the same local fake upstream.

Both resolvers run side by side for the whole module: the fake upstream and Parafoudre in a
background event loop, unbound as a child process (``unbound -d``, iterator only, forwarding
"." to the fake upstream). Every case runs twice:

* ``test_parafoudre[...]`` asserts what Parafoudre must answer (always runs);
* ``test_same_as_unbound[...]`` compares Parafoudre's answer with unbound's (skipped, with the
  reason, where unbound is not installed): rcode, the flags that matter (QR, AA, TC, RA, and
  RD/CD echoed), the question section byte for byte (case kept), the answer RRsets (order
  aside), the authority's record types, and the OPT record (present, version, DO bit).

Where Parafoudre differs from unbound on purpose, the case says why in ``differs`` and only
Parafoudre's own behaviour is asserted:

* ANY gets the RFC 8482 minimal answer (HINFO "RFC8482"): unbound forwards ANY.
* Blocked names: NXDOMAIN with an Extended DNS Error (RFC 8914 code 15) naming the list.
* CHAOS: only ``id.server``/``hostname.bind`` are answered; ``version.bind`` is refused
  (unbound tells its version).
* NOTIFY: NOTIMP (a forwarder has no zones to be notified about); unbound answers REFUSED.
* An EDNS option whose length runs past its OPT record: FORMERR with an OPT (RFC 6891 §6.1.2);
  unbound ignores the option and answers.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest
from dnslib import RCODE, RD, RR, DNSRecord

from resolver.app import App
from resolver.config import Config
from tests.conftest import FakeUpstream, free_port, make_config

T = TypeVar("T")
UNBOUND = shutil.which("unbound") or (
    "/usr/sbin/unbound" if Path("/usr/sbin/unbound").exists() else None
)
NO_ANSWER_WAIT = 0.5  # seconds to wait before deciding a server does not answer
SOA_MINIMUM = 60

# --------------------------------------------------------------------------------------------
# The upstream both resolvers forward to


class ConformanceUpstream(FakeUpstream):
    """The conftest fake upstream, plus answers its zone table cannot express."""

    def answer(self, req: DNSRecord) -> DNSRecord | None:
        qname = str(req.q.qname).rstrip(".").lower()
        if qname == "chain.test" or qname.endswith(".chain.test"):
            # chain.test -> a.chain.test -> gone.test, which does not exist (RFC 6604 §3).
            self.queries.append(req)
            reply = req.reply()
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_answer(*RR.fromZone("chain.test. 300 IN CNAME a.chain.test."))
            reply.add_answer(*RR.fromZone("a.chain.test. 300 IN CNAME gone.test."))
            reply.add_auth(*RR.fromZone(_SOA))
            if qname == "a.chain.test":
                reply.rr = reply.rr[1:]
            return reply
        if qname == "gone.test":
            self.queries.append(req)
            reply = req.reply()
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(*RR.fromZone(_SOA))
            return reply
        if qname == "secure.test":
            # As a validating resolver answers (RFC 6840 §5.7): AD only to an asker that set
            # AD or DO, so a forwarder that asks without them never learns the answer is secure.
            self.queries.append(req)
            reply = req.reply()
            reply.add_answer(*RR.fromZone("secure.test. 300 IN A 192.0.2.80"))
            do = any(rr.rtype == 41 and rr.ttl & 0x8000 for rr in req.ar)
            reply.header.ad = int(bool(req.header.ad) or do)
            return reply
        if qname == "odd.test" and req.q.qtype == 65280:
            self.queries.append(req)
            reply = req.reply()
            reply.add_answer(RR("odd.test", 65280, ttl=300, rdata=RD(b"\x01\x02\x03\x04")))
            return reply
        return super().answer(req)


_SOA = f"test. 300 IN SOA ns.test. admin.test. 1 3600 600 86400 {SOA_MINIMUM}"


def _zone(up: FakeUpstream) -> None:
    up.add("example.test. 300 IN A 192.0.2.1")
    up.add("example.test. 300 IN AAAA 2001:db8::1")
    up.add("www.example.test. 300 IN CNAME example.test.")
    up.add("blocked.test. 300 IN A 192.0.2.66")
    up.add("odd.test. 300 IN A 192.0.2.9")
    # medium.test: ~800 bytes (over 512, under 1232); big.test: ~3 KB (over 1232).
    for i in range(3):
        up.add(f'medium.test. 300 IN TXT "{"m" * 240}{i}"')
    for i in range(12):
        up.add(f'big.test. 300 IN TXT "{"b" * 240}{i}"')


# --------------------------------------------------------------------------------------------
# The two resolvers


_UNBOUND_CONF = """server:
    interface: 127.0.0.1@{port}
    port: {port}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    do-daemonize: no
    do-not-query-localhost: no
    module-config: "iterator"
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 0
    num-threads: 1
    so-reuseport: no
    access-control: 127.0.0.0/8 allow
    qname-minimisation: no
    minimal-responses: yes
    edns-buffer-size: 1232
    hide-identity: no
    local-zone: "test." nodefault
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@{upstream}
"""


def _start_unbound(workdir: Path, upstream_port: int) -> tuple[subprocess.Popen[bytes], int]:
    assert UNBOUND is not None
    last = ""
    for _ in range(5):
        port = free_port()
        conf = workdir / "unbound.conf"
        conf.write_text(_UNBOUND_CONF.format(port=port, dir=workdir, upstream=upstream_port))
        proc = subprocess.Popen(
            [UNBOUND, "-d", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            probe = dns.message.make_query("localhost", "A").to_wire()
            if _udp(("127.0.0.1", port), probe, 0.2) is not None:
                return proc, port
        proc.kill()
        out, _ = proc.communicate(timeout=5)
        last = out.decode(errors="replace")[-500:]
    raise RuntimeError(f"unbound did not start: {last}")


async def _make_app(cfg: Config) -> App:
    return App(cfg)


class Resolvers:
    """The fake upstream and Parafoudre in a background event loop; unbound beside them."""

    def __init__(self, workdir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.upstream = ConformanceUpstream()
        _zone(self.upstream)
        for attempt in range(10):
            # FakeUpstream.start binds UDP on a free port, then TCP on the same number, which
            # another socket may hold on a busy machine: try again on a fresh port.
            try:
                self.run(self.upstream.start())
                break
            except OSError:
                if attempt == 9:
                    raise
                udp = getattr(self.upstream, "udp", None)
                if udp is not None:
                    self.loop.call_soon_threadsafe(udp.close)
                self.upstream.port = 0
        blocklist = workdir / "block.txt"
        blocklist.write_text("blocked.test\n")
        cfg = make_config(
            workdir,
            self.upstream.port,
            f"blocking:\n  lists:\n    - path: {blocklist}\n      name: conformance\n"
            "rate_limit:\n  enabled: false\n",
        )
        self.app = self.run(_make_app(cfg))  # built in the loop it runs in
        self.run(self.app.start())
        self.parafoudre = self.app.bound[0]
        self.unbound: tuple[str, int] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        if UNBOUND is not None:
            self.proc, port = _start_unbound(workdir, self.upstream.port)
            self.unbound = ("127.0.0.1", port)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        try:
            self.run(self.app.stop(drain=0.5))
            self.run(self.upstream.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


@pytest.fixture(scope="module")
def resolvers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Resolvers]:
    r = Resolvers(tmp_path_factory.mktemp("conformance"))
    try:
        yield r
    finally:
        r.close()


# --------------------------------------------------------------------------------------------
# Sending raw bytes, reading what comes back


def _udp(addr: tuple[str, int], data: bytes, wait: float = 2.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(wait)
        s.sendto(data, addr)
        deadline = time.monotonic() + wait
        while True:
            try:
                reply = s.recv(65535)
            except TimeoutError:
                return None
            if len(data) < 2 or reply[:2] == data[:2]:
                return reply
            s.settimeout(max(0.01, deadline - time.monotonic()))  # a stray reply: keep waiting


def _tcp(addr: tuple[str, int], data: bytes, wait: float = 2.0) -> bytes | None:
    with socket.create_connection(addr, timeout=wait) as s:
        s.sendall(struct.pack("!H", len(data)) + data)
        buf = b""
        try:
            while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
                chunk = s.recv(65535)
                if not chunk:
                    return None  # closed without an answer
                buf += chunk
        except (TimeoutError, ConnectionResetError):
            return None  # unbound resets a connection whose message is shorter than a header
        return buf[2 : 2 + struct.unpack("!H", buf[:2])[0]]


def send(addr: tuple[str, int], data: bytes, transport: str, wait: float = 2.0) -> bytes | None:
    return (_udp if transport == "udp" else _tcp)(addr, data, wait)


# --------------------------------------------------------------------------------------------
# What is compared


@dataclass(frozen=True)
class Summary:
    id: int
    rcode: int  # with the EDNS extended bits (BADVERS is 16)
    opcode: int
    qr: bool
    aa: bool
    tc: bool
    ra: bool
    rd: bool
    cd: bool
    question: bytes  # raw: the case of the name must be the asker's
    answer: frozenset[tuple[str, int, int, bytes]]
    authority: frozenset[tuple[str, int]]
    opt: tuple[int, bool] | None  # (version, DO) or no OPT at all
    options: tuple[int, ...]  # EDNS option codes in the answer
    ttls: tuple[int, ...] = field(default=(), compare=False)
    raw: bytes = field(default=b"", compare=False, repr=False)

    def without(self, *names: str) -> dict[str, object]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("ttls", "raw")}
        for n in names:
            out.pop(n)
        return out


def _header_only(resp: bytes) -> Summary:
    """A reply dnspython cannot read (unbound echoes a malformed query back): its header."""
    qid, flags, qd = struct.unpack_from("!HHH", resp)
    return Summary(
        id=qid,
        rcode=flags & 0xF,
        opcode=(flags >> 11) & 0xF,
        qr=bool(flags & 0x8000),
        aa=bool(flags & 0x0400),
        tc=bool(flags & 0x0200),
        ra=bool(flags & 0x0080),
        rd=bool(flags & 0x0100),
        cd=bool(flags & 0x0010),
        question=resp[12:] if qd else b"",
        answer=frozenset(),
        authority=frozenset(),
        opt=None,
        options=(),
        raw=resp,
    )


def summarize(resp: bytes, query: bytes) -> Summary:
    # dnspython reads UPDATE sections semantically: read every message as a QUERY, keep the code.
    opcode = (resp[2] >> 3) & 0xF
    try:
        msg = dns.message.from_wire(resp[:2] + bytes([resp[2] & 0x87]) + resp[3:])
    except dns.exception.DNSException:
        return _header_only(resp)
    qd = struct.unpack_from("!H", resp, 4)[0]
    qlen = len(msg.question[0].name.to_wire()) + 4 if qd == 1 else 0
    f = msg.flags
    answer = frozenset(
        (rrset.name.to_text().lower(), rrset.rdtype, rrset.rdclass, rd.to_wire())
        for rrset in msg.answer
        for rd in rrset
    )
    authority = frozenset((r.name.to_text().lower(), r.rdtype) for r in msg.authority)
    opt = None if msg.edns < 0 else (msg.edns, bool(msg.ednsflags & dns.flags.DO))
    return Summary(
        id=msg.id,
        rcode=msg.rcode(),
        opcode=opcode,
        qr=bool(f & dns.flags.QR),
        aa=bool(f & dns.flags.AA),
        tc=bool(f & dns.flags.TC),
        ra=bool(f & dns.flags.RA),
        rd=bool(f & dns.flags.RD),
        cd=bool(f & dns.flags.CD),
        question=resp[12 : 12 + qlen],
        answer=answer,
        authority=authority,
        opt=opt,
        options=tuple(int(o.otype) for o in msg.options),
        ttls=tuple(r.ttl for r in [*msg.answer, *msg.authority]),
        raw=resp,
    )


# --------------------------------------------------------------------------------------------
# The battery


def query(
    name: str,
    rdtype: str | int = "A",
    *,
    rdclass: str = "IN",
    edns: int | None = None,
    payload: int = 1232,
    do: bool = False,
    options: list[dns.edns.Option] | None = None,
    qid: int = 0x4D2,
    opcode: int = 0,
    cd: bool = False,
    rd: bool = True,
    ad: bool = False,
) -> bytes:
    q = dns.message.make_query(
        name,
        rdtype,
        rdclass,
        use_edns=edns if edns is not None else (0 if (do or options) else False),
        payload=payload,
        want_dnssec=do,
        options=options,
    )
    q.id = qid
    if cd:
        q.flags |= dns.flags.CD
    if ad:
        q.flags |= dns.flags.AD
    if not rd:
        q.flags &= ~dns.flags.RD
    wire = bytearray(q.to_wire())
    wire[2] = (wire[2] & 0x87) | (opcode << 3)
    return bytes(wire)


def _with_counts(q: bytes, qd: int) -> bytes:
    return q[:4] + struct.pack("!H", qd) + q[6:]


def _header(qid: int, flags: int, qd: int, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


Expect = Callable[[Summary | None, bytes, str], None]


@dataclass(frozen=True)
class Case:
    id: str
    query: bytes
    expect: Expect
    transports: tuple[str, ...] = ("udp", "tcp")
    ignore: tuple[str, ...] = ()  # fields not compared with unbound (documented per case)
    differs: str = ""  # why Parafoudre deliberately answers otherwise than unbound


def _answer_types(s: Summary) -> set[int]:
    return {a[1] for a in s.answer}


def noerror_with(*types: int) -> Expect:
    def check(s: Summary | None, q: bytes, transport: str) -> None:
        assert s is not None and s.rcode == dns.rcode.NOERROR and not s.tc
        assert _answer_types(s) == set(types)

    return check


def rcode_is(rcode: int, *, question: bool = True) -> Expect:
    def check(s: Summary | None, q: bytes, transport: str) -> None:
        assert s is not None and s.rcode == rcode and not s.answer
        if question:
            assert s.question == q[12 : 12 + len(s.question)] and s.question
        else:
            assert s.question == b""

    return check


def no_answer(s: Summary | None, q: bytes, transport: str) -> None:
    assert s is None


def _tc_over_udp(limit: int, full: int) -> Expect:
    def check(s: Summary | None, q: bytes, transport: str) -> None:
        assert s is not None and s.rcode == dns.rcode.NOERROR
        if transport == "udp":
            assert s.tc and len(s.raw) <= limit
        else:
            assert not s.tc and _answer_types(s) == {dns.rdatatype.TXT} and len(s.answer) == full

    return check


def _edns(payload: int) -> Expect:
    def check(s: Summary | None, q: bytes, transport: str) -> None:
        assert s is not None and s.opt == (0, False)
        # medium.test is ~800 bytes: TC over UDP when the asker's size (at least 512) is lower.
        assert s.tc == (transport == "udp" and max(payload, 512) < 800)
        if not s.tc:
            assert _answer_types(s) == {dns.rdatatype.TXT}

    return check


def _no_opt(s: Summary | None, q: bytes, transport: str) -> None:
    assert s is not None and s.opt is None and s.rcode == dns.rcode.NOERROR
    assert _answer_types(s) == {dns.rdatatype.A}


def _badvers(s: Summary | None, q: bytes, transport: str) -> None:
    assert s is not None and s.rcode == dns.rcode.BADVERS
    assert s.opt is not None and s.opt[0] == 0  # RFC 6891 §6.1.3: our highest version
    assert not s.answer


def _unknown_option(s: Summary | None, q: bytes, transport: str) -> None:
    noerror_with(dns.rdatatype.A)(s, q, transport)
    assert s is not None and s.opt == (0, False)
    assert 65001 not in s.options  # unknown options are ignored, not echoed (RFC 6891 §6.1.2)


def _do_echoed(do: bool) -> Expect:
    def check(s: Summary | None, q: bytes, transport: str) -> None:
        noerror_with(dns.rdatatype.A)(s, q, transport)
        assert s is not None and s.opt == (0, do)

    return check


def _case_kept(s: Summary | None, q: bytes, transport: str) -> None:
    noerror_with(dns.rdatatype.A)(s, q, transport)
    assert s is not None and s.question == q[12 : 12 + len(s.question)]
    assert s.question[1:8] == b"ExAmPlE"  # the asker's case (RFC 4343 §4), not the upstream's


def _cname_chain_nxdomain(s: Summary | None, q: bytes, transport: str) -> None:
    assert s is not None and s.rcode == dns.rcode.NXDOMAIN
    assert _answer_types(s) == {dns.rdatatype.CNAME}
    assert len(s.answer) == 2  # chain.test -> a.chain.test -> gone.test
    assert ("test.", dns.rdatatype.SOA) in s.authority  # RFC 2308: negative answers carry SOA


def _nodata(s: Summary | None, q: bytes, transport: str) -> None:
    assert s is not None and s.rcode == dns.rcode.NOERROR and not s.answer
    assert ("test.", dns.rdatatype.SOA) in s.authority


def _unknown_type(s: Summary | None, q: bytes, transport: str) -> None:
    assert s is not None and s.rcode == dns.rcode.NOERROR
    assert s.answer == {("odd.test.", 65280, 1, b"\x01\x02\x03\x04")}


def _minimal_any(s: Summary | None, q: bytes, transport: str) -> None:
    assert s is not None and s.rcode == dns.rcode.NOERROR
    assert _answer_types(s) == {dns.rdatatype.HINFO}
    (hinfo,) = s.answer
    assert hinfo[3] == b"\x07RFC8482\x00"


def _blocked(s: Summary | None, q: bytes, transport: str) -> None:
    assert s is not None and s.rcode == dns.rcode.NXDOMAIN and not s.answer
    # RFC 2308 §3: an SOA, so caches downstream of the box keep the negation.
    assert s.authority == {(".", dns.rdatatype.SOA)}
    assert s.options == (dns.edns.EDE,)
    msg = dns.message.from_wire(s.raw)
    (ede,) = msg.options
    assert isinstance(ede, dns.edns.EDEOption) and int(ede.code) == 15
    assert ede.text == "list:conformance"


def _chaos_id(s: Summary | None, q: bytes, transport: str) -> None:
    assert s is not None and s.rcode == dns.rcode.NOERROR and s.aa
    ((name, rdtype, rdclass, _),) = s.answer
    assert (name, rdtype, rdclass) == ("id.server.", dns.rdatatype.TXT, dns.rdataclass.CH)


def _refused(s: Summary | None, q: bytes, transport: str) -> None:
    assert s is not None and s.rcode == dns.rcode.REFUSED and not s.answer  # no version told


def _localhost(s: Summary | None, q: bytes, transport: str) -> None:
    assert s is not None and s.rcode == dns.rcode.NOERROR and s.aa
    assert s.answer == {("localhost.", 1, 1, b"\x7f\x00\x00\x01")}


def _flags_echoed(s: Summary | None, q: bytes, transport: str) -> None:
    noerror_with(dns.rdatatype.A)(s, q, transport)
    assert s is not None and s.rd == bool(q[2] & 1) and s.cd == bool(q[3] & 0x10)


def _with_opt(expect: Expect, do: bool = False) -> Expect:
    """``expect``, and an OPT in the answer because the query had one (RFC 6891 §7)."""

    def check(s: Summary | None, q: bytes, transport: str) -> None:
        expect(s, q, transport)
        assert s is not None and s.opt == (0, do), "an EDNS query's answer carries an OPT"

    return check


def _notimp_with_opt(s: Summary | None, q: bytes, transport: str) -> None:
    _with_opt(rcode_is(dns.rcode.NOTIMP))(s, q, transport)


def _bad_option_formerr(s: Summary | None, q: bytes, transport: str) -> None:
    _with_opt(rcode_is(dns.rcode.FORMERR))(s, q, transport)


def _local_a(s: Summary | None, q: bytes, transport: str) -> None:
    _localhost(s, q, transport)
    assert s is not None and not s.rd  # RD echoed


_OPT_65001 = dns.edns.GenericOption(65001, b"\xde\xad\xbe\xef")
_OPT_RR = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"  # root, OPT, 1232, no options


def _bad_option(rdata: bytes) -> bytes:
    """A query for example.test whose OPT carries ``rdata`` as options, lengths as they are."""
    head = _header(0x4D2, 0x0100, 1, ar=1)
    question = _PLAIN[12:]
    return head + question + _OPT_RR[:-2] + struct.pack("!H", len(rdata)) + rdata


def _class(q: bytes, qclass: int) -> bytes:
    """``q`` (no OPT) with its question's class replaced."""
    return q[:-2] + struct.pack("!H", qclass)


_PLAIN = query("example.test")

CASES = [
    Case("case-preserved", query("ExAmPlE.TeSt"), _case_kept),
    Case("rd-cd-echoed", query("example.test", cd=True), _flags_echoed),
    Case(
        "tc-no-edns",
        query("medium.test", "TXT"),
        _tc_over_udp(512, 3),
    ),
    Case(
        "tc-edns-1232",
        query("big.test", "TXT", edns=0, payload=1232),
        _tc_over_udp(1232, 12),
    ),
    Case("edns-absent", query("example.test"), _no_opt),
    *(
        Case(
            f"edns-payload-{p}",
            query("medium.test", "TXT", edns=0, payload=p),
            _edns(p),
        )
        for p in (0, 512, 1232, 4096)
    ),
    Case("edns-badvers", query("example.test", edns=1), _badvers),
    Case("edns-unknown-option", query("example.test", options=[_OPT_65001]), _unknown_option),
    Case("do-bit-set", query("example.test", do=True), _do_echoed(True)),
    Case("do-bit-clear", query("example.test", edns=0), _do_echoed(False)),
    Case("nodata-soa", query("example.test", "MX"), _nodata),
    Case("cname", query("www.example.test"), noerror_with(dns.rdatatype.CNAME, dns.rdatatype.A)),
    Case("cname-chain-nxdomain", query("chain.test"), _cname_chain_nxdomain),
    Case("unknown-qtype", query("odd.test", 65280), _unknown_type),
    Case("localhost", query("localhost"), _localhost),
    Case(
        "chaos-id-server",
        query("id.server", "TXT", rdclass="CH"),
        _chaos_id,
        ignore=("answer", "aa"),
    ),  # each names itself; AA: BIND sets it, unbound not
    Case(
        "chaos-version-bind",
        query("version.bind", "TXT", rdclass="CH"),
        _refused,
        differs="Parafoudre does not disclose its version; unbound answers version.bind",
    ),
    Case("chaos-other-name", query("example.test", "A", rdclass="CH"), _refused),
    Case(
        "opcode-notify",
        query("example.test", opcode=dns.opcode.NOTIFY),
        rcode_is(dns.rcode.NOTIMP),
        differs="NOTIFY is NOTIMP in Parafoudre (no zones of its own); unbound says REFUSED",
    ),
    # Error replies: unbound clears RA in them and echoes the whole malformed message back;
    # Parafoudre, a recursive service, always sets RA (RFC 1035 §4.1.1) and echoes the question
    # only when it could read exactly one. Neither is mandated: those fields are not compared.
    Case(
        "opcode-update",
        query("example.test", opcode=dns.opcode.UPDATE),
        rcode_is(dns.rcode.NOTIMP),
        ignore=("ra",),
    ),
    Case(
        "qdcount-0",
        _header(0x4D2, 0x0100, 0),
        rcode_is(dns.rcode.FORMERR, question=False),
        ignore=("ra",),
    ),
    Case(
        "qdcount-2",
        _with_counts(_PLAIN + _PLAIN[12:], 2),
        rcode_is(dns.rcode.FORMERR, question=False),
        ignore=("ra", "question"),
    ),
    Case(
        "compression-loop",
        _header(0x4D2, 0x0100, 1) + b"\xc0\x0c\x00\x01\x00\x01",
        rcode_is(dns.rcode.FORMERR, question=False),
        ignore=("ra", "question"),
    ),
    Case("truncated-header", _PLAIN[:7], no_answer),
    Case("response-ignored", _PLAIN[:2] + bytes([_PLAIN[2] | 0x80]) + _PLAIN[3:], no_answer),
    Case(
        "any-minimal",
        query("example.test", "ANY"),
        _minimal_any,
        differs="RFC 8482: Parafoudre answers ANY with one synthesised HINFO; unbound forwards",
    ),
    Case(
        "blocked-ede",
        query("blocked.test", edns=0),
        _blocked,
        differs="a blocked name is NXDOMAIN with EDE 15 (RFC 8914) in Parafoudre; unbound "
        "does not block",
    ),
]

# Issue 14: what a forwarder must not forward, and error answers that keep EDNS.
CASES += [
    # Zone transfers: REFUSED at once, as unbound (which clears RA in it: not compared).
    *(
        Case(
            f"{t.lower()}-refused",
            query("example.test", t),
            rcode_is(dns.rcode.REFUSED),
            ignore=("ra",),
        )
        for t in ("AXFR", "IXFR")
    ),
    Case(
        "axfr-edns-refused",
        query("example.test", "AXFR", edns=0),
        _with_opt(rcode_is(dns.rcode.REFUSED)),
        ignore=("ra",),
    ),
    # RD=0: only local data answers; the cache is not for snooping (unbound's access-control).
    Case("rd0-uncached-refused", query("norec.test", rd=False), rcode_is(dns.rcode.REFUSED)),
    Case("rd0-cached-refused", query("example.test", rd=False), rcode_is(dns.rcode.REFUSED)),
    Case(
        "rd0-blocked-refused",
        query("blocked.test", rd=False, edns=0),
        _with_opt(rcode_is(dns.rcode.REFUSED)),
    ),
    Case("rd0-localhost-answered", query("localhost", rd=False), _local_a),
    # Classes with nowhere to go: REFUSED (HS, NONE, CSNET, unassigned), as unbound.
    *(
        Case(f"class-{c}-refused", _class(_PLAIN, c), rcode_is(dns.rcode.REFUSED))
        for c in (4, 254, 0, 2, 1000)
    ),
    Case(
        "class-hs-edns-refused",
        query("example.test", rdclass="HS", edns=0),
        _with_opt(rcode_is(dns.rcode.REFUSED)),
    ),
    # A name with an empty label mid-way: "a." then the rest read as type 0x0162, class 0.
    Case(
        "empty-label-mid-name",
        _header(0x4D2, 0x0100, 1) + b"\x01a\x00\x01b\x00\x00\x01\x00\x01",
        rcode_is(dns.rcode.REFUSED),
    ),
    # Meta-types are not questions: FORMERR, as unbound (which clears RA in it).
    *(
        Case(
            f"qtype-{t}-formerr",
            query("example.test", t),
            rcode_is(dns.rcode.FORMERR),
            ignore=("ra",),
        )
        for t in (41, 128, 249, 250, 253, 254)
    ),
    Case(
        "qtype-opt-edns-formerr",
        query("example.test", 41, do=True),
        _with_opt(rcode_is(dns.rcode.FORMERR), do=True),
        ignore=("ra",),
    ),
    # Error answers to EDNS queries carry an OPT (dig would say "retry with +noedns").
    Case(
        "opcode-update-edns",
        query("example.test", opcode=dns.opcode.UPDATE, edns=0),
        _notimp_with_opt,
        ignore=("ra",),
    ),
    Case(
        "opcode-notify-edns",
        query("example.test", opcode=dns.opcode.NOTIFY, edns=0),
        _notimp_with_opt,
        differs="NOTIFY is NOTIMP in Parafoudre (no zones of its own); unbound says REFUSED",
    ),
    Case(
        "qdcount-0-edns",
        _header(0x4D2, 0x0100, 0, ar=1) + _OPT_RR,
        _with_opt(rcode_is(dns.rcode.FORMERR, question=False)),
        ignore=("ra",),
    ),
    Case(
        "qdcount-2-edns",
        _header(0x4D2, 0x0100, 2, ar=1) + _PLAIN[12:] * 2 + _OPT_RR,
        _with_opt(rcode_is(dns.rcode.FORMERR, question=False)),
        ignore=("ra", "question"),
    ),
    *(
        Case(
            f"edns-option-{label}-formerr",
            _bad_option(rdata),
            _bad_option_formerr,
            differs="RFC 6891 §6.1.2: options fill the OPT exactly; unbound ignores the excess",
        )
        for label, rdata in (
            ("past-the-record", b"\x00\x0a\x00\x14" + bytes(8)),
            ("header-cut", b"\x00\x0a\x00\x08" + bytes(8) + b"\x00\x0c"),
        )
    ),
    Case(
        "any-blocked",
        query("blocked.test", "ANY", edns=0),
        _blocked,
        differs="ANY for a listed name is blocked (NXDOMAIN, EDE 15); unbound does not block",
    ),
]

PARAMS = [pytest.param(c, t, id=f"{c.id}-{t}") for c in CASES for t in c.transports]


def _ask(addr: tuple[str, int], case: Case, transport: str) -> Summary | None:
    wait = NO_ANSWER_WAIT if case.expect is no_answer else 2.0
    resp = send(addr, case.query, transport, wait)
    return None if resp is None else summarize(resp, case.query)


@pytest.mark.parametrize(("case", "transport"), PARAMS)
def test_parafoudre(resolvers: Resolvers, case: Case, transport: str) -> None:
    s = _ask(resolvers.parafoudre, case, transport)
    case.expect(s, case.query, transport)
    if s is not None:
        assert s.qr and s.ra, "a recursive service's answer: QR and RA set"
        assert s.id == struct.unpack_from("!H", case.query)[0]
        assert s.opcode == (case.query[2] >> 3) & 0xF


@pytest.mark.skipif(UNBOUND is None, reason="unbound is not installed (apt-get install unbound)")
@pytest.mark.parametrize(("case", "transport"), PARAMS)
def test_same_as_unbound(resolvers: Resolvers, case: Case, transport: str) -> None:
    assert resolvers.unbound is not None
    with ThreadPoolExecutor(2) as pool:  # both at once: "no answer" cases wait in parallel
        ours_f = pool.submit(_ask, resolvers.parafoudre, case, transport)
        theirs_f = pool.submit(_ask, resolvers.unbound, case, transport)
        ours, theirs = ours_f.result(), theirs_f.result()
    if case.differs:
        # Deliberate: only Parafoudre's behaviour is asserted (test_parafoudre), and that
        # the two really differ, so the note stays true.
        assert ours != theirs, f"no longer differs: {case.differs}"
        return
    if ours is None or theirs is None:
        assert ours is None and theirs is None, (ours, theirs)
        return
    ignore = case.ignore
    if ours.tc and theirs.tc:
        # Both truncated: what else a truncated answer carries is up to each server
        # (Parafoudre: header, question and OPT; unbound: the RRsets that fit).
        ignore = (*ignore, "answer", "authority")
    assert ours.without(*ignore) == theirs.without(*ignore)


# --------------------------------------------------------------------------------------------
# Cases that need more than one message


def test_tc_over_udp_then_full_answer_over_tcp(resolvers: Resolvers) -> None:
    for name in ("medium.test", "big.test"):
        q = query(name, "TXT")
        udp = summarize(send(resolvers.parafoudre, q, "udp") or b"", q)
        assert udp.tc and len(udp.raw) <= 512
        tcp = summarize(send(resolvers.parafoudre, q, "tcp") or b"", q)
        assert not tcp.tc and len(tcp.answer) == (3 if name == "medium.test" else 12)
        if resolvers.unbound is not None:
            theirs = summarize(send(resolvers.unbound, q, "tcp") or b"", q)
            assert tcp.answer == theirs.answer and tcp.rcode == theirs.rcode


def test_negative_answers_are_cached_for_the_soa_minimum(resolvers: Resolvers) -> None:
    servers = [("parafoudre", resolvers.parafoudre)]
    if resolvers.unbound is not None:
        servers.append(("unbound", resolvers.unbound))
    summaries = {}
    for label, addr in servers:
        name = f"neg-{label}.test"
        q = query(name, edns=0)
        first = summarize(send(addr, q, "udp") or b"", q)
        asked = sum(1 for r in resolvers.upstream.queries if str(r.q.qname).rstrip(".") == name)
        second = summarize(send(addr, q, "udp") or b"", q)
        again = sum(1 for r in resolvers.upstream.queries if str(r.q.qname).rstrip(".") == name)
        for s in (first, second):
            assert s.rcode == dns.rcode.NXDOMAIN and not s.answer
            assert s.authority == {("test.", dns.rdatatype.SOA)}
            assert all(t <= SOA_MINIMUM for t in s.ttls), s.ttls  # RFC 2308 §5
        assert asked >= 1 and again == asked, f"{label}: the second answer came from its cache"
        summaries[label] = second.without()
    if "unbound" in summaries:
        assert summaries["parafoudre"] == summaries["unbound"] | {
            "question": summaries["parafoudre"]["question"]
        }


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_question_name_pointing_into_the_header_is_formerr(
    resolvers: Resolvers, transport: str
) -> None:
    # ID 0x0161 and flags 0x0100 read as labels: \x01 'a' \x01 \x00, then qdcount's 0x00.
    q = _header(0x0161, 0x0100, 1) + b"\xc0\x00\x00\x01\x00\x01"
    ours = send(resolvers.parafoudre, q, transport, 3)
    if resolvers.unbound is not None:
        theirs = send(resolvers.unbound, q, transport)
        assert theirs is not None and theirs[3] & 0xF == dns.rcode.FORMERR
    assert ours is not None and ours[3] & 0xF == dns.rcode.FORMERR


def test_local_negative_answers_carry_an_soa(resolvers: Resolvers) -> None:
    q = query("1.1.168.192.in-addr.arpa", "PTR")
    ours = summarize(send(resolvers.parafoudre, q, "udp") or b"", q)
    assert ours.rcode == dns.rcode.NXDOMAIN and ours.aa
    if resolvers.unbound is not None:
        theirs = summarize(send(resolvers.unbound, q, "udp") or b"", q)
        assert theirs.rcode == dns.rcode.NXDOMAIN
        assert dns.rdatatype.SOA in {t for _, t in theirs.authority}
    assert dns.rdatatype.SOA in {t for _, t in ours.authority}


def test_malformed_then_normal_over_one_tcp_connection(resolvers: Resolvers) -> None:
    """Over TCP a malformed message gets FORMERR and the connection goes on (RFC 7766 §6.2)."""
    bad = _header(0x0BAD, 0x0100, 1) + b"\xc0\x0c\x00\x01\x00\x01"
    good = query("example.test", qid=0x600D)
    with socket.create_connection(resolvers.parafoudre, timeout=2) as s:
        s.sendall(b"".join(struct.pack("!H", len(m)) + m for m in (bad, good)))
        got = {}
        buf = b""
        while len(got) < 2:
            chunk = s.recv(65535)
            assert chunk
            buf += chunk
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                n = struct.unpack("!H", buf[:2])[0]
                msg, buf = buf[2 : 2 + n], buf[2 + n :]
                got[msg[:2]] = msg[3] & 0xF
    assert got == {b"\x0b\xad": dns.rcode.FORMERR, b"\x60\x0d": dns.rcode.NOERROR}


# --------------------------------------------------------------------------------------------
# Issue 14: what never leaves the box, and answers downstream caches can keep


def _upstream_seen(resolvers: Resolvers, name: str) -> int:
    up = resolvers.upstream
    return sum(1 for r in up.queries if str(r.q.qname).rstrip(".").lower() == name)


def _servers(resolvers: Resolvers) -> list[tuple[str, tuple[str, int]]]:
    out = [("parafoudre", resolvers.parafoudre)]
    if resolvers.unbound is not None:
        out.append(("unbound", resolvers.unbound))
    return out


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("qtype", ["AXFR", "IXFR"])
def test_zone_transfers_never_reach_the_upstream(
    resolvers: Resolvers, transport: str, qtype: str
) -> None:
    for label, addr in _servers(resolvers):
        name = f"xfr-{label}-{qtype}-{transport}.test".lower()
        before = (len(resolvers.upstream.queries), resolvers.upstream.tcp_queries)
        s = summarize(send(addr, query(name, qtype), transport) or b"", query(name, qtype))
        assert s.rcode == dns.rcode.REFUSED, label
        time.sleep(0.2)  # a forward would have gone out by now
        after = (len(resolvers.upstream.queries), resolvers.upstream.tcp_queries)
        assert after == before and _upstream_seen(resolvers, name) == 0, label


def test_without_rd_nothing_is_looked_up_nor_read_from_the_cache(resolvers: Resolvers) -> None:
    for label, addr in _servers(resolvers):
        name = f"snoop-{label}.test"
        resolvers.upstream.add(f"{name}. 300 IN A 192.0.2.44")
        cold = summarize(send(addr, query(name, rd=False), "udp") or b"", query(name))
        assert cold.rcode == dns.rcode.REFUSED and _upstream_seen(resolvers, name) == 0, label
        warm = summarize(send(addr, query(name), "udp") or b"", query(name))
        assert warm.rcode == dns.rcode.NOERROR and _upstream_seen(resolvers, name) == 1, label
        # In the cache now, but a query without RD does not learn that (cache snooping).
        for transport in ("udp", "tcp"):
            q = query(name, rd=False, qid=0x5157)
            s = summarize(send(addr, q, transport) or b"", q)
            assert s.rcode == dns.rcode.REFUSED and not s.answer, (label, transport)
        assert _upstream_seen(resolvers, name) == 1, label


def test_a_blocked_nxdomain_carries_the_same_soa_from_every_lane(resolvers: Resolvers) -> None:
    """The blocklist stage (first), the fast lane (second), its memo of this second's answers
    (third), and TCP: the same answer, SOA included, but for the ID."""
    name = "soa.blocked.test"
    answers = []
    cache = resolvers.app.cache
    hits = cache.hits
    for n, transport in enumerate(("udp", "udp", "udp", "tcp", "tcp")):
        q = query(name, edns=0, qid=0x100 + n)
        raw = send(resolvers.parafoudre, q, transport)
        assert raw is not None
        answers.append(raw[2:])
    # The chain answers a listed name at the blocklist stage, before the cache stage: a hit
    # counted here is the fast lane (or its memo) serving the block it cached.
    assert cache.hits > hits, "the repeats came from the fast lane"
    for n, raw_tail in enumerate(answers):
        q = query(name, edns=0, qid=0x100 + n)
        raw = q[:2] + raw_tail
        s = summarize(raw, q)
        assert s.rcode == dns.rcode.NXDOMAIN and s.options == (dns.edns.EDE,)
        assert s.authority == {(".", dns.rdatatype.SOA)}
        (soa_rrset,) = dns.message.from_wire(raw).authority
        assert soa_rrset.ttl == soa_rrset[0].minimum == 60  # blocking.ttl's default
    assert len(set(answers)) == 1
    assert _upstream_seen(resolvers, name) == 0


DNSMASQ = shutil.which("dnsmasq") or (
    "/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists() else None
)


def _start_dnsmasq(upstream_port: int) -> tuple[subprocess.Popen[bytes], int]:
    """dnsmasq in the foreground, caching, forwarding everything to ``upstream_port``."""
    assert DNSMASQ is not None
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [
                DNSMASQ,
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                f"--server=127.0.0.1#{upstream_port}",
                f"--port={port}",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--user=root",
                "--pid-file=",
                "--cache-size=100",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and proc.poll() is None:
            probe = dns.message.make_query("localhost", "A").to_wire()
            if _udp(("127.0.0.1", port), probe, 0.2) is not None:
                return proc, port
        proc.kill()
        proc.wait(5)
    raise RuntimeError("dnsmasq did not start")


@pytest.mark.parametrize("downstream", ["unbound", "dnsmasq"])
@pytest.mark.parametrize("qtype", ["A", "MX"])
def test_a_downstream_cache_keeps_a_blocked_nxdomain(
    resolvers: Resolvers, tmp_path: Path, downstream: str, qtype: str
) -> None:
    """A cache forwarding to Parafoudre (the mairie's domain controller, a router's dnsmasq)
    asks once for a blocked name and answers the repeats from its own cache, still NXDOMAIN
    (RFC 2308): without an SOA dnsmasq asked every time; with the blocked name as the SOA's
    owner it answered the repeats NOERROR."""
    if downstream == "unbound" and UNBOUND is None:
        pytest.skip("unbound is not installed (apt-get install unbound)")
    if downstream == "dnsmasq" and DNSMASQ is None:
        pytest.skip("dnsmasq is not installed (apt-get install dnsmasq-base)")
    port = resolvers.parafoudre[1]
    proc, at = _start_unbound(tmp_path, port) if downstream == "unbound" else _start_dnsmasq(port)
    name = f"{downstream}-{qtype}.cache.blocked.test".lower()
    try:
        counts = resolvers.app.service.counts
        before = counts["blocked"]
        for n in range(3):
            q = query(name, qtype, qid=0x200 + n)
            s = summarize(send(("127.0.0.1", at), q, "udp") or b"", q)
            assert s.rcode == dns.rcode.NXDOMAIN and not s.answer, n
        assert counts["blocked"] == before + 1, "the repeats came from the downstream cache"
    finally:
        proc.terminate()
        proc.wait(5)


def test_ad_is_asked_for_upstream_and_shown_to_askers_that_want_it(resolvers: Resolvers) -> None:
    """glibc with ``options trust-ad`` sets AD without DO (RFC 6840 §5.7) and reads AD back.

    Not compared with unbound: in this test it does not validate (iterator only), so it never
    sets AD, whatever the upstream said.
    """
    addr = resolvers.parafoudre
    first = query("secure.test", ad=True, qid=0x301)
    s = summarize(send(addr, first, "udp") or b"", first)
    assert s.rcode == dns.rcode.NOERROR and s.answer
    assert s.raw[3] & 0x20, "AD=1 without DO: the upstream's AD reaches the asker"
    (sent,) = [r for r in resolvers.upstream.queries if str(r.q.qname) == "secure.test."]
    assert sent.header.ad, "AD asked for upstream"
    # From the cache now: AD only to an asker that set AD or DO (RFC 6840 §5.8).
    for ad, do, shown in ((False, False, False), (True, False, True), (False, True, True)):
        q = query("secure.test", ad=ad, do=do, qid=0x302)
        s = summarize(send(addr, q, "udp") or b"", q)
        assert bool(s.raw[3] & 0x20) is shown, (ad, do)
    # Asked twice: once without DO, once with (DO is part of the cache key: RRSIGs).
    assert _upstream_seen(resolvers, "secure.test") == 2
