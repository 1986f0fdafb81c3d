"""What one query name says on its own: how much of it looks like encoded data.

Works on the part left of the registered domain (the only part a tunnel controls) in the text
form of ``Query.qname``: lower case (so base64 arrives with its case folded), odd bytes as \\DDD.
Everything is done with str methods implemented in C: ~1 µs for a 250-character name.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Final

from resolver.config.exfiltration import ExfilThresholds

# Record types (RFC 1035, RFC 2535, RFC 6895 §3.1 private use 65280-65534).
T_CNAME: Final = 5
T_NULL: Final = 10
T_MX: Final = 15
T_TXT: Final = 16
T_KEY: Final = 25
# Tunnels' favourite carriers (iodine tries NULL and PRIVATE first); nothing in a town hall
# asks for them.
STRONG_TYPES: Final = frozenset({T_NULL, T_KEY, *range(65280, 65535)})
# Types that carry long answers, so tunnels like them, but that mail and web ask for daily.
WEAK_TYPES: Final = frozenset({T_TXT, T_CNAME, T_MX})

# Letters -> "a", digits -> "1"; '-' and '_' stay and break an alternation.
_CLASSES: Final = str.maketrans(
    {
        **{chr(c): "a" for c in range(ord("a"), ord("z") + 1)},
        **{chr(c): "1" for c in range(ord("0"), ord("9") + 1)},
    }
)


# The same classes over ASCII octets: str.translate looks every character up in a dict (~25 ns
# a character), bytes.translate reads a 256-octet table (~30 ns a name). For an ASCII name,
# which every ``Query.qname`` is, both give the same shape.
_CLASSES_ASCII: Final = bytes.maketrans(
    b"abcdefghijklmnopqrstuvwxyz0123456789", b"a" * 26 + b"1" * 10
)


# The alphabets of ``capacity``, as sets: ``issuperset`` hashes each character once (~3 ns),
# str.translate looks each up in a dict and builds a string (~25 ns a character).
_HEX_DASH: Final = frozenset("0123456789abcdef-.")
_ALNUM_DASH: Final = frozenset("0123456789abcdefghijklmnopqrstuvwxyz-_.")


def capacity(labels: list[str], before: list[str]) -> int:
    """Octets the labels of a name part can carry at most, given the previous name's labels.

    Each label's length times log2 of its alphabet (hex: 4.1 bits a character; letters, digits,
    '-', '_': 5.3; escaped bytes: 8), over 8; a label equal to the previous name's label at the
    same place (counted from the registered domain) carries nothing new. An upper bound that
    the compressed size alone misses on short names, whose deflate blocks use fixed codes of 8
    bits or more a character.
    """
    total = 0  # in tenths of a bit
    j = len(before) - len(labels)
    for label in labels:
        if j >= 0 and before[j] == label:
            j += 1
            continue
        j += 1
        if "\\" in label:
            total += (len(label) - 3 * label.count("\\")) * 80
        elif _HEX_DASH.issuperset(label):
            total += len(label) * 41  # hex and '-': 17 symbols
        elif _ALNUM_DASH.issuperset(label):
            total += len(label) * 53  # letters, digits, '-', '_': 38 symbols
        else:
            total += len(label) * 80
    return (total + 79) // 80


_HEX: Final = str.maketrans("", "", "0123456789abcdef")


def is_key(prefix: str) -> bool:
    """Whether the longest label of ``prefix`` is a lookup key: a UUID (RFC 9562, 8-4-4-4-12
    hex digits) or a hex digest of at most 40 digits (MD5, SHA-1). Such a label is an
    identifier of a fixed 16 to 20 octets: AD and DNS-SD GUIDs, telemetry request ids,
    reputation lookups of a file's hash. Only the slow ``persist`` signal asks (rarely)."""
    label = max(prefix.split("."), key=len)
    if len(label) == 36 and label.count("-") == 4:
        dashes = (label[8], label[13], label[18], label[23])
        return dashes == ("-", "-", "-", "-") and not label.replace("-", "").translate(_HEX)
    return len(label) <= 40 and not label.translate(_HEX)


# Per-query evidence about a name part: (octets, odd, data). A plain tuple: a NamedTuple's
# constructor is a Python function, ~0.3 µs on every query.
#   octets: wire octets of the labels, dots not counted
#   odd: octets that are not letters, digits, '-', '_' or '*'
#   data: looks like encoded data (see ``is_data``)
NameEvidence = tuple[int, int, bool]


