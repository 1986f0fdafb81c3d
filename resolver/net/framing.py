"""DNS over a stream: each message preceded by its length in two bytes (RFC 1035 §4.2.2).

Written once for every stream we speak: the TCP listener, plain TCP to an upstream after a
truncated answer, DNS over TLS (RFC 7858 §3.3 keeps the same framing) and ``parafoudre doctor``.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Final

_LEN: Final = struct.Struct("!H")
MAX_MESSAGE: Final = 65535  # the largest length two bytes can say


def frame(message: bytes) -> bytes:
    """``message`` with its two-byte length before it; ValueError if longer than 65,535 bytes."""
    if len(message) > MAX_MESSAGE:
        raise ValueError(f"a DNS message of {len(message)} bytes cannot be framed")
    return _LEN.pack(len(message)) + message


def pop_frame(buf: bytearray) -> bytes | None:
    """Take the first whole message out of ``buf`` (bytes read so far); None: not all there yet."""
    if len(buf) < 2:
        return None
    end = 2 + ((buf[0] << 8) | buf[1])
    if len(buf) < end:
        return None
    message = bytes(buf[2:end])
    del buf[:end]
    return message


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """The next message on ``reader``; asyncio.IncompleteReadError if the stream ends first."""
    size = _LEN.unpack(await reader.readexactly(2))[0]
    return await reader.readexactly(size)
