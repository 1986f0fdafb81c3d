"""Registered domains from the Public Suffix List, private section included."""

from __future__ import annotations

import pytest

from resolver.exfil.psl import RegisteredDomains

D = RegisteredDomains()


@pytest.mark.parametrize(
    ("qname", "expected"),
    [
        ("www.example.com", ("www", "example.com")),
        ("example.com", ("", "example.com")),
        ("a.b.example.co.uk", ("a.b", "example.co.uk")),
        ("data.x.duckdns.org", ("data", "x.duckdns.org")),  # private section: per customer
        ("2.0.0.127.zen.spamhaus.org", ("2.0.0.127.zen", "spamhaus.org")),
        ("a.b.mairie.local", ("a.b", "mairie.local")),  # unknown TLD: last label is public
        ("q\\043z8.hidemyself.org", ("q\\043z8", "hidemyself.org")),
        ("com", None),
        ("co.uk", None),
        ("qwhfgdtskl", None),
        ("", None),
    ],
)
def test_split(qname: str, expected: tuple[str, str] | None) -> None:
    assert D.split(qname) == expected


def test_long_names_give_the_same_answer_as_the_full_lookup() -> None:
    labels = [f"l{i}" for i in range(30)]
    name = ".".join(labels) + ".s3.dualstack.eu-west-3.amazonaws.com"
    prefix, base = D.split(name) or ("", "")
    assert base == "l29.s3.dualstack.eu-west-3.amazonaws.com"
    assert prefix == ".".join(labels[:-1])
    deep = ".".join(labels) + ".tunnel.example.org"
    assert D.split(deep) == (".".join(labels) + ".tunnel", "example.org")


def _names_of_every_rule() -> list[str]:
    """Each rule of the bundled list as a name, under one to three labels, its wildcard filled
    and its exception taken literally: every branch of the library's matching."""
    rules = sorted(getattr(D._psl, "_publicsuffix"))  # noqa: B009 - the list as the library read it
    names = []
    for i, rule in enumerate(rules):
        body = rule.lstrip("!")
        heads = (*("", "a", "x1.www", "k.l.m")[i % 4 :], "q.r.s.t.u.v")
        for head in heads:
            for name in (rule, body, body.removeprefix("*."), body.replace("*", "w")):
                names.append(f"{head}.{name}" if head else name)
    return names


def test_the_memo_gives_the_library_answer_for_every_rule() -> None:
    """The memo keys on the longest rule suffix of a name: asked twice (the second time from
    the memo), every name splits as the library alone splits it."""
    fresh = RegisteredDomains()
    names = [*_names_of_every_rule(), "a.b.ck", "b.ck", "www.ck", "a.www.ck", "x.kobe.jp"]
    for name in names + names:
        assert fresh.split(name) == fresh._split_library(name), name


@pytest.mark.parametrize("qname", ["Www.Example.COM", "a..example.com", ".example.com", "1.2"])
def test_names_the_memo_does_not_take_go_to_the_library(qname: str) -> None:
    assert D.split(qname) == D._split_library(qname)


def test_unknown_top_level_domains_are_remembered_as_unknown() -> None:
    fresh = RegisteredDomains()
    assert not fresh.tld_exists("a.b.mairie.lan")
    assert not fresh.tld_exists("c.lan")  # from the memo of unknown ones
    assert fresh.tld_exists("example.com")
