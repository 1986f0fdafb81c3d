"""A minimal authoritative-style DNS server for benchmarks and the soak test (loopback only).

Answers every A/AAAA question with a synthetic address (TTL from --ttl), NXDOMAIN for names under
"nx.", and NODATA otherwise. Run: python bench/tiny_upstream.py --port 5399
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import struct
from typing import Any

from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord


def answer(data: bytes, ttl: int) -> bytes | None:
    try:
        req = DNSRecord.parse(data)
    except Exception:
        return None
    reply = req.reply()
    name = str(req.q.qname).lower()
    h = hashlib.blake2b(name.encode(), digest_size=4).digest()
    if name.startswith("nx.") or ".nx." in name:
        reply.header.rcode = RCODE.NXDOMAIN
    elif req.q.qtype == QTYPE.A:
        reply.add_answer(RR(req.q.qname, QTYPE.A, rdata=A(f"10.{h[0]}.{h[1]}.{h[2]}"), ttl=ttl))
    elif req.q.qtype == QTYPE.AAAA:
        rdata = AAAA(f"fd00::{h[0]:x}:{h[1]:x}")
        reply.add_answer(RR(req.q.qname, QTYPE.AAAA, rdata=rdata, ttl=ttl))
    return bytes(reply.pack())


async def main(port: int, ttl: int) -> None:
    loop = asyncio.get_running_loop()

    class Udp(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.t = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            out = answer(data, ttl)
            if out is not None:
                self.t.sendto(out, addr)

    await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", port))

    async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                n = struct.unpack("!H", await reader.readexactly(2))[0]
                out = answer(await reader.readexactly(n), ttl)
                if out is not None:
                    writer.write(struct.pack("!H", len(out)) + out)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(tcp, "127.0.0.1", port)
    async with server:
        await asyncio.Event().wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ttl", type=int, default=30)
    a = p.parse_args()
    asyncio.run(main(a.port, a.ttl))
