"""Alerts: tell someone when the day turns bad, without anyone opening the page.

Every ``alerts.interval`` seconds the first worker reads today's figures from the block log (the
page's own reading: ``load_summary``) and the feeds' status, and sends what is new by e-mail
(SMTP, STARTTLS or TLS, stdlib ``smtplib`` in a thread) and by webhook (a JSON POST):

- the weather reaches ``alerts.weather`` (and each worse level after it);
- the page names a machine (``dashboard.highlight_min`` blocks of one kind by one machine);
- the exfiltration detector blocks or detects a machine;
- a feed has not been refreshed for ``alerts.feed_stale_hours``.

Each event (a level, a machine, a feed) is sent at most once per local day, remembered in
``<state_dir>/alerts.json`` so a restart does not send it again. An event no channel could
deliver is tried again at the next look. Sentences are the page's (dashboard/i18n.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import os
import smtplib
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Final

import aiohttp

from dashboard import i18n
from dashboard.context import FeedStatusRow
from dashboard.summary import Summary, load_summary
from dashboard.tally import DayTally
from dashboard.weather import Weather, local_date
from resolver.blocklog.schema import BlockLogError, open_db
from resolver.config.alerts import AlertsConfig
from resolver.config.dashboard import DashboardConfig

log = logging.getLogger(__name__)

ORDER: Final = (Weather.RAIN, Weather.STORM, Weather.TORNADO)
MAX_TEXT: Final = 2000
MAX_SENT: Final = 1000  # events remembered per day; past that, a flood of machines is one mail


@dataclass(frozen=True, slots=True)
class Alert:
    """One thing to tell: ``key`` says what it is about, so it goes out once a day."""

    key: str  # "weather:storm", "machine:192.168.1.23", "exfil:192.168.1.55", "feed:urlhaus"
    event: str  # "weather", "machine", "exfiltration", "feed_stale"
    subject: str
    text: str


def _exfiltrations(conn: object, start: float) -> list[tuple[str, str, int]]:
    """(client, a name, queries) of each machine the detector judged today."""
    assert hasattr(conn, "execute")
    rows = conn.execute(
        "SELECT client, MAX(qname), SUM(count) FROM blocks"
        " WHERE ts >= ? AND verdict = 'exfiltration' GROUP BY client ORDER BY 3 DESC LIMIT 50",
        (start,),
    ).fetchall()
    return [(str(c), str(q), int(n)) for c, q, n in rows]


def _weather(s: Summary, acfg: AlertsConfig, lang: i18n.Lang) -> list[Alert]:
    """The level reached, if at least the one chosen: one alert per level (storm, then tornado
    if it gets worse), never the levels skipped on the way."""
    if acfg.weather == "off" or s.weather not in ORDER:
        return []
    if ORDER.index(s.weather) < ORDER.index(Weather(acfg.weather)):
        return []
    label = i18n.weather_label(lang, s.weather)
    subject = f"Parafoudre : {label}" if lang == "fr" else f"Parafoudre: {label}"
    text = i18n.weather_sentence(lang, s.weather, s.total)
    return [Alert(f"weather:{s.weather.value}", "weather", subject, text)]


def _exfil(
    rows: Sequence[tuple[str, str, int]], lang: i18n.Lang, who: Callable[[str], str]
) -> list[Alert]:
    out = []
    for client, qname, n in rows:
        if lang == "fr":
            text = (
                f"Le poste {who(client)} envoie des données dans des noms de domaine "
                f"({n} requêtes aujourd'hui, par exemple {qname[:120]}) : faites-le vérifier."
            )
            subject = "Parafoudre : fuite de données"
        else:
            text = (
                f"Machine {who(client)} sends data out in domain names ({n} queries today, "
                f"e.g. {qname[:120]}): have it checked."
            )
            subject = "Parafoudre: data exfiltration"
        out.append(Alert(f"exfil:{client}", "exfiltration", subject, text))
    return out


def _stale(feeds: Sequence[FeedStatusRow], hours: int, lang: i18n.Lang, now: float) -> list[Alert]:
    out = []
    for f in feeds:
        if not hours or (f.last_success is not None and now - f.last_success <= hours * 3600):
            continue
        age = None if f.last_success is None else f"{(now - f.last_success) / 3600:.0f} h"
        if lang == "fr":
            text = (
                f"La liste {f.name} n'a pas été mise à jour depuis {age or 'son installation'} "
                f"({f.last_error or 'pas d’erreur connue'}) : `parafoudre feeds status`."
            )
            subject = f"Parafoudre : liste {f.name} périmée"
        else:
            text = (
                f"Feed {f.name} not refreshed for {age or 'ever'} "
                f"({f.last_error or 'no known error'}): `parafoudre feeds status`."
            )
            subject = f"Parafoudre: feed {f.name} stale"
        out.append(Alert(f"feed:{f.name}", "feed_stale", subject, text))
    return out


def due(
    s: Summary,
    exfil: Sequence[tuple[str, str, int]],
    feeds: Sequence[FeedStatusRow],
    acfg: AlertsConfig,
    dcfg: DashboardConfig,
    now: float,
    names: Callable[[str], str | None],
) -> list[Alert]:
    """Everything worth telling now (the caller drops what was sent today)."""
    lang = dcfg.language

    def who(client: str) -> str:
        name = names(client)
        return f"{name} ({client})" if name else client

    out = _weather(s, acfg, lang)
    h = s.highlight
    # A machine getting around the filter (Firefox's canary at every start) is named on the
    # page, but it is not a threat: no alert (resolver/blocklog/schema.py NON_THREAT_CATEGORIES).
    if acfg.machine and h is not None and h.kind != "bypass":
        text = i18n.highlight_sentence(lang, h.category_count, h.category, h.kind, who(h.client))
        if lang == "fr":
            subject = f"Parafoudre : poste {who(h.client)} à vérifier"
        else:
            subject = f"Parafoudre: check machine {who(h.client)}"
        out.append(Alert(f"machine:{h.client}", "machine", subject, text))
    if acfg.exfiltration:
        out.extend(_exfil(exfil, lang, who))
    out.extend(_stale(feeds, acfg.feed_stale_hours, lang, now))
    return out


class Sent:
    """The events sent today, kept in a small JSON file across restarts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.day = ""
        self.keys: set[str] = set()
        with contextlib.suppress(OSError, ValueError, TypeError):
            data = json.loads(path.read_text())
            self.day, self.keys = str(data["day"]), {str(k) for k in data["sent"]}

    def today(self, day: str) -> set[str]:
        if day != self.day:
            self.day, self.keys = day, set()
        return self.keys

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".alerts.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"day": self.day, "sent": sorted(self.keys)[:MAX_SENT]}, f)
            os.replace(tmp, self.path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            log.warning("alerts: cannot remember what was sent (%s): %s", self.path, exc)


def send_email(acfg: AlertsConfig, box: str, alert: Alert) -> None:
    """One e-mail (blocking: run it in a thread). Raises OSError or smtplib.SMTPException."""
    e = acfg.email
    msg = EmailMessage()
    msg["From"] = e.sender or f"parafoudre@{box}"
    msg["To"] = ", ".join(e.to)
    msg["Subject"] = alert.subject[:200]
    # Mail filters drop mail without a date or an id; the server may not add them.
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = email.utils.make_msgid(domain=box or None)
    msg.set_content(f"{alert.text[:MAX_TEXT]}\n\n-- \nParafoudre, {box}\n")
    context = ssl.create_default_context(cafile=e.ca_file or None)
    smtp: smtplib.SMTP
    if e.security == "tls":
        smtp = smtplib.SMTP_SSL(e.host, e.port, timeout=e.timeout, context=context)
    else:
        smtp = smtplib.SMTP(e.host, e.port, timeout=e.timeout)
    with smtp:
        if e.security == "starttls":
            smtp.starttls(context=context)  # refuses to go on in clear if the server cannot
        if e.username:
            password = Path(e.password_file).read_text().strip() if e.password_file else ""
            smtp.login(e.username, password)
        smtp.send_message(msg)


async def send_webhook(acfg: AlertsConfig, box: str, alert: Alert, now: float) -> None:
    body: dict[str, str | float] = {
        "event": alert.event,
        "key": alert.key,
        "subject": alert.subject,
        "text": alert.text,
        "box": box,
        "time": now,
    }
    timeout = aiohttp.ClientTimeout(total=acfg.webhook.timeout)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.post(acfg.webhook.url, json=body) as r,
    ):
        if r.status >= 300:
            raise OSError(f"HTTP {r.status}")


