"""DNS over TLS and DNS over HTTPS served by the box to its own machines (issue 21.4).

A real server on loopback with a certificate from a throwaway CA (trustme) for dns.test and
127.0.0.1, queried with dnspython (and kdig when installed): the same answers as over UDP, the
same policy (a listed name is blocked, a stranger refused), the same limits; DDR advertises the
endpoints; without a certificate a self-signed one is made and its fingerprint is the one served.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import shutil
import sqlite3
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.edns
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rdtypes.svcbbase
import pytest

from resolver.app import App
from resolver.doctor import run_doctor
from resolver.net import certificate
from tests.conftest import FakeUpstream, make_config, running

trustme = pytest.importorskip("trustme", reason="trustme (test extra) makes the test CA")
pytest.importorskip("httpx2", reason="dnspython[doh] (test extra) is its DNS-over-HTTPS client")

WAIT = 3.0
NAMES = ("example.test", "www.example.test", "blocked.test", "nowhere.test")


@pytest.fixture(scope="module")
def ca() -> Any:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: Any, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def client_ctx(ca: Any) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def encrypted_config(tmp_path: Path, ca: Any, upstream_port: int, extra: str = "") -> Any:
    cert = ca.issue_cert("dns.test", "127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key_path))
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    listed = tmp_path / "local-blocklist.txt"
    listed.write_text("blocked.test\n")
    return make_config(
        tmp_path,
        upstream_port,
        f"""
server:
  tls_listen: ["127.0.0.1:0"]
  https_listen: ["127.0.0.1:0"]
  certificate: {cert_path}
  private_key: {key_path}
  tls_name: dns.test
  encrypted_idle_timeout: 0.5
