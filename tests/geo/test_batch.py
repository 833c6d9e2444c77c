"""`assess_many` gives what `assess` gives, item by item, and keeps the soundness properties."""

import math

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.assess import assess
from geo.assess_batch import assess_many
from geo.assessment import Assessment, Verdict
from geo.calibration import CalibrationModel, CalibrationSample
from geo.caps import caps_from_measurements
from geo.constants import C_VACUUM_KM_PER_S
from geo.errors import InsufficientDataError, InvalidMeasurementError
from geo.geodesy import distance_km, vacuum_rtt_ms
from geo.licence import Licence, licence_from_json
from geo.measurement import LandmarkRtt
from geo.regions import Region
from geo.solver_batch import intersect_local_many, intersect_many
from geo.verdict import _near_prohibited, _near_prohibited_many
from tests.geo.test_solver import scenarios
from tests.geo.test_verdict import LANDMARKS, chips_with_excluding_licence

COUNTRIES = licence_from_json({"allowed": ["DEU", "FRA"], "prohibited": ["CHN"]})
PROHIBITED_ONLY = licence_from_json({"prohibited": ["DEU"], "tolerance_km": 20})
ROUNDING_DEG = 1e-7  # the batch's arithmetic differs from one-by-one only in rounding


def european(chip: tuple[float, float], inflation: float, wrong: bool) -> list[LandmarkRtt]:
    """The benchmark's kind of round; `wrong` lists one landmark far from where it is."""
    measurements = [
        LandmarkRtt(name, lat, lon, vacuum_rtt_ms(distance_km(lat, lon, *chip)) * inflation + 0.2)
        for name, (lat, lon) in LANDMARKS.items()
    ]
    if wrong:
        measurements.append(LandmarkRtt("liar", -33.9, 18.4, 1.0))  # 1 ms from Cape Town
    return measurements


europe_items = st.builds(
    lambda lat, lon, inflation, wrong, licence: (european((lat, lon), inflation, wrong), licence),
    st.floats(44.0, 56.0),
    st.floats(-2.0, 18.0),
    st.floats(1.0, 3.0),
    st.sampled_from([False, False, False, True]),  # sometimes a lying landmark
    st.sampled_from([COUNTRIES, PROHIBITED_ONLY, None]),
)
# Random places, poles and the antimeridian: most of these leave the batch path.
world_items = st.builds(
    lambda scenario, licence: (scenario[1], licence),
    scenarios(),
    st.sampled_from([COUNTRIES, None]),
)
# Sub-0.2 ms round trips to landmarks a few km apart (co-located ones, or a copied key beside
# them): caps of a few km, whose local-frame polygons have the fewest vertices (8) and so turn
# by exactly 45 deg at every untouched corner, a tie for the grown ring's join steps.
KASSEL = {"ks-a": (51.31, 9.48), "ks-b": (51.35, 9.42), "ks-c": (51.27, 9.55)}
GERMANY = licence_from_json({"allowed": ["DEU"]})


def kassel(rtts_ms: tuple[float, float, float]) -> tuple[list[LandmarkRtt], Licence]:
    return [
        LandmarkRtt(name, lat, lon, rtt_ms)
        for (name, (lat, lon)), rtt_ms in zip(KASSEL.items(), rtts_ms, strict=True)
    ], GERMANY


tiny_items = st.tuples(*[st.floats(0.04, 0.25)] * 3).map(kassel)
excluding_items = chips_with_excluding_licence().map(lambda case: (case[1], case[2]))


@st.composite
def twin_items(draw: st.DrawFn) -> tuple[list[LandmarkRtt], Licence]:
    """Two landmarks a hair apart with RTTs equal but for the last bits (a landmark listed
    twice, two in one rack) and a third nearby: the twins' polygon edges are nearly parallel,
    where a last-bit difference moves an edge crossing far along the edge."""
    lat, lon = draw(st.floats(48.0, 53.0)), draw(st.floats(7.0, 13.0))
    offset_deg = 10.0 ** draw(st.floats(-12.0, -9.0))
    rtt_ms = draw(st.floats(0.05, 3.0))
    twin_ms = rtt_ms * (
        1.0 + draw(st.sampled_from([-1.0, 1.0])) * 10.0 ** draw(st.floats(-16.0, -13.0))
    )
    return [
        LandmarkRtt("twin-a", lat, lon, rtt_ms),
        LandmarkRtt("twin-b", lat + offset_deg, lon + offset_deg, twin_ms),
        LandmarkRtt(
            "third",
            lat + draw(st.floats(-0.3, 0.3)),
            lon + draw(st.floats(-0.3, 0.3)),
            rtt_ms * draw(st.floats(0.8, 3.0)),
        ),
    ], GERMANY


items = st.lists(
    st.one_of(europe_items, europe_items, world_items, excluding_items, tiny_items, twin_items()),
    min_size=1,
    max_size=6,
)


