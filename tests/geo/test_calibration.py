"""Calibrated tier: bestline, model fit, robustness, and the CBG comparison on synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box

from benchmarks.calibration_eval import Dataset, cbg_estimate, synthetic
from geo.calibration import (
    NEAREST_LANDMARKS,
    PLAUSIBLE_KM_PER_RTT_MS,
    CalibrationModel,
    CalibrationSample,
    bestline,
)
from geo.errors import GeoError, InsufficientDataError
from geo.geodesy import sphere_distance_km
from geo.measurement import LandmarkRtt

TARGET_STEP = 12  # every 9th honest city as a leave-one-out target keeps the test fast


@pytest.fixture(scope="module")
def data() -> Dataset:
    return synthetic(seed=3)


_FOLDS: dict[tuple[int, int], tuple[CalibrationModel, list[LandmarkRtt], list[int]]] = {}


def _fold(data: Dataset, target: int) -> tuple[CalibrationModel, list[LandmarkRtt], list[int]]:
    """Calibrate on every landmark but the target (cached: fits are the slow part)."""
    key = (id(data), target)
    if key not in _FOLDS:
        _FOLDS[key] = _fit_fold(data, target)
    return _FOLDS[key]


def _fit_fold(data: Dataset, target: int) -> tuple[CalibrationModel, list[LandmarkRtt], list[int]]:
    claimed = data.claimed_deg
    others = [i for i in range(len(data.ids)) if i != target]
    dist = sphere_distance_km(
        claimed[others, None, 0],
        claimed[others, None, 1],
        claimed[None, others, 0],
        claimed[None, others, 1],
    )
    samples = [
        CalibrationSample(data.ids[a], float(dist[i, j]), float(data.rtt_ms[a, b]))
        for i, a in enumerate(others)
        for j, b in enumerate(others)
        if a != b
    ]
    measurements = [
        LandmarkRtt(
            data.ids[i], float(claimed[i, 0]), float(claimed[i, 1]), float(data.rtt_ms[target, i])
        )
        for i in others
    ]
    return CalibrationModel.fit(samples), measurements, others


def _error_km(data: Dataset, target: int, lat_deg: float, lon_deg: float) -> float:
    truth = data.true_deg[target]
    return float(sphere_distance_km(truth[0], truth[1], lat_deg, lon_deg))


def _targets(data: Dataset) -> list[int]:
    return [i for i in range(len(data.ids)) if data.ids[i] not in data.misplaced][::TARGET_STEP]


def test_bestline_lies_below_every_point_and_respects_fibre_speed() -> None:
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 5000, 60)
    r = 2 * d * rng.uniform(1.5, 3.0, 60) / (PLAUSIBLE_KM_PER_RTT_MS * 2) + rng.uniform(1, 4, 60)
    slope, intercept = bestline(d, r)
    assert np.all(slope * d + intercept <= r + 1e-9)
    assert slope >= 1 / PLAUSIBLE_KM_PER_RTT_MS and intercept >= 0
    # It touches the data: moving it up by 0.1 ms would cross a point.
    assert np.any(slope * d + intercept + 0.1 > r)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.0, 9000.0), st.floats(0.5, 40.0)),
        min_size=1,
        max_size=9,
    )
)
def test_bestline_is_the_lp_optimum(points: list[tuple[float, float]]) -> None:
    # Brute force over every line through two points, through one point at the slope bound or
    # through one point and the origin: the best feasible one is the LP optimum (the frontier
    # shortcut must not lose it).
    d = np.array([p[0] for p in points])
    r = np.array([p[0] / 100.0 + p[1] for p in points])  # never faster than 2/3 c
    min_slope = 1.0 / PLAUSIBLE_KM_PER_RTT_MS
    lines = [(min_slope, 0.0)]
    for i in range(len(d)):
        lines.append((min_slope, r[i] - min_slope * d[i]))
        if d[i] > 0:
            lines.append((r[i] / d[i], 0.0))
        for j in range(len(d)):
            if d[j] > d[i]:
                slope = (r[j] - r[i]) / (d[j] - d[i])
                lines.append((slope, r[i] - slope * d[i]))
    feasible = [
        (s, c) for s, c in lines if s >= min_slope and c >= 0.0 and np.all(s * d + c <= r + 1e-9)
    ]
    best_score = max(s * d.sum() + len(d) * c for s, c in feasible)
    slope, intercept = bestline(d, r)
    assert np.all(slope * d + intercept <= r + 1e-9)
    assert math.isclose(
        slope * d.sum() + len(d) * intercept, best_score, rel_tol=1e-9, abs_tol=1e-9
    )


def test_beats_cbg_median_error_leave_one_out(data: Dataset) -> None:
    ours, cbg = [], []
    for t in _targets(data):
        model, measurements, others = _fold(data, t)
        estimate = model.estimate(measurements)
        ours.append(_error_km(data, t, estimate.lat_deg, estimate.lon_deg))
        max_km = np.array(
            [model.model_for(data.ids[i]).band_km(float(data.rtt_ms[t, i]))[3] for i in others]
        )
        cbg.append(_error_km(data, t, *cbg_estimate(data.claimed_deg[others], max_km)))
    assert np.median(ours) < np.median(cbg)
    assert np.median(ours) < 250.0


def test_robust_to_heavy_added_delay_on_some_landmarks(data: Dataset) -> None:
    worse = []
    for t in _targets(data)[:8]:
        model, measurements, _ = _fold(data, t)
        base = model.estimate(measurements)
        # The adversary adds 40 ms to the 4 nearest landmarks but one (delay only ever adds).
        nearest = sorted(range(len(measurements)), key=lambda k: measurements[k].rtt_ms)[1:5]
        delayed = [
            LandmarkRtt(m.landmark_id, m.lat_deg, m.lon_deg, m.rtt_ms + 40.0) if k in nearest else m
            for k, m in enumerate(measurements)
        ]
        moved = model.estimate(delayed)
        worse.append(
            _error_km(data, t, moved.lat_deg, moved.lon_deg)
            - _error_km(data, t, base.lat_deg, base.lon_deg)
        )
    assert np.median(worse) < 300.0  # 40 ms is 4,000 km of fibre: the fit barely moves


def test_robust_to_one_wrong_landmark(data: Dataset) -> None:
    errors_honest, errors_lied = [], []
    for t in _targets(data)[:8]:
        model, measurements, _ = _fold(data, t)
        base = model.estimate(measurements)
        nearest = min(range(len(measurements)), key=lambda k: measurements[k].rtt_ms)
        m = measurements[nearest]
        lied = list(measurements)
        lied[nearest] = LandmarkRtt(
            m.landmark_id,
            -m.lat_deg,
            m.lon_deg + 90.0 if m.lon_deg < 90 else m.lon_deg - 90.0,
            m.rtt_ms,
        )
        moved = model.estimate(lied)
        errors_honest.append(_error_km(data, t, base.lat_deg, base.lon_deg))
        errors_lied.append(_error_km(data, t, moved.lat_deg, moved.lon_deg))
    assert np.median(errors_lied) < 2.0 * np.median(errors_honest) + 150.0


def test_estimate_is_clipped_to_within_and_reports_a_region(data: Dataset) -> None:
    t = _targets(data)[0]
    model, measurements, _ = _fold(data, t)
    free = model.estimate(measurements)
    assert free.likely_region.covers(Point(free.lon_deg, free.lat_deg))
    assert 0.0 <= free.confidence <= 1.0 and free.error_radius_km > 0
    lon, lat = free.lon_deg + 5.0, free.lat_deg
    within = box(lon, lat - 1, lon + 1, lat + 1)
    clipped = model.estimate(measurements, within=within)
    assert within.buffer(1e-9).covers(Point(clipped.lon_deg, clipped.lat_deg))
    assert within.buffer(1e-9).covers(clipped.likely_region)


def test_json_round_trip_preserves_estimates(data: Dataset) -> None:
    t = _targets(data)[1]
    model, measurements, _ = _fold(data, t)
    again = CalibrationModel.from_json(model.to_json())
    a, b = model.estimate(measurements), again.estimate(measurements)
    assert (a.lat_deg, a.lon_deg) == pytest.approx((b.lat_deg, b.lon_deg))


def test_unknown_landmark_uses_the_global_model() -> None:
    samples = [CalibrationSample("a", d, 2 * d / 100 + 1) for d in range(100, 1100, 100)]
    samples += [CalibrationSample("b", 500.0, 12.0)]  # too few samples for its own model
    model = CalibrationModel.fit(samples)
    assert "b" not in model.landmarks
    assert model.model_for("b") == model.global_model == model.model_for("nobody")


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(InsufficientDataError, match="at least 2"):
        CalibrationModel.fit([CalibrationSample("a", 100.0, 3.0)])
    with pytest.raises(GeoError, match="rtt_ms must be > 0"):
        CalibrationSample("a", 100.0, 0.0)
    with pytest.raises(GeoError, match="finite"):
        CalibrationSample("a", math.nan, 1.0)
    with pytest.raises(GeoError, match="malformed calibration model"):
        CalibrationModel.from_json({"landmarks": {}})
    model = CalibrationModel.fit([CalibrationSample("a", d, d / 50 + 1) for d in (100, 900)])
    with pytest.raises(InsufficientDataError, match="at least 2 landmarks"):
        model.estimate([LandmarkRtt("a", 0.0, 0.0, 5.0)])


def test_fit_from_arrays_equals_fit_from_samples(data: Dataset) -> None:
    rng = np.random.default_rng(1)
    ids = [data.ids[k] for k in rng.integers(0, 20, 400)]
    dist = rng.uniform(0.0, 8000.0, 400)
    rtt = dist / rng.uniform(40.0, 100.0, 400) + rng.uniform(0.1, 4.0, 400)
    from_samples = CalibrationModel.fit(
        CalibrationSample(k, float(d), float(r)) for k, d, r in zip(ids, dist, rtt, strict=True)
    )
    from_arrays = CalibrationModel.fit_arrays(ids, dist, rtt)
    assert from_arrays.to_json() == from_samples.to_json()


def test_fit_from_arrays_rejects_bad_values() -> None:
    with pytest.raises(GeoError, match="rtt_ms must be finite and > 0"):
        CalibrationModel.fit_arrays(["a", "b"], np.array([10.0, 20.0]), np.array([1.0, 0.0]))
    with pytest.raises(GeoError, match="distance_km must be finite"):
        CalibrationModel.fit_arrays(["a", "b"], np.array([10.0, np.nan]), np.array([1.0, 2.0]))
    with pytest.raises(GeoError, match="same length"):
        CalibrationModel.fit_arrays(["a"], np.array([10.0, 20.0]), np.array([1.0, 2.0]))


def test_error_radius_reaches_the_likelihood_region(data: Dataset) -> None:
    # One near landmark and the rest far: the likelihood is flat along a ring around the near
    # one, and the error radius must reach across it, not only the near landmark's spread.
    model, measurements, _ = _fold(data, _targets(data)[0])
    used = sorted(measurements, key=lambda m: m.rtt_ms)
    sparse = [used[0], *used[-8:]]
    estimate = model.estimate(sparse)
    fit = model._likelihood(sorted(sparse, key=lambda m: m.rtt_ms)[:NEAREST_LANDMARKS])
    assert estimate.error_radius_km >= fit.region_radius_km(estimate.lat_deg, estimate.lon_deg)
    assert estimate.error_radius_km > 0.0