blocking:
  lists: [{{path: {listed}, category: malware}}]
{extra}
""",
    )


def endpoint(app: App, kind: str) -> int:
    return next(p for k, _, p in app.encrypted.bound if k == kind)


@pytest.fixture
async def box(tmp_path: Path, ca: Any, upstream: FakeUpstream) -> AsyncIterator[App]:
    async with running(encrypted_config(tmp_path, ca, upstream.port)) as app:
        yield app


def summary(r: dns.message.Message) -> tuple[int, list[str]]:
    """What a user relies on: the rcode and the answer records (TTLs aside)."""
    return r.rcode(), sorted(
        f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {rd}"
        for rrset in r.answer
        for rd in rrset
    )


async def test_dot_and_doh_answer_as_udp(
    box: App, ca_file: Path, client_ctx: ssl.SSLContext
) -> None:
    udp_port = box.bound[0][1]
    dot, doh = endpoint(box, "dot"), endpoint(box, "doh")
    url = f"https://127.0.0.1:{doh}/dns-query"
    for name in NAMES:
        for rdtype in ("A", "AAAA"):
            q = dns.message.make_query(name, rdtype)
            plain = await dns.asyncquery.udp(q, "127.0.0.1", port=udp_port, timeout=WAIT)
            tls = await dns.asyncquery.tls(
                q, "127.0.0.1", port=dot, ssl_context=client_ctx, server_hostname="dns.test",
                timeout=WAIT,
            )  # fmt: skip
            post = await dns.asyncquery.https(q, url, timeout=WAIT, verify=client_ctx)
            get = await dns.asyncquery.https(q, url, timeout=WAIT, verify=client_ctx, post=False)
            assert summary(tls) == summary(post) == summary(get) == summary(plain), name
    blocked = await dns.asyncquery.tls(
        dns.message.make_query("blocked.test", "A"), "127.0.0.1", port=dot,
        ssl_context=client_ctx, server_hostname="dns.test", timeout=WAIT,
    )  # fmt: skip
    assert blocked.rcode() == dns.rcode.NXDOMAIN
    # blocked.test: A and AAAA over UDP, TLS, POST and GET, and once more over TLS
    assert box.service.counts["blocked"] == 2 * 4 + 1


async def test_blocked_name_blocked_over_doh_and_logged(
    box: App, client_ctx: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"https://127.0.0.1:{endpoint(box, 'doh')}/dns-query"
    r = await dns.asyncquery.https(
        dns.message.make_query("blocked.test", "A", use_edns=0),
        url,
        timeout=WAIT,
        verify=client_ctx,
    )
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert any(opt.otype == 15 for opt in r.options)  # EDE "Blocked" (RFC 8914), as over UDP
    assert box.service.counts["blocked"] == 1
    db = box.cfg.blocklog_path()
    for _ in range(int(WAIT / 0.05)):
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT client, qname, category FROM blocks").fetchall()
        if rows:
            break
        await asyncio.sleep(0.05)
    assert rows == [("127.0.0.1", "blocked.test", "malware")]
    # In the block log, and never in the logs one query at a time (no HTTP access log).
    assert not [r for r in caplog.records if r.name.startswith("aiohttp")]


async def test_ddr_advertises_the_endpoints(box: App) -> None:
    q = dns.message.make_query("_dns.resolver.arpa", "SVCB")
    r = await dns.asyncquery.udp(q, "127.0.0.1", port=box.bound[0][1], timeout=WAIT)
    assert r.rcode() == dns.rcode.NOERROR
    records = sorted(r.answer[0], key=lambda rd: rd.priority)
    by_alpn = {rd.params[dns.rdtypes.svcbbase.ParamKey.ALPN].ids[0]: rd for rd in records}
    dot, doh = by_alpn[b"dot"], by_alpn[b"http/1.1"]
    assert dot.priority == 1 and doh.priority == 2
    assert str(dot.target) == str(doh.target) == "dns.test."
    assert dot.params[dns.rdtypes.svcbbase.ParamKey.PORT].port == endpoint(box, "dot")
    assert doh.params[dns.rdtypes.svcbbase.ParamKey.PORT].port == endpoint(box, "doh")
    assert doh.params[dns.rdtypes.svcbbase.ParamKey.DOHPATH].value == b"/dns-query{?dns}"
    hints = dot.params[dns.rdtypes.svcbbase.ParamKey.IPV4HINT].addresses
    assert list(hints) == ["127.0.0.1"]


async def test_doh_refuses_bad_requests(box: App, client_ctx: ssl.SSLContext) -> None:
    import httpx2 as httpx

    port = endpoint(box, "doh")
    async with httpx.AsyncClient(verify=client_ctx, timeout=WAIT) as client:
        base = f"https://127.0.0.1:{port}"
        assert (await client.get(f"{base}/other")).status_code == 404
        assert (await client.get(f"{base}/dns-query")).status_code == 400
        assert (await client.get(f"{base}/dns-query?dns=!!!")).status_code == 400
        r = await client.post(
            f"{base}/dns-query", content=b"\0" * 12, headers={"content-type": "text/plain"}
        )
        assert r.status_code == 415
        r = await client.post(
            f"{base}/dns-query",
            content=b"\0" * 70000,
            headers={"content-type": "application/dns-message"},
        )
        assert r.status_code == 413
        # Still serving afterwards.
        q = dns.message.make_query("example.test", "A")
        r = await client.post(
            f"{base}/dns-query",
            content=q.to_wire(),
            headers={"content-type": "application/dns-message"},
        )
        assert r.status_code == 200
        assert dns.message.from_wire(r.content).answer
        assert r.headers["cache-control"] == "max-age=300"


async def test_stranger_refused_over_tls(
    tmp_path: Path, ca: Any, upstream: FakeUpstream, client_ctx: ssl.SSLContext
) -> None:
    cfg = encrypted_config(tmp_path, ca, upstream.port, "acl: {allow: [10.0.0.0/8]}")
    async with running(cfg) as app:
        r = await dns.asyncquery.tls(
            dns.message.make_query("example.test", "A"), "127.0.0.1", port=endpoint(app, "dot"),
            ssl_context=client_ctx, server_hostname="dns.test", timeout=WAIT,
        )  # fmt: skip
        assert r.rcode() == dns.rcode.REFUSED
    assert upstream.queries == []


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            return await reader.read(1) == b""
    except (TimeoutError, ConnectionError, ssl.SSLError):
        return False


async def test_idle_connections_closed(box: App, client_ctx: ssl.SSLContext) -> None:
    """Idle TLS and HTTPS connections are closed after encrypted_idle_timeout (0.5 s here)."""
    for kind in ("dot", "doh"):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", endpoint(box, kind), ssl=client_ctx, server_hostname="dns.test"
        )
        try:
            assert await _closed_within(reader, 3.0), kind
        finally:
            writer.close()
    # A TCP connection that never starts its TLS handshake is dropped too.
    for kind in ("dot", "doh"):
        reader, writer = await asyncio.open_connection("127.0.0.1", endpoint(box, kind))
        try:
            assert await _closed_within(reader, 3.0), kind
        finally:
            writer.close()


async def test_connection_cap(tmp_path: Path, ca: Any, upstream: FakeUpstream) -> None:
    made = encrypted_config(tmp_path, ca, upstream.port)  # writes the certificate files
    cfg = make_config(
        tmp_path,
        upstream.port,
        f"""
