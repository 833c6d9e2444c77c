"""Bundled country boundaries and custom GeoJSON regions."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
import shapely
from shapely.geometry import Point, shape

from geo.errors import InvalidGeometryError, UnknownCountryError
from geo.regions import (
    Region,
    country,
    country_boundary_error_km,
    country_codes,
    region_from_geojson,
)

REFERENCE_50M = Path("/work/shared/data/ne_50m_admin_0_countries.geojson")
KM_PER_DEG = 111.32

CAPITALS = {
    "SGP": (1.2897, 103.8501),
    "HKG": (22.2793, 114.1628),
    "MLT": (35.8989, 14.5146),
    "LUX": (49.6116, 6.1319),
    "DEU": (52.52, 13.405),
    "FRA": (48.8566, 2.3522),
    "USA": (38.9072, -77.0369),
    "BRA": (-15.7939, -47.8828),
    "JPN": (35.6762, 139.6503),
    "AUS": (-35.2809, 149.13),
    "ZAF": (-25.7479, 28.2293),
    "FJI": (-18.1416, 178.4419),
    "XKX": (42.6629, 21.1655),
    "CHE": (46.948, 7.4474),
}


def test_codes_include_small_states_and_are_sorted() -> None:
    codes = country_codes()
    assert list(codes) == sorted(codes)
    assert {"SGP", "HKG", "MLT", "LUX", "XKX", "RUS", "FJI"} <= set(codes)
    assert len(codes) > 230


@pytest.mark.parametrize("iso3", sorted(CAPITALS))
def test_capital_is_inside_its_country(iso3: str) -> None:
    lat_deg, lon_deg = CAPITALS[iso3]
    region = country(iso3)
    distance_deg = region.geometry.distance(Point(lon_deg, lat_deg))
    assert distance_deg * KM_PER_DEG <= max(3.0, region.boundary_error_km)


def test_country_is_case_insensitive_and_cached() -> None:
    assert country(" deu ") is country("DEU")
    assert country("DEU").name == "DEU"


def test_every_country_is_valid_and_inside_the_lon_lat_box() -> None:
    for code in country_codes():
        region = country(code)
        minx, miny, maxx, maxy = region.geometry.bounds
        assert region.geometry.is_valid, code
        assert minx >= -180.0 and maxx <= 180.0 and miny >= -90.0 and maxy <= 90.0, code
        assert 0.0 < region.boundary_error_km <= country_boundary_error_km()


def test_antimeridian_countries_are_split() -> None:
    russia = country("RUS").geometry
    assert russia.covers(Point(-179.5, 68.5))  # Chukotka east of the antimeridian
    assert russia.covers(Point(177.0, 65.0))  # ... and west of it (Anadyr region)
    assert country("ATA").geometry.covers(Point(0.0, -89.0))  # closed along the south pole


@pytest.mark.parametrize("bad", ["XYZ", "Germany", "", "DE"])
def test_unknown_country_lists_near_matches(bad: str) -> None:
    with pytest.raises(UnknownCountryError, match="unknown country code"):
        country(bad)


def test_unknown_country_suggests_the_right_code() -> None:
    with pytest.raises(UnknownCountryError, match=r"DEU \(Germany\)"):
        country("Germany")


@pytest.mark.skipif(not REFERENCE_50M.exists(), reason="reference data absent")
def test_random_points_agree_with_reference_50m() -> None:
    reference: list[tuple[str, Any]] = []
    for feature in json.loads(REFERENCE_50M.read_text())["features"]:
        code = feature["properties"].get("iso_a3") or feature["properties"].get("ISO_A3")
        if code and code in country_codes():
            reference.append((code, shapely.make_valid(shape(feature["geometry"]))))
    rng = random.Random(7)
    checked = 0
    for _ in range(4000):
        code, geometry = reference[rng.randrange(len(reference))]
        minx, miny, maxx, maxy = geometry.bounds
        point = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if not geometry.contains(point):
            continue
        ours = country(code)
        depth_km = geometry.boundary.distance(point) * KM_PER_DEG * math.cos(math.radians(point.y))
        # Away from borders (older reference edition, disputed areas) both must agree.
        if depth_km > ours.boundary_error_km + 5.0:
            assert ours.geometry.covers(point), (code, point.wkt)
            checked += 1
        if checked >= 300:
            break
    assert checked >= 300


SQUARE = [[10.0, 10.0], [11.0, 10.0], [11.0, 11.0], [10.0, 11.0], [10.0, 10.0]]


def test_polygon_feature_and_collection() -> None:
    polygon = {"type": "Polygon", "coordinates": [SQUARE]}
    feature = {"type": "Feature", "properties": {"name": "site"}, "geometry": polygon}
    collection = {"type": "FeatureCollection", "features": [feature]}
    assert region_from_geojson(polygon).geometry.equals(shape(polygon))
    assert region_from_geojson(feature).name == "site"
    assert region_from_geojson(collection).geometry.equals(shape(polygon))
    multi = {"type": "MultiPolygon", "coordinates": [[SQUARE]]}
    assert isinstance(region_from_geojson(multi), Region)


def test_self_intersecting_polygon_is_repaired() -> None:
    bowtie = [[0.0, 0.0], [2.0, 2.0], [2.0, 0.0], [0.0, 2.0], [0.0, 0.0]]
    region = region_from_geojson({"type": "Polygon", "coordinates": [bowtie]})
    assert region.geometry.is_valid and region.geometry.area == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"type": "Point", "coordinates": [0, 0]}, "unsupported GeoJSON type 'Point'"),
        ({"type": "Polygon", "coordinates": [SQUARE[:-1]]}, "not closed"),
        ({"type": "Polygon", "coordinates": [SQUARE[:3]]}, ">= 4 positions"),
        ({"type": "Polygon", "coordinates": [[[0, 95], [1, 0], [1, 1], [0, 95]]]}, "latitude 95"),
        ({"type": "Polygon", "coordinates": [[[200, 0], [1, 0], [1, 1], [200, 0]]]}, "longitude"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], ["a", 1], [0, 0]]]}, "numbers"),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [math.nan, 1], [0, 0]]]},
            "finite",
        ),
        ({"type": "Polygon", "coordinates": "nope"}, "expected an array"),
        ({"type": "Feature", "geometry": None}, "needs a geometry"),
        ({"type": "FeatureCollection", "features": []}, "no polygon"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}, "zero area"),
    ],
)
def test_malformed_geojson_is_rejected_precisely(obj: dict[str, Any], message: str) -> None:
    before = json.dumps(obj, sort_keys=True)
    with pytest.raises(InvalidGeometryError, match=message):
        region_from_geojson(obj)
    assert json.dumps(obj, sort_keys=True) == before  # the caller's input is untouched


def test_error_names_the_offending_path() -> None:
    bad = {"type": "MultiPolygon", "coordinates": [[SQUARE], [[[0, 0], [1, 0], [1, 91], [0, 0]]]]}
    with pytest.raises(InvalidGeometryError, match=r"\$\.coordinates\[1\]\[0\]\[2\]"):
        region_from_geojson(bad)
