"""The page's words for the two verdicts of issue 20 (dashboard/i18n.py)."""

from __future__ import annotations

from dashboard import i18n


def test_the_reasons_in_words() -> None:
    assert i18n.reason_text("fr", "dga") == "domaine inventé (le poste est probablement infecté)"
    assert i18n.reason_text("fr", "feed:urlhaus answer-ip:1.2.3.4") == (
        "liste de menaces urlhaus, par son adresse 1.2.3.4"
    )
    assert i18n.reason_text("en", "feed:urlhaus answer-ip:2001:db8::1") == (
        "threat list urlhaus, through its address 2001:db8::1"
    )


def test_the_machine_is_named_in_plain_french() -> None:
    sentence = i18n.highlight_sentence("fr", 40, "dga", "threat", "192.168.1.23")
    assert sentence == (
        "Le poste 192.168.1.23 cherche des centaines de domaines inventés (40 tentatives "
        "bloquées) : il est probablement infecté, faites-le vérifier."
    )
    assert i18n.category_label("fr", "dga") == "domaines inventés (logiciel malveillant)"
