"""Feed text as hostile input: bytes to lines, lines to normalised names, rejects counted.

FORMATS.md §0 and §8: gzip by magic bytes, one BOM, UTF-8 with replacement, split on ``\\n``
only, one trailing ``\\r`` removed; names lower-cased, one trailing dot stripped, IDN to
A-labels (UTS-46), then validated. Every rejection is counted per reason with a few examples.

An address or CIDR block where a name is expected (uBO ``||1.2.3.4^``, an IP list, an RPZ
``rpz-ip`` trigger) is no name, and is counted as rejected (``ip``) as before; but it is kept
in ``ParseStats.ips``, for the artifact's address ranges (resolver/stages/answer_ip.py).
"""

from __future__ import annotations

import functools
import gzip
import ipaddress
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple

import idna

from feeds.errors import FeedFormatError, FeedTooLarge
from resolver.core.blocklist import EXACT, SUBTREE, WILDCARD

# A line longer than this is not a feed entry (the longest real URLhaus CSV rows are ~2 KB):
# reading stops at the limit, so a hostile file cannot make us hold an unbounded line.
MAX_LINE_BYTES = 16384
# RFC 1035 §2.3.4: 63 octets per label, 255 on the wire, i.e. 253 in text without the root dot.
MAX_LABEL = 63
MAX_NAME = 253
# Examples kept per reason, so a million bad lines cost three log arguments, not a million.
EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 80

# Scope bits used while merging: the name itself, and the names strictly under it.
# RPZ "x" + "*.x" (FORMATS.md §6) then merge by OR into SUBTREE.
SELF = 1
BELOW = 2
MASK_TO_SCOPE = {SELF: EXACT, BELOW: WILDCARD, SELF | BELOW: SUBTREE}
SCOPE_TO_MASK = {EXACT: SELF, WILDCARD: BELOW, SUBTREE: SELF | BELOW}

GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"


class Entry(NamedTuple):
    """One rule from a feed: a normalised name, its scope mask, and what to do with it.

    A NamedTuple rather than a dataclass: parsers make millions of these and tuples are cheap.
    """

    name: str
    mask: int  # SELF, BELOW or SELF | BELOW
    allow: bool = False  # an exception (ABP "@@", RPZ rpz-passthru), not a block
    important: bool = False  # ABP "$important": survives allows from feeds
    badfilter: bool = False  # ABP "$badfilter": cancels the same rule without it


# NamedTuple's generated __new__ is a Python function, three times slower than the tuple
# constructor it wraps; the hot parsers build entries with this instead (same result).
new_entry = tuple.__new__


@dataclass(slots=True)
class ParseStats:
    """Counters for one feed: what was read, kept, rejected (per reason) and noticed."""

    lines: int = 0
    skipped: int = 0  # comments, blank lines, headers and localhost entries
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)  # accepted but worth counting
    examples: dict[str, list[str]] = field(default_factory=dict)
    format: str = ""  # the format the feed was read as: "adblock (detected)" for format: auto
    # Address indicators (canonical text: "192.0.2.1/32", "2001:db8::/32"), see the docstring.
    ips: set[str] = field(default_factory=set)

    def keep_ip(self, text: str) -> None:
        """Keep an address or CIDR block as an indicator (it is still counted as ``ip``)."""
        try:
            net = ipaddress.ip_network(text.split("%", 1)[0], strict=False)
        except ValueError:
            return
        self.ips.add(str(net))

    def reject(self, reason: str, raw: str) -> None:
        """Count a rejected line and keep it as an example if few are kept yet."""
        self.rejected[reason] += 1
        self._example(reason, raw)

    def note(self, what: str, raw: str = "") -> None:
        """Count something accepted but unusual (upper case, underscore, punycode...)."""
        self.notes[what] += 1
        if raw:
            self._example(what, raw)

    def _example(self, key: str, raw: str) -> None:
        kept = self.examples.get(key)
        if kept is None:
            self.examples[key] = [raw[:EXAMPLE_CHARS]]
        elif len(kept) < EXAMPLES_PER_REASON:
            kept.append(raw[:EXAMPLE_CHARS])

    @property
    def total_rejected(self) -> int:
        """How many lines were refused, all reasons together."""
        return sum(self.rejected.values())


# ---------------------------------------------------------------------------------------------
# Bytes to lines


