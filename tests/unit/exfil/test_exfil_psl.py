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
