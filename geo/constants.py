"""Physical and geodetic constants used across the geo package."""

from __future__ import annotations

C_VACUUM_KM_PER_S = 299_792.458
"""Speed of light in vacuum: the only speed a proof may assume."""

PLAUSIBLE_SPEED_KM_PER_S = C_VACUUM_KM_PER_S * 2 / 3
"""Roughly light in fibre; used for the plausible tier, which is *not* a proof."""

FIBRE_SPEED_KM_PER_S = C_VACUUM_KM_PER_S / 1.5
"""Signal speed in optical fibre (refractive index ~1.5), for simulations."""

EARTH_MEAN_RADIUS_KM = 6371.0088
"""IUGG mean radius R1 of WGS84; the radius of the fast spherical model."""

EARTH_AUTHALIC_RADIUS_KM = 6371.0072
"""Radius of the sphere with the same surface area as WGS84."""

WGS84_ECCENTRICITY_SQUARED = 0.0066943799901413165

SPHERE_DISTANCE_INFLATION = 1.0057
"""Upper bound on spherical distance / WGS84 geodesic distance.

The spherical distance (radius R1, geodetic latitudes used as spherical ones) exceeds the
geodesic distance by at most R1 / M(0) = 6371.0088 / 6335.439 = 1.005614 (short north-south
paths at the equator, where the meridional radius of curvature M is smallest). Multiplying a
geodesic radius by this factor before using it on the sphere therefore never shrinks a cap.
"""

KM_PER_DEG_LAT_MIN = 110.574
"""Shortest WGS84 meridian arc per degree of latitude (at the equator), km."""

KM_PER_DEG_LON_EQUATOR_MAX = 111.3195
"""Longest WGS84 parallel arc per degree of longitude (at the equator), km."""
