"""The compiled blocklist artifact: one versioned file, written atomically, read by mmap.

Layout (little-endian)::

    0   8   magic b"PFBLIST\\0"
    8   4   format version
    12  4   header length H
    16  4   CRC-32 of every byte after offset 24
    20  4   reserved, 0
    24  H   header, UTF-8 JSON: counts, offsets, provenance table, free-form meta
    ..      marisa-trie of the reversed names, each followed by "." (8-byte aligned)
    ..      uint32 per trie key id: scope << 24 | provenance index (8-byte aligned)
    ..      version 2: IPv4 ranges, n4 uint32 starts, ends, provenances (3 arrays, 8-aligned)
    ..      version 2: IPv6 ranges, n6 16-byte big-endian starts, n6 ends, n6 uint32 provenance

Version 3 adds two scopes, ALLOW and ALLOW_EXACT: allow entries under broader blocks.

The address ranges are the feeds' IP and CIDR indicators (an answer pointing into one is
blocked, resolver/stages/answer_ip.py), sorted and disjoint, so one bisection finds the range
holding an address. Version 1 files (names only) are still read, with no ranges.

Names are stored reversed ("moc.elpmaxe.") so that one ``iter_prefixes_with_ids`` call finds
the name and every parent listed, in a single walk of the trie. Measured on the 1,000,000-name
benchmark: a 7 MB trie, mapped in well under a millisecond (bench/feeds_results.md).
"""

from __future__ import annotations

import array
import bisect
import ipaddress
import json
import mmap
import os
import struct
import sys
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import marisa_trie

from resolver.core.blocklist import EXACT, SUBTREE, WILDCARD, Match
from resolver.errors import ParafoudreError

MAGIC = b"PFBLIST\0"
VERSION = 3
READABLE = (1, 2, 3)  # version 1: no address ranges; before 3: no allow entries
# Allow entries (version 3): a feed's allow rule, or feeds.allowlist, under a broader block of
# another entry. The most specific entry decides, so an allow under a SUBTREE block lets its
# name (ALLOW: and its subtree) through. A reader of version 2 would take them for blocks: the
# version says they are there.
ALLOW = 4
ALLOW_EXACT = 5
_PREFIX = struct.Struct("<8sIIII")  # magic, version, header length, crc32, reserved
_ALIGN = 8
_SCOPE_SHIFT = 24
_PROV_MASK = (1 << _SCOPE_SHIFT) - 1
_SCOPES = (EXACT, SUBTREE, WILDCARD, ALLOW, ALLOW_EXACT)
# A header is a few KB (one line per feed combination); refuse absurd ones before parsing.
_MAX_HEADER = 16 * 1024 * 1024


class BlocklistFileError(ParafoudreError):
    """The compiled blocklist file is missing, corrupt or of another format version."""


def _pad(n: int) -> int:
    return (-n) % _ALIGN


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def disjoint_ranges(
    networks: Iterable[tuple[Network, int]],
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """(IPv4, IPv6) lists of (first, last, provenance), sorted and disjoint.

    CIDR blocks either nest or do not meet: a block inside a wider one is dropped (the wider
    one already covers it, and its provenance speaks for both).
    """
    out: tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]] = ([], [])
    ordered = sorted(
        ((n.version, int(n.network_address), -n.num_addresses, n, prov) for n, prov in networks),
        key=lambda t: t[:3],
    )
    for version, first, _, net, prov in ordered:
        ranges = out[version == 6]
        last = int(net.broadcast_address)
        if ranges and first <= ranges[-1][1]:
            continue  # inside the previous block
        ranges.append((first, last, prov))
    return out


def _ranges_bytes(v4: list[tuple[int, int, int]], v6: list[tuple[int, int, int]]) -> bytes:
    a4 = [array.array("I", (r[k] for r in v4)) for k in range(3)]
    p6 = array.array("I", (r[2] for r in v6))
    if sys.byteorder != "little":
        for a in (*a4, p6):
            a.byteswap()
    starts6 = b"".join(r[0].to_bytes(16, "big") for r in v6)
    ends6 = b"".join(r[1].to_bytes(16, "big") for r in v6)
    part4 = b"".join(a.tobytes() for a in a4)
    return part4 + b"\0" * _pad(len(part4)) + starts6 + ends6 + p6.tobytes()


