"""The fast path's disc route (sim/discs.py): co-located landmarks near a foreign border.

Soundness: a fast `verified` is always confirmed by the exact verdict (`geo.assess.assess`),
and at f = 1 by the exact verdict with any one landmark left out. Usefulness: metros the cell
route could never prove (Kuala Lumpur, Abu Dhabi, Munich) are proven with a co-located
landmark, and those geo itself cannot prove (Seoul at 0.1 ms, Singapore) stay unproven.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.assess import assess
from geo.assessment import Verdict
from geo.geodesy import sphere_destinations_rad, unit_vectors
from geo.licence import Licence
from geo.measurement import LandmarkRtt
from geo.regions import country
from sim import discs
from sim.fastpath import (
    KM_PER_MS_RTT,
    CountryCells,
    FastParams,
    FastVerdict,
    LandmarkField,
    build_grid,
    classify_cells,
    fast_verdict,
    land_touches,
    margin_km_for,
)
from sim.site_limits import site_limit
from sim.sites import Site, pairwise_km

MARGIN_KM = margin_km_for(5.0)  # geo's default resolution, as the verifier runs it
GRID = build_grid(150.0)  # the disc route does not depend on the cell size
LAND = land_touches(GRID, MARGIN_KM)
# Data-centre metros near a foreign border or coast, and the neighbour a smuggler would pick.
METROS = (
    ("Seoul", "KOR", 37.50, 127.03, "PRK"),
    ("Busan", "KOR", 35.18, 129.08, "JPN"),
    ("Singapore", "SGP", 1.30, 103.79, "MYS"),
    ("Cyberjaya", "MYS", 2.92, 101.65, "IDN"),
    ("Kuala Lumpur", "MYS", 3.14, 101.69, "SGP"),
    ("Dubai", "ARE", 25.10, 55.20, "OMN"),
    ("Abu Dhabi", "ARE", 24.45, 54.38, "OMN"),
    ("Munich", "DEU", 48.14, 11.58, "AUT"),
    ("Geneva", "CHE", 46.20, 6.15, "FRA"),
    ("Detroit", "USA", 42.33, -83.05, "CAN"),
)
_CELLS: dict[str, CountryCells] = {}


def cells_of(code: str) -> CountryCells:
    if code not in _CELLS:
        _CELLS[code] = classify_cells(GRID, country(code), MARGIN_KM, LAND)
    return _CELLS[code]


def _offset(lat: float, lon: float, bearing_deg: float, km: float) -> tuple[float, float]:
    out_lat, out_lon = sphere_destinations_rad(
        math.radians(lat), math.radians(lon), np.array([math.radians(bearing_deg)]), km / 6371.0088
    )
    return float(np.degrees(out_lat[0])), float(np.degrees(out_lon[0]))


@dataclass(frozen=True)
class Case:
    """A chip near a metro, two landmarks in its data centre and two farther away."""

    chip: tuple[float, float]
    landmarks: np.ndarray  # (n, 2) lat, lon
    rtt_ms: np.ndarray
    licence_code: str
    site: tuple[float, float] | None  # declared site, when it lies in the licensed country
    home: str  # the country the chip is in


def make_case(draw: np.random.Generator) -> Case:
    _, home, lat, lon, neighbour = METROS[int(draw.integers(len(METROS)))]
    chip = _offset(lat, lon, float(draw.uniform(0, 360)), float(draw.uniform(0.0, 8.0)))
    co = [_offset(lat, lon, float(draw.uniform(0, 360)), float(draw.uniform(0.0, 2.0)))]
    co.append(_offset(lat, lon, float(draw.uniform(0, 360)), float(draw.uniform(0.0, 2.0))))
    far = [
        _offset(lat, lon, float(draw.uniform(0, 360)), float(draw.uniform(100.0, 600.0)))
        for _ in range(2)
    ]
    landmarks = np.array(co + far)
    vacuum_ms = (
        pairwise_km(
            unit_vectors([chip[0]], [chip[1]]), unit_vectors(landmarks[:, 0], landmarks[:, 1])
        )[0]
        * 1.0046  # sphere -> geodesic upper bound: every RTT stays above the true light time
        / KM_PER_MS_RTT
    )
    # Co-located answers cover the interesting range: geo's own thresholds lie within it.
    extra = np.concatenate((draw.uniform(0.0, 0.3, 2), draw.uniform(0.0, 3.0, 2)))
    rtt = vacuum_ms * np.concatenate(([1.0, 1.0], draw.uniform(1.0, 3.0, 2))) + extra
    code = home if draw.random() < 0.8 else neighbour
    site = chip if draw.random() < 0.7 else co[0]
    in_country = bool(shapely.contains_xy(country(code).geometry, site[1], site[0]))
    return Case(chip, landmarks, rtt, code, site if in_country else None, home)


def fast_of(case: Case, robust: int) -> FastVerdict:
    field = LandmarkField(GRID, case.landmarks[:, 0], case.landmarks[:, 1])
    site_km = None
    if case.site is not None:
        site_km = pairwise_km(unit_vectors([case.site[0]], [case.site[1]]), field.xyz)[0]
    params = FastParams(margin_km=MARGIN_KM, k_best=4, robust_landmarks=robust)
    return fast_verdict(field, params, cells_of(case.licence_code), case.rtt_ms, site_km).verdict


def exact_of(case: Case, leave_out: int | None = None) -> Verdict | None:
    measurements = [
        LandmarkRtt(f"lm{i}", float(lat), float(lon), float(rtt))
        for i, ((lat, lon), rtt) in enumerate(zip(case.landmarks, case.rtt_ms, strict=True))
        if i != leave_out
    ]
    licence = Licence(allowed=(country(case.licence_code),), prohibited=())
    return assess(measurements, licence).verdict


def confirmed(case: Case, robust: int) -> bool:
    """The exact verdict is `verified` with every set of `robust` (0 or 1) landmarks left out."""
    leave_outs: list[int | None] = [None] if robust == 0 else list(range(len(case.rtt_ms)))
    return all(exact_of(case, leave_out) is Verdict.VERIFIED for leave_out in leave_outs)


def test_seeded_sweep_every_fast_verified_is_exactly_verified() -> None:
    """200 chips at border metros, f = 0 and 1: each fast `verified` is confirmed by assess.
    The sweep is not vacuous: it holds dozens of them, most beyond the cell route's reach."""
    draw = np.random.default_rng(13)
    verified = {0: 0, 1: 0}
    wrong_licence_verified = 0
    for _ in range(200):
        case = make_case(draw)
        for robust in (0, 1):
            if fast_of(case, robust) is FastVerdict.VERIFIED:
                verified[robust] += 1
                assert confirmed(case, robust), case
                wrong_licence_verified += case.licence_code != case.home
    assert verified[0] >= 30 and verified[1] >= 20, verified
    assert wrong_licence_verified == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), robust=st.integers(0, 1))
