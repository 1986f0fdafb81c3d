"""The operator's own list files: name normalisation and line reading (hostile input)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from resolver.core.blocklist import EXACT, SUBTREE, Match
from resolver.list_files import ListFileError, load_list, normalise, read_names


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("example.com", "example.com"),
        ("  Example.COM.  ", "example.com"),  # spaces, upper case, trailing dot
        ("*.tracker.example", "tracker.example"),  # wildcard prefix: the subtree
        ("münchen.de", "xn--mnchen-3ya.de"),  # IDN to A-label (punycode)
        ("ÉCOLE.fr", "xn--cole-9oa.fr"),
        ("xn--mnchen-3ya.de", "xn--mnchen-3ya.de"),
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("a-b.c-d.example", "a-b.c-d.example"),
        ("localhost", "localhost"),  # valid text; read_names wants a dot
        ("a" * 63 + ".example", "a" * 63 + ".example"),
        (".".join(["a" * 63] * 3) + "." + "b" * 61, ".".join(["a" * 63] * 3) + "." + "b" * 61),
    ],
)
def test_normalise_accepts(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        ".",
        "*.",
        "*",
        "a..b",  # empty label
        ".example.com",
        "a" * 64 + ".example",  # label too long
        ".".join(["a" * 63] * 4),  # 255 characters
        "exa mple.com",
        "exa$mple.com",
        "http://example.com/",
        "example.com/path",
        "user@example.com",
        "*.*.example.com",
        "ex*ample.com",
        "例え\x00.jp",
        "\u200b.com",  # zero-width space: not a valid IDN label
    ],
)
def test_normalise_rejects(raw: str) -> None:
    assert normalise(raw) is None


def test_normalise_rejects_names_too_long_once_encoded() -> None:
    label = "éàüö" * 11  # 44 characters, 49 once encoded
    raw = ".".join([label] * 5)
    assert len(raw) < 253
    assert normalise(raw) is None


# --- read_names -----------------------------------------------------------------------------------


def write(tmp_path: Path, text: str | bytes) -> Path:
    p = tmp_path / "list.txt"
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def rejected(caplog: pytest.LogCaptureFixture) -> int:
    counts = [
        int(str(r.args[1]))
        for r in caplog.records
        if r.levelno == logging.WARNING and isinstance(r.args, tuple) and len(r.args) == 2
    ]
    return sum(counts)


LIST = """\
# operator list: one name per line
evil.example
Bad.Example.   # trailing comment
  spaced.example\t

*.wild.example
0.0.0.0 hosts.example
127.0.0.1\tloopback-hosts.example
::1 v6-hosts.example
münchen.de
not a name at all
localhost
http://url.example/x
   # indented comment
"""


def test_read_names(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="resolver.list_files"):
        names = list(read_names(write(tmp_path, LIST)))
    assert names == [
        "evil.example",
        "bad.example",
        "spaced.example",
        "wild.example",
        "hosts.example",
        "loopback-hosts.example",
        "v6-hosts.example",
        "xn--mnchen-3ya.de",
    ]
    # "not a name at all", "localhost" (no dot) and the URL
    assert rejected(caplog) == 3


def test_read_names_all_good_logs_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="resolver.list_files"):
        assert list(read_names(write(tmp_path, "a.example\nb.example\n"))) == [
            "a.example",
            "b.example",
        ]
    assert rejected(caplog) == 0


def test_read_names_bad_utf8_line_is_rejected_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = b"good.example\n\xff\xfe.example\nalso-good.example\n"
    with caplog.at_level(logging.WARNING, logger="resolver.list_files"):
        assert list(read_names(write(tmp_path, data))) == ["good.example", "also-good.example"]
    assert rejected(caplog) == 1


def test_read_names_very_long_line(tmp_path: Path) -> None:
    data = "x" * 100_000 + ".example\nok.example\n"
    assert list(read_names(write(tmp_path, data))) == ["ok.example"]


def test_read_names_missing_file_is_an_error_the_caller_handles(tmp_path: Path) -> None:
    # Not silently empty: on a reload the holder keeps the last good copy instead.
    with pytest.raises(ListFileError) as info:
        list(read_names(tmp_path / "missing.txt"))
    assert info.value.reason == "No such file or directory"
    assert str(info.value) == (
        f"list file {tmp_path / 'missing.txt'} cannot be read (No such file or directory)"
    )


def test_read_names_a_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ListFileError) as info:
        list(read_names(tmp_path))
    assert info.value.reason == "Is a directory"


def test_load_list_of_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ListFileError):
        load_list(tmp_path / "gone.txt", "list:gone", "malware", "subtree")


@pytest.mark.parametrize("line", ["0.0.0.0 a.example b.example", "1.2.3.4", "0.0.0.0"])
def test_read_names_never_yields_an_ip_address(tmp_path: Path, line: str) -> None:
    names = list(read_names(write(tmp_path, line + "\n")))
    assert not any(n.replace(".", "").isdigit() for n in names)


@pytest.mark.parametrize(("match", "scope"), [("subtree", SUBTREE), ("exact", EXACT)])
def test_load_list(tmp_path: Path, match: str, scope: int) -> None:
    entries = load_list(write(tmp_path, "evil.example\n*.bad.example\n"), "list:mine", "c2", match)
    assert entries == [
        ("evil.example", scope, Match("evil.example", "list:mine", "c2")),
        ("bad.example", scope, Match("bad.example", "list:mine", "c2")),
    ]
