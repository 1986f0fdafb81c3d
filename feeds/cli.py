"""Entry points the `parafoudre` CLI calls: feeds update, feeds status, feeds catalogue.

``python -m feeds.cli`` runs them stand-alone with the default configuration and a state
directory given on the command line (handy for tests and benchmarks).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from feeds.errors import FeedError
from feeds.sources import CATALOGUE, resolve_sources
from feeds.state import StateStore
from feeds.update import EXIT_CONFIG, EXIT_NOTHING, EXIT_OK, EXIT_PARTIAL, run_update, update
from resolver import blocklist_file
from resolver.config.feeds import FeedsConfig

__all__ = [
    "EXIT_CONFIG",
    "EXIT_NOTHING",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "main",
    "print_catalogue",
    "print_status",
    "run_update",
    "update",
]


def print_status(cfg: FeedsConfig, *, out: TextIO, artifact_path: Path | None = None) -> int:
    """Print, per feed, the last success, entries, rejects and last error; return 0, 2 or 3.

    3 when a feed's last run failed or it never succeeded, so scripts can alert on it.
    """
    try:
        feeds = resolve_sources(cfg)
    except FeedError as exc:
        out.write(f"feeds: configuration error: {exc}\n")
        return EXIT_CONFIG
    store = StateStore(cfg.state_path())
    rows = [("feed", "status", "last success", "entries", "rejected", "last error")]
    trouble = False
    for feed in feeds:
        st = store.load(feed.name)
        if not feed.enabled:
            status = "disabled"
        else:
            status = st.status or "never run"
            trouble = trouble or status not in ("updated", "unchanged")
        rows.append(
            (
                feed.name,
                status,
                st.last_success or "-",
                str(st.entries),
                str(st.rejected),
                _clip(st.last_error) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        out.write("  ".join([*cells, row[-1]]).rstrip() + "\n")
    if artifact_path is not None:
        out.write(_artifact_line(artifact_path) + "\n")
    return EXIT_PARTIAL if trouble else EXIT_OK


def _artifact_line(path: Path) -> str:
    try:
        bl = blocklist_file.read(path)
    except blocklist_file.BlocklistFileError as exc:
        return f"blocklist: {exc}"
    return f"blocklist: {len(bl)} entries in {path}, written {bl.meta.get('written', '?')}"


def _clip(text: str, limit: int = 120) -> str:
    """Errors can quote feed content: keep the table to one bounded line per feed."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def print_catalogue(*, out: TextIO, cfg: FeedsConfig | None = None) -> int:
    """List the built-in feeds: name, format, scope, category, licence, URL."""
    enabled = set((cfg or FeedsConfig()).catalogue)
    for c in CATALOGUE:
        scope = c.match or "(format)"
        mark = "*" if c.name in enabled else " "
        out.write(f"{mark} {c.name:28} {c.format:13} {scope:8} {c.category:13} {c.licence}\n")
        out.write(f"    {c.url}{'  - ' + c.notes if c.notes else ''}\n")
    out.write("* = enabled by the configuration\n")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Stand-alone runner: ``python -m feeds.cli {update,status,catalogue} --state DIR``."""
    parser = argparse.ArgumentParser(prog="python -m feeds.cli")
    parser.add_argument("command", choices=("update", "status", "catalogue"))
    parser.add_argument("--state", default=str(FeedsConfig().state_path()), help="state directory")
    parser.add_argument(
        "--artifact", default="", help="compiled list (default STATE/../blocklist.pfb)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    cfg = replace(FeedsConfig(), state_dir=args.state)
    artifact = Path(args.artifact or Path(args.state).parent / "blocklist.pfb")
    if args.command == "catalogue":
        return print_catalogue(out=sys.stdout, cfg=cfg)
    if args.command == "status":
        return print_status(cfg, out=sys.stdout, artifact_path=artifact)
    try:
        return update(cfg, artifact_path=artifact, out=sys.stdout, interactive=sys.stdout.isatty())
    except KeyboardInterrupt:
        return EXIT_NOTHING


if __name__ == "__main__":
    raise SystemExit(main())
