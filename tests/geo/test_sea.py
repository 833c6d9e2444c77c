"""Sea-neutral licences (the default) and the strict rule kept per licence (`sea: "excluded"`)."""

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from geo.assess import assess
from geo.assess_batch import assess_many
from geo.assessment import Verdict
from geo.errors import InvalidLicenceError
from geo.geodesy import destination, distance_km, vacuum_rtt_ms
from geo.licence import Licence, Sea, licence_from_json
from geo.measurement import LandmarkRtt
from geo.regions import Region, country
from geo.sea import TERRITORIAL_SEA_KM, foreign_land

# Neighbours across land borders and narrow seas, where a wrong rule would show first.
NEIGHBOURHOODS = (
    ("IDN", "SGP", "MYS"),
    ("SGP", "MYS"),
    ("PRK", "KOR", "JPN", "CHN"),
    ("IRN", "ARE", "OMN", "SAU", "QAT"),
    ("GBR", "FRA", "IRL", "BEL", "NLD"),
    ("USA", "CAN", "MEX", "CUB", "BHS"),
    ("DNK", "SWE", "DEU", "NOR"),
)


def honest(chip: tuple[float, float], places: list[tuple[float, float]], delay_ms: float):
    return [
        LandmarkRtt(f"l{i}", lat, lon, vacuum_rtt_ms(distance_km(lat, lon, *chip)) + delay_ms)
        for i, (lat, lon) in enumerate(places)
    ]


@st.composite
def chips_near_foreign_land(draw):
    """A chip on the land, or within the territorial sea, of a country its licence does not
    allow (next to countries it does, but not on their land), measured tightly by landmarks
    around it."""
    group = draw(st.sampled_from(NEIGHBOURHOODS))
    foreign = draw(st.sampled_from(group))
    others = [c for c in group if c != foreign]
    allowed = draw(st.lists(st.sampled_from(others), min_size=1, max_size=len(others), unique=True))
    coast = shapely.get_coordinates(country(foreign).geometry)
    lon, lat = coast[draw(st.integers(0, len(coast) - 1))]
    # Often near the outer edge of the territorial sea, where a missing margin shows.
    offshore_km = draw(
        st.one_of(st.floats(0, TERRITORIAL_SEA_KM), st.floats(0.8 * TERRITORIAL_SEA_KM, 22.2))
    )
    lat, lon = destination(float(lat), float(lon), draw(st.floats(0, 360)), offshore_km)
    assume(-80.0 < lat < 80.0)
    # Allowed land near a foreign border is allowed land (the strict rule may verify it).
    point = shapely.Point(lon, lat)
    assume(not any(country(c).geometry.covers(point) for c in allowed))
    # One landmark in the same metro, the others anywhere within 400 km.
    places = [destination(lat, lon, draw(st.floats(0, 360)), draw(st.floats(0.01, 5)))]
    places += [
        destination(lat, lon, draw(st.floats(0, 360)), draw(st.floats(0.01, 400)))
        for _ in range(draw(st.integers(1, 4)))
    ]
    delay_ms = draw(st.sampled_from([0.0, 0.0, 0.05, 1.0]))
    tolerance_km = draw(st.sampled_from([0.0, 0.0, 10.0]))
    licence = licence_from_json({"allowed": allowed, "tolerance_km": tolerance_km})
    return (lat, lon), honest((lat, lon), places, delay_ms), licence


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chips_near_foreign_land())
def test_a_chip_on_or_off_the_coast_of_a_country_outside_its_licence_is_never_verified(
    case,
) -> None:
    (lat, lon), measurements, licence = case
    result = assess(measurements, licence)
    assert result.verdict is not Verdict.VERIFIED
    assert result.sound_region is not None
    assert result.sound_region.covers(shapely.Point(lon, lat))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(chips_near_foreign_land(), min_size=1, max_size=4))
def test_in_a_batch_too(cases) -> None:
    results = assess_many([(measurements, licence) for _, measurements, licence in cases])
    assert all(r.verdict is not Verdict.VERIFIED for r in results)


TOKYO_DC = (35.62, 139.75)
TOKYO_LANDMARKS = [(35.68, 139.65), (34.69, 135.50), (43.06, 141.35)]  # Tokyo, Osaka, Sapporo


def test_a_coastal_data_centre_is_verified_only_when_the_sea_is_neutral() -> None:
    measurements = honest(TOKYO_DC, TOKYO_LANDMARKS, delay_ms=0.3)
    neutral = assess(measurements, licence_from_json({"allowed": ["JPN"]}))
    strict = assess(measurements, licence_from_json({"allowed": ["JPN"], "sea": "excluded"}))
    assert neutral.verdict is Verdict.VERIFIED
    assert strict.verdict is Verdict.INCONCLUSIVE  # the sound disc reaches Tokyo Bay


