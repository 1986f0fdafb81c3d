"""Merging feeds and the compiled artifact (FORMATS.md §9; resolver/blocklist_file.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from feeds.compiler import Compiler, FeedSet, collect, write_artifact
from feeds.never_block import PublicSuffixes, load_never_block
from feeds.normalize import BELOW, SELF, Entry, ParseStats
from feeds.parsers import ParseOptions, parse_file
from feeds.sources import Feed
from resolver import blocklist_file
from resolver.core.blocklist import EXACT, SUBTREE, WILDCARD, Blocklist, Match, MemoryBlocklist
from resolver.errors import ParafoudreError

DATA = Path(__file__).resolve().parents[2] / "data" / "feeds"
PSL = PublicSuffixes(
    [
        "// test PSL",
        *("com", "fr", "gouv.fr", "github.io", "*.at.ply.gg", "*.digitaloceanspaces.com"),
        *("xxx", "example"),
    ]
)


def feed(name: str, category: str = "malware", *, allow_tld: bool = False) -> Feed:
    return Feed(name, f"file:///{name}", "hosts", SELF, category, True, allow_tld, 0)


def fs(*entries: Entry) -> FeedSet:
    return collect(entries, ParseStats())


def build(
    tmp_path: Path,
    sets: list[FeedSet],
    feeds: list[Feed] | None = None,
    *,
    never_block: tuple[str, ...] = (),
    allowlist: tuple[str, ...] = (),
) -> tuple[blocklist_file.CompiledBlocklist, dict[str, tuple[int, str, str]]]:
    feeds = feeds or [feed(f"f{i}") for i in range(len(sets))]
    c = Compiler(feeds, PSL, never_block, allowlist)
    for i, s in enumerate(sets):
        c.add(i, s)
    path = tmp_path / "blocklist.pfb"
    write_artifact(path, c, meta={"test": True})
    bl = blocklist_file.read(path)
    return bl, {n: (scope, src, cat) for n, scope, src, cat in bl.entries()}


def test_collect_merges_duplicates_and_rpz_pairs() -> None:
    s = fs(
        Entry("a.example", SELF),
        Entry("a.example", SELF),
        Entry("b.example", SELF),
        Entry("b.example", BELOW),
    )
    assert s.blocks == {"a.example": SELF, "b.example": SELF | BELOW}


def test_collect_badfilter_cancels_the_rule() -> None:
    stats = ParseStats()
    s = collect([Entry("x.example", 3), Entry("x.example", 3, badfilter=True)], stats)
    assert s.blocks == {}
    assert stats.notes["badfilter"] == 1


def test_scopes_and_matching(tmp_path: Path) -> None:
    bl, entries = build(
        tmp_path,
        [fs(Entry("exact.example", SELF), Entry("sub.example", 3), Entry("wild.example", BELOW))],
    )
    assert entries == {
        "exact.example": (EXACT, "feed:f0", "malware"),
        "sub.example": (SUBTREE, "feed:f0", "malware"),
        "wild.example": (WILDCARD, "feed:f0", "malware"),
    }
    assert bl.match("exact.example") == Match("exact.example", "feed:f0", "malware")
    assert bl.match("www.exact.example") is None
    assert bl.match("sub.example") is not None
    assert bl.match("a.b.sub.example") == Match("sub.example", "feed:f0", "malware")
    assert bl.match("xsub.example") is None  # a label boundary, not a string suffix
    assert bl.match("wild.example") is None
    assert bl.match("a.wild.example") is not None
    assert bl.match("example") is None
    assert len(bl) == 3
    assert bl.meta == {"test": True}


def test_provenance_of_several_feeds(tmp_path: Path) -> None:
    feeds = [feed("urlhaus", "malware"), feed("threatfox", "c2"), feed("pdb", "phishing")]
    _bl, entries = build(
        tmp_path,
        [fs(Entry("both.example", SELF)), fs(Entry("both.example", SELF)), fs()],
        feeds,
    )
    assert entries["both.example"] == (EXACT, "feed:urlhaus,feed:threatfox", "c2,malware")


def test_subtree_subsumes_children_exact_stays_narrow(tmp_path: Path) -> None:
    _, entries = build(
        tmp_path,
        [
            fs(Entry("evil.example", 3), Entry("a.evil.example", SELF)),
            fs(Entry("b.c.evil.example", 3), Entry("parent.example", SELF)),
            fs(Entry("child.parent.example", SELF)),
        ],
    )
    # children of a SUBTREE go; an EXACT parent never widens to cover its children
    assert set(entries) == {"evil.example", "parent.example", "child.parent.example"}


def test_public_suffixes_refused_tenant_hosts_kept(tmp_path: Path) -> None:
    feeds = [feed("f0"), feed("nsfw", allow_tld=True)]
    _, entries = build(
        tmp_path,
        [
            fs(
                Entry("github.io", 3),
                Entry("gouv.fr", 3),
                Entry("someone.github.io", 3),
                Entry("region.at.ply.gg", 3),
                Entry("only-below.at.ply.gg", BELOW),
                # A shared region endpoint under "*.digitaloceanspaces.com" (issue 16.4):
                # even exact, blocking it cuts off every tenant of the region.
                Entry("ams3.digitaloceanspaces.com", SELF),
                Entry("evil-bucket.ams3.digitaloceanspaces.com", 3),
            ),
            fs(Entry("xxx", 3)),
        ],
        feeds,
    )
    assert "github.io" not in entries and "gouv.fr" not in entries
    assert entries["someone.github.io"][0] == SUBTREE  # a user's site, never its platform
    # Under a "*." rule the PSL makes the name itself public: refused, exact or not.
    assert "region.at.ply.gg" not in entries
    assert "only-below.at.ply.gg" not in entries
    assert "ams3.digitaloceanspaces.com" not in entries
    assert entries["evil-bucket.ams3.digitaloceanspaces.com"][0] == SUBTREE  # one tenant
    assert entries["xxx"][0] == SUBTREE  # deliberate TLD block, behind the feed's flag


def test_tld_from_a_feed_without_the_flag_is_refused(tmp_path: Path) -> None:
    _, entries = build(tmp_path, [fs(Entry("xxx", 3), Entry("ok.example", SELF))])
    assert "xxx" not in entries


def test_never_block_protects_names_their_subtree_and_their_parents_subtree(
    tmp_path: Path,
) -> None:
    _, entries = build(
        tmp_path,
        [
            fs(
                Entry("impots.gouv.fr", SELF),
                Entry("cfspart.impots.gouv.fr", SELF),
                Entry("google.com", 3),  # would swallow accounts.google.com
                Entry("evil-google.com", 3),
                Entry("microsoft.com", SELF),  # exact parent: login.microsoft.com unaffected
            )
        ],
        never_block=("impots.gouv.fr", "accounts.google.com", "login.microsoft.com"),
    )
    assert set(entries) == {"evil-google.com", "microsoft.com"}


def test_shipped_never_block_list_has_the_essentials() -> None:
    names = load_never_block(feed_hosts=["urlhaus.abuse.ch"])
    for n in (
        "impots.gouv.fr",
        "service-public.fr",
        "ants.gouv.fr",
        "ameli.fr",
        "login.microsoftonline.com",
        "accounts.google.com",
        "dns.quad9.net",
        "urlhaus.abuse.ch",
        "raw.githubusercontent.com",
    ):
        assert n in names


def test_never_block_file_replaces_the_shipped_one(tmp_path: Path) -> None:
    f = tmp_path / "nb.txt"
    f.write_text("# mine\nmairie-exemple.fr  # our own site\nNOT VALID\n")
    assert load_never_block(str(f), extra=["extra.example"]) == {
        "mairie-exemple.fr",
        "extra.example",
    }


def test_allows_from_feeds_and_important(tmp_path: Path) -> None:
    _, entries = build(
        tmp_path,
        [
            fs(
                Entry("allowed.example", 3),
                Entry("important.example", 3, important=True),
                Entry("x.allowed-tree.example", SELF),
                Entry("allowed-tree.example", SELF),
            ),
            fs(
                Entry("allowed.example", 3, allow=True),
                Entry("important.example", 3, allow=True),
                Entry("allowed-tree.example", BELOW, allow=True),
            ),
        ],
    )
    # an allow on a parent's subtree lifts the child; the parent itself stays (BELOW only)
    assert set(entries) == {"important.example", "allowed-tree.example"}


def test_operator_allowlist_beats_important(tmp_path: Path) -> None:
    _, entries = build(
        tmp_path,
        [fs(Entry("mine.example", 3, important=True), Entry("a.ours.example", SELF))],
        allowlist=("mine.example", "ours.example"),
    )
    assert entries == {}


def test_never_block_and_psl_with_the_shipped_data(tmp_path: Path) -> None:
    stats = ParseStats()
    s = collect(parse_file(DATA / "urlhaus_csv_online.excerpt.csv", "urlhaus-csv",
                           ParseOptions(), stats), stats)  # fmt: skip
    assert "github.com" in s.blocks
    c = Compiler([feed("urlhaus-csv")], PublicSuffixes.bundled(), load_never_block())
    c.add(0, s)
    path = tmp_path / "b.pfb"
    report = write_artifact(path, c, meta={})
    bl = blocklist_file.read(path)
    for host in ("github.com", "raw.githubusercontent.com", "gist.githubusercontent.com"):
        assert bl.match(host) is None
    assert report.refused["protected"] >= 1


def test_artifact_matches_memory_blocklist(tmp_path: Path) -> None:
    """The compiled list answers exactly like the reference in-memory implementation."""
    stats = ParseStats()
    sets = [
        collect(parse_file(DATA / name, fmt, ParseOptions(mask=mask), stats), stats)
        for name, fmt, mask in (
            ("ransomware.hosts.txt", "hosts", SELF),
            ("ut1_malware_domains.excerpt.txt", "domains", SELF | BELOW),
            ("synthetic_rpz_edge.zone", "rpz", SELF),
        )
    ]
    bl, entries = build(tmp_path, sets)
    ref: Blocklist = MemoryBlocklist(
        (n, scope, Match(n, src, cat)) for n, (scope, src, cat) in entries.items()
    )
    queries = set()
    for n in entries:
        queries |= {n, "www." + n, "a.b." + n, "x" + n, n.split(".", 1)[-1]}
    for q in sorted(queries):
        assert bl.match(q) == ref.match(q), q


def test_write_is_atomic_and_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "b.pfb"
    blocklist_file.write_atomic(path, [("a.example", EXACT, 0)], [("feed:x", "malware")])
    old_inode = path.stat().st_ino
    first = blocklist_file.read(path)
    blocklist_file.write_atomic(path, [("b.example", EXACT, 0)], [("feed:x", "malware")])
    assert path.stat().st_ino != old_inode  # replaced, not rewritten in place
    assert first.match("a.example") is not None  # the mapped old file still answers
    assert blocklist_file.read(path).match("b.example") is not None
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert [p.name for p in path.parent.iterdir()] == ["b.pfb"]  # no temp file left


def test_empty_artifact(tmp_path: Path) -> None:
    path = tmp_path / "b.pfb"
    blocklist_file.write_atomic(path, [], [])
    bl = blocklist_file.read(path)
    assert len(bl) == 0 and bl.match("a.example") is None


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "version", "empty"])
def test_corrupt_or_foreign_artifact_is_refused(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "b.pfb"
    blocklist_file.write_atomic(path, [("a.example", EXACT, 0)], [("feed:x", "m")])
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[-3] ^= 0xFF
    elif damage == "magic":
        data[0:8] = b"NOTMINE!"
    elif damage == "version":
        data[8] = 99
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with pytest.raises(blocklist_file.BlocklistFileError) as info:
        blocklist_file.read(path)
    assert isinstance(info.value, ParafoudreError)
    if damage == "version":
        assert "version" in str(info.value)


def test_missing_artifact_raises_parafoudre_error(tmp_path: Path) -> None:
    with pytest.raises(ParafoudreError):
        blocklist_file.read(tmp_path / "none.pfb")


def test_bad_entry_is_refused_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "b.pfb"
    with pytest.raises(blocklist_file.BlocklistFileError):
        blocklist_file.write_atomic(path, [("a.example", 7, 0)], [("feed:x", "m")])
    assert not path.exists() and os.listdir(tmp_path) == []
