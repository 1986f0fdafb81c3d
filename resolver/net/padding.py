"""EDNS(0) padding of encrypted answers (RFC 7830, RFC 8467): sizes that say less about names.

Over TLS and HTTPS an observer still sees each answer's length, which narrows down the name
asked. RFC 8467 §4.1 recommends padding answers to a multiple of 468 octets; RFC 7830 §3 lets
a responder pad any answer to a client that speaks EDNS(0). Only answers that end with their OPT
record and carry no padding yet are padded; anything else is left as it is.
"""

from __future__ import annotations

from typing import Final

from resolver.core import wire
from resolver.net.framing import MAX_MESSAGE

BLOCK: Final = 468  # RFC 8467 §4.1, the recommended block length for responses
_PADDING: Final = 12  # RFC 7830 option code


def pad(message: bytes, block: int = BLOCK) -> bytes:
    """``message`` with a Padding option that makes it a multiple of ``block`` octets."""
    try:
        _, rrs = wire.walk(message)
    except wire.WireError:
        return message
    if not rrs:
        return message
    opt = rrs[-1]
    end = opt.rdata_at + opt.rdlength
    if opt.rtype != wire.T_OPT or opt.section != 2 or end != len(message):
        return message
    pos = opt.rdata_at
    while pos + 4 <= end:  # the options already there: never pad twice
        code, length = (
            wire.U16.unpack_from(message, pos)[0],
            wire.U16.unpack_from(message, pos + 2)[0],
        )
        if code == _PADDING:
            return message
        pos += 4 + length
    fill = (-(len(message) + 4)) % block
    size = len(message) + 4 + fill
    if size > MAX_MESSAGE or opt.rdlength + 4 + fill > 0xFFFF:
        return message
    rdlength_at = opt.rdata_at - 2
    return b"".join(
        (
            message[:rdlength_at],
            wire.U16.pack(opt.rdlength + 4 + fill),
            message[opt.rdata_at :],
            wire.U16.pack(_PADDING),
            wire.U16.pack(fill),
            bytes(fill),
        )
    )
