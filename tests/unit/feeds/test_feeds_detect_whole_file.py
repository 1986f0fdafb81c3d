"""`format: auto` decides on the whole file: adblock rules far down a list of bare names still
make it an adblock list (uBlock's urlhaus-filter); other mixtures keep the majority."""

from __future__ import annotations

from feeds.parsers import detect


def test_adblock_rules_after_hundreds_of_bare_names_make_an_adblock_list() -> None:
    lines = ["! Title: x", *(f"n{i}.example" for i in range(500)), "||late.example^$all"]
    assert detect(lines) == "adblock"


def test_bare_names_alone_stay_a_domain_list() -> None:
    assert detect([f"n{i}.example" for i in range(500)]) == "domains"


def test_a_hosts_file_with_one_stray_rule_stays_a_hosts_file() -> None:
    lines = [*(f"0.0.0.0 n{i}.example" for i in range(300)), "||odd.example^"]
    assert detect(lines) == "hosts"
