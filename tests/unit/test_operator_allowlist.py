"""The operator's allowlist file: what allow/remove write, what the resolver then reads, what is
refused, and the block log's record of who did what."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from pathlib import Path

import pytest

from resolver.blocklist_holder import ListsHolder
from resolver.blocklog.schema import open_db
from resolver.list_files import read_names
from resolver.operator_allowlist import AllowError, OperatorAllowlist, operator_path, parse, render
from tests.conftest import make_config

T0 = 1_765_000_000.0


def _allowlist(tmp_path: Path) -> OperatorAllowlist:
    db = tmp_path / "blocks.sqlite"
    open_db(db).close()
    return OperatorAllowlist(tmp_path / "allow.txt", db, clock=lambda: T0)


def test_allow_writes_a_list_file_the_resolver_reads_and_records_who(tmp_path: Path) -> None:
    ops = _allowlist(tmp_path)
    e = ops.allow("WWW.Example.COM.", who="marie", detail="feed:urlhaus (malware)\n192.0.2.1")
    assert (e.name, e.who, e.at) == ("www.example.com", "marie", T0)
    assert e.detail == "feed:urlhaus (malware)?192.0.2.1"  # one line: no newline in a comment
    d = ops.allow("a.b.tracker.example.net", who="cli:root", scope="domain")
    assert d.name == "example.net"
    assert ops.allow("www.example.com", who="paul").who == "marie"  # already there: unchanged
    assert list(read_names(ops.path)) == ["www.example.com", "example.net"]
    assert [(x.name, x.who, x.at) for x in ops.entries()] == [
        ("www.example.com", "marie", T0),
        ("example.net", "cli:root", T0),
    ]
    assert ops.remove("www.example.com", who="marie") is True
    assert ops.remove("www.example.com", who="marie") is False
    assert [x.name for x in ops.entries()] == ["example.net"]
    acts = [(a.who, a.action, a.name) for a in ops.actions()]
    assert acts == [
        ("marie", "remove", "www.example.com"),
        ("cli:root", "allow", "example.net"),
        ("marie", "allow", "www.example.com"),
    ]
    assert not list(tmp_path.glob(".allow.txt.*.tmp"))  # no temporary file left behind


@pytest.mark.parametrize(
    ("raw", "scope", "why"),
    [
        ("com", "name", "not a domain name"),
        ("github.io", "name", "public suffix"),  # private section: every user's site under it
        ("co.uk", "domain", "public suffix"),
        ("192.0.2.1", "name", "not a domain name"),
        ("bad name.example", "name", "not a domain name"),
        ("x" * 300 + ".example", "name", "not a domain name"),
    ],
)
def test_names_that_would_allow_too_much_or_nothing_are_refused(
    tmp_path: Path, raw: str, scope: str, why: str
) -> None:
    ops = _allowlist(tmp_path)
    with pytest.raises(AllowError, match=why):
        ops.allow(raw, who="marie", scope="domain" if scope == "domain" else "name")
    assert not ops.path.exists()


def test_a_hand_edited_file_reads_back_and_rewrites_cleanly() -> None:
    text = "# mine\nfoo.example\nbar.example  # allowed 2026-12-06T16:40:05Z by paul -- why\n"
    entries = parse(text + "not a name!\nfoo.example\n")
    assert [(e.name, e.who, e.detail) for e in entries] == [
        ("foo.example", "", ""),
        ("bar.example", "paul", "why"),
    ]
    assert parse(render(entries))[1] == entries[1]


def test_a_blocklog_that_cannot_be_written_does_not_stop_the_allow(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ops = OperatorAllowlist(tmp_path / "allow.txt", tmp_path / "dir" / "blocks.sqlite")
    (tmp_path / "dir").write_text("a file where the directory should be")
    with caplog.at_level(logging.WARNING):
        ops.allow("ok.example", who="marie")
    assert [e.name for e in ops.entries()] == ["ok.example"]
    assert "operator action not logged" in caplog.text


async def test_the_resolver_picks_up_the_operator_file_without_a_reload_signal(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    cfg = make_config(tmp_path, 53, f"state_dir: {state}\n")
    swaps: list[int] = []
    holder = ListsHolder(cfg, lambda: swaps.append(1))
    holder.load_now()  # no operator file yet: empty, not stale
    assert holder.stale() == () and holder.allowlist.current.match("x.example") is None
    watch = asyncio.create_task(holder.watch(interval=2.0, operator_interval=0.05))
    try:
        ops = OperatorAllowlist(holder.operator_path, None)
        await asyncio.to_thread(ops.allow, "x.example", who="marie")
        for _ in range(40):
            if holder.allowlist.current.match("a.x.example") is not None:
                break
            await asyncio.sleep(0.05)
        m = holder.allowlist.current.match("a.x.example")
        assert m is not None and m.source == "allowlist:operator"
        assert swaps  # Pipeline.changed(): cached answers are judged again
        await asyncio.to_thread(ops.remove, "x.example", who="marie")
        for _ in range(40):
            if holder.allowlist.current.match("a.x.example") is None:
                break
            await asyncio.sleep(0.05)
        assert holder.allowlist.current.match("a.x.example") is None
        holder.operator_path.unlink()  # removed by hand: empty again, never stale
        await asyncio.sleep(0.3)
        assert holder.stale() == ()
    finally:
        watch.cancel()


def test_the_table_is_in_the_block_log_schema(tmp_path: Path) -> None:
    db = tmp_path / "b.sqlite"
    open_db(db).close()
    conn = sqlite3.connect(db)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(operator_actions)")]
    conn.close()
    assert cols == ["id", "ts", "who", "action", "name", "detail"]


def test_writers_at_once_lose_no_name(tmp_path: Path) -> None:
    """The page and the command line may write at the same moment: the directory's lock."""
    from concurrent.futures import ThreadPoolExecutor

    ops = _allowlist(tmp_path)
    names = [f"n{i}.example" for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: OperatorAllowlist(ops.path, None).allow(n, who="x"), names))
    assert sorted(e.name for e in ops.entries()) == sorted(names)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file away")
def test_sudo_allow_leaves_the_file_to_the_service_s_user(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 4321, 4321)  # the service's user owns its state directory
    ops = OperatorAllowlist(state / "allowlist.operator.txt", None)
    ops.allow("x.example", who="cli:root")
    st = ops.path.stat()
    assert (st.st_uid, st.st_gid) == (4321, 4321)
    assert not [p for p in state.iterdir() if p.name != "allowlist.operator.txt"]  # no lock file


def test_the_command_line_finds_the_service_s_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sudo parafoudre allow` has no STATE_DIRECTORY: it must still write where the service
    (StateDirectory=parafoudre) reads, not under root's home."""
    from resolver import cli
    from resolver.config import Config

    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setattr(cli, "SERVICE_STATE_DIR", tmp_path)
    assert operator_path(cli._service_state(Config())) == tmp_path / "allowlist.operator.txt"
    mine = Config(state_dir=str(tmp_path / "own"))  # the config's own choice wins
    assert cli._service_state(mine) is mine
    monkeypatch.setattr(cli, "SERVICE_STATE_DIR", tmp_path / "absent")  # not a service box
    assert cli._service_state(Config()).state_dir == ""
