"""The audit's geometry comparison allows exactly the stored rounding (1e-6 deg), no more.

A recomputed region a float rounding away from the verifier's may round one vertex to the
neighbouring 1e-6 deg step; that must not be a finding, while a sound region shrunk by a couple
of metres must be.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import shapely
from shapely.geometry import mapping, shape

from audit.compare import same as _same
from geo.assess import assess
from geo.licence import licence_from_json
from geo.measurement import LandmarkRtt

# The copy attack's round: three landmarks a few km apart, sub-0.2 ms round trips.
ROUND = [
    LandmarkRtt("ks-a", 51.31, 9.48, 0.0902),
    LandmarkRtt("ks-b", 51.35, 9.42, 0.0898),
    LandmarkRtt("ks-c", 51.27, 9.55, 0.1475),
]


def stored() -> dict[str, Any]:
    """The assessment as a bundle holds it (JSON: lists, not tuples)."""
    result: dict[str, Any] = json.loads(
        json.dumps(assess(ROUND, licence_from_json({"allowed": ["DEU"]})).to_json())
    )
    return result


def test_a_vertex_rounded_to_the_neighbouring_step_is_the_same_region() -> None:
    expected = stored()
    found = copy.deepcopy(expected)
    ring = found["sound_region"]["coordinates"][0]
    lon, lat = ring[3]
    ring[3] = [round(lon + 1e-6, 6), round(lat - 1e-6, 6)]
    assert _same(expected, found)


def test_a_sound_region_two_metres_smaller_is_named() -> None:
    expected = stored()
    shrunk = shape(expected["sound_region"]).buffer(-2e-5)  # ~2 m inward
    found = copy.deepcopy(expected) | {"sound_region": mapping(shapely.normalize(shrunk))}
    assert not _same(expected["sound_region"], found["sound_region"])
    assert not _same(expected, found)


def test_a_vertex_moved_by_ten_metres_is_named() -> None:
    expected = stored()
    found = copy.deepcopy(expected)
    ring = found["sound_region"]["coordinates"][0]
    ring[3] = [ring[3][0] + 1e-4, ring[3][1]]
    assert not _same(expected, found)