def write_atomic(
    path: Path,
    entries: Iterable[tuple[str, int, int]],
    provenance: Sequence[tuple[str, str]],
    *,
    meta: Mapping[str, Any] | None = None,
    networks: Iterable[tuple[Network, int]] = (),
) -> int:
    """Write ``entries`` (name, scope, provenance index) to ``path`` atomically; return count.

    ``provenance[i]`` is the (source, category) pair of every entry with index ``i``.
    ``networks``: the address indicators, (network, provenance index). The file is written to a
    temporary name in the same directory, fsynced, then renamed over ``path`` so a reader sees
    the old file or the new one, never half of one.
    """
    if len(provenance) > _PROV_MASK:
        raise BlocklistFileError(f"too many provenance combinations: {len(provenance)}")
    v4, v6 = disjoint_ranges(networks)
    if any(not 0 <= r[2] < len(provenance) for r in (*v4, *v6)):
        raise BlocklistFileError("address range with a bad provenance index")
    range_bytes = _ranges_bytes(v4, v6)
    count, trie_bytes, value_bytes = _trie_parts(entries, len(provenance))
    header_base: dict[str, Any] = {
        "entries": count,
        "provenance": [list(p) for p in provenance],
        "meta": dict(meta or {}),
        "ipv4_ranges": len(v4),
        "ipv6_ranges": len(v6),
    }
    header = _settled_header(header_base, len(trie_bytes), len(value_bytes))
    start = _PREFIX.size + len(header)
    body = b"".join(
        (
            header,
            b"\0" * _pad(start),
            trie_bytes,
            b"\0" * _pad(len(trie_bytes)),
            value_bytes,
            b"\0" * _pad(len(value_bytes)),
            range_bytes,
        )
    )
    prefix = _PREFIX.pack(MAGIC, VERSION, len(header), zlib.crc32(body), 0)
    _replace_file(path, prefix, body)
    return count


def _trie_parts(entries: Iterable[tuple[str, int, int]], n_prov: int) -> tuple[int, bytes, bytes]:
    """(entry count, trie bytes, value bytes): the reversed names' trie and, per trie key id,
    the scope and provenance code. The keys and the trie are freed on return: only the bytes
    are written, and a million names' lists weigh more than the file."""
    keys: list[str] = []
    codes: list[int] = []
    for name, scope, prov in entries:
        if scope not in _SCOPES or not 0 <= prov < n_prov:
            raise BlocklistFileError(f"bad entry for {name!r}: scope={scope} provenance={prov}")
        keys.append(name[::-1] + ".")
        codes.append(scope << _SCOPE_SHIFT | prov)
    trie = marisa_trie.Trie(keys)
    values = array.array("I", bytes(4 * len(trie)))
    key_id = trie.key_id
    for key, code in zip(keys, codes, strict=True):
        values[key_id(key)] = code
    del keys, codes
    if sys.byteorder != "little":
        values.byteswap()
    return len(trie), trie.tobytes(), values.tobytes()


def _settled_header(base: Mapping[str, Any], trie_size: int, value_size: int) -> bytes:
    """The JSON header with the sections' offsets. Offsets depend on the header length, which
    depends on the offsets: settle in two passes (a third at most)."""
    header = b""
    for _ in range(3):
        start = _PREFIX.size + len(header)
        trie_off = start + _pad(start)
        val_off = trie_off + trie_size + _pad(trie_size)
        fields = dict(base, trie_offset=trie_off, trie_size=trie_size)
        fields.update(values_offset=val_off, values_size=value_size)
        fields.update(ranges_offset=val_off + value_size + _pad(value_size))
        new = json.dumps(fields, sort_keys=True).encode()
        if new == header:
            break
        header = new
    return header


