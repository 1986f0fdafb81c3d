"""The character model: built offline from real names, shipped, read back the same."""

from __future__ import annotations

import sys
import zlib

import pytest

from resolver.dga.charmodel import MAGIC, SYMBOLS, CharModel, uniform_bits
from resolver.dga.train import build, labels
from resolver.exfil.psl import RegisteredDomains

WORDS = ["google", "mairie", "lemonde", "leboncoin", "service-public", "impots", "ameli"] * 40


def test_a_model_built_from_names_reads_back_and_judges() -> None:
    table = build(labels([f"{w}.fr" for w in WORDS], RegisteredDomains()))
    assert len(table) == SYMBOLS**3
    if sys.byteorder != "little":
        table.byteswap()
    model = CharModel.from_bytes(MAGIC + zlib.compress(table.tobytes()))
    assert model.randomness("mairie") < 0 < model.randomness("xqzkvjwpt")


def test_the_labels_are_the_registered_domains() -> None:
    names = ["www.bbc.co.uk", "mail.google.com", "localhost", "xn--bcher-kva.de", "a.gouv.fr"]
    assert labels(names, RegisteredDomains()) == ["bbc", "google", "a"]


def test_the_uniform_draw_follows_the_alphabet() -> None:
    assert uniform_bits("abcdef12") == pytest.approx(4.0)  # hex
    assert uniform_bits("abcxyz") == pytest.approx(4.700, abs=0.001)
    assert uniform_bits("abc9xyz") == pytest.approx(5.170, abs=0.001)


def test_a_foreign_file_is_refused() -> None:
    with pytest.raises(ValueError):
        CharModel.from_bytes(b"not a model")