server:
  tls_listen: ["127.0.0.1:0"]
  certificate: {made.server.certificate}
  private_key: {made.server.private_key}
  encrypted_max_connections: 2
""",
    )
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    async with running(cfg) as app:
        port = endpoint(app, "dot")
        conns = []
        for _ in range(4):
            conns.append(
                await asyncio.open_connection(
                    "127.0.0.1", port, ssl=ctx, server_hostname="dns.test"
                )
            )
            await asyncio.sleep(0.05)
        try:
            assert len(app.encrypted.limits.connections) <= 2
            # The oldest were closed to make room.
            assert await _closed_within(conns[0][0], 2.0)
        finally:
            for _, w in conns:
                w.close()


async def test_self_signed_made_once_and_shown(tmp_path: Path, upstream: FakeUpstream) -> None:
    cfg = make_config(
        tmp_path, upstream.port, 'server: {tls_listen: ["127.0.0.1:0"], tls_name: box.test}'
    )
    async with running(cfg) as app:
        cert = app.encrypted.certificate
        assert cert is not None and cert.parent == cfg.state_path() / "tls"
        expected = certificate.fingerprint(cert)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        port = endpoint(app, "dot")
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        digest = hashlib.sha256(der).hexdigest().upper()
        assert ":".join(digest[i : i + 2] for i in range(0, 64, 2)) == expected
        # Pinned by its fingerprint, the box answers.
        q = dns.message.make_query("example.test", "A")
        r = await dns.asyncquery.tls(q, "127.0.0.1", port=port, ssl_context=ctx, timeout=WAIT)
        assert r.answer
        # `parafoudre doctor` shows the fingerprint to give the machines that pin it.
        out = io.StringIO()
        await asyncio.to_thread(run_doctor, cfg, None, out=out, timeout=0.5)
        shown = [ln for ln in out.getvalue().splitlines() if "encrypted DNS" in ln]
        assert shown == [
            f"OK   encrypted DNS: self-signed certificate {cert}, SHA-256 fingerprint {expected}"
        ]
    # Made once: a restart keeps it.
    async with running(cfg) as app:
        assert certificate.fingerprint(app.encrypted.certificate) == expected  # type: ignore[arg-type]
    assert (cfg.state_path() / "tls" / "key.pem").stat().st_mode & 0o077 == 0


KDIG = shutil.which("kdig")


@pytest.mark.skipif(KDIG is None, reason="kdig not installed (apt-get install knot-dnsutils)")
async def test_kdig_over_tls(box: App, ca_file: Path) -> None:
    port = endpoint(box, "dot")

    def kdig(name: str) -> str:
        out = subprocess.run(
            [KDIG or "kdig", "@127.0.0.1", "-p", str(port), "+tls", f"+tls-ca={ca_file}",
             "+tls-hostname=dns.test", "+short", "+timeout=3", "+retry=0", name, "A"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert await asyncio.to_thread(kdig, "example.test") == "192.0.2.1"
    assert await asyncio.to_thread(kdig, "blocked.test") == ""  # NXDOMAIN: nothing to show
    assert box.service.counts["blocked"] == 1


async def test_rate_limit_applies_over_doh(
    tmp_path: Path, ca: Any, upstream: FakeUpstream, client_ctx: ssl.SSLContext
) -> None:
    import httpx2 as httpx

    cfg = encrypted_config(
        tmp_path, ca, upstream.port, "rate_limit: {rate: 0.01, burst: 3, max_clients: 16}"
    )
    wire_q = dns.message.make_query("example.test", "A").to_wire()
    async with running(cfg) as app:
        url = f"https://127.0.0.1:{endpoint(app, 'doh')}/dns-query"
        async with httpx.AsyncClient(verify=client_ctx, timeout=WAIT) as client:
            statuses = [
                (
                    await client.post(
                        url, content=wire_q, headers={"content-type": "application/dns-message"}
                    )
                ).status_code
                for _ in range(5)
            ]
    assert statuses == [200, 200, 200, 429, 429]


def test_certificate_without_key_refused_in_one_line(tmp_path: Path) -> None:
    from resolver.config import Config
    from resolver.config.errors import ConfigError
    from resolver.config.loader import load_text

    with pytest.raises(ConfigError) as info:
        load_text("server:\n  certificate: /etc/ssl/box.pem\n", Config, "p.yaml")
    message = str(info.value)
    assert "\n" not in message.strip()
    assert "p.yaml" in message and "private_key" in message


async def test_doctor_asks_each_encrypted_address(
    tmp_path: Path, ca: Any, upstream: FakeUpstream
) -> None:
    from tests.conftest import free_port

    dot, doh = free_port(), free_port()
    made = encrypted_config(tmp_path, ca, upstream.port)  # writes the certificate files
    listen = f'tls_listen: ["127.0.0.1:{dot}"], https_listen: ["127.0.0.1:{doh}"]'
    keys = f"certificate: {made.server.certificate}, private_key: {made.server.private_key}"

    def config(name: str) -> Any:
        return make_config(
            tmp_path, upstream.port, f"server: {{{listen}, {keys}, tls_name: {name}}}"
        )

    async with running(config("dns.test")):
        out = io.StringIO()
        await asyncio.to_thread(run_doctor, config("dns.test"), None, out=out, timeout=1.0)
        lines = out.getvalue().splitlines()
        says = "Parafoudre answers with this certificate for dns.test"
        assert f"OK   DNS over TLS on 127.0.0.1:{dot}: {says}" in lines
        assert f"OK   DNS over HTTPS on 127.0.0.1:{doh}: {says}" in lines
        # A name the certificate does not carry: what clients would see, said by doctor.
        out = io.StringIO()
        await asyncio.to_thread(run_doctor, config("other.test"), None, out=out, timeout=1.0)
        failed = [ln for ln in out.getvalue().splitlines() if ln.startswith("FAIL DNS over")]
        assert len(failed) == 2 and all("certificate is refused" in ln for ln in failed), (
            out.getvalue()
        )


async def test_encrypted_answers_are_padded(box: App, client_ctx: ssl.SSLContext) -> None:
    """RFC 8467: over TLS and HTTPS an EDNS answer's length is a multiple of 468 octets."""
    import httpx2 as httpx

    from resolver.net import framing

    q = dns.message.make_query("www.example.test", "A", use_edns=0).to_wire()
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", endpoint(box, "dot"), ssl=client_ctx, server_hostname="dns.test"
    )
    try:
        writer.write(framing.frame(q))
        async with asyncio.timeout(WAIT):
            tls = await framing.read_frame(reader)
    finally:
        writer.close()
    url = f"https://127.0.0.1:{endpoint(box, 'doh')}/dns-query"
    async with httpx.AsyncClient(verify=client_ctx, timeout=WAIT) as client:
        headers = {"content-type": "application/dns-message"}
        doh = (await client.post(url, content=q, headers=headers)).content
    udp = await dns.asyncquery.udp(
        dns.message.from_wire(q), "127.0.0.1", port=box.bound[0][1], timeout=WAIT
    )
    for raw in (tls, doh):
        assert len(raw) % 468 == 0, len(raw)
        r = dns.message.from_wire(raw)
        assert [o.otype for o in r.options] == [dns.edns.OptionType.PADDING]
        assert summary(r) == summary(udp)
    assert not udp.options  # plain DNS is not padded
