"""Custom GeoJSON read exactly per RFC 7946: straight lon/lat edges, cut antimeridian, holes."""

from __future__ import annotations

import json
from typing import Any

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point

from geo.assess import assess
from geo.assessment import Verdict
from geo.errors import InvalidGeometryError
from geo.geodesy import distance_km, vacuum_rtt_ms
from geo.licence import licence_from_json
from geo.measurement import LandmarkRtt
from geo.regions import region_from_geojson

KASSEL = (51.3127, 9.4797)
LANDMARKS = {
    "fra": (50.11, 8.68),
    "ber": (52.52, 13.40),
    "ams": (52.37, 4.90),
    "muc": (48.14, 11.58),
    "waw": (52.23, 21.01),
}


def _box(min_lon: float, min_lat: float, max_lon: float, max_lat: float) -> list[list[float]]:
    return [
        [min_lon, min_lat],
        [max_lon, min_lat],
        [max_lon, max_lat],
        [min_lon, max_lat],
        [min_lon, min_lat],
    ]


def _polygon(*rings: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def test_wide_box_means_that_box_not_the_other_half_of_the_world() -> None:
    region = region_from_geojson(_polygon(_box(-100.0, -60.0, 100.0, 70.0)))
    assert region.geometry.covers(Point(KASSEL[1], KASSEL[0]))
    assert region.geometry.covers(Point(0.0, 0.0))
    assert not region.geometry.covers(Point(150.0, 0.0))
    assert not region.geometry.covers(Point(-150.0, 0.0))
    assert region.geometry.area == pytest.approx(200.0 * 130.0)


@pytest.mark.parametrize("inflation", [1.2, 1.5, 2.0])
def test_chip_near_kassel_with_the_wide_box_prohibited_is_never_verified(inflation: float) -> None:
    measurements = [
        LandmarkRtt(name, lat, lon, vacuum_rtt_ms(distance_km(lat, lon, *KASSEL)) * inflation + 0.2)
        for name, (lat, lon) in LANDMARKS.items()
    ]
    licence = licence_from_json(
        {"allowed": ["DEU"], "prohibited": [_polygon(_box(-100.0, -60.0, 100.0, 70.0))]}
    )
    result = assess(measurements, licence)
    assert result.verdict is Verdict.VIOLATION


def test_geometry_cut_at_the_antimeridian_covers_both_sides() -> None:
    # RFC 7946 section 3.1.9: a geometry crossing the antimeridian is written cut in two.
    cut = {
        "type": "MultiPolygon",
        "coordinates": [[_box(170.0, -20.0, 180.0, -10.0)], [_box(-180.0, -20.0, -170.0, -10.0)]],
    }
    region = region_from_geojson(cut)
    assert region.geometry.covers(Point(179.5, -15.0))
    assert region.geometry.covers(Point(-179.5, -15.0))
    assert not region.geometry.covers(Point(0.0, -15.0))
    assert region.geometry.area == pytest.approx(200.0)


def test_edges_that_jump_across_the_antimeridian_are_taken_literally() -> None:
    # Not cut: per RFC 7946 the edge from 179 to -179 is straight in lon/lat, the long way.
    ring = [[179.0, -10.0], [-179.0, -10.0], [-179.0, -8.0], [179.0, -8.0], [179.0, -10.0]]
    region = region_from_geojson(_polygon(ring))
    assert region.geometry.covers(Point(0.0, -9.0))
    assert region.geometry.area == pytest.approx(358.0 * 2.0)


def test_uncut_antimeridian_crossing_is_refused_naming_the_path() -> None:
    crossing = {"type": "MultiPolygon", "coordinates": [[_box(170.0, -20.0, 190.0, -10.0)]]}
    with pytest.raises(
        InvalidGeometryError, match=r"\$\.coordinates\[0\]\[0\]\[1\]: longitude 190.0.*3\.1\.9"
    ):
        region_from_geojson(crossing)


def test_hole_outside_its_shell_is_refused() -> None:
    shell = _box(0.0, 0.0, 10.0, 10.0)
    outside = _box(20.0, 0.0, 30.0, 10.0)
    obj = {"type": "Feature", "properties": {}, "geometry": _polygon(shell, outside)}
    before = json.dumps(obj, sort_keys=True)
    with pytest.raises(InvalidGeometryError, match=r"\$\.geometry\.coordinates\[1\]: hole"):
        region_from_geojson(obj)
    assert json.dumps(obj, sort_keys=True) == before


def test_hole_partly_outside_its_shell_is_refused() -> None:
    obj = _polygon(_box(0.0, 0.0, 10.0, 10.0), _box(5.0, 5.0, 15.0, 8.0))
    with pytest.raises(InvalidGeometryError, match=r"\$\.coordinates\[1\]: hole"):
        region_from_geojson(obj)


def test_hole_inside_its_shell_is_cut_out() -> None:
    region = region_from_geojson(_polygon(_box(0.0, 0.0, 10.0, 10.0), _box(2.0, 2.0, 4.0, 4.0)))
    assert region.geometry.area == pytest.approx(96.0)
    assert not region.geometry.covers(Point(3.0, 3.0))
    assert region.geometry.covers(Point(5.0, 5.0))


# Coordinates on a 1e-7 degree grid (about 1 cm): below it, areas like 1e-125 x 1e-228 underflow
# to 0.0 and shapely's own difference() drops areas of 1e-178, so the oracle would be wrong,
# not the code under test.
_LON = st.floats(-180.0, 180.0, allow_nan=False).map(lambda v: round(v, 7))
_LAT = st.floats(-90.0, 90.0, allow_nan=False).map(lambda v: round(v, 7))
_BOX = st.tuples(_LON, _LON, _LAT, _LAT).map(
    lambda t: (min(t[0], t[1]), min(t[2], t[3]), max(t[0], t[1]), max(t[2], t[3]))
)


@settings(max_examples=80, deadline=None)
@given(bounds=_BOX, reverse=st.booleans())
def test_any_box_is_exactly_that_box_in_either_winding(
    bounds: tuple[float, float, float, float], reverse: bool
) -> None:
    ring = _box(*bounds)
    obj = _polygon(ring[::-1] if reverse else ring)
    if shapely.box(*bounds).area == 0.0:
        with pytest.raises(InvalidGeometryError, match="zero area"):
            region_from_geojson(obj)
        return
    assert region_from_geojson(obj).geometry.equals(shapely.box(*bounds))


@settings(max_examples=80, deadline=None)
@given(shell=_BOX, hole=_BOX)
def test_holes_only_ever_remove_area(
    shell: tuple[float, float, float, float], hole: tuple[float, float, float, float]
) -> None:
    shell_box, hole_box = shapely.box(*shell), shapely.box(*hole)
    obj = _polygon(_box(*shell), _box(*hole))
    if hole_box.area > 0.0 and not shell_box.covers(hole_box):
        with pytest.raises(InvalidGeometryError, match=r"\$\.coordinates\[1\]: hole"):
            region_from_geojson(obj)
    elif shell_box.difference(hole_box).area == 0.0:
        with pytest.raises(InvalidGeometryError, match="zero area"):
            region_from_geojson(obj)
    else:
        region = region_from_geojson(obj)
        assert region.geometry.area == pytest.approx(shell_box.area - hole_box.area, abs=1e-9)
        assert region.geometry.area <= shell_box.area
        assert shell_box.covers(region.geometry)


@settings(max_examples=60, deadline=None)
@given(
    lon=st.floats(-179.0, 179.0),
    lat=st.floats(-80.0, 80.0),
    width=st.floats(0.1, 20.0),
    height=st.floats(0.1, 9.0),
)
def test_boxes_cut_at_the_antimeridian_keep_their_area(
    lon: float, lat: float, width: float, height: float
) -> None:
    east = lon + width
    parts = (
        [[_box(lon, lat, 180.0, lat + height)], [_box(-180.0, lat, east - 360.0, lat + height)]]
        if east > 180.0
        else [[_box(lon, lat, east, lat + height)]]
    )
    region = region_from_geojson({"type": "MultiPolygon", "coordinates": parts})
    assert region.geometry.area == pytest.approx(width * height, rel=1e-6)
    minx, _, maxx, _ = region.geometry.bounds
    assert minx >= -180.0 and maxx <= 180.0
