"""The ``feeds`` section: which threat feeds ``parafoudre feeds update`` fetches, and its rails.

An operator enables a catalogue feed by name (``catalogue: [urlhaus, threatfox]``) or
describes any other feed under ``sources:``; a source named like a catalogue feed overrides it
field by field (``{name: ut1-malware, enabled: false}``). The catalogue itself, and turning
this section into the feeds to fetch, live in ``feeds.sources``: the config only says what the
operator wrote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# The formats feeds.parsers reads ("auto": sniff the first lines).
Format = Literal[
    "auto",
    "hosts",
    "domains",
    "wildcard",
    "adblock",
    "rpz",
    "dnsmasq",
    "urlhaus-csv",
    "threatfox-csv",
    "urls",
]
MatchMode = Literal["exact", "subtree"]


@dataclass(frozen=True, slots=True)
class FeedSource:
    """One feed as the operator writes it; empty fields inherit from the catalogue entry."""

    # Short id, [a-z0-9_-], shown as "feed:<name>" in the block log. A catalogue name
    # (`parafoudre feeds catalogue`) inherits that feed's settings; fields set here win.
    name: str = ""
    # https://, http://, file:// or an absolute path; "" = the catalogue's URL.
    url: str = ""
    # hosts, domains, wildcard, adblock, rpz, dnsmasq, urlhaus-csv, threatfox-csv, urls or
    # auto (detect); unset = the catalogue's format, else auto.
    format: Format | None = None
    # What a bare "example.com" means in this feed: exact (that name) or subtree (the name and
    # every name under it). Required for plain domain lists: the syntax does not say.
    match: MatchMode | None = None
    # malware, phishing, c2, scam, exfiltration, ...; "" = the catalogue's, else malware.
    category: str = ""
    # false keeps the feed configured but skips it.
    enabled: bool = True
    # Let this feed block whole TLDs (the OISD nsfw lists block "xxx", "porn", ...).
    allow_tld: bool = False
    # threatfox-csv only: skip IOCs whose confidence_level (0-100) is below this.
    min_confidence: int = 0

    def describe(self) -> str:
        """One line for logs: name, format and URL."""
        return f"{self.name}: {self.format or 'auto'} {self.url}"


@dataclass(frozen=True, slots=True)
class FeedsConfig:
    """The ``feeds:`` section: which feeds, where their state lives, and the safety rails."""

    # Built-in feeds to enable by name (`parafoudre feeds catalogue` lists them). The default
    # is a permissively licensed threat-only set.
    catalogue: tuple[str, ...] = (
        "urlhaus",
        "threatfox",
        "phishing-database",
        "blocklistproject-phishing",
        "blocklistproject-malware",
        "blocklistproject-ransomware",
        "blocklistproject-scam",
        "ut1-malware",
    )
    # Other feeds, or changes to a catalogue feed of the same name ({name: x, enabled: false}).
    sources: tuple[FeedSource, ...] = ()
    # Last good copy and status of every feed; "" = <state_dir>/feeds, the top-level state_dir
    # ($STATE_DIRECTORY under systemd, else ~/.local/state/parafoudre).
    state_dir: str = ""
    # If set, send SIGHUP to the resolver whose pid is in this file after a new list is written
    # (the resolver also notices the new file by itself).
    pid_file: str = ""
    # A feed that loses more than this fraction of its entries at once keeps its last good copy.
    max_shrink: float = 0.5
    # Size cap per feed in bytes, after decompression.
    max_bytes: int = 200_000_000
    # Seconds to connect to a feed server, and for a whole download.
    connect_timeout: float = 10.0
    total_timeout: float = 300.0
    # Extra attempts after a network error, a 5xx or a 429, the first after retry_backoff
    # seconds, then doubling.
    retries: int = 3
    retry_backoff: float = 5.0
    # Extra names no feed may block, each with every name under it.
    never_block: tuple[str, ...] = ()
    # A file replacing the shipped never-block list (start from feeds/data/never-block.txt).
    never_block_file: str = ""
    # Names taken out of the compiled list, each with every name under it.
    allowlist: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for logs: how many feeds, where the state is.

        Counted as ``feeds.sources.resolve_sources`` merges them (a source overrides the
        catalogue feed of its name), without looking the catalogue up.
        """
        enabled = dict.fromkeys(self.catalogue, True)
        enabled.update((s.name, s.enabled) for s in self.sources)
        on = sum(enabled.values())
        return f"feeds: {on} of {len(enabled)} enabled, state in {self.state_path()}"

    def state_path(self) -> Path:
        """The directory of the feeds' state (see ``state_dir``)."""
        if self.state_dir:
            return Path(self.state_dir).expanduser()
        env = os.environ.get("STATE_DIRECTORY")
        root = Path(env.split(":")[0]) if env else Path("~/.local/state/parafoudre").expanduser()
        return root / "feeds"