def test_fast_verified_implies_exact_verified(seed: int, robust: int) -> None:
    case = make_case(np.random.default_rng(seed))
    if fast_of(case, robust) is FastVerdict.VERIFIED:
        assert confirmed(case, robust)


def _colocated_case(name: str, rtt_ms: float, code: str | None = None) -> Case:
    _, home, lat, lon, _ = next(m for m in METROS if m[0] == name)
    far = _offset(lat, lon, 45.0, 300.0)
    landmarks = np.array([[lat, lon], [lat, lon], list(far)])
    rtt = np.array([rtt_ms, rtt_ms, 300.0 / KM_PER_MS_RTT * 2.5])
    return Case((lat, lon), landmarks, rtt, code or home, (lat, lon), home)


@pytest.mark.parametrize("name", ["Kuala Lumpur", "Cyberjaya", "Abu Dhabi", "Munich"])
@pytest.mark.parametrize("robust", [0, 1])
def test_colocated_landmarks_prove_border_metros_the_cells_could_not(name: str, robust: int):
    case = _colocated_case(name, 0.1)
    assert fast_of(case, robust) is FastVerdict.VERIFIED
    assert confirmed(case, robust)


@pytest.mark.parametrize(
    ("name", "rtt_ms"),
    [
        # geo itself: Seoul needs <= 0.025 ms (North Korea's land grown by 12 nmi and its
        # 20.8 km border error is 46 km away); Singapore is within Malaysia's at any RTT.
        ("Seoul", 0.1),
        ("Singapore", 0.02),
        ("Detroit", 0.02),
    ],
)
def test_what_geo_cannot_prove_the_fast_path_does_not_claim(name: str, rtt_ms: float) -> None:
    case = _colocated_case(name, rtt_ms)
    assert exact_of(case) is not Verdict.VERIFIED
    assert fast_of(case, 0) is not FastVerdict.VERIFIED


def test_a_neighbours_licence_is_never_verified_from_a_colocated_landmark() -> None:
    case = _colocated_case("Munich", 0.02, code="AUT")
    assert fast_of(case, 0) is not FastVerdict.VERIFIED


def test_disc_cache_rounds_up_and_stops_at_its_limit() -> None:
    judge = discs.DiscVerdicts(country("DEU"))
    assert judge.verified(48.14, 11.58, 30.1)
    assert list(judge._verified) == [(48.14, 11.58, math.ceil(30.1 / discs.DISC_STEP_KM))]
    assert judge.verified(48.14, 11.58, 30.2)  # the same disc of 30.5 km serves it
    assert len(judge._verified) == 1
    assert not judge.verified(50.11, 8.68, discs.DISC_MAX_KM + 1.0)  # not judged


def test_site_limits_say_which_metros_no_placement_can_prove() -> None:
    seoul = site_limit(Site("Seoul", "KOR", 37.57, 126.98, "city", "t"), MARGIN_KM)
    singapore = site_limit(Site("Singapore", "SGP", 1.35, 103.82, "city", "t"), MARGIN_KM)
    dubai = site_limit(Site("Dubai", "ARE", 25.20, 55.27, "city", "t"), MARGIN_KM)
    # geo proves Seoul only with a co-located round trip of ~27 µs or less; the fast path's
    # doubled polygon margin (11 km) leaves it nothing.
    assert seoul.exact_ms is not None and 0.02 < seoul.exact_ms < 0.035
    assert seoul.fast_ms is None
    assert singapore.exact_ms is None and singapore.fast_ms is None
    assert dubai.fast_ms is not None and dubai.exact_ms is not None
    assert 0.05 < dubai.fast_ms < dubai.exact_ms < 0.2  # the fast path is the stricter
    out = dubai.to_json(planned_rtt_ms=0.1)
    assert out["provable_at_planned_rtt"] is False
    assert dubai.to_json(planned_rtt_ms=0.05)["provable_at_planned_rtt"] is True
