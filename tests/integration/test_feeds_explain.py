"""Feeds that explain themselves (issue 16.4), through the real updater and a local server:
the format `auto` chose and why lines were rejected, said by `feeds update` itself; each try of
a failing feed as it happens; `check-config` refusing what `feeds update` would refuse."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from resolver import blocklist_file
from resolver.config.feeds import FeedsConfig, FeedSource
from tests.integration.test_feeds_update import DATA, FeedServer, line_of, update_streams
from tests.integration.test_feeds_update import server as server  # the fixture


async def test_auto_reads_ublock_s_urlhaus_filter_as_adblock_and_says_why_lines_were_rejected(
    server: FeedServer, tmp_path: Path
) -> None:
    # uBlock's urlhaus-filter: 160 bare names first, its "||host^$all" rules further down.
    server.bodies["ubo"] = (DATA / "urlhaus-filter.txt").read_bytes()
    cfg = FeedsConfig(
        catalogue=(),
        sources=(FeedSource(name="ubo", url=f"{server.base}/ubo", category="malware"),),
        state_dir=str(tmp_path / "state"),
    )
    code, out, err = await update_streams(cfg, tmp_path / "b.pfb")
    assert code == 0, err
    line = line_of(out, "ubo")
    assert line.endswith("read as adblock (detected)"), line
    lines = out.splitlines()
    why = lines[lines.index(line) + 1 : lines.index(line) + 3]
    assert why == [
        "  40 rejected (abp_path_rule), e.g. '||0x0.st/8ics.py^$all', '||0x0.st/8lat.b64.txt^$all'",
        "  40 rejected (ip), e.g. '1.0.209.238', '1.1.107.157'",
    ], out
    compiled = blocklist_file.read(tmp_path / "b.pfb")
    assert compiled.match("bedoueroom.top") is not None  # a "||…^$all" rule, missed before
    assert compiled.match("0022a601.pphost.net") is not None  # and the bare names
    assert compiled.match("0x0.st") is None  # a path rule never blocks its host


async def test_a_failing_feed_says_each_try_as_it_happens_then_once_why(
    server: FeedServer, tmp_path: Path
) -> None:
    server.status["down"] = 500
    cfg = FeedsConfig(
        catalogue=(),
        sources=(FeedSource(name="down", url=f"{server.base}/down", format="hosts"),),
        state_dir=str(tmp_path / "state"),
        retries=2,
        retry_backoff=0.05,
    )
    started = time.monotonic()
    _, out, err = await update_streams(cfg, tmp_path / "b.pfb")
    assert time.monotonic() - started < 5
    assert out == ""
    lines = err.splitlines()
    assert lines[:2] == [
        "feed down: HTTP 500 Internal Server Error, retry 1/2 in 0.05 s",
        "feed down: HTTP 500 Internal Server Error, retry 2/2 in 0.1 s",
    ], err
    assert [ln for ln in lines if "FAILED" in ln] == [
        "feed down: FAILED, HTTP 500 Internal Server Error (after 3 attempts); no good copy,"
        " feed skipped"
    ]
    assert "Traceback" not in err and "ssl:default" not in err and server.hits["down"] == 3


async def _check_config(path: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "resolver.cli", "check-config", "-c", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_check_config_refuses_what_feeds_update_would_refuse(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    feed = "feeds:\n  sources:\n    - name: mine\n      url: https://lists.example/x.txt\n"
    cfg.write_text(feed + "      format: domains\n")
    code, out, err = await _check_config(cfg)
    assert code == 2 and out == ""
    assert err.strip() == (
        f"parafoudre: config error: {cfg}: feeds.sources['mine']: a domains list does not say"
        " whether example.com covers its subdomains; set match: exact or match: subtree"
    )
    cfg.write_text("feeds:\n  catalogue: [no-such-feed]\n")
    code, out, err = await _check_config(cfg)
    assert code == 2 and "unknown feed 'no-such-feed'" in err
    cfg.write_text(feed + "      format: domains\n      match: subtree\n")
    code, out, err = await _check_config(cfg)
    assert code == 0 and out.strip() == f"{cfg}: OK", err


async def test_an_allow_under_another_feed_s_broader_block_is_kept_in_the_artifact(
    tmp_path: Path,
) -> None:
    """urlhaus-filter (AdGuard Home syntax, the real excerpt) blocks ``||05webinvite.com^``; a
    second feed allows one name under it, and the operator's feeds.allowlist another. Both are
    allowed, with what is under them; the rest of the block stands. A parent blocked with
    ``$important`` beats the allow, as in AdGuard."""
    allow = tmp_path / "allow.txt"
    allow.write_text(
        "! an allow list\n@@||mail.05webinvite.com^\n@@||x.0daydreams.net^\n"
        "||0daydreams.net^$important\n"
    )
    cfg = FeedsConfig(
        catalogue=(),
        sources=(
            FeedSource(name="uhf", url=str(DATA / "urlhaus-filter-agh.txt"), category="malware"),
            FeedSource(name="allows", url=str(allow), format="adblock", category="malware"),
        ),
        allowlist=("cdn.0022a601.pphost.net",),
        state_dir=str(tmp_path / "state"),
    )
    code, _, err = await update_streams(cfg, tmp_path / "b.pfb")
    assert code == 0, err
    compiled = blocklist_file.read(tmp_path / "b.pfb")
    for blocked in ("05webinvite.com", "www.05webinvite.com", "0022a601.pphost.net"):
        assert compiled.match(blocked) is not None, blocked
    for allowed in ("mail.05webinvite.com", "a.mail.05webinvite.com", "cdn.0022a601.pphost.net"):
        assert compiled.match(allowed) is None, allowed
    assert compiled.match("x.0daydreams.net") is not None  # $important beats the allow
    scopes = {n: s for n, s, _, _ in compiled.entries()}
    assert scopes["mail.05webinvite.com"] == blocklist_file.ALLOW
