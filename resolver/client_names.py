"""Names of the commune's machines: the operator's, the DHCP server's, the domain controller's.

``ClientNames.name(address)`` answers from memory at once (the page calls it per row); what it
does not know yet it notes, and the refresh task looks it up: first the operator's names
(``clients.names``), then the DHCP lease files the box can read (dnsmasq, ISC dhcpd, Kea CSV:
the format is recognised from the text), then a reverse (PTR) query to the servers of the
forward zones (the mairie's AD domain controller knows its machines). Never to the public
upstreams: an internal address means nothing to them and should not leave the building.

Every name comes from a file or a packet: hostile text. Only a host name's first label is
kept, of letters, digits, '-' and '_', at most 63 characters.
"""

from __future__ import annotations

import asyncio
import csv
import io
import ipaddress
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Final

from dnslib import DNSRecord

from resolver.config.clients import ClientsConfig

log = logging.getLogger(__name__)

MAX_WANTED: Final = 1024  # addresses waiting for a PTR lookup; a commune has a few hundred
MAX_NAMES: Final = 65536  # addresses kept with their PTR answer
MAX_LEASE_FILE: Final = 32 << 20  # bytes read of a lease file (a big site's is a few MB)
PTR_TIMEOUT: Final = 1.0
PTR_AT_ONCE: Final = 16  # lookups in flight per round
_LABEL: Final = re.compile(r"[A-Za-z0-9_-]{1,63}")

Server = tuple[str, int]


def host_label(raw: str) -> str | None:
    """The first label of a host name if it is a plain one ("accueil-pc"), else None."""
    first = raw.strip().strip('"').split(".", 1)[0]
    return first if _LABEL.fullmatch(first) else None


def _address(raw: str) -> str | None:
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        return None


