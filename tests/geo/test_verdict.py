import itertools
import json
import math

import numpy as np
import pytest
import shapely
import shapely.affinity
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from geo.assess import assess
from geo.assessment import SolverParams, Verdict
from geo.cap_polygon import intersect_lonlat
from geo.caps import caps_from_measurements
from geo.constants import C_VACUUM_KM_PER_S
from geo.errors import (
    InsufficientDataError,
    InvalidGeometryError,
    InvalidLicenceError,
    InvalidMeasurementError,
    UnknownCountryError,
)
from geo.geodesy import destination, distance_km, ring_area_km2, vacuum_rtt_ms
from geo.grow import grow, grown_box
from geo.inside_fraction import (
    FRACTION_ERROR_BOUND,
    FRACTION_MIN_INSIDE,
    FRACTION_SAMPLES,
    _overlay_fraction,
    intersection_near,
    sampled_fractions,
)
from geo.licence import Licence, Sea, licence_from_json
from geo.measurement import LandmarkRtt
from geo.region_measures import area_km2
from geo.regions import Region
from geo.solver import intersect
from geo.verdict import _inconclusive_by_points, _judge_grown, _near_prohibited, judge

LANDMARKS = {
    "fra": (50.11, 8.68),
    "par": (48.86, 2.35),
    "ams": (52.37, 4.90),
    "ber": (52.52, 13.40),
    "waw": (52.23, 21.01),
    "vie": (48.21, 16.37),
    "mad": (40.42, -3.70),
}


def measure(chip: tuple[float, float], inflation: float = 1.5) -> list[LandmarkRtt]:
    return [
        LandmarkRtt(name, lat, lon, vacuum_rtt_ms(distance_km(lat, lon, *chip)) * inflation + 0.2)
        for name, (lat, lon) in LANDMARKS.items()
    ]


def box_region(name: str, min_lon, min_lat, max_lon, max_lat) -> Region:
    return Region(name, shapely.box(min_lon, min_lat, max_lon, max_lat))


def test_chip_deep_inside_allowed_country_is_verified() -> None:
    result = assess(measure((50.10, 8.60)), licence_from_json({"allowed": ["DEU"]}))
    assert result.verdict is Verdict.VERIFIED and result.inside_fraction == 1.0


def test_chip_far_outside_allowed_region_is_violation() -> None:
    result = assess(measure((40.42, -3.69)), licence_from_json({"allowed": ["DEU"]}))
    assert result.verdict is Verdict.VIOLATION and result.inside_fraction == 0.0


def test_chip_inside_prohibited_region_is_violation() -> None:
    result = assess(measure((52.52, 13.39)), licence_from_json({"prohibited": ["DEU"]}))
    assert result.verdict is Verdict.VIOLATION


def test_loose_measurements_are_inconclusive_with_a_fraction() -> None:
    result = assess(measure((50.0, 8.0), inflation=3.0), licence_from_json({"allowed": ["DEU"]}))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.inside_fraction is not None and 0.0 < result.inside_fraction < 1.0
    assert result.sound_region is not None
    exact = _overlay_fraction(
        result.sound_region, licence_from_json({"allowed": ["DEU"]}), result.sound_area_km2, False
    )
    assert result.inside_fraction == pytest.approx(exact, abs=FRACTION_ERROR_BOUND)


def test_wrong_landmark_makes_verdict_inconsistent_and_is_named() -> None:
    measurements = [*measure((50.10, 8.60))[:-1], LandmarkRtt("mad", -33.9, 18.4, 3.0)]
    result = assess(measurements, licence_from_json({"allowed": ["DEU"]}))
    assert result.verdict is Verdict.INCONSISTENT
    assert result.excluded_landmarks == ("mad",)
    assert result.sound_region is None and result.inside_fraction is None
    # The estimate still comes from the landmarks that agree.
    assert result.estimate_lat_deg is not None and result.estimate_lon_deg is not None
    assert distance_km(result.estimate_lat_deg, result.estimate_lon_deg, 50.1, 8.6) < 300.0


def test_without_licence_there_is_no_verdict_but_regions_and_estimate() -> None:
    result = assess(measure((48.2, 16.3)))
    assert result.verdict is None and result.sound_region is not None
    assert result.plausible_region is not None and result.sound_area_km2 > 0.0
    assert result.confidence is None and result.likely_region is None


