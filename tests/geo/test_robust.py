import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from geo.assess import assess
from geo.assessment import Verdict
from geo.errors import InsufficientDataError, InvalidMeasurementError
from geo.geodesy import destination, distance_km, vacuum_rtt_ms
from geo.licence import Licence, Sea, licence_from_json
from geo.measurement import LandmarkRtt
from geo.regions import Region
from geo.robust import assess_tolerating

TINY_RTT_MS = 0.001  # 150 m: a liar's cap around whatever position it claims


def honest(
    landmark_id: str,
    position: tuple[float, float],
    chip: tuple[float, float],
    delay_ms: float = 0.0,
) -> LandmarkRtt:
    return LandmarkRtt(
        landmark_id, *position, vacuum_rtt_ms(distance_km(*position, *chip)) + delay_ms
    )


def box_licence(min_lon: float, min_lat: float, max_lon: float, max_lat: float) -> Licence:
    # Strict: these boxes may lie at sea, where only the strict rule excludes a chip.
    return Licence(
        (Region("box", shapely.box(min_lon, min_lat, max_lon, max_lat)),), (), sea=Sea.EXCLUDED
    )


@st.composite
def attacks(draw):
    """A chip, a box licence around or away from it, honest landmarks with any delay the
    chip's owner adds, and ONE landmark that lies arbitrarily (position and/or RTT)."""
    chip = (draw(st.floats(-60.0, 60.0)), draw(st.floats(-150.0, 150.0)))
    inside = draw(st.booleans())
    half_lat, half_lon = draw(st.floats(0.5, 8.0)), draw(st.floats(0.5, 8.0))
    if inside:
        centre = chip
    else:  # a licensed box that does not hold the chip
        bearing, gap_km = draw(st.floats(0.0, 360.0)), draw(st.floats(100.0, 3000.0))
        centre = destination(*chip, bearing, gap_km + 1200.0)
        assume(abs(centre[0]) < 70.0 and abs(centre[1]) < 170.0)
    box = (centre[1] - half_lon, centre[0] - half_lat, centre[1] + half_lon, centre[0] + half_lat)
    assume(shapely.box(*box).contains(shapely.Point(chip[1], chip[0])) == inside)
    count = draw(st.integers(3, 6))
    landmarks = []
    for i in range(count - 1):
        position = destination(*chip, draw(st.floats(0.0, 360.0)), draw(st.floats(1.0, 4000.0)))
        delay_ms = draw(st.one_of(st.just(0.0), st.floats(0.0, 60.0)))
        landmarks.append(honest(f"h{i}", position, chip, delay_ms))
    # The lie: a position where the liar's cap helps most (inside the box for an outside chip,
    # outside it for an inside chip), its true one, or any; an RTT as small as it likes.
    target = centre if not inside else destination(*chip, draw(st.floats(0.0, 360.0)), 2500.0)
    claimed = draw(st.sampled_from(["target", "true", "anywhere"]))
    true_position = destination(*chip, draw(st.floats(0.0, 360.0)), draw(st.floats(1.0, 4000.0)))
    position = {
        "target": target,
        "true": true_position,
        "anywhere": (draw(st.floats(-80.0, 80.0)), draw(st.floats(-179.0, 179.0))),
    }[claimed]
    rtt_ms = draw(st.one_of(st.just(TINY_RTT_MS), st.floats(TINY_RTT_MS, 80.0)))
    liar = LandmarkRtt("liar", *position, rtt_ms)
    landmarks.insert(draw(st.integers(0, len(landmarks))), liar)
    return inside, box_licence(*box), landmarks


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attacks())
def test_one_liar_never_verifies_an_outside_chip_nor_condemns_an_inside_one(attack) -> None:
    inside, licence, measurements = attack
    verdict = assess_tolerating(measurements, licence, faulty_landmarks=1).verdict
    if inside:
        assert verdict is not Verdict.VIOLATION
    else:
        assert verdict is not Verdict.VERIFIED


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attacks())
def test_no_tolerance_is_exactly_assess(attack) -> None:
    _, licence, measurements = attack
    assert (
        assess_tolerating(measurements, licence, faulty_landmarks=0).to_json()
        == assess(measurements, licence).to_json()
    )


