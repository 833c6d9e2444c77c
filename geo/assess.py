"""`assess`: measurements + licence (+ calibration) -> an Assessment (sound and plausible
regions, an estimate and a verdict). The batched path is `geo.assess_batch`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from shapely.geometry.base import BaseGeometry

from geo.assessment import DEFAULT_PARAMS, Assessment, SolverParams, Verdict
from geo.caps import caps_from_measurements
from geo.errors import InvalidMeasurementError
from geo.licence import Licence
from geo.measurement import LandmarkRtt
from geo.region_measures import area_km2, centre
from geo.solver import Solution, intersect, solve
from geo.verdict import judge

if TYPE_CHECKING:
    from geo.calibration import CalibrationModel

logger = logging.getLogger(__name__)


def assess(
    measurements: Sequence[LandmarkRtt],
    licence: Licence | None = None,
    calibration: CalibrationModel | None = None,
    params: SolverParams = DEFAULT_PARAMS,
) -> Assessment:
    """Sound and plausible regions, an estimate and (with a licence) a verdict."""
    measurements = tuple(measurements)
    for m in measurements:
        if not isinstance(m, LandmarkRtt):
            raise InvalidMeasurementError(f"expected LandmarkRtt values, got {type(m).__name__}")
    caps = caps_from_measurements(measurements, params.speed_km_per_s, params.processing_floor_ms)
    sound = solve(caps, params.resolution_km)
    usable = measurements
    within = sound.region
    if within is None and sound.excluded_landmarks:
        usable = tuple(m for m in measurements if m.landmark_id not in sound.excluded_landmarks)
        within = _region_without(sound, params.resolution_km)
    plausible_caps = caps_from_measurements(
        usable, params.plausible_speed_km_per_s, params.processing_floor_ms
    )
    plausible = intersect(plausible_caps, params.resolution_km)[0] if within is not None else None

    estimate_lat = estimate_lon = confidence = None
    likely: BaseGeometry | None = None
    if calibration is not None:
        estimate = calibration.estimate(usable, within=within)
        estimate_lat, estimate_lon = estimate.lat_deg, estimate.lon_deg
        likely, confidence = estimate.likely_region, estimate.confidence
    elif within is not None:
        estimate_lat, estimate_lon = centre(plausible if plausible is not None else within)

    sound_km2 = area_km2(sound.region)
    verdict: Verdict | None = None
    inside_fraction: float | None = None
    if licence is not None:
        if sound.region is None:
            verdict = Verdict.INCONSISTENT
        else:
            verdict, inside_fraction = judge(sound.region, licence, sound_km2)
    logger.debug("assessed %d landmarks: verdict %s", len(caps), verdict)
    return Assessment(
        verdict=verdict,
        sound_region=sound.region,
        plausible_region=plausible if sound.region is not None else None,
        sound_area_km2=sound_km2,
        estimate_lat_deg=estimate_lat,
        estimate_lon_deg=estimate_lon,
        likely_region=likely,
        confidence=confidence,
        excluded_landmarks=sound.excluded_landmarks,
        inside_fraction=inside_fraction,
    )


def _region_without(sound: Solution, resolution_km: float) -> BaseGeometry | None:
    rest = [c for c in sound.caps if c.landmark_id not in sound.excluded_landmarks]
    return intersect(rest, resolution_km)[0]