def same_geometry(a: shapely.Geometry | None, b: shapely.Geometry | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(shapely.hausdorff_distance(a, b) <= ROUNDING_DEG)


def assert_same(batch: Assessment, single: Assessment) -> None:
    assert batch.verdict is single.verdict
    assert batch.excluded_landmarks == single.excluded_landmarks
    assert same_geometry(batch.sound_region, single.sound_region)
    assert same_geometry(batch.plausible_region, single.plausible_region)
    assert same_geometry(batch.likely_region, single.likely_region)
    # The area integral is ill-conditioned for tiny regions (~1e-4 km² on 13 km²): 1e-3 km².
    assert batch.sound_area_km2 == pytest.approx(single.sound_area_km2, rel=1e-7, abs=1e-3)
    assert (batch.estimate_lat_deg is None) == (single.estimate_lat_deg is None)
    if batch.estimate_lat_deg is not None and single.estimate_lat_deg is not None:
        # The same point: longitudes +-180 deg at the antimeridian are one place.
        assert distance_km(
            batch.estimate_lat_deg,
            batch.estimate_lon_deg or 0.0,
            single.estimate_lat_deg,
            single.estimate_lon_deg or 0.0,
        ) == pytest.approx(0.0, abs=1e-5)
    for got, want in (
        (batch.inside_fraction, single.inside_fraction),
        (batch.confidence, single.confidence),
    ):
        assert (got is None) == (want is None)
        if got is not None and want is not None:
            assert got == pytest.approx(want, abs=ROUNDING_DEG)
    assert batch.to_json().keys() == single.to_json().keys()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items)
def test_batch_gives_what_one_by_one_gives(batch_items) -> None:
    batch = assess_many(batch_items)
    assert len(batch) == len(batch_items)
    for result, (measurements, licence) in zip(batch, batch_items, strict=True):
        assert_same(result, assess(measurements, licence))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(chips_with_excluding_licence(), min_size=1, max_size=5))
def test_in_a_batch_a_chip_outside_its_licence_is_never_verified(cases) -> None:
    results = assess_many([(measurements, licence) for _, measurements, licence in cases])
    for ((lat, lon), _, _), result in zip(cases, results, strict=True):
        assert result.verdict is not Verdict.VERIFIED
        assert result.sound_region is not None
        assert result.sound_region.covers(shapely.Point(lon, lat))


def test_benchmark_rounds_take_the_batch_path() -> None:
    """The equality tests above would hold trivially if every item fell back: the usual
    round must be computed by the batched code."""
    rounds = [european((48.0 + i * 0.5, 3.0 + i), 2.0, False) for i in range(8)]
    cap_sets = [caps_from_measurements(r, C_VACUUM_KM_PER_S, 0.0) for r in rounds]
    batched = intersect_local_many(cap_sets, 5.0 / 6371.0088)
    assert all(result is not None for result in batched)
    for got, want in zip(intersect_many(cap_sets, 5.0), batched, strict=True):
        assert want is not None and same_geometry(got[0], want[0])


def test_inconsistent_item_names_the_wrong_landmark_in_a_batch() -> None:
    good = (european((50.0, 8.0), 1.5, False), COUNTRIES)
    bad = (european((50.0, 8.0), 1.5, True), COUNTRIES)
    first, second = assess_many([good, bad])
    assert first.verdict is not Verdict.INCONSISTENT
    assert second.verdict is Verdict.INCONSISTENT and second.excluded_landmarks == ("liar",)
    assert_same(second, assess(*bad))


def test_sub_millisecond_rounds_match() -> None:
    """Rounds like the copy attack's (tests/verifier/test_copy_attack.py): the batch used to
    grow a 45 deg corner of the smallest cap's octagon in one join step where `assess` took
    two (the turn rounded to either side of 45 deg), ~100 m apart, which the audit reported."""
    rtts_ms = [
        (0.2073904881534542, 0.09361174841833425, 0.043057594734210586),
        (0.06821649126360425, 0.09356449540527856, 0.05971051322258933),
        (0.1530805471049473, 0.045874746657606894, 0.07721436437710236),
    ]
    rounds = [kassel(rtts) for rtts in rtts_ms]
    for got, item in zip(assess_many(rounds), rounds, strict=True):
        assert got.verdict is Verdict.VERIFIED
        assert_same(got, assess(*item))