def test_tolerance_blocks_verified_near_the_border() -> None:
    allowed = box_region("zone", 0.0, 40.0, 10.0, 55.0)
    chip = (48.0, 9.0)  # ~75 km from the box's east edge at this latitude
    measurements = measure(chip, inflation=1.0)
    strict = Licence((allowed,), (), sea=Sea.EXCLUDED)  # the box edge is no coast
    assert assess(measurements, strict).verdict is Verdict.VERIFIED
    tolerant = Licence((allowed,), (), tolerance_km=100.0, sea=Sea.EXCLUDED)
    assert assess(measurements, tolerant).verdict is Verdict.INCONCLUSIVE


def test_tolerance_blocks_violation_near_the_border() -> None:
    allowed = box_region("zone", 0.0, 40.0, 10.0, 55.0)
    chip = (48.0, 11.0)  # ~75 km east of the box
    measurements = measure(chip, inflation=1.0)
    strict = Licence((allowed,), (), sea=Sea.EXCLUDED)
    assert assess(measurements, strict).verdict is Verdict.VIOLATION
    tolerant = Licence((allowed,), (), tolerance_km=100.0, sea=Sea.EXCLUDED)
    assert assess(measurements, tolerant).verdict is Verdict.INCONCLUSIVE


def test_grow_covers_the_distance_in_every_direction() -> None:
    region = shapely.box(10.0, 59.0, 11.0, 60.0)
    grown = grow(region, 50.0)
    for azimuth in range(0, 360, 15):
        lat, lon = destination(60.0, 11.0, azimuth, 50.0)
        assert grown.covers(shapely.Point(lon, lat))


def test_grow_near_pole_takes_the_whole_band() -> None:
    grown = grow(shapely.box(0.0, 88.5, 1.0, 89.0), 20.0)
    step = 20.0 / 110.574
    assert grown.bounds == (-180.0, pytest.approx(88.5 - step), 180.0, pytest.approx(89.0 + step))


def test_to_json_is_geojson_and_serialisable() -> None:
    out = assess(measure((50.1, 8.6)), licence_from_json({"allowed": ["DEU"]})).to_json()
    json.dumps(out, allow_nan=False)
    assert out["verdict"] == "verified"
    assert out["sound_region"]["type"] in ("Polygon", "MultiPolygon")
    assert set(out) >= {
        "estimate",
        "plausible_region",
        "sound_area_km2",
        "likely_region",
        "confidence",
        "excluded_landmarks",
        "inside_fraction",
    }
    ring = out["sound_region"]["coordinates"][0]
    signed = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in itertools.pairwise(ring))
    assert signed > 0.0  # RFC 7946: exterior rings counter-clockwise