def _replace_file(path: Path, prefix: bytes, body: bytes) -> None:
    """Write to a temporary name in the same directory, fsync, rename over ``path``: a reader
    sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(prefix)
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; the resolver may run as another user than the updater.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class CompiledBlocklist:
    """A read-only, memory-mapped blocklist: ``match`` walks the name's parents in one call."""

    __slots__ = (
        "_count",
        "_map",
        "_provenance",
        "_r4",
        "_r6",
        "_trie",
        "_values",
        "meta",
        "path",
        "version",
    )

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with path.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < _PREFIX.size:
                    raise BlocklistFileError(f"{path}: truncated ({size} bytes)")
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise BlocklistFileError(f"{path}: cannot open: {exc.strerror or exc}") from exc
        view = memoryview(self._map)
        magic, version, hlen, crc, _ = _PREFIX.unpack_from(view, 0)
        if magic != MAGIC:
            raise BlocklistFileError(f"{path}: not a Parafoudre blocklist (bad magic)")
        if version not in READABLE:
            raise BlocklistFileError(
                f"{path}: format version {version}, this resolver reads versions"
                f" {', '.join(map(str, READABLE))}; run `parafoudre feeds update` with the"
                " matching version"
            )
        self.version: int = version
        # Check the CRC before marisa sees a byte: a corrupt trie could crash the process.
        if hlen > _MAX_HEADER or zlib.crc32(view[_PREFIX.size :]) != crc:
            raise BlocklistFileError(f"{path}: corrupt (checksum mismatch or truncated)")
        try:
            header = json.loads(bytes(view[_PREFIX.size : _PREFIX.size + hlen]))
            t_off, t_size = int(header["trie_offset"]), int(header["trie_size"])
            v_off, v_size = int(header["values_offset"]), int(header["values_size"])
            self._count = int(header["entries"])
            self._provenance = tuple((str(s), str(c)) for s, c in header["provenance"])
            self.meta: dict[str, Any] = dict(header.get("meta", {}))
        except (ValueError, KeyError, TypeError) as exc:
            raise BlocklistFileError(f"{path}: bad header: {exc}") from exc
        if t_off + t_size > len(view) or v_off + v_size > len(view) or v_size != 4 * self._count:
            raise BlocklistFileError(f"{path}: offsets point outside the file")
        self._trie = marisa_trie.Trie()
        self._trie.map(view[t_off : t_off + t_size])
        if sys.byteorder == "little":
            self._values: Sequence[int] = view[v_off : v_off + v_size].cast("I")
        else:
            swapped = array.array("I", view[v_off : v_off + v_size])
            swapped.byteswap()
            self._values = swapped
        if len(self._trie) != self._count:
            raise BlocklistFileError(
                f"{path}: trie holds {len(self._trie)} names, header says {self._count}"
            )
        self._r4: tuple[Sequence[int], ...] = ((), (), ())
        self._r6: tuple[list[int], list[int], Sequence[int]] = ([], [], ())
        if version >= 2:
            self._read_ranges(view, header)

    def _read_ranges(self, view: memoryview, header: dict[str, Any]) -> None:
        try:
            off, n4, n6 = (int(header[k]) for k in ("ranges_offset", "ipv4_ranges", "ipv6_ranges"))
        except (ValueError, KeyError, TypeError) as exc:
            raise BlocklistFileError(f"{self.path}: bad header: {exc}") from exc
        size4 = 12 * n4
        off6 = off + size4 + _pad(size4)
        if min(off, n4, n6) < 0 or off6 + 36 * n6 > len(view):
            raise BlocklistFileError(f"{self.path}: address ranges point outside the file")
        if any(p >= len(self._provenance) for p in self._uint32(view, off + 8 * n4, n4)):
            raise BlocklistFileError(f"{self.path}: address range with a bad provenance")
        self._r4 = tuple(self._uint32(view, off + 4 * n4 * k, n4) for k in range(3))
        starts = [
            int.from_bytes(view[off6 + 16 * i : off6 + 16 * i + 16], "big") for i in range(n6)
        ]
        e6 = off6 + 16 * n6
        ends = [int.from_bytes(view[e6 + 16 * i : e6 + 16 * i + 16], "big") for i in range(n6)]
        self._r6 = (starts, ends, self._uint32(view, e6 + 16 * n6, n6))

    @staticmethod
    def _uint32(view: memoryview, off: int, n: int) -> Sequence[int]:
        if sys.byteorder == "little":
            return view[off : off + 4 * n].cast("I")
        swapped = array.array("I", view[off : off + 4 * n])
        swapped.byteswap()
        return swapped

    @property
    def ranges(self) -> int:
        """How many address ranges (IPv4 and IPv6) the file holds."""
        return len(self._r4[0]) + len(self._r6[0])

    def match_ip(self, packed: bytes) -> Match | None:
        """The range holding the address (4 or 16 octets, network order), or None."""
        starts, ends, provs = self._r4 if len(packed) == 4 else self._r6
        if not starts:
            return None
        x = int.from_bytes(packed, "big")
        i = bisect.bisect_right(starts, x) - 1
        if i < 0 or x > ends[i]:
            return None
        source, category = self._provenance[provs[i]]
        return Match(str(ipaddress.ip_address(packed)), source, category)

    def __len__(self) -> int:
        return self._count

    def match(self, name: str) -> Match | None:
        """The most specific entry covering ``name`` (lower-case, no trailing dot), or None."""
        key = name[::-1] + "."
        found: list[tuple[str, int]] = list(self._trie.iter_prefixes_with_ids(key))
        if not found:
            return None
        full = len(key)
        for k, kid in reversed(found):
            code = self._values[kid]
            scope = code >> _SCOPE_SHIFT
            if scope >= ALLOW:  # the most specific entry is an allow: not blocked
                if scope == ALLOW or len(k) == full:
                    return None
                continue  # an exact allow of a parent says nothing of this name
            # The name itself: EXACT or SUBTREE; a parent: SUBTREE or WILDCARD.
            if scope != (WILDCARD if len(k) == full else EXACT):
                source, category = self._provenance[code & _PROV_MASK]
                return Match(k[-2::-1], source, category)
        return None

    def entries(self) -> Iterator[tuple[str, int, str, str]]:
        """Every entry as (name, scope, source, category); for tests and diagnostics."""
        for key, kid in self._trie.iteritems():
            code = self._values[kid]
            source, category = self._provenance[code & _PROV_MASK]
            yield key[-2::-1], code >> _SCOPE_SHIFT, source, category


def read(path: Path) -> CompiledBlocklist:
    """Map the artifact at ``path``; raises BlocklistFileError if it is corrupt or foreign."""
    return CompiledBlocklist(Path(path))
