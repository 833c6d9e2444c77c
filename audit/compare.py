"""How recomputed numbers and geometries are compared with the stored ones.

Recomputed numbers may differ from the stored ones by floating-point rounding only; anything
wider is a finding. Verdicts, ids and excluded landmarks compare exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Recomputed areas may differ by floating-point summation order only.
_AREA_RELATIVE_TOLERANCE = 1e-6
_FRACTION_TOLERANCE = 1e-6
# Stored coordinates are rounded to 1e-6 deg (geo.assessment.geojson): a recomputed vertex a float
# rounding away from the stored one may round to the neighbouring step, moving it by up to
# sqrt(2) x 1e-6 deg (0.16 m), so the symmetric difference may hold a strip that wide along the
# boundary. Physically nothing (the solver's FLOAT_MARGIN_KM is 10 m); verdicts stay exact.
_ROUNDING_STRIP_DEG = math.sqrt(2.0) * 1e-6


def same(expected: Any, found: Any) -> bool:
    """Whether ``found`` is ``expected`` up to float rounding (geometries: up to a strip of
    one rounding step along the boundary)."""
    if isinstance(expected, bool) or isinstance(found, bool):
        return bool(expected == found)
    if isinstance(expected, int | float) and isinstance(found, int | float):
        scale = max(1.0, abs(float(expected)))
        if math.isnan(float(expected)):
            return math.isnan(float(found))
        return abs(float(expected) - float(found)) <= max(
            _FRACTION_TOLERANCE, _AREA_RELATIVE_TOLERANCE * scale
        )
    if isinstance(expected, Mapping) and isinstance(found, Mapping):
        if "coordinates" in expected or "geometries" in expected:
            return _same_geometry(expected, found)
        return expected.keys() == found.keys() and all(
            same(expected[k], found[k]) for k in expected
        )
    if isinstance(expected, list | tuple) and isinstance(found, list | tuple):
        return len(expected) == len(found) and all(
            same(a, b) for a, b in zip(expected, found, strict=True)
        )
    return bool(expected == found)


def _same_geometry(expected: Mapping[str, Any], found: Mapping[str, Any]) -> bool:
    from shapely.geometry import shape

    try:
        a, b = shape(expected), shape(found)
    except Exception:  # a malformed stored geometry is simply not the same geometry
        return False
    if a.is_empty or b.is_empty:
        return bool(a.is_empty and b.is_empty)
    # Compare areas of the symmetric difference in degrees²: only rounding noise may remain.
    rounding = _ROUNDING_STRIP_DEG * max(float(a.length), float(b.length))
    return float(a.symmetric_difference(b).area) <= 1e-9 * max(1.0, float(a.area)) + rounding


def short(value: Any) -> Any:
    """``value`` for a finding: a geometry by its type only (its coordinates say nothing)."""
    if isinstance(value, Mapping) and ("coordinates" in value or "geometries" in value):
        return f"<{value.get('type')} geometry>"
    return value
