"""Write tests/data/golden_misses.json from the running code, and print each answer to be read.

Run on purpose only (the goldens pin the answers of the code before issue 19's rework):
``.venv/bin/python tests/data/make_golden_misses.py [case ...]`` from the repository root.
Read every printed answer before committing: a golden of a wrong answer is worse than none.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

import dns.message

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.integration.test_golden_misses import CASES, GOLDEN, answer_of


async def main(names: list[str]) -> None:
    out: dict[str, dict[str, str]] = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    for name in names or sorted(CASES):
        case = CASES[name]
        query = case.query()
        with tempfile.TemporaryDirectory() as tmp:
            answer = await answer_of(case, query, Path(tmp))
        out[name] = {"query": query.hex(), "answer": answer.hex()}
        print(f"=== {name} ({len(answer)} bytes)\n{dns.message.from_wire(answer)}\n")
    GOLDEN.write_text(json.dumps(dict(sorted(out.items())), indent=1) + "\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