async def deliver(acfg: AlertsConfig, box: str, alert: Alert, now: float) -> list[tuple[str, str]]:
    """Send ``alert`` by every configured channel: (channel, error or "") for each."""
    out: list[tuple[str, str]] = []
    if acfg.email.to:
        try:
            await asyncio.to_thread(send_email, acfg, box, alert)
            out.append(("e-mail", ""))
        except (OSError, smtplib.SMTPException) as exc:
            out.append(("e-mail", str(exc) or type(exc).__name__))
    if acfg.webhook.url:
        try:
            await send_webhook(acfg, box, alert, now)
            out.append(("webhook", ""))
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            out.append(("webhook", str(exc) or type(exc).__name__))
    return out


def trial_alert(lang: str, box: str) -> Alert:
    """What `parafoudre test-alert` sends: says it is a test, and how alerts will look."""
    if lang == "fr":
        text = (
            "Ceci est un essai : les alertes de Parafoudre arriveront ainsi (orage, poste à "
            "vérifier, fuite de données, liste périmée), au plus une fois par jour chacune."
        )
        return Alert("test", "test", f"Parafoudre : essai des alertes ({box})", text)
    text = (
        "This is a test: Parafoudre's alerts will come this way (storm, machine to check, "
        "data exfiltration, stale feed), each at most once a day."
    )
    return Alert("test", "test", f"Parafoudre: alert test ({box})", text)


