"""ListsHolder: the reload log line (the benchmark reads it) and fail-closed operator files."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from resolver import blocklist_file
from resolver.blocklist_holder import ListsHolder
from resolver.core.blocklist import SUBTREE
from tests.conftest import make_config


async def test_reload_logs_its_duration_in_ms(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = make_config(tmp_path, 53)
    swaps: list[int] = []
    holder = ListsHolder(cfg, lambda: swaps.append(1))
    path = holder.compiled_path
    blocklist_file.write_atomic(path, [("old.test", SUBTREE, 0)], [("feed:t", "malware")])
    holder.load_now()
    names = [(f"n{i}.test", SUBTREE, 0) for i in range(3)]
    blocklist_file.write_atomic(path, names, [("feed:t", "malware")])  # new inode, as an update
    with caplog.at_level(logging.INFO, logger="resolver.blocklist_holder"):
        assert await holder.reload(everything=False) is True
    assert swaps == [1] and holder.reloads == 1
    [record] = [r for r in caplog.records if r.getMessage().startswith("lists reloaded")]
    m = re.fullmatch(r"lists reloaded in (\d+\.\d) ms: 3 blocklist entries", record.getMessage())
    assert m is not None, record.getMessage()
    assert 0.0 <= float(m.group(1)) < 10_000
    assert record.args is not None  # %-style arguments, not a pre-formatted string
    assert holder.blocklist.current.match("x.n1.test") is not None


def _holder(tmp_path: Path, extra: str) -> tuple[ListsHolder, list[int]]:
    swaps: list[int] = []
    return ListsHolder(make_config(tmp_path, 53, extra), lambda: swaps.append(1)), swaps


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_block_list_removed_before_a_reload_keeps_blocking_and_is_stale(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lst = tmp_path / "block.txt"
    lst.write_text("evil.test\nbad.test\n")
    other = tmp_path / "other.txt"
    other.write_text("one.test\n")
    holder, swaps = _holder(
        tmp_path,
        f"blocking:\n  lists:\n    - {{path: {lst}, name: local, category: malware}}\n"
        f"    - {{path: {other}, name: other}}\n",
    )
    holder.load_now()
    assert holder.stale() == ()
    lst.unlink()
    other.write_text("one.test\ntwo.test\n")  # the readable file still takes its changes
    with caplog.at_level(logging.INFO, logger="resolver.blocklist_holder"):
        assert await holder.reload(everything=True) is True
        assert await holder.reload(everything=True) is True  # a second reload: same episode
        assert await holder.reload(everything=False) is True  # a feeds swap too
    m = holder.blocklist.current.match("www.evil.test")
    assert m is not None and m.source == "list:local" and m.category == "malware"
    assert holder.blocklist.current.match("two.test") is not None
    [stale] = holder.stale()
    assert (stale.kind, stale.name, stale.path) == ("blocklist", "local", str(lst))
    assert stale.entries == 2 and stale.loaded_at > 0
    assert stale.error == "No such file or directory"
    # One line for the episode, saying what happens, not one per reload.
    [line] = _errors(caplog)
    assert f"blocklist file {lst} cannot be read (No such file or directory)" in line
    assert "keeping its last good copy (2 names" in line
    assert len(swaps) == 3
    # Back, with new content: read again, no longer stale, and said once.
    caplog.clear()
    lst.write_text("evil.test\n")
    with caplog.at_level(logging.INFO, logger="resolver.blocklist_holder"):
        assert await holder.reload(everything=True) is True
    assert holder.stale() == ()
    assert holder.blocklist.current.match("bad.test") is None
    assert any("can be read again: 1 names" in r.getMessage() for r in caplog.records)
    assert _errors(caplog) == []


async def test_an_unreadable_block_list_keeps_its_copy(tmp_path: Path) -> None:
    lst = tmp_path / "block.txt"
    lst.write_text("evil.test\n")
    holder, _ = _holder(tmp_path, f"blocking:\n  lists:\n    - path: {lst}\n")
    holder.load_now()
    lst.unlink()
    lst.mkdir()  # a path that exists but cannot be read as a list
    assert await holder.reload(everything=True) is True
    assert holder.blocklist.current.match("evil.test") is not None
    assert [s.error for s in holder.stale()] == ["Is a directory"]


async def test_an_allowlist_file_removed_before_a_reload_keeps_allowing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    allow = tmp_path / "allow.txt"
    allow.write_text("good.test\n")
    holder, _ = _holder(tmp_path, f"allowlist:\n  names: [named.test]\n  files: [{allow}]\n")
    holder.load_now()
    allow.unlink()
    with caplog.at_level(logging.INFO, logger="resolver.blocklist_holder"):
        assert await holder.reload(everything=True) is True
    assert holder.allowlist.current.match("www.good.test") is not None
    assert holder.allowlist.current.match("named.test") is not None
    [stale] = holder.stale()
    assert (stale.kind, stale.name, stale.entries) == ("allowlist", str(allow), 1)
    assert len(_errors(caplog)) == 1


def test_a_list_missing_at_the_first_start_is_empty_logged_and_stale(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lst = tmp_path / "typo.txt"
    holder, _ = _holder(tmp_path, f"blocking:\n  lists:\n    - {{path: {lst}, name: local}}\n")
    with caplog.at_level(logging.INFO, logger="resolver.blocklist_holder"):
        holder.load_now()  # the commune's DNS still starts
    assert len(holder.blocklist.current) == 0
    [stale] = holder.stale()
    assert (stale.entries, stale.loaded_at) == (0, 0.0)
    [line] = _errors(caplog)
    assert f"blocklist file {lst} cannot be read (No such file or directory)" in line
    assert "starting without it" in line
