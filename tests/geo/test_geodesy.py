import math

import numpy as np
from geographiclib.geodesic import Geodesic
from geographiclib.polygonarea import PolygonArea
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.constants import SPHERE_DISTANCE_INFLATION
from geo.geodesy import (
    destination,
    distance_km,
    fibre_rtt_ms,
    ring_area_km2,
    sphere_distance_km,
    vacuum_rtt_ms,
)

lats = st.floats(-90.0, 90.0)
lons = st.floats(-180.0, 180.0)


def test_distance_matches_published_vector() -> None:
    # geographiclib's GeodTest: JFK (40.64, -73.78) to SIN (1.36, 103.99) ~ 15,347 km.
    assert math.isclose(distance_km(40.64, -73.78, 1.36, 103.99), 15347.8, abs_tol=1.0)


def test_destination_round_trips_with_distance() -> None:
    lat, lon = destination(50.0, 179.5, 90.0, 200.0)
    assert -180.0 <= lon <= 180.0 and lon < 0.0  # crossed the antimeridian
    assert math.isclose(distance_km(50.0, 179.5, lat, lon), 200.0, rel_tol=1e-9)


def test_rtt_helpers() -> None:
    assert math.isclose(vacuum_rtt_ms(149.896229), 1.0, rel_tol=1e-9)
    assert math.isclose(fibre_rtt_ms(100.0, inflation=2.0), 4.0 * vacuum_rtt_ms(100.0) / 2.0 * 1.5)


@settings(max_examples=300, deadline=None)
@given(lats, lons, lats, lons)
def test_sphere_never_shorter_than_bound_allows(lat1, lon1, lat2, lon2) -> None:
    geodesic = distance_km(lat1, lon1, lat2, lon2)
    sphere = float(sphere_distance_km(lat1, lon1, lat2, lon2))
    assert sphere <= geodesic * SPHERE_DISTANCE_INFLATION + 1e-6


@settings(max_examples=100, deadline=None)
@given(st.floats(-1.0, 1.0), st.floats(-1e-3, 1e-3), st.floats(-180.0, 180.0))
def test_sphere_bound_holds_for_short_paths_at_the_equator(lat, dlat, lon) -> None:
    # The worst case of the bound: short north-south paths near the equator.
    geodesic = distance_km(lat, lon, lat + dlat, lon)
    sphere = float(sphere_distance_km(lat, lon, lat + dlat, lon))
    assert sphere <= geodesic * SPHERE_DISTANCE_INFLATION + 1e-9


def test_worst_case_ratio_is_close_to_the_bound() -> None:
    ratio = float(sphere_distance_km(0.0, 0.0, 0.01, 0.0)) / distance_km(0.0, 0.0, 0.01, 0.0)
    assert 1.0055 < ratio < SPHERE_DISTANCE_INFLATION


def _geodesic_area_km2(lons_deg: np.ndarray, lats_deg: np.ndarray) -> float:
    polygon = PolygonArea(Geodesic.WGS84)
    for lon, lat in zip(lons_deg[:-1], lats_deg[:-1], strict=True):
        polygon.AddPoint(float(lat), float(lon))
    _, _, area_m2 = polygon.Compute(False, True)
    return float(abs(area_m2)) / 1e6


def test_ring_area_matches_geographiclib_for_densified_box() -> None:
    # Densified so that lon/lat-straight and geodesic edges coincide to < 1e-5 relative.
    edge = np.linspace(0.0, 1.0, 400, endpoint=False)
    lon = np.concatenate((10 + 10 * edge, np.full(400, 20.0), 20 - 10 * edge, np.full(400, 10.0)))
    lat = np.concatenate((np.full(400, 40.0), 40 + 10 * edge, np.full(400, 50.0), 50 - 10 * edge))
    lon, lat = np.append(lon, lon[0]), np.append(lat, lat[0])
    expected = _geodesic_area_km2(lon, lat)
    assert math.isclose(ring_area_km2(lon, lat), expected, rel_tol=1e-4)


def test_ring_area_of_whole_world() -> None:
    lon = np.array([-180.0, 180.0, 180.0, -180.0, -180.0])
    lat = np.array([-90.0, -90.0, 90.0, 90.0, -90.0])
    assert math.isclose(ring_area_km2(lon, lat), 510_065_621.7, rel_tol=1e-6)


def test_ring_area_is_well_conditioned_for_nearly_level_edges() -> None:
    """A solved region (tests/geo/test_batch.py) and the same region 1 ulp away: its bottom
    edge rises 3e-8 deg, where a difference of cosines lost 4e-6 of the area (the batched and
    single solvers' areas, then the audit's comparison, disagreed)."""
    ring = [
        (9.93159054855105, 51.16365953521215),
        (10.004927388528067, 51.41287240581683),
        (9.862099904993123, 51.5694263123413),
        (9.549999941197235, 51.640445670314506),
        (9.167043248204637, 51.553156263554385),
        (8.96609374454869, 51.33287663794805),
        (9.03518569172524, 51.09772487445935),
        (9.21866549397149, 51.00172137961006),
        (9.621334622834405, 51.001721353112984),
        (9.93159054855105, 51.16365953521215),
    ]
    lon, lat = np.array(ring).T
    area = ring_area_km2(lon, lat)
    nudged = ring_area_km2(np.nextafter(lon, -np.inf), np.nextafter(lat, np.inf))
    assert math.isclose(nudged, area, rel_tol=1e-12)