async def send_test(acfg: AlertsConfig, lang: str, box: str) -> list[tuple[str, str]]:
    """`parafoudre test-alert`: the test alert by every channel, (channel, error or "")."""
    return await deliver(acfg, box, trial_alert(lang, box), time.time())


class Alerter:
    """Looks at the block log every ``interval`` seconds and sends what is new today."""

    def __init__(
        self,
        acfg: AlertsConfig,
        dcfg: DashboardConfig,
        *,
        db_path: Path,
        state_path: Path,
        feeds_status: Callable[[], Sequence[FeedStatusRow]] | None = None,
        names: Callable[[str], str | None] | None = None,
        clock: Callable[[], float] = time.time,
        box: str = "",
    ) -> None:
        self.acfg, self.dcfg = acfg, dcfg
        self.db_path = db_path
        self.sent = Sent(state_path)
        self.feeds_status = feeds_status
        self.names = names or (lambda _: None)
        self.clock = clock
        self.box = box or socket.gethostname()[:64]
        # Its own running tally of today: a look every `interval` costs the rows written since
        # the last one, not the whole day's (seconds on a day of a burst).
        self.tally = DayTally()

    def _read(self, now: float) -> tuple[Summary, list[tuple[str, str, int]]]:
        conn = open_db(self.db_path, readonly=True)
        try:
            s = load_summary(conn, self.dcfg, now, tally=self.tally)
            return s, _exfiltrations(conn, s.start)
        finally:
            conn.close()

    async def check(self) -> list[Alert]:
        """One look: send what is due and not sent today; what was sent."""
        now = self.clock()
        try:
            s, exfil = await asyncio.to_thread(self._read, now)
        except BlockLogError:
            return []  # not created yet: nothing happened
        feeds = list(self.feeds_status()) if self.feeds_status is not None else []
        done = self.sent.today(local_date(now, self.dcfg.timezone).isoformat())
        found = due(s, exfil, feeds, self.acfg, self.dcfg, now, self.names)
        fresh = [a for a in found if a.key not in done]
        delivered = [a for a in fresh if await self._deliver(a, now)]
        if delivered:
            done.update(a.key for a in delivered)
            await asyncio.to_thread(self.sent.save)
        return delivered

    async def _deliver(self, alert: Alert, now: float) -> bool:
        results = await deliver(self.acfg, self.box, alert, now)
        for channel, error in results:
            if error:
                log.warning("alert %s: %s not delivered: %s", alert.key, channel, error)
        ok = any(not error for _, error in results)
        if ok:
            log.info("alert sent: %s", alert.subject)
        return ok

    async def run(self) -> None:
        """Look, send, sleep; until cancelled."""
        while True:
            try:
                await self.check()
            except Exception as exc:  # a bad day must not end the alerts for good
                log.warning("alerts: %s", exc)
            await asyncio.sleep(self.acfg.interval)
