"""The solver's vocabulary and results: `Verdict`, `SolverParams`, `Assessment` (+ GeoJSON)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from geo.constants import (
    C_VACUUM_KM_PER_S,
    PLAUSIBLE_SPEED_KM_PER_S,
)
from geo.errors import InvalidMeasurementError

_OUTPUT_DECIMALS = 6  # 0.11 m; FLOAT_MARGIN_KM (10 m) in the solver absorbs the rounding


class Verdict(StrEnum):
    VERIFIED = "verified"
    VIOLATION = "violation"
    INCONCLUSIVE = "inconclusive"
    INCONSISTENT = "inconsistent"
    DARK = "dark"


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvalidMeasurementError(message)


@dataclass(frozen=True, slots=True)
class SolverParams:
    """Solver settings. The proof speed may only be raised above c (looser, still sound)."""

    speed_km_per_s: float = C_VACUUM_KM_PER_S
    plausible_speed_km_per_s: float = PLAUSIBLE_SPEED_KM_PER_S
    processing_floor_ms: float = 0.0  # guaranteed minimum non-propagation time in every RTT
    resolution_km: float = 5.0

    def __post_init__(self) -> None:
        _require(
            math.isfinite(self.speed_km_per_s) and self.speed_km_per_s >= C_VACUUM_KM_PER_S,
            f"speed_km_per_s must be >= c = {C_VACUUM_KM_PER_S} for a proof",
        )
        _require(
            math.isfinite(self.plausible_speed_km_per_s)
            and 0.0 < self.plausible_speed_km_per_s <= self.speed_km_per_s,
            "plausible_speed_km_per_s must be in (0, speed_km_per_s]",
        )
        _require(
            math.isfinite(self.processing_floor_ms) and self.processing_floor_ms >= 0.0,
            "processing_floor_ms must be finite and >= 0",
        )
        _require(
            math.isfinite(self.resolution_km) and 0.05 <= self.resolution_km <= 1000.0,
            "resolution_km must be in [0.05, 1000]",
        )


DEFAULT_PARAMS = SolverParams()
"""The defaults the verifier uses (and the audit assumes for evidence without parameters)."""


@dataclass(frozen=True, slots=True)
class Assessment:
    """Everything the solver concluded about one target in one round."""

    verdict: Verdict | None  # None when no licence was given
    sound_region: BaseGeometry | None  # None when inconsistent
    plausible_region: BaseGeometry | None  # not a proof; None when the plausible caps miss
    sound_area_km2: float
    estimate_lat_deg: float | None
    estimate_lon_deg: float | None
    likely_region: BaseGeometry | None
    confidence: float | None
    excluded_landmarks: tuple[str, ...]  # removal restores consistency
    inside_fraction: float | None  # share of sound area allowed and not prohibited

    def to_json(self) -> dict[str, Any]:
        """The `lightfence locate` output fields; geometries as RFC 7946 GeoJSON (lon/lat)."""
        estimate = None
        if self.estimate_lat_deg is not None and self.estimate_lon_deg is not None:
            estimate = {
                "lat": round(self.estimate_lat_deg, _OUTPUT_DECIMALS),
                "lon": round(self.estimate_lon_deg, _OUTPUT_DECIMALS),
            }
        return {
            "verdict": None if self.verdict is None else self.verdict.value,
            "estimate": estimate,
            "sound_region": geojson(self.sound_region),
            "plausible_region": geojson(self.plausible_region),
            "sound_area_km2": round(self.sound_area_km2, 3),
            "likely_region": geojson(self.likely_region),
            "confidence": self.confidence,
            "excluded_landmarks": list(self.excluded_landmarks),
            "inside_fraction": self.inside_fraction,
        }


def geojson(geometry: BaseGeometry | None) -> dict[str, Any] | None:
    """RFC 7946 geometry: counter-clockwise exteriors, coordinates rounded to 1e-6 deg."""
    if geometry is None:
        return None
    oriented = shapely.orient_polygons(geometry, exterior_cw=False)
    rounded = shapely.transform(oriented, lambda xy: np.round(xy, _OUTPUT_DECIMALS))
    result: dict[str, Any] = mapping(rounded)
    return result