def iter_lines(stream: BinaryIO, stats: ParseStats, *, max_bytes: int = 0) -> Iterator[str]:
    """Yield the text lines of a (possibly gzipped) feed, CR and BOM removed.

    Lines over MAX_LINE_BYTES are skipped and counted as ``line_too_long``. With ``max_bytes``
    the uncompressed text is capped (a gzip bomb stops there) and ``FeedTooLarge`` is raised.
    Reads in bounded chunks and decodes whole chunks: per-line reads cost half the parse time.
    """
    read = stream.read
    if _peek(stream, 2) == GZIP_MAGIC:
        # The magic bytes decide, never the file name or Content-Type (FORMATS.md §0).
        read = functools.partial(_read_gzip, gzip.GzipFile(fileobj=stream, mode="rb"))
    total = 0
    rest = b""  # an incomplete last line, carried to the next chunk (bounded)
    skipping = False  # inside an over-long line: drop bytes up to its newline
    first = True
    while True:
        chunk = read(_CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if max_bytes and total > max_bytes:
            raise FeedTooLarge(max_bytes)
        if first:
            first = False
            if chunk.startswith(BOM):
                chunk = chunk[3:]
        data = rest + chunk if rest else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = data
            if len(rest) > MAX_LINE_BYTES:
                skipping, rest = True, b""
            continue
        block, rest = data[:cut], data[cut + 1 :]
        if len(rest) > MAX_LINE_BYTES:
            # The next line is over-long already; skip it when its end comes.
            yield from _decode_block(block, stats, skipping)
            skipping, rest = True, b""
            continue
        yield from _decode_block(block, stats, skipping)
        skipping = False
    if skipping:
        stats.lines += 1
        stats.reject("line_too_long", "")
    elif rest:
        # A missing final newline is normal (OISD, URLhaus): the last line still counts.
        yield from _decode_block(rest, stats, False)


# Chunk size for reading feeds: large enough to amortise, small enough to bound memory.
_CHUNK = 1 << 20


def _read_gzip(src: gzip.GzipFile, size: int) -> bytes:
    """src.read, a damaged or cut-short gzip file said as a feed error (the last good copy is
    kept), never as the library's EOFError or zlib.error escaping the updater."""
    try:
        return src.read(size)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise FeedFormatError(
            "the feed is a damaged or incomplete gzip file (a download cut short?)"
        ) from exc


def _decode_block(block: bytes, stats: ParseStats, skip_first: bool) -> Iterator[str]:
    """Decode complete lines; the first one is dropped if it ends an over-long line."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text or not block:
        lines = text.split("\n")
    else:
        # Only now pay for per-line decoding, to count the lines that needed replacement.
        lines = []
        for raw in block.split(b"\n"):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                stats.note("utf8_replaced")
                lines.append(raw.decode("utf-8", "replace"))
    if skip_first:
        lines = lines[1:]
        stats.lines += 1
        stats.reject("line_too_long", "")
    stats.lines += len(lines)
    for line in lines:
        if len(line) > MAX_LINE_BYTES:
            stats.reject("line_too_long", "")
            continue
        if line and line[-1] == "\r":
            line = line[:-1]
        yield line


def _peek(stream: BinaryIO, n: int) -> bytes:
    pos = stream.tell()
    data = stream.read(n)
    stream.seek(pos)
    return data


# ---------------------------------------------------------------------------------------------
# Names

# Fast path: plain lower-case LDH names (with "_") of two or more labels, the bulk of every feed.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_PLAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
_DIGITS_DOTS = re.compile(r"[0-9.]+")
# Dotted-quad IPv4 as Python's ipaddress accepts it: no leading zeros, each octet <= 255.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_BAD_CHAR = re.compile(r"[^a-z0-9._-]")
_CIDR = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}/(?:3[0-2]|[12]?[0-9])")

# Names a hosts file maps to a loopback address by convention (FORMATS.md §1): skipped, not
# counted as errors.
LOCALHOST_NAMES = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "local",
        "broadcasthost",
        "ip6-localhost",
        "ip6-loopback",
        "ip6-localnet",
        "ip6-mcastprefix",
        "ip6-allnodes",
        "ip6-allrouters",
        "ip6-allhosts",
        "0.0.0.0",  # noqa: S104 - a name in hosts files, not a bind address
    }
)


def normalize_name(raw: str, stats: ParseStats, *, allow_tld: bool = False) -> str | None:
    """Return ``raw`` as a lower-case A-label name without the trailing dot, or None.

    ``raw`` is one extracted candidate, already stripped of surrounding blanks. On None the
    reason has been counted in ``stats``. ``allow_tld`` lets a single label through (the
    deliberate TLD blocks of the OISD nsfw lists).
    """
    name = raw
    if name.endswith("."):
        name = name[:-1]
        stats.notes["trailing_dot"] += 1
    if _PLAIN.fullmatch(name) is not None and len(name) <= MAX_NAME:
        # Valid shape already; only the IP and underscore checks remain. A name ending in a
        # letter is no address: skip the second regex for nearly every name.
        if name[-1] <= "9" and _DIGITS_DOTS.fullmatch(name) is not None:
            _reject_ip(name, raw, stats)
            return None
        if "_" in name:
            stats.notes["underscore"] += 1
        if "xn--" in name:
            return _check_punycode(name, raw, stats)
        return name
    return _normalize_slow(name, raw, stats, allow_tld)


def _reject_ip(name: str, raw: str, stats: ParseStats) -> None:
    reason = _ip_reason(name)
    stats.reject(reason, raw)
    if reason == "ip":
        stats.keep_ip(name)


def _normalize_slow(name: str, raw: str, stats: ParseStats, allow_tld: bool) -> str | None:
    if not name:
        stats.reject("empty", raw)
        return None
    if not name.isascii():
        converted = _to_alabels(name)
        if converted is None:
            stats.reject("idna_error", raw)
            return None
        stats.notes["idn"] += 1
        name = converted
    lowered = name.lower()
    if lowered != name:
        stats.notes["upper_case"] += 1
        name = lowered
    if ":" in name or name.startswith("["):
        # IPv6 literal (possibly bracketed or with a zone index) or host:port junk.
        candidate = name.strip("[]").split("%", 1)[0]
        try:
            ipaddress.ip_address(candidate)
        except ValueError:
            stats.reject("bad_char", raw)
            return None
        stats.reject("ip", raw)
        stats.keep_ip(candidate)
        return None
    if _DIGITS_DOTS.fullmatch(name) is not None:
        _reject_ip(name, raw, stats)
        return None
    if "/" in name and _CIDR.fullmatch(name) is not None:
        stats.reject("ip", raw)
        stats.keep_ip(name)  # a CIDR block (IPv6 ones have ":" and were handled above)
        return None
    bad = _BAD_CHAR.findall(name)
    if bad:
        # A glob is its own reason only when it is the one thing wrong (``aax-*.amazon.*``).
        stats.reject("wildcard_inside" if set(bad) == {"*"} else "bad_char", raw)
        return None
    if len(name) > MAX_NAME:
        stats.reject("name_too_long", raw)
        return None
    labels = name.split(".")
    for label in labels:
        if not label:
            stats.reject("empty_label", raw)
            return None
        if len(label) > MAX_LABEL:
            stats.reject("label_too_long", raw)
            return None
        if label[0] == "-" or label[-1] == "-":
            stats.reject("bad_hyphen", raw)
            return None
    if len(labels) == 1 and not allow_tld:
        stats.reject("single_label", raw)
        return None
    if "_" in name:
        stats.notes["underscore"] += 1
    if "xn--" in name:
        return _check_punycode(name, raw, stats)
    return name


def _check_punycode(name: str, raw: str, stats: ParseStats) -> str | None:
    """Refuse an ``xn--`` label that does not decode (``.xn--com`` junk); count the rest."""
    for label in name.split("."):
        if label.startswith("xn--"):
            try:
                label[4:].encode("ascii").decode("punycode")
            except (UnicodeError, ValueError):
                stats.reject("idna_error", raw)
                return None
    stats.notes["punycode"] += 1
    return name


def _ip_reason(name: str) -> str:
    """``ip`` for a real address, ``ip_like`` for digits and dots that are not one.

    Leading zeros or too many digits make ``ip_like``: inet_aton would read them as octal.
    """
    return "ip" if _IPV4.fullmatch(name) is not None else "ip_like"


def _to_alabels(name: str) -> str | None:
    """UTS-46 map then encode each non-ASCII label; None when IDNA refuses the name."""
    try:
        mapped = idna.uts46_remap(name, std3_rules=False, transitional=False)
        labels = []
        for label in mapped.split("."):
            if label.isascii():
                labels.append(label.lower())
            else:
                labels.append(_alabel(label))
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    return ".".join(labels)


def _alabel(label: str) -> str:
    """IDNA 2008 first; IDNA 2003 for what browsers still resolve (emoji labels)."""
    try:
        return idna.alabel(label).decode("ascii")
    except idna.IDNAError:
        return label.encode("idna").decode("ascii")


def is_ip_literal(text: str) -> bool:
    """True for an IPv4 or IPv6 address, with an optional zone index (``fe80::1%lo0``)."""
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def strip_inline_comment(line: str, marker: str = "#") -> str:
    """Cut a comment that starts after whitespace (``x.com  # why``) and strip blanks.

    Only after whitespace: ``address=/x/#`` (dnsmasq) must keep its ``#``.
    """
    i = line.find(marker)
    while i > 0:
        if line[i - 1] in " \t":
            return line[:i].strip()
        i = line.find(marker, i + 1)
    return line.strip()


def rpz_ip_network(owner: str) -> str | None:
    """The network of an RPZ response-IP trigger owner (without ``.rpz-ip``), or None.

    ``32.1.2.0.192`` is 192.0.2.1/32; IPv6 labels are reversed 16-bit groups, ``zz`` standing
    for the longest run of zeros (draft-vixie-dnsop-dns-rpz §4.2).
    """
    labels = owner.split(".")
    if len(labels) < 2 or not labels[0].isdigit():
        return None
    prefix, rest = int(labels[0]), labels[:0:-1]
    try:
        if len(rest) == 4 and all(x.isdigit() for x in rest):
            net: ipaddress.IPv4Network | ipaddress.IPv6Network = ipaddress.IPv4Network(
                f"{'.'.join(rest)}/{prefix}", strict=False
            )
        else:
            zz = rest.index("zz") if "zz" in rest else -1
            text = (
                ":".join(rest) if zz < 0 else f"{':'.join(rest[:zz])}::{':'.join(rest[zz + 1 :])}"
            )
            net = ipaddress.IPv6Network(f"{text}/{prefix}", strict=False)
    except ValueError:
        return None
    return str(net)