@st.composite
def chips_with_excluding_licence(draw):
    lat = draw(st.one_of(st.floats(-89.0, 89.0), st.sampled_from([-90.0, 0.0, 90.0])))
    lon = draw(st.one_of(st.floats(-180.0, 180.0), st.sampled_from([-180.0, 180.0])))
    landmarks = []
    for i in range(draw(st.integers(2, 6))):
        near = draw(st.booleans())
        if near:
            l_lat, l_lon = destination(lat, lon, draw(st.floats(0, 360)), draw(st.floats(0, 2000)))
        else:
            l_lat, l_lon = draw(st.floats(-90.0, 90.0)), draw(st.floats(-180.0, 180.0))
        delay = draw(st.one_of(st.just(0.0), st.floats(0.0, 5.0), st.floats(0.0, 300.0)))
        rtt = vacuum_rtt_ms(distance_km(l_lat, l_lon, lat, lon)) + delay
        assume(rtt > 0.0)
        landmarks.append(LandmarkRtt(f"l{i}", l_lat, l_lon, rtt))
    # A random box near the chip that excludes it: allowed, or a prohibited one containing it.
    width, height = draw(st.floats(0.01, 60.0)), draw(st.floats(0.01, 40.0))
    gap = draw(st.floats(0.0, 5.0))
    side = draw(st.sampled_from(["east", "west", "north", "south"]))
    if side == "east":
        bounds = (lon + gap, lat - height / 2, lon + gap + width, lat + height / 2)
    elif side == "west":
        bounds = (lon - gap - width, lat - height / 2, lon - gap, lat + height / 2)
    elif side == "north":
        bounds = (lon - width / 2, lat + gap, lon + width / 2, lat + gap + height)
    else:
        bounds = (lon - width / 2, lat - gap - height, lon + width / 2, lat - gap)
    min_lon, min_lat, max_lon, max_lat = bounds
    min_lat, max_lat = max(min_lat, -90.0), min(max_lat, 90.0)
    min_lon, max_lon = max(min_lon, -180.0), min(max_lon, 180.0)
    assume(max_lat - min_lat > 1e-3 and max_lon - min_lon > 1e-3)
    area = shapely.box(min_lon, min_lat, max_lon, max_lat)
    assume(not area.covers(shapely.Point(lon, lat)))
    tolerance = draw(st.sampled_from([0.0, 0.0, 10.0, 100.0]))
    # Strict licences: the box may lie at sea, where only the strict rule excludes a chip
    # (tests/geo/test_sea.py holds the sea-neutral property).
    if draw(st.booleans()):
        licence = Licence((Region("allowed", area),), (), tolerance, Sea.EXCLUDED)
    else:
        prohibited = shapely.box(lon - 1.0, lat - 1.0, lon + 1.0, lat + 1.0)
        licence = Licence(
            (Region("allowed", area),) if draw(st.booleans()) else (),
            (Region("prohibited", prohibited.intersection(shapely.box(-180, -90, 180, 90))),),
            tolerance_km=tolerance,
            sea=Sea.EXCLUDED,
        )
    return (lat, lon), landmarks, licence


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chips_with_excluding_licence())
def test_chip_outside_its_licence_is_never_verified(case) -> None:
    (lat, lon), measurements, licence = case
    result = assess(measurements, licence)
    assert result.verdict is not Verdict.VERIFIED
    assert result.sound_region is not None
    assert result.sound_region.covers(shapely.Point(lon, lat))


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: LandmarkRtt("a", math.nan, 0.0, 1.0), InvalidMeasurementError, "finite"),
        (lambda: LandmarkRtt("a", 95.0, 0.0, 1.0), InvalidMeasurementError, "latitude 95.0"),
        (lambda: LandmarkRtt("a", 0.0, 181.0, 1.0), InvalidMeasurementError, "longitude 181.0"),
        (lambda: LandmarkRtt("a", 0.0, 0.0, 0.0), InvalidMeasurementError, "rtt_ms must be > 0"),
        (lambda: LandmarkRtt("a", 0.0, 0.0, -3.0), InvalidMeasurementError, "must be > 0"),
        (lambda: LandmarkRtt("a", 0.0, 0.0, math.inf), InvalidMeasurementError, "finite"),
        (lambda: LandmarkRtt("bad id!", 0.0, 0.0, 1.0), InvalidMeasurementError, "landmark id"),
        (lambda: assess([LandmarkRtt("a", 0.0, 0.0, 1.0)]), InsufficientDataError, "at least 2"),
        (lambda: licence_from_json({"allowed": ["XYZ"]}), UnknownCountryError, "XYZ"),
        (
            lambda: licence_from_json({"allowed": [{"type": "Polygon", "coordinates": [[1, 2]]}]}),
            InvalidGeometryError,
            "linear ring needs >= 4 positions",
        ),
        (lambda: licence_from_json({}), InvalidLicenceError, "at least one allowed or prohibited"),
        (lambda: licence_from_json({"allowed": "DEU"}), InvalidLicenceError, "must be a list"),
        (lambda: licence_from_json({"alowed": ["DEU"]}), InvalidLicenceError, "unknown keys"),
        (
            lambda: licence_from_json({"allowed": ["DEU"], "tolerance_km": -1}),
            InvalidLicenceError,
            "tolerance_km must be finite and >= 0",
        ),
        (lambda: SolverParams(speed_km_per_s=200_000.0), InvalidMeasurementError, ">= c"),
    ],
)
def test_bad_input_raises_a_clear_geo_error(build, error, message) -> None:
    with pytest.raises(error, match=message):
        build()