def test_nearly_co_located_landmarks_match() -> None:
    """Two landmarks ~5 um apart with RTTs equal but for the last bits: their polygons' edges
    are nearly parallel, so a last-bit difference in the vertices moved GEOS's crossing far
    along the edge, and the densified lon/lat ring up to 8 m (7e-5 deg), between the batch and
    `assess` (their vertices were computed with different float arithmetic; now with the same
    functions, `geo.local_frame.plane_vertices`)."""
    rounds = [
        (
            [
                LandmarkRtt("a", 51.24632744197823, 12.44358894104683, 0.885354616879926),
                LandmarkRtt("b", 51.2463274420159, 12.44358894109246, 0.8853546168799291),
                LandmarkRtt("c", 51.4450781071594, 12.250284411187094, 1.9294405646795878),
            ],
            GERMANY,
        ),
        (
            [
                LandmarkRtt("a", 50.1386593555955, 11.593474663875694, 1.4129390432853186),
                LandmarkRtt("b", 50.138659355596026, 11.593474663877371, 1.4129390432853195),
                LandmarkRtt("c", 50.16049239198528, 11.476710007472613, 3.32349536607086),
            ],
            GERMANY,
        ),
    ]
    for got, item in zip(assess_many(rounds), rounds, strict=True):
        assert got.sound_region is not None
        assert_same(got, assess(*item))


def test_calibrated_estimates_match() -> None:
    samples = [
        CalibrationSample(name, d, 2 * d / 120 + 0.5)
        for name in LANDMARKS
        for d in range(100, 1300, 150)
    ]
    model = CalibrationModel.fit(samples)
    batch_items: list[tuple[list[LandmarkRtt], Licence | None]] = [
        (european((49.0 + i, 6.0 + i), 1.8, False), COUNTRIES) for i in range(3)
    ]
    for result, (measurements, licence) in zip(
        assess_many(batch_items, calibration=model), batch_items, strict=True
    ):
        assert result.confidence is not None
        assert_same(result, assess(measurements, licence, calibration=model))


def test_empty_batch_is_empty() -> None:
    assert assess_many([]) == []
    assert intersect_many([], 5.0) == []


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        ([LandmarkRtt("a", 50.0, 8.0, 3.0)], InsufficientDataError, "at least 2"),
        ([(50.0, 8.0, 3.0), (48.0, 2.0, 5.0)], InvalidMeasurementError, "expected LandmarkRtt"),
        (
            [LandmarkRtt("a", 50.0, 8.0, 3.0), LandmarkRtt("a", 51.0, 8.0, 3.0)],
            InvalidMeasurementError,
            "two different positions",
        ),
    ],
)
def test_bad_item_raises_what_assess_raises(bad, error, message) -> None:
    good = european((50.0, 8.0), 2.0, False)
    with pytest.raises(error, match=message):
        assess(bad, COUNTRIES)
    with pytest.raises(error, match=message):
        assess_many([(good, COUNTRIES), (bad, COUNTRIES), (good, None)])
    # The good items are unaffected by a bad neighbour in an earlier call.
    assert_same(assess_many([(good, COUNTRIES)])[0], assess(good, COUNTRIES))


def test_regions_agree_with_single_calls_to_float_rounding() -> None:
    """A direct, non-random check of the figures the verifier stores."""
    rounds = [(european((47.0 + i * 0.7, 2.5 + i * 1.3), 2.5, False), COUNTRIES) for i in range(12)]
    results = assess_many(rounds)
    areas = np.array([r.sound_area_km2 for r in results])
    expected = np.array([assess(*item).sound_area_km2 for item in rounds])
    assert np.allclose(areas, expected, rtol=1e-7)
    assert all(math.isfinite(a) and a > 0.0 for a in areas)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-179.0, 175.0),
            st.floats(-89.9, 85.0),
            st.floats(0.01, 4.0),
            st.floats(0.01, 4.0),
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from([0.0, 50.0, 400.0]),
)
def test_batched_prohibited_box_test_is_the_single_one(boxes, tolerance_km) -> None:
    licence = Licence(
        (), (Region("p", shapely.box(20.0, -10.0, 60.0, 40.0)),), tolerance_km=tolerance_km
    )
    regions = [shapely.box(x, y, min(x + w, 180.0), min(y + h, 90.0)) for x, y, w, h in boxes]
    batched = _near_prohibited_many(np.array(regions, dtype=object), licence)
    assert batched.tolist() == [_near_prohibited(r, licence) for r in regions]


def test_a_failed_batched_overlay_falls_back_to_one_by_one(monkeypatch) -> None:
    """GEOS may reject one set's overlay; the batch must not fail for the others."""
    rounds = [(european((47.5 + i, 4.0 + i), 2.0, False), COUNTRIES) for i in range(4)]
    expected = [assess(*item) for item in rounds]
    real = shapely.intersection_all

    def failing_batched(geometries, axis=None, **kwargs):
        if axis is not None:  # only the batched call passes an axis
            raise shapely.errors.GEOSException("TopologyException: injected")
        return real(geometries, axis=axis, **kwargs)

    monkeypatch.setattr(shapely, "intersection_all", failing_batched)
    for got, want in zip(assess_many(rounds), expected, strict=True):
        assert_same(got, want)
