"""Alerts received by a real SMTP server (aiosmtpd, on 127.0.0.1, plain and STARTTLS with a
throwaway CA) and a real HTTP receiver: storm, a machine named with its name, exfiltration, a
stale feed; each once a day, across a restart, again the next day."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import ssl
import zoneinfo
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from dashboard.alerts import Alerter
from resolver.blocklog.writer import BlockEvent
from resolver.config.alerts import AlertsConfig, EmailConfig, WebhookConfig
from resolver.config.dashboard import DashboardConfig
from resolver.stats import FeedStatusRow
from tests.blocklog import Clock, write_events
from tests.conftest import free_port

trustme = pytest.importorskip("trustme", reason="trustme (test extra) makes the test CA")

TZ = "Europe/Paris"
NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=zoneinfo.ZoneInfo(TZ)).timestamp()


@dataclass
class Inbox:
    """aiosmtpd's handler: keeps every message."""

    messages: list[email.message.Message] = field(default_factory=list)
    rcpts: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append(email.message_from_bytes(envelope.content, policy=default))
        self.rcpts.append(list(envelope.rcpt_tos))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
async def hook() -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
    received: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield received, f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


def fill(db: Path, events: list[BlockEvent]) -> None:
    write_events(db, events, Clock(NOW - 3600))


def storm_day(ts: float) -> list[BlockEvent]:
    """45 blocks (storm from 40), 30 of them from one machine; and a tunnel from another."""
    events = [
        BlockEvent(ts - i, "192.168.1.23", f"x{i}.phish.test", 1, "blocked", "feed:o", "phishing")
        for i in range(30)
    ]
    events += [
        BlockEvent(
            ts - i, f"192.168.1.{40 + i % 5}", f"m{i}.bad.test", 1, "blocked", "f", "malware"
        )
        for i in range(15)
    ]
    events.append(
        BlockEvent(
            ts, "192.168.1.55", "a9f3c0e1.tunnel.test", 16, "exfiltration", "exfil:entropy",
            "exfiltration",
        )
    )  # fmt: skip
    return events


def feeds() -> list[FeedStatusRow]:
    return [
        FeedStatusRow("urlhaus", "malware", 2000, NOW - 3600, ""),
        FeedStatusRow("threatfox", "c2", 1000, NOW - 50 * 3600, "HTTP 503"),
    ]


async def test_alerts_by_email_and_webhook_once_a_day(
    tmp_path: Path, smtp: tuple[Inbox, int], hook: tuple[list[dict[str, Any]], str]
) -> None:
    inbox, port = smtp
    received, url = hook
    db = tmp_path / "blocks.sqlite"
    await asyncio.to_thread(fill, db, storm_day(NOW - 60))
    acfg = AlertsConfig(
        email=EmailConfig(
            to=("informatique@mairie.test",), host="127.0.0.1", port=port, security="none"
        ),
        webhook=WebhookConfig(url=url),
    )
    dcfg = DashboardConfig(timezone=TZ, language="fr")
    clock = Clock(NOW)

    def make() -> Alerter:
        return Alerter(
            acfg,
            dcfg,
            db_path=db,
            state_path=tmp_path / "state" / "alerts.json",
            feeds_status=feeds,
            names={"192.168.1.23": "accueil-pc"}.get,
            clock=clock,
            box="mairie-box",
        )

    sent = await make().check()
    assert sorted(a.key for a in sent) == [
        "exfil:192.168.1.55",
        "feed:threatfox",
        "machine:192.168.1.23",
        "weather:storm",
    ]
    subjects = inbox.subjects()
    assert "Parafoudre : Orage" in subjects
    assert "Parafoudre : poste accueil-pc (192.168.1.23) à vérifier" in subjects
    assert "Parafoudre : fuite de données" in subjects
    assert "Parafoudre : liste threatfox périmée" in subjects
    assert all(r == ["informatique@mairie.test"] for r in inbox.rcpts)
    body = next(m for m in inbox.messages if "poste" in str(m["Subject"])).get_payload(decode=True)
    assert isinstance(body, bytes)
    assert "depuis le poste accueil-pc (192.168.1.23)" in body.decode()
    assert {r["event"] for r in received} == {"weather", "machine", "exfiltration", "feed_stale"}
    assert all(r["box"] == "mairie-box" and r["time"] == NOW for r in received)

    # Once a day: a second look, then a restarted box, send nothing new.
    assert await make().check() == []
    alerter = make()
    clock.now = NOW + 600
    assert await alerter.check() == []
    assert len(inbox.messages) == 4 and len(received) == 4

    # It gets worse: a tornado (150) is a new level, told once.
    more = [
        BlockEvent(NOW + 600 - i, "192.168.1.23", f"y{i}.phish.test", 1, "blocked", "o", "phishing")
        for i in range(120)
    ]
    await asyncio.to_thread(fill, db, more)
    sent = await alerter.check()
    assert [a.key for a in sent] == ["weather:tornado"]

    # The next day starts afresh.
    clock.now = NOW + 86400
    await asyncio.to_thread(fill, db, storm_day(NOW + 86400 - 60))
    sent = await alerter.check()
    assert "weather:storm" in {a.key for a in sent}


