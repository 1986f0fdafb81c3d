"""How unlike a real name a label is: a character trigram model of registered-domain labels.

The model is built offline (``python -m resolver.dga.train``) from a public popularity top list
and shipped with the package (``data/labels.trigram``); nothing is downloaded or trained at
start. The test is a likelihood ratio with no tuned threshold: a label's cost in bits under the
model of real names against its cost under the uniform draw from its own alphabet (letters,
letters and digits, hex), the draw arithmetic and hash-based DGAs make (Plohmann et al.,
"A Comprehensive Measurement Study of Domain Generating Malware", USENIX Security 2016, the
DGArchive taxonomy: arithmetic, hash, wordlist and permutation based). Real names are words,
brands and their abbreviations: cheaper under the model than under the uniform draw. The
lexical features of Antonakakis et al. ("From Throw-Away Traffic to Bots: Detecting the Rise of
DGA-Based Malware", USENIX Security 2012: n-gram distributions of NXDOMAIN names) and of FANCI
(Schüppen et al., USENIX Security 2018: per-name structural and linguistic features) play the
same role; this one needs no labelled malware to train on, so it is trained on no DGA family.
"""

from __future__ import annotations

import array
import math
import sys
import zlib
from importlib import resources
from typing import Final

ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789-"
SYMBOLS: Final = len(ALPHABET) + 1  # 0 is the label's boundary (start or end)
# Symbol of each character; anything else (an underscore, an escaped byte) is treated as '-'.
_CODE: Final = {c: i + 1 for i, c in enumerate(ALPHABET)}
_OTHER: Final = _CODE["-"]
SCALE: Final = 1000  # table entries are round(-log2 p * SCALE), as unsigned 16-bit integers
MAGIC: Final = b"PFDGA1\n"
RESOURCE: Final = "labels.trigram"
_HEX: Final = frozenset("0123456789abcdef")
_DIGITS: Final = frozenset("0123456789")


def index(a: int, b: int, c: int) -> int:
    """The table slot of P(c | a b)."""
    return (a * SYMBOLS + b) * SYMBOLS + c


def codes(label: str) -> list[int]:
    get = _CODE.get
    return [get(ch, _OTHER) for ch in label]


def uniform_bits(label: str) -> float:
    """Bits per character of the uniform draw from the label's own alphabet."""
    chars = set(label)
    if chars <= _HEX and chars & _DIGITS:
        size = 16  # hex: hash-based families (md5, sha256 digests)
    elif chars & _DIGITS:
        size = 36
    else:
        size = 26
    if "-" in chars:
        size += 1
    return math.log2(size)


class CharModel:
    """Cost of a label under the trigram model of real registered-domain labels."""

    __slots__ = ("_table",)

    def __init__(self, table: array.array[int]) -> None:
        if len(table) != SYMBOLS**3:
            raise ValueError(f"character model has {len(table)} entries, not {SYMBOLS**3}")
        self._table = table

    @classmethod
    def shipped(cls) -> CharModel:
        """The model shipped in resolver/dga/data (read once at start)."""
        raw = resources.files("resolver.dga").joinpath("data", RESOURCE).read_bytes()
        return cls.from_bytes(raw)

    @classmethod
    def from_bytes(cls, raw: bytes) -> CharModel:
        if not raw.startswith(MAGIC):
            raise ValueError("not a character model file")
        table = array.array("H", zlib.decompress(raw[len(MAGIC) :]))
        if sys.byteorder != "little":
            table.byteswap()
        return cls(table)

    def bits(self, label: str) -> float:
        """Bits per symbol (characters and the end) of ``label`` under the model."""
        table = self._table
        a = b = 0
        total = 0
        for c in codes(label):
            total += table[(a * SYMBOLS + b) * SYMBOLS + c]
            a, b = b, c
        total += table[(a * SYMBOLS + b) * SYMBOLS]
        return total / SCALE / (len(label) + 1)

    def randomness(self, label: str) -> float:
        """Bits per character saved by the uniform draw over the model: above 0, the label is
        likelier drawn at random from its alphabet than written as real names are."""
        n = len(label)
        uniform = uniform_bits(label) * n / (n + 1)  # the end symbol costs the draw nothing
        return self.bits(label) - uniform