def parse_dnsmasq(text: str) -> dict[str, str]:
    """dnsmasq.leases: "expiry mac-or-iaid address hostname client-id" per line ('*': none)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[0] == "duid":
            continue
        address, name = _address(fields[2]), host_label(fields[3])
        if address and name and fields[3] != "*":
            out[address] = name
    return out


_ISC_LEASE: Final = re.compile(r"lease\s+(\S+)\s*\{(.*?)\}", re.S)
_ISC_HOST: Final = re.compile(r'client-hostname\s+"([^"]*)"\s*;')


def parse_isc(text: str) -> dict[str, str]:
    """ISC dhcpd.leases: "lease ADDRESS { ... client-hostname "NAME"; }"; the last one wins."""
    out: dict[str, str] = {}
    for m in _ISC_LEASE.finditer(text):
        address, body = _address(m.group(1)), m.group(2)
        host = _ISC_HOST.search(body)
        name = host_label(host.group(1)) if host else None
        if address and name:
            out[address] = name
    return out


def parse_kea(text: str) -> dict[str, str]:
    """Kea memfile CSV (lease4 or lease6): the "address" and "hostname" columns; declined
    leases (state 1) are skipped."""
    out: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("state", "0") == "1":
            continue
        address = _address(row.get("address") or "")
        name = host_label((row.get("hostname") or "").replace("&#x2c", ","))
        if address and name:
            out[address] = name
    return out


def parse_leases(text: str) -> tuple[str, dict[str, str]]:
    """(format, names) of a lease file, its format recognised from the text."""
    head = text.lstrip()[:200]
    if head.startswith("address,"):
        return "kea", parse_kea(text)
    if re.search(r"^\s*lease\s+\S+\s*\{", text, re.M):
        return "isc", parse_isc(text)
    return "dnsmasq", parse_dnsmasq(text)


def read_lease_files(paths: Iterable[str]) -> dict[str, str]:
    """Names from every lease file that can be read; later files win. Blocking: a thread."""
    out: dict[str, str] = {}
    for p in paths:
        path = Path(p).expanduser()
        try:
            with path.open("r", encoding="utf-8", errors="replace") as fh:
                text = fh.read(MAX_LEASE_FILE)
        except OSError as exc:
            log.debug("lease file %s cannot be read: %s", path, exc)
            continue
        out.update(parse_leases(text)[1])
    return out


def reverse_name(address: str) -> str:
    return ipaddress.ip_address(address).reverse_pointer


class _Ptr(asyncio.DatagramProtocol):
    def __init__(self, query: DNSRecord) -> None:
        self.query = query
        self.done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.done.done():
            return
        try:
            reply = DNSRecord.parse(data)
        except Exception:  # hostile bytes: not an answer
            return
        if reply.header.id != self.query.header.id or reply.q.qname != self.query.q.qname:
            return
        names = [str(rr.rdata) for rr in reply.rr if rr.rtype == 12]  # PTR
        self.done.set_result(host_label(names[0]) if names else None)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def ask_ptr(address: str, server: Server, wait: float = PTR_TIMEOUT) -> str | None:
    """The host label a server gives for ``address`` (PTR), or None (no name, no answer)."""
    query = DNSRecord.question(reverse_name(address), "PTR")
    loop = asyncio.get_running_loop()
    family = 10 if ":" in server[0] else 2  # AF_INET6 / AF_INET
    transport, proto = await loop.create_datagram_endpoint(
        lambda: _Ptr(query), remote_addr=server, family=family
    )
    try:
        transport.sendto(query.pack())
        return await asyncio.wait_for(proto.done, wait)
    except TimeoutError:
        return None
    finally:
        transport.close()


class ClientNames:
    """Address -> machine name, from memory; ``run()`` keeps it filled."""

    def __init__(
        self,
        cfg: ClientsConfig,
        zones: Sequence[tuple[str, Sequence[Server]]] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.zones = [(z.lower().rstrip("."), tuple(s)) for z, s in zones]
        self.clock = clock
        self.static = dict(cfg.names)
        self.leases: dict[str, str] = {}
        self.leases_at = float("-inf")
        self.ptr: dict[str, tuple[str | None, float]] = {}  # address -> (name, asked at)
        self.wanted: set[str] = set()

    def name(self, address: str) -> str | None:
        """The machine's name if known now; an unknown address is looked up in the background."""
        found = self.static.get(address) or self.leases.get(address)
        if found:
            return found
        cached = self.ptr.get(address)
        due = cached is None or self.clock() - cached[1] > self.cfg.refresh
        if due and self.cfg.ptr and self.zones and len(self.wanted) < MAX_WANTED:
            self.wanted.add(address)
        return cached[0] if cached else None

    def label(self, address: str) -> str:
        """ "accueil-pc (192.168.1.23)", or the address alone when no name is known."""
        name = self.name(address)
        return f"{name} ({address})" if name else address

    def servers_for(self, address: str) -> tuple[Server, ...]:
        """The servers of the forward zone holding the reverse name, else of the first zone
        (the domain controller usually serves the reverse zones it does not advertise)."""
        rev = reverse_name(address)
        best = max(
            (z for z in self.zones if rev == z[0] or rev.endswith("." + z[0])),
            key=lambda z: len(z[0]),
            default=None,
        )
        if best is not None:
            return best[1]
        return self.zones[0][1] if self.zones else ()

    async def refresh(self) -> None:
        """Re-read the lease files when due; ask the PTR of the addresses waiting."""
        now = self.clock()
        if self.cfg.lease_files and now - self.leases_at >= self.cfg.refresh:
            self.leases = await asyncio.to_thread(read_lease_files, self.cfg.lease_files)
            self.leases_at = now
        if not self.wanted:
            return
        batch = [self.wanted.pop() for _ in range(min(PTR_AT_ONCE, len(self.wanted)))]
        names = await asyncio.gather(*(self._lookup(a) for a in batch))
        if len(self.ptr) + len(batch) > MAX_NAMES:
            self.ptr.clear()
        for address, name in zip(batch, names, strict=True):
            self.ptr[address] = (name, now)

    async def _lookup(self, address: str) -> str | None:
        try:
            servers = self.servers_for(address)
        except ValueError:  # not an address (the block log holds text): nothing to ask
            return None
        for server in servers:
            try:
                name = await ask_ptr(address, server)
            except (OSError, ValueError):
                continue
            if name:
                return name
        return None

    async def run(self, interval: float = 1.0) -> None:
        """Keep the names filled, until cancelled."""
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # a bad lease file must not end the names for good
                log.warning("client names: %s", exc)
            await asyncio.sleep(interval)
