"""Headless Chromium for the page tests: the one set of flags and a bounded one-shot run.

The flags are those that make Debian's Chromium quiet on a machine with no network: without
the background-networking ones it keeps trying Google's hosts, which this machine refuses.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Final

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


async def run_headless(url: str, profile: Path, *args: str, budget_ms: int = 3000) -> bytes:
    """Chromium on ``url`` with ``args`` (--dump-dom, --screenshot=...); its stdout.

    Bounded: killed after 60 seconds; a non-zero exit fails the test with its stderr."""
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        *args,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out