def test_a_chip_whose_region_reaches_foreign_territorial_sea_is_not_verified() -> None:
    # Singapore: Indonesian islands lie ~26 km south, inside 12 nmi plus their border error.
    singapore = (1.30, 103.79)
    measurements = honest(singapore, [(1.35, 103.82), (3.14, 101.69), (13.75, 100.50)], 0.0)
    result = assess(measurements, licence_from_json({"allowed": ["SGP", "MYS"]}))
    assert result.verdict is Verdict.INCONCLUSIVE
    with_indonesia = licence_from_json({"allowed": ["SGP", "MYS", "IDN"]})
    assert assess(measurements, with_indonesia).verdict is Verdict.VERIFIED


def test_violation_is_the_same_under_both_rules() -> None:
    madrid = (40.42, -3.69)
    places = [(40.4, -3.7), (41.39, 2.17), (38.72, -9.14)]
    for sea in ("neutral", "excluded"):
        licence = licence_from_json({"allowed": ["DEU"], "sea": sea})
        assert assess(honest(madrid, places, 0.0), licence).verdict is Verdict.VIOLATION


def test_a_region_at_sea_that_touches_no_allowed_land_is_a_violation() -> None:
    mid_atlantic = (35.0, -40.0)
    places = [destination(*mid_atlantic, bearing, 300.0) for bearing in (0.0, 120.0, 240.0)]
    result = assess(honest(mid_atlantic, places, 0.0), licence_from_json({"allowed": ["PRT"]}))
    assert result.verdict is Verdict.VIOLATION


def test_prohibited_only_licences_keep_a_territorial_sea_from_the_prohibited_coast() -> None:
    # Off Dover, ~15 km from the French coast: clear of France by land, not by its waters.
    channel = (51.05, 1.50)
    places = [(51.13, 1.31), (51.05, 1.60), (50.95, 1.45)]
    measurements = honest(channel, places, 0.0)
    neutral = licence_from_json({"prohibited": ["FRA"]})
    assert assess(measurements, neutral).verdict is not Verdict.VERIFIED


def test_custom_allowed_region_carves_its_land_out_of_the_foreign_land() -> None:
    bavaria = Region("bavaria", shapely.box(10.0, 47.5, 13.5, 50.0))
    foreign = foreign_land((bavaria,))
    munich = shapely.Point(11.58, 48.14)
    berlin = shapely.Point(13.40, 52.52)
    assert not foreign.hits_xy(np.array([munich.x]), np.array([munich.y])).any()
    assert foreign.hits_xy(np.array([berlin.x]), np.array([berlin.y])).all()


def test_countries_share_one_cached_foreign_land() -> None:
    a = licence_from_json({"allowed": ["DEU", "FRA"]})
    b = licence_from_json({"allowed": ["FRA", "DEU"], "tolerance_km": 5})
    assert a.foreign is b.foreign
    assert licence_from_json({"allowed": ["DEU"], "sea": "excluded"}).foreign is None


def test_sea_round_trips_and_defaults_to_neutral() -> None:
    assert licence_from_json({"allowed": ["DEU"]}).sea is Sea.NEUTRAL
    strict = licence_from_json({"allowed": ["DEU"], "sea": "excluded"})
    assert licence_from_json(strict.to_json()) == strict
    assert strict.to_json()["sea"] == "excluded"


@pytest.mark.parametrize("bad", ["land", "", None, ["excluded"], 1])
def test_an_unknown_sea_rule_is_refused_clearly(bad) -> None:
    with pytest.raises(InvalidLicenceError, match=r"licence\.sea must be one of 'neutral'"):
        licence_from_json({"allowed": ["DEU"], "sea": bad})


def test_a_sea_rule_that_is_not_a_sea_value_is_refused() -> None:
    with pytest.raises(InvalidLicenceError, match="sea must be a Sea value"):
        Licence((country("DEU"),), (), sea="neutral")  # type: ignore[arg-type]


def test_a_ship_in_the_territorial_sea_of_a_foreign_country_is_not_verified() -> None:
    # In the Singapore Strait, 17.7 km off Singapore (border error 0.3 km), licensed to its
    # neighbours: only the 12 nmi margin keeps this from `verified`.
    ship = (1.17, 104.0)
    places = [destination(*ship, bearing, 1.0) for bearing in (0.0, 120.0, 240.0)]
    licence = licence_from_json({"allowed": ["IDN", "MYS"]})
    result = assess(honest(ship, places, 0.0), licence)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert assess_many([(honest(ship, places, 0.0), licence)])[0].verdict is Verdict.INCONCLUSIVE
