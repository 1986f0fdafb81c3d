"""EDNS(0) padding of encrypted answers (RFC 7830, RFC 8467)."""

from __future__ import annotations

import dns.edns
import dns.message
import dns.rrset

from resolver.net.padding import BLOCK, pad


def answer(edns: bool, records: int = 1) -> bytes:
    q = dns.message.make_query("www.example.test", "A", use_edns=0 if edns else False)
    r = dns.message.make_response(q)
    r.answer.append(
        dns.rrset.from_text_list(
            "www.example.test.", 300, "IN", "A", [f"192.0.2.{i}" for i in range(records)]
        )
    )
    return r.to_wire()


def test_padded_to_the_block_and_still_the_same_answer() -> None:
    for records in (1, 20, 60):
        raw = answer(True, records)
        padded = pad(raw)
        assert len(padded) % BLOCK == 0 and len(padded) > len(raw)
        msg = dns.message.from_wire(padded)
        assert msg.answer == dns.message.from_wire(raw).answer
        assert [o.otype for o in msg.options] == [dns.edns.OptionType.PADDING]


def test_left_alone_without_opt_or_already_padded_or_malformed() -> None:
    plain = answer(False)
    assert pad(plain) == plain
    once = pad(answer(True))
    assert pad(once) == once
    assert pad(b"\x00\x01") == b"\x00\x01"
    assert pad(once[:-3]) == once[:-3]  # cut short: not a message we touch
