"""Build the shipped character model from a list of real domain names (run offline, once).

    python -m resolver.dga.train TOP_LIST [--exclude CORPUS.jsonl.gz] OUT

``TOP_LIST``: one name per line ('#' comments), a public popularity list (the one used is
errantmind/faf-dns-bench's 2023 top-65535, also in ../shared/exfil/data). Each name gives its
registered domain's label (``bbc`` of ``bbc.co.uk``). ``--exclude``: names of an evaluation
corpus (JSON lines with ``qname``) left out, so the evaluation's benign day is never trained on.
Counts are smoothed by interpolating the trigram, bigram and unigram estimates (Jelinek and
Mercer, 1980), each with add-one smoothing, so an unseen sequence costs much but not infinity.
"""

from __future__ import annotations

import argparse
import array
import gzip
import json
import math
import sys
import zlib
from collections.abc import Iterable
from pathlib import Path

from resolver.dga.charmodel import MAGIC, SCALE, SYMBOLS, codes, index
from resolver.exfil.psl import RegisteredDomains

# Interpolation weights of the trigram, bigram and unigram estimates.
WEIGHTS = (0.7, 0.25, 0.05)


def labels(names: Iterable[str], domains: RegisteredDomains) -> list[str]:
    out = []
    for name in names:
        parts = domains.split(name.strip().lower().rstrip("."))
        if parts is None:
            continue
        label = parts[1].split(".", 1)[0]
        if label and not label.startswith("xn--"):
            out.append(label)
    return out


def build(words: Iterable[str]) -> array.array[int]:
    tri = [0] * SYMBOLS**3
    bi = [0] * SYMBOLS**2
    uni = [0] * SYMBOLS
    for w in words:
        seq = [0, 0, *codes(w), 0]
        for i in range(2, len(seq)):
            a, b, c = seq[i - 2], seq[i - 1], seq[i]
            tri[index(a, b, c)] += 1
            bi[b * SYMBOLS + c] += 1
            uni[c] += 1
    n = sum(uni)
    table = array.array("H", bytes(2 * SYMBOLS**3))
    l3, l2, l1 = WEIGHTS
    for a in range(SYMBOLS):
        for b in range(SYMBOLS):
            ctx3 = sum(tri[index(a, b, 0) : index(a, b, 0) + SYMBOLS])
            ctx2 = sum(bi[b * SYMBOLS : (b + 1) * SYMBOLS])
            for c in range(SYMBOLS):
                p = (
                    l3 * (tri[index(a, b, c)] + 1) / (ctx3 + SYMBOLS)
                    + l2 * (bi[b * SYMBOLS + c] + 1) / (ctx2 + SYMBOLS)
                    + l1 * (uni[c] + 1) / (n + SYMBOLS)
                )
                table[index(a, b, c)] = min(65535, round(-math.log2(p) * SCALE))
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("top_list", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--exclude", type=Path, action="append", default=[])
    args = ap.parse_args(argv)
    excluded: set[str] = set()
    for path in args.exclude:
        with gzip.open(path, "rt") as f:
            excluded.update(json.loads(line)["qname"].lower().rstrip(".") for line in f)
    names = [
        n.strip().lower()
        for n in args.top_list.read_text().splitlines()
        if n.strip() and not n.startswith("#") and n.strip().lower() not in excluded
    ]
    words = labels(names, RegisteredDomains())
    table = build(words)
    if sys.byteorder != "little":
        table.byteswap()
    args.out.write_bytes(MAGIC + zlib.compress(table.tobytes(), 9))
    print(f"{len(words)} labels from {len(names)} names ({len(excluded)} excluded) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
