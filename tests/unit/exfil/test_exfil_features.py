"""Per-name evidence: which name parts look like encoded data."""

from __future__ import annotations

import pytest

from resolver.config.exfiltration import ExfilThresholds
from resolver.exfil.features import entropy, is_data, measure, switches

T = ExfilThresholds()


def test_entropy_and_switches() -> None:
    assert entropy("") == 0.0
    assert entropy("aaaa") == 0.0
    assert entropy("abcd") == pytest.approx(2.0)
    assert switches("abc") == 0
    assert switches("a1b2") == 3
    assert switches("office365-my") == 1
    assert switches("a-1") == 0  # a hyphen breaks the alternation


@pytest.mark.parametrize(
    "part",
    [
        "0eaba822hbybdn4yfplbyycynihdsxeybakw.iix4pskyegpvvqu0on3ngjxzddpz",  # iodine
        "u1nilti1mc1pcgvuu1nixzyun3axiererlyllblxmrlyjh1naq0kaaahragu57r",  # dnscapy base64
        "0f1d2c3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f7",  # dnscat2-style hex
        "mzxw6ytboi2dqnrxgiztgnbvgy3tqojqgezdgnbv",  # base32
        "qwertyuiopasdfghjklzxcvbnmqazwsxedcrfvtgbyhn",  # random letters, no digits
    ],
)
def test_tunnel_payloads_are_data(part: str) -> None:
    octets, odd, data = measure(part, T)
    assert data and odd == 0
    assert octets == len(part.replace(".", ""))


@pytest.mark.parametrize(
    "part",
    [
        "www",
        "2.0.0.127.zen",  # a DNSBL lookup
        "pennstateoffice365-my",  # the most digit-mixed long benign label of the real corpus
        "apply-to-visit-or-stay-in-the-uk",
        "anastasiya-kvitko-glamour-model",
        "selector1-mairie-exemple-fr._domainkey",
        "_ldap._tcp.default-first-site-name._sites.dc._msdcs",
        "beigeneo365apc-my",
        "123456789012345678901234",  # digits only: a number, not an encoding
    ],
)
def test_benign_parts_are_not_data(part: str) -> None:
    assert not measure(part, T)[2]


def test_escaped_bytes_are_odd_and_data_whatever_the_length() -> None:
    ev = measure("q\\043z8anwaba", T)  # dns2tcp's 'q+Z8AnwaBA', lower-cased and escaped
    assert ev == (10, 1, True)
    assert measure("zi1baa\\208\\209\\210.x", T) == (10, 3, True)


def test_thresholds_are_honoured() -> None:
    assert not is_data("a1b2c3d4", T)  # shorter than min_data_chars
    assert is_data("a1b2c3d4", ExfilThresholds(min_data_chars=8))
    assert not is_data("a1b2c3d4e5f6g7h8", ExfilThresholds(min_switches=40))


def test_lookup_keys_are_uuids_and_hex_digests() -> None:
    from resolver.exfil.features import is_key

    assert is_key("a97e835c-c02f-6874-16d1-07b6b5fd20c3.clo")
    assert is_key("76ae4b2e70e23e2d3c21057a22efbc2b.b")  # an MD5
    assert is_key("b6903d2e.tlu.dl.delivery.mp")
    assert not is_key("3xrilav63fv9cykfwqp47l7a8volbdm.appsync-api.eu-west-1")  # base36 data
    assert not is_key("a" * 41)
    assert not is_key("a97e835c-c02f-6874-16d1-07b6b5fd20cz")


def _switches_reference(text: str) -> int:
    shape = "".join("a" if c.isascii() and c.isalpha() and c.islower() else
                    "1" if c in "0123456789" else c for c in text)  # fmt: skip
    return shape.count("a1") + shape.count("1a")


@pytest.mark.parametrize(
    "text", ["a1b2", "m0x12345missbench", "a-1", "é1a2", "A1a1", "\\0431a", "", "zz99zz9"]
)
def test_switches_counts_alike_on_ascii_octets_and_on_text(text: str) -> None:
    """The ASCII fast path (bytes.translate) and the text path agree with the definition."""
    assert switches(text) == _switches_reference(text)


def test_capacity_by_alphabet() -> None:
    from resolver.exfil.features import capacity

    # hex 4.1 bits, letters and digits 5.3, anything else 8, an escaped byte 8; a label equal
    # to the previous name's at the same place is free
    assert capacity(["0123abcd"], []) == (8 * 41 + 79) // 80
    assert capacity(["m0x12345"], []) == (8 * 53 + 79) // 80
    assert capacity(["a*b"], []) == 3
    assert capacity(["q\\043z"], []) == 3
    assert capacity(["new", "same"], ["old", "same"]) == (3 * 53 + 79) // 80