def test_licence_json_round_trips() -> None:
    obj = {
        "allowed": ["DEU", {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}],
        "prohibited": ["CHN"],
        "tolerance_km": 5.0,
    }
    licence = licence_from_json(obj)
    again = licence_from_json(licence.to_json())
    assert [r.name for r in again.allowed] == [r.name for r in licence.allowed]
    assert again.allowed[1].geometry.equals(licence.allowed[1].geometry)
    assert again.tolerance_km == 5.0 and again.prohibited[0].name == "CHN"


@st.composite
def chips_with_box_licence(draw):
    """A chip, honest-or-delayed measurements, and a box licence that may or may not hold it."""
    lat, lon = draw(st.floats(-80.0, 80.0)), draw(st.floats(-180.0, 180.0))
    landmarks = []
    for i in range(draw(st.integers(2, 6))):
        l_lat, l_lon = destination(lat, lon, draw(st.floats(0, 360)), draw(st.floats(0, 2500)))
        rtt = vacuum_rtt_ms(distance_km(l_lat, l_lon, lat, lon)) + draw(st.floats(0.0, 20.0))
        assume(rtt > 0.0)
        landmarks.append(LandmarkRtt(f"l{i}", l_lat, l_lon, rtt))
    centre_lat = lat + draw(st.floats(-10.0, 10.0))
    centre_lon = lon + draw(st.floats(-10.0, 10.0))
    half_w, half_h = draw(st.floats(0.1, 20.0)), draw(st.floats(0.1, 15.0))
    area = shapely.box(
        centre_lon - half_w, centre_lat - half_h, centre_lon + half_w, centre_lat + half_h
    )
    area = area.intersection(shapely.box(-180.0, -90.0, 180.0, 90.0))
    assume(area.area > 1e-3)
    tolerance_km = draw(st.sampled_from([0.0, 25.0]))
    licence = Licence((Region("zone", area),), (), tolerance_km, Sea.EXCLUDED)
    return (lat, lon), landmarks, licence


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chips_with_box_licence())
def test_local_frame_and_lonlat_paths_never_disagree_in_direction(case) -> None:
    (lat, lon), measurements, licence = case
    caps = caps_from_measurements(measurements, C_VACUUM_KM_PER_S, 0.0)
    fast, _ = intersect(caps, 5.0)
    general, _ = intersect_lonlat(caps, 5.0)
    assert fast is not None and general is not None
    fast_verdict, _ = judge(fast, licence)
    general_verdict, _ = judge(general, licence)
    assert {fast_verdict, general_verdict} != {Verdict.VERIFIED, Verdict.VIOLATION}
    if not licence.allowed[0].geometry.covers(shapely.Point(lon, lat)):
        assert fast_verdict is not Verdict.VERIFIED
    else:
        assert fast_verdict is not Verdict.VIOLATION


def test_area_of_parts_and_holes_matches_ring_by_ring_areas() -> None:
    outer = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0), (0.0, 0.0)]
    hole = [(2.0, 2.0), (2.0, 4.0), (4.0, 4.0), (4.0, 2.0), (2.0, 2.0)]
    far = [(100.0, -60.0), (120.0, -60.0), (110.0, -50.0), (100.0, -60.0)]
    geometry = shapely.MultiPolygon([shapely.Polygon(outer, [hole]), shapely.Polygon(far)])
    expected = sum(
        sign * ring_area_km2(np.array(ring)[:, 0], np.array(ring)[:, 1])
        for sign, ring in ((1.0, outer), (-1.0, hole), (1.0, far))
    )
    assert area_km2(geometry) == pytest.approx(expected, rel=1e-12)
    assert area_km2(shapely.GeometryCollection([geometry, shapely.Point(0, 0)])) == pytest.approx(
        expected, rel=1e-12
    )
    far_only = ring_area_km2(np.array(far)[:, 0], np.array(far)[:, 1])
    assert area_km2(shapely.Polygon(far)) == pytest.approx(far_only, rel=1e-12)
    with_empty = shapely.MultiPolygon([shapely.Polygon(far), shapely.Polygon()])
    assert area_km2(with_empty) == pytest.approx(far_only, rel=1e-12)
    assert area_km2(None) == 0.0 and area_km2(shapely.Polygon()) == 0.0


