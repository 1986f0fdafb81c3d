"""The built-in catalogue of public feeds, and the feeds to fetch as the config resolves them.

The ``feeds:`` section itself (``FeedsConfig``, ``FeedSource``) is ``resolver.config.feeds``.
An operator enables a catalogue feed by name (``catalogue: [urlhaus, threatfox]``) or
describes any other feed under ``sources:``; a source named like a catalogue feed overrides it
field by field (``{name: ut1-malware, enabled: false}``). URLs, formats, scopes and licences
come from /work/shared/feeds/SOURCES.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from feeds.errors import FeedError
from feeds.normalize import BELOW, SELF, is_ip_literal
from feeds.parsers import FORMATS, NEEDS_MATCH
from resolver.config.feeds import FeedsConfig, FeedSource, MatchMode

# Feed names become file names and "feed:<name>" in the block log: keep them tame.
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


@dataclass(frozen=True, slots=True)
class CatalogueFeed:
    """A well-known public feed, ready to enable by name."""

    name: str
    url: str
    format: str
    match: MatchMode | None
    category: str
    licence: str
    notes: str = ""
    allow_tld: bool = False


@dataclass(frozen=True, slots=True)
class Feed:
    """A source with everything resolved: what the updater works from."""

    name: str
    url: str
    format: str
    mask: int  # SELF, SELF | BELOW, or 0 when the feed does not say (formats that fix it)
    category: str
    enabled: bool
    allow_tld: bool
    min_confidence: int
    licence: str = ""

    @property
    def source(self) -> str:
        """The provenance tag written to the block log."""
        return f"feed:{self.name}"


_UH = "https://urlhaus.abuse.ch/downloads"
_TF = "https://threatfox.abuse.ch"
_BLP = "https://blocklistproject.github.io/Lists"
_HAGEZI = "https://cdn.jsdelivr.net/gh/hagezi/dns-blocklists@latest"
_RM = "https://raw.githubusercontent.com/romainmarcoux/malicious-domains/main"
_UT1 = "https://raw.githubusercontent.com/olbat/ut1-blacklists/master/blacklists"
_ABUSE_CH = "abuse.ch terms of use (data labelled CC0 downstream); check for commercial use"

CATALOGUE: Final[tuple[CatalogueFeed, ...]] = (
    CatalogueFeed("urlhaus", f"{_UH}/hostfile/", "hosts", None, "malware", _ABUSE_CH,
                  "hosts wholly used for malware distribution"),
    CatalogueFeed("urlhaus-rpz", f"{_UH}/rpz/", "rpz", None, "malware", _ABUSE_CH),
    CatalogueFeed("urlhaus-csv", f"{_UH}/csv_online/", "urlhaus-csv", None, "malware",
                  _ABUSE_CH, "URLs: hosts of shared platforms rely on the never-block list"),
    CatalogueFeed("threatfox", f"{_TF}/downloads/hostfile/", "hosts", None, "c2", _ABUSE_CH),
    CatalogueFeed("threatfox-csv", f"{_TF}/export/csv/recent/", "threatfox-csv", None, "c2",
                  _ABUSE_CH, "last ~48 h of IOCs; domain and URL IOCs only"),
    CatalogueFeed("phishing-army", "https://phishing.army/download/phishing_army_blocklist_extended.txt",
                  "domains", "exact", "phishing", "CC BY-NC 4.0 (non-commercial)"),
    CatalogueFeed("openphish", "https://openphish.com/feed.txt", "urls", None, "phishing",
                  "OpenPhish terms, non-commercial use only"),
    CatalogueFeed("phishing-database",
                  "https://raw.githubusercontent.com/Phishing-Database/Phishing.Database/master/phishing-domains-ACTIVE.txt",
                  "domains", "exact", "phishing", "MIT"),
    CatalogueFeed("cert-polska", "https://hole.cert.pl/domains/v2/domains.txt", "domains", "exact",
                  "phishing", "free to use (CERT Polska announcement)", "aimed at Polish users"),
    CatalogueFeed("hagezi-tif", f"{_HAGEZI}/wildcard/tif-onlydomains.txt", "domains", "subtree",
                  "malware", "GPL-3.0", "~2.1 M names"),
    CatalogueFeed("hagezi-tif-medium", f"{_HAGEZI}/wildcard/tif.medium-onlydomains.txt", "domains",
                  "subtree", "malware", "GPL-3.0"),
    CatalogueFeed("hagezi-tif-mini", f"{_HAGEZI}/wildcard/tif.mini-onlydomains.txt", "domains",
                  "subtree", "malware", "GPL-3.0"),
    CatalogueFeed("oisd-big", "https://big.oisd.nl/domainswild2", "domains", "subtree", "ads",
                  "GPL-3.0", "ads and trackers as well as malware"),
    CatalogueFeed("oisd-small", "https://small.oisd.nl/domainswild2", "domains", "subtree", "ads",
                  "GPL-3.0"),
    CatalogueFeed("oisd-nsfw", "https://nsfw.oisd.nl/domainswild2", "domains", "subtree", "adult",
                  "GPL-3.0", "blocks whole TLDs (xxx, porn...)", allow_tld=True),
    CatalogueFeed("stevenblack", "https://raw.githubusercontent.com/StevenBlack/hosts/master/hosts",
                  "hosts", None, "ads", "MIT", "ads and malware"),
    CatalogueFeed("blocklistproject-malware", f"{_BLP}/malware.txt", "hosts", None, "malware",
                  "Unlicense"),
    CatalogueFeed("blocklistproject-phishing", f"{_BLP}/phishing.txt", "hosts", None, "phishing",
                  "Unlicense"),
    CatalogueFeed("blocklistproject-ransomware", f"{_BLP}/ransomware.txt", "hosts", None,
                  "malware", "Unlicense"),
    CatalogueFeed("blocklistproject-scam", f"{_BLP}/scam.txt", "hosts", None, "scam", "Unlicense"),
    CatalogueFeed("digitalside", "https://osint.digitalside.it/Threat-Intel/lists/latestdomains.txt",
                  "domains", "exact", "malware", "MIT (reported)", "7-day rolling window"),
    CatalogueFeed("ut1-malware", f"{_UT1}/malware/domains", "domains", "subtree", "malware",
                  "CC BY-SA 4.0", "Université Toulouse Capitole, French"),
    CatalogueFeed("ut1-cryptojacking", f"{_UT1}/cryptojacking/domains", "domains", "subtree",
                  "cryptojacking", "CC BY-SA 4.0"),
    # Category "bypass": ways around the box's filter (outside encrypted DNS, VPNs, proxies).
    # For public networks; an administration's LAN may need its teleworkers' VPN.
    CatalogueFeed("ut1-doh", f"{_UT1}/doh/domains", "domains", "subtree", "bypass",
                  "CC BY-SA 4.0", "public DNS-over-HTTPS/TLS resolvers"),
    CatalogueFeed("ut1-vpn", f"{_UT1}/vpn/domains", "domains", "subtree", "bypass",
                  "CC BY-SA 4.0", "VPN services"),
    CatalogueFeed("hagezi-doh", f"{_HAGEZI}/wildcard/doh-onlydomains.txt", "domains", "subtree",
                  "bypass", "GPL-3.0", "encrypted DNS resolvers only (~1,000 names)"),
    CatalogueFeed("hagezi-bypass", f"{_HAGEZI}/wildcard/doh-vpn-proxy-bypass-onlydomains.txt",
                  "domains", "subtree", "bypass", "GPL-3.0",
                  "encrypted DNS, VPN, Tor and web proxies (~3,000 names)"),
    CatalogueFeed("red-flag-domains", f"{_RM}/sources/red.flag.domains.txt", "domains", "exact",
                  "scam", "not stated", "suspicious new names under French TLDs"),
    CatalogueFeed("romainmarcoux-aa", f"{_RM}/full-domains-aa.txt", "domains", "exact",
                  "phishing", "MIT", "aggregate, chunk 1 of 3"),
    CatalogueFeed("romainmarcoux-ab", f"{_RM}/full-domains-ab.txt", "domains", "exact",
                  "phishing", "MIT", "aggregate, chunk 2 of 3"),
    CatalogueFeed("romainmarcoux-ac", f"{_RM}/full-domains-ac.txt", "domains", "exact",
                  "phishing", "MIT", "aggregate, chunk 3 of 3"),
)  # fmt: skip

_MASKS: Final = {"exact": SELF, "subtree": SELF | BELOW}


def catalogue_by_name() -> dict[str, CatalogueFeed]:
    """The catalogue as a name-to-entry mapping."""
    return {c.name: c for c in CATALOGUE}


def resolve_sources(cfg: FeedsConfig) -> list[Feed]:
    """The configured feeds, catalogue settings filled in, in configuration order.

    Raises FeedError for an unknown catalogue name, a bad feed name or URL, a duplicate, or a
    plain domain list without a ``match`` mode.
    """
    cat = catalogue_by_name()
    merged: dict[str, FeedSource] = {}
    for name in cfg.catalogue:
        if name not in cat:
            raise FeedError(
                f"feeds.catalogue: unknown feed {name!r}; see `parafoudre feeds catalogue`"
            )
        merged[name] = FeedSource(name=name)
    seen: set[str] = set()
    for src in cfg.sources:
        if src.name in seen:
            raise FeedError(f"feeds.sources: {src.name!r} is listed twice")
        seen.add(src.name)
        merged[src.name] = src
    return [_resolve(src, cat.get(src.name)) for src in merged.values()]


def _resolve(src: FeedSource, base: CatalogueFeed | None) -> Feed:
    where = f"feeds.sources[{src.name!r}]"
    if _NAME.fullmatch(src.name) is None:
        raise FeedError(f"{where}: a feed name is 1-63 characters of a-z, 0-9, '-' and '_'")
    url = src.url or (base.url if base else "")
    if not url:
        raise FeedError(f"{where}: no url, and {src.name!r} is not in the catalogue")
    check_url(url, where)
    fmt = src.format or (base.format if base else "auto")
    if fmt not in FORMATS:
        raise FeedError(f"{where}: unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    match = src.match or (base.match if base else None)
    if fmt in NEEDS_MATCH and match is None:
        raise FeedError(
            f"{where}: a {fmt} list does not say whether example.com covers its subdomains;"
            " set match: exact or match: subtree"
        )
    if not 0 <= src.min_confidence <= 100:
        raise FeedError(f"{where}: min_confidence is 0-100")
    return Feed(
        name=src.name,
        url=url,
        format=fmt,
        mask=_MASKS[match] if match else 0,
        category=src.category or (base.category if base else "malware"),
        enabled=src.enabled,
        allow_tld=src.allow_tld or (base.allow_tld if base else False),
        min_confidence=src.min_confidence,
        licence=base.licence if base else "",
    )


def check_url(url: str, where: str) -> None:
    """Accept https, http, file: URLs and absolute paths; refuse the rest clearly."""
    if url.startswith("/"):
        return
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("https", "http", "file"):
        raise FeedError(f"{where}: url {url!r} must be https://, http://, file:// or a path")


def url_host(url: str) -> str:
    """The host of an http(s) feed URL ("" for local files): it joins the never-block list."""
    if url.startswith("/"):
        return ""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return ""
    host = (parts.hostname or "").rstrip(".")
    return "" if is_ip_literal(host) else host


def local_path(url: str) -> Path | None:
    """The file a ``file:`` URL or absolute path names, else None."""
    if url.startswith("/"):
        return Path(url)
    parts = urlsplit(url)
    if parts.scheme.lower() == "file":
        return Path(parts.path)
    return None
