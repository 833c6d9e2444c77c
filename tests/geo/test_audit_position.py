"""The audit's position-consistency test (geo/audit_position.py)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.audit import audit_landmarks
from geo.audit_position import (
    POSITION_MIN_KM,
    _CurvesWithout,
    check_positions,
)
from geo.calibration import CURVE_BANDWIDTH, CURVE_KNOTS_MS
from geo.geodesy import sphere_distance_km
from geo.leave_out import LeaveOutQuantiles

# A 7 x 7 grid over Europe-sized ground, ~330 km apart, like a cloud's regions.
GRID = np.array([[38.0 + 3.0 * i, -4.0 + 4.5 * j] for i in range(7) for j in range(7)])
IDS = tuple(f"g{k}" for k in range(len(GRID)))


def _rtt_ms(
    true_deg: np.ndarray, seed: int, inflation_range: tuple[float, float] = (1.4, 2.2)
) -> np.ndarray:
    """Honest paths: 2/3 c fibre, inflated, 0.5-3 ms of fixed delay, symmetric."""
    rng = np.random.default_rng(seed)
    lat, lon = true_deg[:, 0], true_deg[:, 1]
    dist = sphere_distance_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    inflation = rng.uniform(*inflation_range, dist.shape)
    fixed_ms = rng.uniform(0.5, 3.0, dist.shape)
    rtt = 2.0 * dist * inflation / 199.86 + fixed_ms
    rtt = np.minimum(rtt, rtt.T)
    np.fill_diagonal(rtt, np.nan)
    return rtt


def _mesh(rtt: np.ndarray) -> list[tuple[str, str, float]]:
    n = len(IDS)
    return [(IDS[a], IDS[b], float(rtt[a, b])) for a in range(n) for b in range(a + 1, n)]


def _positions(deg: np.ndarray) -> dict[str, tuple[float, float]]:
    return {k: (float(deg[i, 0]), float(deg[i, 1])) for i, k in enumerate(IDS)}


def test_honest_grid_has_no_inconsistent_landmark() -> None:
    for seed in range(3):
        checks = check_positions(IDS, GRID, _rtt_ms(GRID, seed))
        assert len(checks) == len(IDS)
        assert not any(c.inconsistent for c in checks.values())


def test_a_landmark_listed_800_km_away_is_suspect_with_its_true_place_as_evidence() -> None:
    # Slow (hub-like) paths, so the move breaks no speed-of-light bound: no proof, only the
    # position test can see it.
    listed = GRID.copy()
    moved = 24  # the centre of the grid, listed to the north-east
    listed[moved] = (GRID[moved, 0] + 5.0, GRID[moved, 1] + 6.0)
    result = audit_landmarks(_positions(listed), _mesh(_rtt_ms(GRID, 1, (2.6, 3.4))))
    audit = result[IDS[moved]]
    assert audit.status == "suspect"
    [evidence] = [e for e in audit.evidence if e["kind"] == "position_inconsistent"]
    assert evidence["distance_km"] >= POSITION_MIN_KM
    true_lat, true_lon = GRID[moved]
    best_km = sphere_distance_km(
        true_lat, true_lon, evidence["best_lat_deg"], evidence["best_lon_deg"]
    )
    assert best_km < 400.0  # its RTTs point back to where it really is
    assert all(result[k].status == "ok" for k in IDS if k != IDS[moved])


@settings(max_examples=10, deadline=None)
@given(st.floats(-20.0, 20.0), st.floats(-20.0, 20.0))
def test_a_landmarks_best_position_ignores_its_own_listing(d_lat: float, d_lon: float) -> None:
    # Leave-the-landmark-out: the model that scores a landmark never sees its own pairs, so
    # where it is listed cannot move the position its RTTs point to.
    rtt = _rtt_ms(GRID, 2)
    listed = GRID.copy()
    listed[10] = (GRID[10, 0] + d_lat, GRID[10, 1] + d_lon)
    honest = check_positions(IDS, GRID, rtt)[IDS[10]]
    moved = check_positions(IDS, listed, rtt)[IDS[10]]
    assert (moved.best_lat_deg, moved.best_lon_deg) == (honest.best_lat_deg, honest.best_lon_deg)
    assert moved.log_likelihood_ratio >= 0.0


def test_landmarks_with_too_few_partners_are_not_tested() -> None:
    rtt = _rtt_ms(GRID, 0)
    rtt[5, :] = np.nan
    rtt[:, 5] = np.nan
    rtt[5, 6] = rtt[6, 5] = 4.0  # one measured partner
    checks = check_positions(IDS, GRID, rtt)
    assert IDS[5] not in checks and IDS[6] in checks


def test_leave_one_out_curves_match_a_direct_weighted_fit() -> None:
    rng = np.random.default_rng(4)
    n = 12
    a, b = np.triu_indices(n, 1)
    dist_km = rng.uniform(100.0, 9000.0, len(a))
    rtt_ms = dist_km / rng.uniform(40.0, 95.0, len(a)) + rng.uniform(0.5, 5.0, len(a))
    curves = _CurvesWithout(dist_km, rtt_ms, a, b)
    for landmark in (0, 5, 11):
        keep = (a != landmark) & (b != landmark)
        curve = curves.without(landmark)
        assert curve is not None
        log_speed = np.log(dist_km[keep] / rtt_ms[keep])
        log_rtt = np.log(rtt_ms[keep])
        for k, knot in enumerate(CURVE_KNOTS_MS):
            weight = np.exp(-0.5 * ((log_rtt - math.log(knot)) / CURVE_BANDWIDTH) ** 2)
            order = np.argsort(log_speed)
            cumulative = np.cumsum(weight[order])
            median = log_speed[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])]
            assert curve.log_speed[k] == median


def test_leave_out_quantiles_match_a_direct_fit_with_excluded_samples() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(size=300)
    log_rtt = rng.uniform(0.0, 5.0, 300)
    included = rng.random(300) > 0.2
    knots = np.linspace(0.0, 5.0, 7)
    quantiles = LeaveOutQuantiles(values, log_rtt, knots, 0.4, included)
    for left_out in (np.array([], dtype=np.intp), np.array([3, 40, 41, 299])):
        keep = included.copy()
        keep[left_out] = False
        got, total = quantiles.without(left_out, (0.1, 0.98))
        for k, knot in enumerate(knots):
            weight = np.exp(-0.5 * ((log_rtt[keep] - knot) / 0.4) ** 2)
            order = np.argsort(values[keep])
            cumulative = np.cumsum(weight[order])
            assert math.isclose(total[k], cumulative[-1], rel_tol=1e-9)
            for row, q in enumerate((0.1, 0.98)):
                expected = values[keep][order][np.searchsorted(cumulative, q * cumulative[-1])]
                assert got[row, k] == expected