@settings(max_examples=60, deadline=None)
@given(st.floats(2.0, 18.0), st.floats(44.0, 56.0), st.floats(0.05, 6.0), st.floats(0.05, 4.0))
def test_fraction_overlay_near_the_region_equals_the_full_overlay(lon, lat, width, height) -> None:
    area = licence_from_json({"allowed": ["DEU", "FRA"]}).allowed_union
    assert area is not None
    region = shapely.box(lon, lat, lon + width, lat + height)
    near = area_km2(intersection_near(region, area))
    assert near == pytest.approx(area_km2(region.intersection(area)), rel=1e-9, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(
    st.floats(-179.0, 170.0),
    st.floats(-88.0, 80.0),
    st.floats(0.01, 8.0),
    st.floats(0.01, 8.0),
    st.floats(0.0, 500.0),
)
def test_prefilter_box_contains_the_grown_region(lon, lat, width, height, distance_km) -> None:
    region = shapely.box(lon, lat, min(lon + width, 180.0), min(lat + height, 90.0))
    box = grown_box(region, distance_km)
    if box is not None:  # None: near the antimeridian or a pole, where judge grows instead
        assert box.covers(grow(region, distance_km))


def test_far_prohibited_region_is_cleared_without_changing_the_verdict() -> None:
    measurements = measure((50.10, 8.60))
    near = assess(measurements, licence_from_json({"allowed": ["DEU"], "prohibited": ["POL"]}))
    far = assess(measurements, licence_from_json({"allowed": ["DEU"], "prohibited": ["CHN"]}))
    assert near.verdict is Verdict.VERIFIED and far.verdict is Verdict.VERIFIED
    inside = assess(measure((52.23, 21.0)), licence_from_json({"prohibited": ["POL", "CHN"]}))
    assert inside.verdict is Verdict.VIOLATION


def test_a_vanishing_tolerance_still_verifies_a_chip_well_inside() -> None:
    allowed = box_region("zone", 0.0, 40.0, 20.0, 55.0)
    licence = Licence((allowed,), (), 1e-90, Sea.EXCLUDED)  # GEOS buffers this to nothing
    assert assess(measure((48.0, 9.0), inflation=1.0), licence).verdict is Verdict.VERIFIED


@st.composite
def regions_with_box_licences(draw):
    """A small region (box or disc) and a licence of boxes around it: allowed, prohibited or
    both, crossing the region, holding it, or missing it, with or without a tolerance."""
    lon, lat = draw(st.floats(-179.0, 175.0)), draw(st.floats(-85.0, 85.0))
    size = draw(st.floats(0.01, 4.0))
    if draw(st.booleans()):
        region = shapely.box(lon, lat, min(lon + size, 180.0), min(lat + size, 90.0))
    else:
        region = (
            shapely.Point(lon, lat).buffer(size / 2).intersection(shapely.box(-180, -90, 180, 90))
        )

    def near_box() -> shapely.Geometry:
        centre_lon = lon + draw(st.floats(-6.0, 6.0))
        centre_lat = lat + draw(st.floats(-6.0, 6.0))
        half_w, half_h = draw(st.floats(0.01, 8.0)), draw(st.floats(0.01, 8.0))
        box = shapely.box(
            centre_lon - half_w, centre_lat - half_h, centre_lon + half_w, centre_lat + half_h
        ).intersection(shapely.box(-180, -90, 180, 90))
        assume(box.area > 1e-6)
        return box

    kind = draw(st.sampled_from(["allowed", "prohibited", "both"]))
    allowed = (Region("a", near_box()),) if kind != "prohibited" else ()
    prohibited = (
        (Region("p", near_box(), draw(st.sampled_from([0.0, 7.0]))),) if kind != "allowed" else ()
    )
    tolerance = draw(st.sampled_from([0.0, 0.0, 20.0, 150.0]))
    return region, Licence(allowed, prohibited, tolerance, draw(st.sampled_from(list(Sea))))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regions_with_box_licences())
def test_verdict_by_points_is_the_verdict_by_growing(case) -> None:
    region, licence = case
    near = _near_prohibited(region, licence)
    exact = _judge_grown(region, licence, near_prohibited=True)  # no box shortcut either
    assert _judge_grown(region, licence, near) is exact
    if _inconclusive_by_points(region, licence, near):
        assert exact is Verdict.INCONCLUSIVE
    assert judge(region, licence)[0] is exact