def entropy(text: str) -> float:
    """Shannon entropy of the characters of ``text``, in bits per character."""
    n = len(text)
    if n == 0:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def switches(text: str) -> int:
    """How many times ``text`` alternates between a letter and a digit."""
    # 'a1' and '1a' cannot overlap themselves, so count counts every alternation.
    if text.isascii():
        raw = text.encode("ascii").translate(_CLASSES_ASCII)
        return raw.count(b"a1") + raw.count(b"1a")
    shape = text.translate(_CLASSES)
    return shape.count("a1") + shape.count("1a")


def is_data(chars: str, t: ExfilThresholds) -> bool:
    """Whether ``chars`` (a name part, dots removed, no escapes) looks like encoded data.

    Random hex, base32 and case-folded base64 alternate letters and digits every 3 to 4
    characters; words and brand names rarely twice. Long runs of random letters alone are
    caught by their entropy instead.
    """
    n = len(chars)
    if n < t.min_data_chars:
        return False
    s = switches(chars)
    if s >= t.min_switches and s * t.switch_every >= n:
        return True
    return n >= t.long_chars and entropy(chars) >= t.long_entropy


def measure(prefix: str, t: ExfilThresholds) -> NameEvidence:
    """Evidence about ``prefix``, the part of a query name left of its registered domain."""
    dots = prefix.count(".")
    odd = prefix.count("\\")  # one backslash per \DDD escape (a backslash byte is \092)
    octets = len(prefix) - dots - 3 * odd
    if odd:
        # Bytes no host name holds: base64 '+' and '/', iodine's base128, raw binary.
        return octets, odd, True
    if octets < t.min_data_chars:
        return octets, 0, False
    return octets, 0, is_data(prefix.replace(".", ""), t)


_DIGITS: Final = frozenset("0123456789")
_NIBBLES: Final = frozenset("0123456789abcdef")
# Underscore labels of the mail authentication standards: DKIM keys (RFC 6376 §3.6.2.1),
# DMARC policies and their report authorisations (RFC 7489 §6.1, §7.1), SPF's conventional
# include zones (RFC 7208 §5.7 macros land there), MTA-STS and TLS-RPT (RFC 8461, RFC 8460).
# Also the Active Directory locator's zone (MS-ADTS §6.3.6: "<DSA GUID>._msdcs.<forest>").
_MAIL_LABELS: Final = ("_domainkey", "_dmarc", "_spf", "_mta-sts", "_smtp._tls", "_msdcs")


def _reversed_ipv4(labels: list[str]) -> bool:
    return len(labels) >= 4 and all(
        0 < len(x) <= 3 and _DIGITS.issuperset(x) and int(x) < 256 for x in labels[:4]
    )


def _reversed_ipv6(labels: list[str]) -> bool:
    # 31 nibbles, not 32: under ip6.arpa the last nibble is part of the "registered domain"
    # (the PSL lists ip6.arpa), so a reverse lookup's part holds 31 (RFC 3596 §2.5).
    return len(labels) >= 31 and all(len(x) == 1 and x in _NIBBLES for x in labels[:31])


def is_mail_shape(prefix: str) -> bool:
    """Whether ``prefix`` has a shape a mail server asks by design, not a tunnel's.

    RFC 6376 (``<selector>._domainkey``), RFC 7489 (``_dmarc``), RFC 7208 (``_spf`` macro
    zones), MS-ADTS §6.3.6 (``_msdcs``), RFC 5782 §2.1 (DNSBL: the client address as four
    reversed decimal labels, or 32 reversed nibbles for IPv6, §2.4; reverse DNS, RFC 3596).
    Such a name carries at most a selector label, an address or a domain name: a tunnel could
    mimic it, at 4 to 63 octets per query; the rate and the strong signals still apply to it.
    """
    if "_" in prefix:
        for marker in _MAIL_LABELS:
            if marker in prefix:
                return True
    first = prefix[:4]
    if first[:1].isdigit() or (len(first) > 1 and first[1] == "."):
        labels = prefix.split(".", 32)
        return _reversed_ipv4(labels) or _reversed_ipv6(labels)
    return False
