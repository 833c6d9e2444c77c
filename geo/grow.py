"""Growing a lon/lat region by a distance in km, conservatively (and a cheap box around it)."""

from __future__ import annotations

import math

import shapely
from shapely.geometry.base import BaseGeometry

from geo.cap_polygon import wrap_longitudes
from geo.constants import (
    KM_PER_DEG_LAT_MIN,
    KM_PER_DEG_LON_EQUATOR_MAX,
)

BUFFER_QUAD_SEGMENTS = 8
# shapely draws round joins with vertices on the arc; scaling the distance by this factor
# makes the chords circumscribe the true circle, so the buffer never falls short.
BUFFER_CIRCUMSCRIBE = 1.0 / math.cos(math.pi / (4 * BUFFER_QUAD_SEGMENTS))
POLAR_BAND_LAT_DEG = 89.0
MIN_BUFFER_DEG = 1e-9  # 0.1 mm
BOX_SLACK = 1.001  # the box test must not clip the buffer's outermost vertices by rounding


def _lon_lat_steps_deg(geometry: BaseGeometry, distance_km: float) -> tuple[float, float] | None:
    """Degrees of latitude and longitude that `distance_km` spans at most around `geometry`;
    None within POLAR_BAND_LAT_DEG of a pole (where `grow` takes the whole band)."""
    _, min_lat, _, max_lat = geometry.bounds
    lat_step_deg = distance_km / KM_PER_DEG_LAT_MIN
    far_lat_deg = max(abs(min_lat), abs(max_lat)) + lat_step_deg
    if far_lat_deg >= POLAR_BAND_LAT_DEG:
        return None
    lon_step_deg = distance_km / (KM_PER_DEG_LON_EQUATOR_MAX * math.cos(math.radians(far_lat_deg)))
    return lat_step_deg, lon_step_deg


def grow(geometry: BaseGeometry, distance_km: float) -> BaseGeometry:
    """A lon/lat geometry containing every point within `distance_km` of `geometry`.

    km become degrees conservatively: a latitude degree is at least 110.574 km and a longitude
    degree at least 111.3195 km x cos(lat) at the region's most poleward latitude. Near a pole
    the whole latitude band is taken.
    """
    if distance_km <= 0.0:
        return geometry
    steps = _lon_lat_steps_deg(geometry, distance_km)
    if steps is None:
        _, min_lat, _, max_lat = geometry.bounds
        lat_step_deg = distance_km / KM_PER_DEG_LAT_MIN
        low = max(min_lat - lat_step_deg, -90.0)
        high = min(max_lat + lat_step_deg, 90.0)
        return shapely.box(-180.0, low, 180.0, high)
    # GEOS returns an empty buffer for distances below ~1e-16; growing by more is conservative.
    step_deg = max(max(steps) * BUFFER_CIRCUMSCRIBE, MIN_BUFFER_DEG)
    grown = geometry.buffer(step_deg, quad_segs=BUFFER_QUAD_SEGMENTS)
    return wrap_longitudes(grown)


def grown_box(geometry: BaseGeometry, distance_km: float) -> BaseGeometry | None:
    """A box containing `grow(geometry, distance_km)` (a buffer of d degrees stays within the
    bounds widened by d), or None where that box would cross the antimeridian or a pole band."""
    steps = _lon_lat_steps_deg(geometry, max(distance_km, 0.0))
    if steps is None:
        return None
    step_deg = max(max(steps) * BUFFER_CIRCUMSCRIBE, MIN_BUFFER_DEG) * BOX_SLACK
    min_lon, min_lat, max_lon, max_lat = geometry.bounds
    if min_lon - step_deg < -180.0 or max_lon + step_deg > 180.0:
        return None
    return shapely.box(
        min_lon - step_deg, min_lat - step_deg, max_lon + step_deg, max_lat + step_deg
    )
