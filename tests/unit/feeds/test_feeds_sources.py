"""Feed configuration, the built-in catalogue, and the state files."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from feeds.errors import FeedError
from feeds.normalize import BELOW, SELF
from feeds.parsers import FORMATS, NEEDS_MATCH
from feeds.sources import (
    CATALOGUE,
    catalogue_by_name,
    local_path,
    resolve_sources,
    url_host,
)
from feeds.state import FeedState, StateStore
from resolver.config.feeds import FeedsConfig, FeedSource


def test_catalogue_entries_are_complete() -> None:
    names = [c.name for c in CATALOGUE]
    assert len(names) == len(set(names))
    for c in CATALOGUE:
        assert c.url.startswith("https://"), c.name
        assert c.format in FORMATS and c.format != "auto", c.name
        assert c.format not in NEEDS_MATCH or c.match is not None, c.name
        assert c.category and c.licence, c.name
    for wanted in (
        "urlhaus",
        "threatfox",
        "phishing-army",
        "phishing-database",
        "hagezi-tif",
        "oisd-big",
        "blocklistproject-malware",
        "ut1-malware",
        "red-flag-domains",
    ):
        assert wanted in names


def test_default_set_is_permissive_and_resolves() -> None:
    cat = catalogue_by_name()
    cfg = FeedsConfig()
    for name in cfg.catalogue:
        licence = cat[name].licence
        assert "GPL" not in licence and "NC" not in licence and "non-commercial" not in licence
    feeds = resolve_sources(cfg)
    assert [f.name for f in feeds] == list(cfg.catalogue)
    ut1 = next(f for f in feeds if f.name == "ut1-malware")
    assert ut1.mask == SELF | BELOW and ut1.format == "domains"
    pdb = next(f for f in feeds if f.name == "phishing-database")
    assert pdb.mask == SELF and pdb.category == "phishing"


def test_sources_override_and_extend_the_catalogue() -> None:
    cfg = FeedsConfig(
        catalogue=("urlhaus", "ut1-malware"),
        sources=(
            FeedSource(name="ut1-malware", enabled=False),
            FeedSource(name="red-flag-domains", category="scam"),
            FeedSource(name="mine", url="/srv/mine.txt", format="domains", match="subtree"),
        ),
    )
    feeds = {f.name: f for f in resolve_sources(cfg)}
    assert list(feeds) == ["urlhaus", "ut1-malware", "red-flag-domains", "mine"]
    assert not feeds["ut1-malware"].enabled
    assert feeds["ut1-malware"].url.endswith("/malware/domains")  # inherited
    assert feeds["red-flag-domains"].mask == SELF
    assert feeds["mine"].mask == SELF | BELOW and feeds["mine"].category == "malware"
    assert feeds["mine"].source == "feed:mine"


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (FeedsConfig(catalogue=("nope",)), "unknown feed"),
        (FeedsConfig(catalogue=(), sources=(FeedSource(name="x"),)), "no url"),
        (FeedsConfig(catalogue=(), sources=(FeedSource(name="Bad Name", url="/x"),)), "name"),
        (FeedsConfig(catalogue=(), sources=(FeedSource(name="../x", url="/x"),)), "name"),
        (FeedsConfig(catalogue=(), sources=(FeedSource(name="x", url="ftp://h/x"),)), "https"),
        (
            FeedsConfig(catalogue=(), sources=(FeedSource(name="x", url="/x", format="domains"),)),
            "match",
        ),
        (
            FeedsConfig(
                catalogue=(),
                sources=(FeedSource(name="x", url="/x"), FeedSource(name="x", url="/y")),
            ),
            "twice",
        ),
        (
            FeedsConfig(
                catalogue=(), sources=(FeedSource(name="x", url="/x", min_confidence=101),)
            ),
            "confidence",
        ),
    ],
)
def test_configuration_errors(cfg: FeedsConfig, message: str) -> None:
    with pytest.raises(FeedError, match=message):
        resolve_sources(cfg)


def test_config_fields_use_loader_friendly_types_and_defaults() -> None:
    """The config loader reads str, int, float, bool, Literal, X | None, tuples, dataclasses."""
    for cls in (FeedsConfig, FeedSource):
        assert dataclasses.is_dataclass(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            assert f.default is not dataclasses.MISSING, f.name
            assert f.name in hints
    assert "feeds:" in FeedsConfig().describe()


def test_url_helpers() -> None:
    assert url_host("https://urlhaus.abuse.ch/downloads/hostfile/") == "urlhaus.abuse.ch"
    assert url_host("http://127.0.0.1:8080/x") == ""
    assert url_host("/srv/list.txt") == ""
    assert local_path("/srv/list.txt") == Path("/srv/list.txt")
    assert local_path("file:///srv/list.txt") == Path("/srv/list.txt")
    assert local_path("https://x.example/") is None


def test_state_round_trip_and_garbage(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    assert store.load("x") == FeedState()
    st = FeedState(url="u", entries=5, reject_reasons={"ip": 2}, last_error="boom")
    store.save("x", st)
    assert store.load("x") == st
    (tmp_path / "state" / "y.json").write_text('{"entries": "many", "url": 3, "extra": 1}')
    assert store.load("y") == FeedState()
    (tmp_path / "state" / "z.json").write_text("[not json")
    assert store.load("z") == FeedState()
    store.save_fingerprint("abc", tmp_path / "b.pfb", 3)
    assert store.load_fingerprint() == "abc"


def test_only_one_update_at_a_time(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    with store.lock() as first:
        assert first
        with StateStore(tmp_path).lock() as second:
            assert not second
    with store.lock() as again:
        assert again
