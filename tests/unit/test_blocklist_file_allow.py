"""Allow entries in the compiled artifact (version 3): the most specific entry decides."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from resolver import blocklist_file
from resolver.blocklist_file import ALLOW, ALLOW_EXACT, BlocklistFileError
from resolver.core.blocklist import EXACT, SUBTREE


def test_allow_entries_let_their_names_through_under_a_broader_block(tmp_path: Path) -> None:
    path = tmp_path / "b.pfb"
    blocklist_file.write_atomic(
        path,
        [
            ("g.doubleclick.net", SUBTREE, 0),
            ("adclick.g.doubleclick.net", ALLOW, 1),
            ("pixel.g.doubleclick.net", ALLOW_EXACT, 1),
            ("bad.adclick.g.doubleclick.net", EXACT, 0),
        ],
        [("feed:ads", "ads"), ("allow", "")],
    )
    bl = blocklist_file.read(path)
    m = bl.match("x.g.doubleclick.net")
    assert m is not None and m.entry == "g.doubleclick.net"
    assert bl.match("adclick.g.doubleclick.net") is None
    assert bl.match("a.b.adclick.g.doubleclick.net") is None  # ALLOW covers its subtree
    assert bl.match("bad.adclick.g.doubleclick.net") is not None  # more specific again
    assert bl.match("pixel.g.doubleclick.net") is None
    assert bl.match("x.pixel.g.doubleclick.net") is not None  # exact: only the name


def test_an_older_reader_is_told_to_update_not_fooled(tmp_path: Path) -> None:
    path = tmp_path / "b.pfb"
    blocklist_file.write_atomic(path, [("a.example", SUBTREE, 0)], [("feed:x", "malware")])
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, 8, 99)  # a version this reader does not know
    path.write_bytes(bytes(raw))
    with pytest.raises(BlocklistFileError, match="format version 99"):
        blocklist_file.read(path)
    assert blocklist_file.VERSION == 3 and 2 in blocklist_file.READABLE