async def test_starttls_with_the_mairie_s_own_ca_and_a_server_without_it(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    inbox = Inbox()
    port = free_port()
    tls = Controller(
        inbox, hostname="127.0.0.1", port=port, tls_context=server_ctx, require_starttls=True
    )
    tls.start()
    db = tmp_path / "blocks.sqlite"
    await asyncio.to_thread(fill, db, storm_day(NOW - 60))
    dcfg = DashboardConfig(timezone=TZ, language="en")
    try:
        good = AlertsConfig(
            machine=False,
            exfiltration=False,
            feed_stale_hours=0,
            email=EmailConfig(
                to=("it@mairie.test",), host="127.0.0.1", port=port, ca_file=str(ca_file)
            ),
        )
        a = Alerter(good, dcfg, db_path=db, state_path=tmp_path / "a.json", clock=lambda: NOW)
        assert [x.key for x in await a.check()] == ["weather:storm"]
        assert inbox.subjects() == ["Parafoudre: Storm"]
    finally:
        tls.stop()
    # A server that offers no STARTTLS: nothing goes out in clear, and it is tried again later.
    plain_inbox, plain_port = smtp
    bad = AlertsConfig(
        machine=False,
        exfiltration=False,
        feed_stale_hours=0,
        email=EmailConfig(to=("it@mairie.test",), host="127.0.0.1", port=plain_port),
    )
    b = Alerter(bad, dcfg, db_path=db, state_path=tmp_path / "b.json", clock=lambda: NOW)
    assert await b.check() == []
    assert plain_inbox.messages == []
    assert await b.check() == []  # tried again, still refused


async def test_test_alert_from_the_command_line(
    tmp_path: Path, smtp: tuple[Inbox, int], hook: tuple[list[dict[str, Any]], str]
) -> None:
    """`parafoudre test-alert`: a new user checks the mail settings before it storms."""
    import sys

    inbox, port = smtp
    received, url = hook
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"state_dir: {tmp_path / 'state'}\n"
        "alerts:\n"
        f"  email: {{to: [it@mairie.test], host: 127.0.0.1, port: {port}, security: none}}\n"
        f"  webhook: {{url: '{url}'}}\n"
    )

    async def run(path: Path) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "resolver.cli", "test-alert", "-c", str(path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await run(cfg)
    assert code == 0, err
    assert out.splitlines() == ["test-alert: e-mail sent", "test-alert: webhook sent"]
    assert inbox.subjects()[0].startswith("Parafoudre : essai des alertes (")
    assert received[0]["event"] == "test"
    # A mail server that refuses: said in one line, exit 1, no traceback.
    closed = free_port()
    cfg.write_text(
        "alerts:\n"
        f"  email: {{to: [it@mairie.test], host: 127.0.0.1, port: {closed}, security: none}}\n"
    )
    code, out, err = await run(cfg)
    assert code == 1 and out == "" and "Traceback" not in err
    assert err.startswith("parafoudre: test-alert: e-mail not delivered:"), err
    cfg.write_text("alerts:\n  weather: storm\n")
    code, out, err = await run(cfg)
    assert code == 2 and "no alert channel" in err
