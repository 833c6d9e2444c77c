"""Caps: the geodesic disc a landmark's RTT proves, and the spherical cap that contains it.

A landmark that measured round-trip time t proves the target lies within the geodesic disc of
radius v * (t - processing_floor) / 2 around it; each radius is multiplied by
SPHERE_DISTANCE_INFLATION (1.0057) and FLOAT_MARGIN_KM is added, so the spherical cap of
`Cap.angle_rad` contains the WGS84 geodesic disc (see `geo.cap_polygon` for the polygons).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from geo.constants import (
    EARTH_MEAN_RADIUS_KM,
    SPHERE_DISTANCE_INFLATION,
)
from geo.errors import InvalidMeasurementError
from geo.geodesy import (
    FloatArray,
)
from geo.measurement import LandmarkRtt

FLOAT_MARGIN_KM = 0.01
"""Added to every radius: absorbs floating-point error and 5-decimal output rounding (~1 m)."""

CURVATURE_SAFETY = 2.2
"""Bound on (geodesic curvature of a straight lon/lat line) / |tan(lat)|, with a 2x margin."""

MIN_LANDMARKS = 2
"""A verdict needs at least two distinct landmarks; one cap alone is rejected as bad input."""


@dataclass(frozen=True, slots=True)
class Cap:
    """The geodesic disc a landmark's RTT proves (or, for the plausible tier, suggests)."""

    landmark_id: str
    lat_deg: float
    lon_deg: float
    radius_km: float
    angle_rad: float = field(init=False, repr=False, compare=False)
    """Central angle of a spherical cap that contains the WGS84 geodesic disc (read often by
    the solver, so computed once)."""

    def __post_init__(self) -> None:
        angle_rad = (
            self.radius_km * SPHERE_DISTANCE_INFLATION + FLOAT_MARGIN_KM
        ) / EARTH_MEAN_RADIUS_KM
        object.__setattr__(self, "angle_rad", angle_rad)


def caps_from_measurements(
    measurements: Sequence[LandmarkRtt], speed_km_per_s: float, processing_floor_ms: float
) -> tuple[Cap, ...]:
    """One cap per distinct landmark, using its smallest RTT.

    An RTT below the processing floor contradicts the floor's guarantee; it yields radius 0,
    which still contains the (then necessarily co-located) target up to the float margin.
    """
    best: dict[str, LandmarkRtt] = {}
    for m in measurements:
        seen = best.get(m.landmark_id)
        if seen is None:
            best[m.landmark_id] = m
            continue
        if (seen.lat_deg, seen.lon_deg) != (m.lat_deg, m.lon_deg):
            raise InvalidMeasurementError(
                f"landmark {m.landmark_id} appears with two different positions"
            )
        if m.rtt_ms < seen.rtt_ms:
            best[m.landmark_id] = m
    return tuple(
        Cap(
            landmark_id=m.landmark_id,
            lat_deg=float(m.lat_deg),
            lon_deg=float(m.lon_deg),
            radius_km=speed_km_per_s * max(m.rtt_ms - processing_floor_ms, 0.0) / 2000.0,
        )
        for m in best.values()
    )


def cap_angles_rad(radius_km: FloatArray) -> FloatArray:
    """`Cap.angle_rad` for many radii (the same arithmetic, element by element)."""
    return np.asarray(
        (radius_km * SPHERE_DISTANCE_INFLATION + FLOAT_MARGIN_KM) / EARTH_MEAN_RADIUS_KM,
        dtype=np.float64,
    )