def test_points_leave_undecided_regions_to_the_grown_test() -> None:
    allowed = Licence((box_region("zone", 0.0, 0.0, 10.0, 10.0),), (), 50.0, Sea.EXCLUDED)
    inside_near_border = shapely.box(9.0, 5.0, 9.9, 5.5)  # every vertex inside, G crosses
    assert not _inconclusive_by_points(inside_near_border, allowed, near_prohibited=False)
    assert judge(inside_near_border, allowed)[0] is Verdict.INCONCLUSIVE
    across = shapely.box(9.0, 5.0, 11.0, 5.5)
    assert _inconclusive_by_points(across, allowed, near_prohibited=False)


BORDER_LICENCE = licence_from_json({"allowed": ["DEU", "FRA"], "prohibited": ["CHE"]})


@settings(max_examples=80, deadline=None)
@given(
    st.floats(4.0, 12.0),
    st.floats(45.5, 50.5),
    st.floats(0.1, 2.5),
    st.floats(0.2, 1.0),
    st.floats(0.0, 1.0),
)
def test_sampled_fraction_is_within_its_bound_of_the_exact_overlay(
    lon, lat, radius_deg, stretch, squeeze
) -> None:
    # Ellipses across the DEU/FRA/CHE borders, like the sound regions judge sees there.
    circle = shapely.Point(lon, lat).buffer(radius_deg, quad_segs=16)
    region = shapely.affinity.scale(circle, xfact=1.0, yfact=stretch)
    region = shapely.affinity.skew(region, xs=45.0 * squeeze)
    near = _near_prohibited(region, BORDER_LICENCE)
    exact = _overlay_fraction(region, BORDER_LICENCE, area_km2(region), near)
    sampled = float(sampled_fractions(np.array([region]), BORDER_LICENCE, np.array([near]))[0])
    if math.isnan(sampled):  # too few lattice points inside: judge overlays exactly
        return
    min_lon, min_lat, max_lon, max_lat = region.bounds
    lattice = (np.arange(FRACTION_SAMPLES) + 0.5) / FRACTION_SAMPLES
    column = np.mod(np.arange(FRACTION_SAMPLES) * (math.sqrt(5.0) - 1.0) / 2.0 + 0.5, 1.0)
    inside = int(
        shapely.contains_xy(
            region,
            min_lon + lattice * (max_lon - min_lon),
            min_lat + column * (max_lat - min_lat),
        ).sum()
    )
    assert inside >= FRACTION_MIN_INSIDE
    assert abs(sampled - exact) <= 1.0 / math.sqrt(inside) <= FRACTION_ERROR_BOUND


def test_a_sliver_too_thin_for_the_lattice_gets_the_exact_overlay() -> None:
    # A thin diagonal band fills a few percent of its box: the lattice abstains.
    region = shapely.LineString([(5.5, 45.5), (10.0, 48.5)]).buffer(0.05)  # via CHE
    near = _near_prohibited(region, BORDER_LICENCE)
    sampled = sampled_fractions(np.array([region]), BORDER_LICENCE, np.array([near]))
    assert math.isnan(float(sampled[0]))
    verdict, fraction = judge(region, BORDER_LICENCE)
    assert verdict is Verdict.INCONCLUSIVE
    assert fraction == _overlay_fraction(region, BORDER_LICENCE, area_km2(region), near)
    assert 0.0 < fraction < 1.0


def test_sampled_fraction_is_deterministic_and_counts_prohibited_ground_out() -> None:
    licence = licence_from_json({"prohibited": ["CHE"]})  # allowed everywhere else
    region = shapely.box(6.0, 46.0, 9.0, 48.5)  # FRA, DEU and CHE
    near = np.array([_near_prohibited(region, licence)])
    assert near[0]
    first = sampled_fractions(np.array([region]), licence, near)
    again = sampled_fractions(np.array([region, region]), licence, np.repeat(near, 2))
    assert first[0] == again[0] == again[1]
    assert sampled_fractions(np.array([region]), licence, np.array([False]))[0] == 1.0
    exact = _overlay_fraction(region, licence, area_km2(region), True)
    assert 0.2 < exact < 0.8  # Switzerland is a large share of this box
    assert abs(first[0] - exact) <= FRACTION_ERROR_BOUND
