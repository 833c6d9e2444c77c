"""The shipped borders keep their documented error bound against Natural Earth 1:10m.

Needs the world-atlas@2.0.2 tarball (the build script's source, checked by sha512): set
LIGHTFENCE_WORLD_ATLAS_TGZ or leave it in ~/.cache/lightfence/ (scripts/test.sh fetches it with
`npm pack` when npm is there). Distances are great-circle, from each reference vertex to the
nearest point of the other border sampled every <= 0.01 deg, plus half that step.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import shapely
from scipy.spatial import cKDTree

from geo.constants import EARTH_MEAN_RADIUS_KM
from geo.regions import country, country_codes

TARBALL = Path(
    os.environ.get(
        "LIGHTFENCE_WORLD_ATLAS_TGZ",
        Path.home() / ".cache" / "lightfence" / "world-atlas-2.0.2.tgz",
    )
)
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_boundaries.py"
STEP_DEG = 0.01
HALF_STEP_KM = 0.5 * np.radians(STEP_DEG) * EARTH_MEAN_RADIUS_KM

pytestmark = pytest.mark.skipif(
    not TARBALL.exists(),
    reason=f"needs {TARBALL} (npm pack world-atlas@2.0.2; scripts/test.sh fetches it)",
)


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_boundaries", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _unit(xy: np.ndarray) -> np.ndarray:
    lon, lat = np.radians(xy[:, 0]), np.radians(xy[:, 1])
    return np.column_stack((np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)))


def _border_points(geometry: Any) -> np.ndarray:
    lines = shapely.segmentize(shapely.boundary(geometry), STEP_DEG)
    return np.asarray(shapely.get_coordinates(lines))


def _distance_km(points: np.ndarray, border: cKDTree) -> np.ndarray:
    chord, _ = border.query(_unit(points))
    arc_km = 2.0 * np.arcsin(np.clip(np.asarray(chord, dtype=np.float64) / 2.0, 0.0, 1.0))
    return np.asarray(arc_km * EARTH_MEAN_RADIUS_KM + HALF_STEP_KM, dtype=np.float64)


def test_every_10m_vertex_lies_within_the_bound_of_its_country() -> None:
    build = _script()
    topology = build.read_member(build.fetch_tarball(TARBALL), build.MEMBER_10M)
    fine = build.country_rings(topology, skip_unknown=True)
    transform = topology["transform"]
    assert set(country_codes()) <= set(fine)  # (1:10m also has TUV and UMI, which 1:50m lacks)
    worst: dict[str, float] = {}
    for code in country_codes():
        region = country(code)
        reference = build.shapely_country(fine[code], transform)
        collapsed = build.collapsed_rings(fine[code], transform)
        # The reference border: its drawn rings plus parts the grid collapsed to lines.
        vertices = np.concatenate(
            [np.asarray(shapely.get_coordinates(shapely.boundary(reference))), *collapsed]
        )
        shipped = _border_points(region.geometry)
        shipped_tree = cKDTree(_unit(shipped))
        outward_km = _distance_km(vertices, shipped_tree)
        assert outward_km.max() <= region.boundary_error_km, (code, vertices[outward_km.argmax()])
        # ... and the other way: the shipped border is no farther from the reference border.
        reference_tree = cKDTree(_unit(np.concatenate([_border_points(reference), *collapsed])))
        inward_km = _distance_km(shipped, reference_tree)
        assert inward_km.max() <= region.boundary_error_km, (code, shipped[inward_km.argmax()])
        # Every raw vertex (inner borders of merged features too) is inside the grown country.
        raw = np.concatenate([build.to_degrees(r, transform) for p in fine[code] for r in p])
        outside = raw[~shapely.contains_xy(region.geometry, raw[:, 0], raw[:, 1])]
        if len(outside):
            assert _distance_km(outside, shipped_tree).max() <= region.boundary_error_km, code
        worst[code] = max(outward_km.max(), inward_km.max())
    # No country's bound is below the documented minimum (1:10m's own allowance).
    assert min(country(c).boundary_error_km for c in country_codes()) >= 5.3
    assert max(worst.values()) <= max(country(c).boundary_error_km for c in country_codes())
