"""ListsHolder's reload log line: it says how long the reload took (the benchmark reads it)."""

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
