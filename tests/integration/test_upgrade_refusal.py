"""A downgrade refuses clearly instead of corrupting data (issue 8, point 5).

A block log written by a newer Parafoudre (PRAGMA user_version above what this code knows) must
stop ``parafoudre serve`` with exit code 1 and one line naming the file, no traceback, and leave
the file byte for byte as it was.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

PARAFOUDRE = [sys.executable, "-m", "resolver.cli"]


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *PARAFOUDRE, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail("parafoudre serve kept running on a block log from the future")
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def future_block_log(state: Path) -> Path:
    """A block log as a future version might leave it: schema v99 and a table of its own."""
    state.mkdir(parents=True)
    path = state / "blocks.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE blocks_v99 (id INTEGER PRIMARY KEY, payload TEXT)")
    conn.execute("INSERT INTO blocks_v99 (payload) VALUES ('written by Parafoudre 99')")
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    return path


def write_config(tmp_path: Path, listen: str) -> Path:
    cfg = tmp_path / "parafoudre.yaml"
    cfg.write_text(
        f"state_dir: {tmp_path / 'state'}\n"
        f"server:\n  listen: ['{listen}']\n"
        # A closed local port: nothing is ever sent outside 127.0.0.1.
        f"upstream:\n  servers: ['127.0.0.1:{free_port()}']\n"
    )
    return cfg


async def test_serve_refuses_newer_block_log(tmp_path: Path) -> None:
    path = future_block_log(tmp_path / "state")
    before = path.read_bytes()
    cfg = write_config(tmp_path, "127.0.0.1:0")
    code, _, err = await run_cli("serve", "-c", str(cfg), "--workers", "1")
    assert code == 1, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("parafoudre: cannot start: ")
    assert str(path) in line
    assert "v99" in line and "newer" in line and "upgrade Parafoudre" in line
    assert path.read_bytes() == before
    assert not (tmp_path / "state" / "blocks.sqlite-wal").exists()


async def test_serve_with_workers_refuses_newer_block_log(tmp_path: Path) -> None:
    # The production path: several workers under the supervisor on a fixed port.
    path = future_block_log(tmp_path / "state")
    before = path.read_bytes()
    cfg = write_config(tmp_path, f"127.0.0.1:{free_port()}")
    code, _, err = await run_cli("serve", "-c", str(cfg), "--workers", "2")
    assert code == 1, err
    assert "Traceback" not in err
    refusals = [ln for ln in err.splitlines() if ln.startswith("parafoudre: cannot start: ")]
    # Each worker that got as far as opening the file says so once (the supervisor stops the
    # other as soon as one fails): one or two identical lines.
    assert 1 <= len(refusals) <= 2, err
    assert all(str(path) in ln and "v99" in ln for ln in refusals)
    assert path.read_bytes() == before
