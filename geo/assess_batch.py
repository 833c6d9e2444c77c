"""Many rounds at once: `assess_many`.

`assess_many` gives, item by item, what `assess` gives (up to floating-point rounding in
the regions and figures), computing the common case for the whole batch with one set of
numpy/shapely calls per step: both tiers' regions (`geo.solver_batch.intersect_many`), areas,
centres, the licence's vertex test and the inside fraction's overlays. Anything else is
computed by the single-item functions: inconsistent caps, a calibration model's estimate,
multi-part regions (split at +-180 deg), verdicts the vertex test leaves open.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from shapely.geometry.base import BaseGeometry

from geo.assess import assess
from geo.assessment import DEFAULT_PARAMS, Assessment, SolverParams, Verdict
from geo.caps import MIN_LANDMARKS, cap_angles_rad, caps_from_measurements
from geo.constants import (
    EARTH_MEAN_RADIUS_KM,
)
from geo.licence import Licence
from geo.measurement import LandmarkRtt
from geo.region_measures import area_km2_many, centre_many
from geo.solver import intersect
from geo.solver_batch import intersect_local_arrays
from geo.verdict import judge_many

if TYPE_CHECKING:
    from geo.calibration import CalibrationModel


def assess_many(
    items: Sequence[tuple[Sequence[LandmarkRtt], Licence | None]],
    calibration: CalibrationModel | None = None,
    params: SolverParams = DEFAULT_PARAMS,
) -> list[Assessment]:
    """`[assess(m, licence, calibration, params) for m, licence in items]`, computed together
    (same verdicts; regions and figures equal up to float rounding). Bad input raises what
    `assess` raises for the first bad item."""
    prepared = [_prepare(tuple(measurements)) for measurements, _ in items]
    batch = [p for p in prepared if p is not None]
    sound_of = _solve_tier(batch, params.speed_km_per_s, params)
    # An inconsistent item needs the exclusion search, and its plausible tier uses only the
    # remaining landmarks: `assess` does both. The others' plausible tier is solved here.
    consistent = [p for p, sound in zip(batch, sound_of, strict=True) if sound is not None]
    plausible_of = iter(_solve_tier(consistent, params.plausible_speed_km_per_s, params))
    tiers: list[tuple[BaseGeometry, BaseGeometry | None] | None] = []
    sound_iter = iter(sound_of)
    for p in prepared:
        sound = None if p is None else next(sound_iter)
        tiers.append(None if sound is None else (sound, next(plausible_of)))
    ready = [i for i, t in enumerate(tiers) if t is not None]
    sounds = [_tier(tiers[i])[0] for i in ready]
    areas = area_km2_many(sounds)
    estimates: dict[int, tuple[float, float, BaseGeometry | None, float | None]] = {}
    if calibration is not None:
        for i in ready:
            p = prepared[i]
            assert p is not None  # ready items were prepared
            estimate = calibration.estimate(p[0], within=_tier(tiers[i])[0])
            estimates[i] = (
                estimate.lat_deg,
                estimate.lon_deg,
                estimate.likely_region,
                estimate.confidence,
            )
    else:
        targets = [_tier(tiers[i])[1] or _tier(tiers[i])[0] for i in ready]
        for i, (lat_deg, lon_deg) in zip(ready, centre_many(targets), strict=True):
            estimates[i] = (lat_deg, lon_deg, None, None)
    judged: dict[int, tuple[Verdict, float]] = {}
    by_licence: dict[int, list[int]] = {}
    for k, i in enumerate(ready):
        licence = items[i][1]
        if licence is not None:
            by_licence.setdefault(id(licence), []).append(k)
    for ks in by_licence.values():
        licence = items[ready[ks[0]]][1]
        assert licence is not None  # grouped by licence above
        outcomes = judge_many([sounds[k] for k in ks], licence, areas[ks])
        for k, outcome in zip(ks, outcomes, strict=True):
            judged[ready[k]] = outcome
    results: list[Assessment] = []
    area_of = dict(zip(ready, areas.tolist(), strict=True))
    for i, (measurements, licence) in enumerate(items):
        tier = tiers[i]
        if tier is None:
            results.append(assess(measurements, licence, calibration, params))
            continue
        lat_deg, lon_deg, likely, confidence = estimates[i]
        verdict, fraction = judged.get(i, (None, None))
        results.append(
            Assessment(
                verdict=verdict,
                sound_region=tier[0],
                plausible_region=tier[1],
                sound_area_km2=area_of[i],
                estimate_lat_deg=lat_deg,
                estimate_lon_deg=lon_deg,
                likely_region=likely,
                confidence=confidence,
                excluded_landmarks=(),
                inside_fraction=fraction,
            )
        )
    return results


def _tier(
    tier: tuple[BaseGeometry, BaseGeometry | None] | None,
) -> tuple[BaseGeometry, BaseGeometry | None]:
    assert tier is not None  # only called for items with a consistent sound region
    return tier


def _prepare(
    measurements: tuple[LandmarkRtt, ...],
) -> tuple[tuple[LandmarkRtt, ...], list[LandmarkRtt]] | None:
    """The measurements and each distinct landmark's best one (as `caps_from_measurements`
    picks them), or None where `assess` must run (it raises the input's error)."""
    best: dict[str, LandmarkRtt] = {}
    for m in measurements:
        if not isinstance(m, LandmarkRtt):
            return None
        seen = best.get(m.landmark_id)
        if seen is None:
            best[m.landmark_id] = m
        elif (seen.lat_deg, seen.lon_deg) != (m.lat_deg, m.lon_deg):
            return None
        elif m.rtt_ms < seen.rtt_ms:
            best[m.landmark_id] = m
    if len(best) < MIN_LANDMARKS:
        return None
    return measurements, list(best.values())


def _solve_tier(
    batch: Sequence[tuple[tuple[LandmarkRtt, ...], list[LandmarkRtt]]],
    speed_km_per_s: float,
    params: SolverParams,
) -> list[BaseGeometry | None]:
    """`intersect(caps_from_measurements(...))[0]` for every prepared item, the caps built
    as flat arrays (the same arithmetic as `Cap`) and solved together."""
    if not batch:
        return []
    best = [m for _, chosen in batch for m in chosen]
    rtt_ms = np.array([m.rtt_ms for m in best], dtype=np.float64)
    radius_km = speed_km_per_s * np.maximum(rtt_ms - params.processing_floor_ms, 0.0) / 2000.0
    solved = intersect_local_arrays(
        np.array([len(chosen) for _, chosen in batch], dtype=np.int64),
        np.array([float(m.lat_deg) for m in best]),
        np.array([float(m.lon_deg) for m in best]),
        cap_angles_rad(radius_km),
        params.resolution_km / EARTH_MEAN_RADIUS_KM,
    )
    regions: list[BaseGeometry | None] = []
    for (measurements, _), result in zip(batch, solved, strict=True):
        if result is not None:
            regions.append(result[0])
            continue
        caps = caps_from_measurements(measurements, speed_km_per_s, params.processing_floor_ms)
        regions.append(intersect(caps, params.resolution_km)[0])
    return regions