EUROPE = {
    "fra": (50.11, 8.68),
    "par": (48.86, 2.35),
    "ams": (52.37, 4.90),
    "ber": (52.52, 13.40),
    "waw": (52.23, 21.01),
    "vie": (48.21, 16.37),
}
MADRID = (40.42, -3.69)


def test_a_liar_verifies_a_smuggled_chip_without_tolerance_but_not_with_it() -> None:
    """The threat, concretely: a chip in Madrid, licensed for Germany, its owner delaying
    every honest answer; a liar at Frankfurt signs a 1 µs RTT."""
    licence = licence_from_json({"allowed": ["DEU"]})
    measurements = [
        honest(name, position, MADRID, delay_ms=40.0)
        for name, position in EUROPE.items()
        if name != "fra"
    ]
    measurements.append(LandmarkRtt("fra", *EUROPE["fra"], TINY_RTT_MS))
    assert assess(measurements, licence).verdict is Verdict.VERIFIED
    robust = assess_tolerating(measurements, licence, faulty_landmarks=1)
    assert robust.verdict is Verdict.INCONCLUSIVE
    # The full set's regions are kept (they are what the landmarks said).
    assert (
        robust.to_json()["sound_region"] == assess(measurements, licence).to_json()["sound_region"]
    )


def test_an_honest_chip_with_two_close_landmarks_stays_verified_under_f_1() -> None:
    chip = (50.5, 9.5)
    measurements = [honest(name, position, chip, delay_ms=0.3) for name, position in EUROPE.items()]
    measurements.append(honest("fra2", (50.0, 8.3), chip, delay_ms=0.3))
    licence = licence_from_json({"allowed": ["DEU"]})
    assert assess_tolerating(measurements, licence, faulty_landmarks=1).verdict is Verdict.VERIFIED
    # The price of tolerance: leaving out both nearby landmarks leaves only far ones.
    assert assess_tolerating(measurements, licence, faulty_landmarks=2).verdict is (
        Verdict.INCONCLUSIVE
    )


def test_every_subset_inconsistent_is_inconsistent() -> None:
    """Three far-apart landmarks each claiming the chip is within metres: no two agree."""
    measurements = [
        LandmarkRtt("a", 0.0, 0.0, TINY_RTT_MS),
        LandmarkRtt("b", 0.0, 40.0, TINY_RTT_MS),
        LandmarkRtt("c", 40.0, 0.0, TINY_RTT_MS),
    ]
    licence = box_licence(-1.0, -1.0, 1.0, 1.0)
    assert assess(measurements, licence).verdict is Verdict.INCONSISTENT
    assert assess_tolerating(measurements, licence, faulty_landmarks=1).verdict is (
        Verdict.INCONSISTENT
    )


def test_no_licence_gives_no_verdict() -> None:
    measurements = [honest(name, position, MADRID) for name, position in EUROPE.items()]
    assert assess_tolerating(measurements, None, faulty_landmarks=1).verdict is None


def test_too_few_landmarks_for_the_tolerance_is_a_clear_error() -> None:
    measurements = [honest(name, EUROPE[name], MADRID) for name in ("fra", "par")]
    # Repeats of one landmark do not count twice.
    measurements.append(honest("par", EUROPE["par"], MADRID, delay_ms=1.0))
    with pytest.raises(InsufficientDataError, match="needs at least 3 distinct landmarks, got 2"):
        assess_tolerating(measurements, licence_from_json({"allowed": ["DEU"]}), faulty_landmarks=1)


@pytest.mark.parametrize("faulty", [-1, 3, True, 1.0])
def test_tolerance_out_of_range_is_rejected(faulty) -> None:
    measurements = [honest(name, position, MADRID) for name, position in EUROPE.items()]
    with pytest.raises(InvalidMeasurementError, match="faulty_landmarks"):
        assess_tolerating(measurements, None, faulty_landmarks=faulty)
