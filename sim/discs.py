"""The fast path's second route to `verified`: a region smaller than a cell, judged by geo itself.

A co-located landmark proves a disc of ~15 km; the cell route cannot use it, because a cell
reaches out by its covering radius and is grown again by the margin before the test against
foreign land (together ~100 km at 50 km cells). Near Seoul, Dubai or Kuala Lumpur that is
farther than the nearest foreign land grown by its territorial sea and border error.

This route asks geo's own verdict rule (`geo.verdict.judge`) about a disc D that contains the
sound region S. geo's polygons reach at most `margin_km` (the fast path's bound, see
`fastpath.margin_km_for`) beyond a cap's inflated sphere radius, so S lies in the spherical cap
of radius r · SPHERE_DISTANCE_INFLATION + margin_km around each landmark. D is a polygon
containing that cap, its radius rounded *up* to DISC_STEP_KM (so a cache entry serves many
chips). If judge(D) is `verified` and a point of S lies in the licensed country (the chip's
declared site or a landmark, inside every cap), judge(S) is `verified` too:

* growing is monotone: geo grows a region by a buffer whose degree step depends on the
  region's most poleward latitude, and S ⊆ D, so grow(S, d) ⊆ grow(D, d) for every margin d;
  clear of foreign land (strict: inside the allowed area) for D is clear for S;
* the point of S in the country makes S touch the allowed area, and rules out `violation`;
* no vertex of S lies on foreign land (it lies in grow(D), which misses it), so geo's vertex
  shortcut cannot say `inconclusive` either.

With f tolerated faulty landmarks the region left after dropping any f lies inside one of the
f + 1 smallest caps, so each of their discs must be verified.
"""

from __future__ import annotations

import math

import numpy as np
import shapely

from geo.assessment import Verdict
from geo.cap_polygon import cap_polygon
from geo.caps import FLOAT_MARGIN_KM, Cap
from geo.constants import EARTH_MEAN_RADIUS_KM, SPHERE_DISTANCE_INFLATION
from geo.licence import Licence
from geo.regions import Region
from geo.verdict import judge

# Discs up to this sphere radius are judged: beyond it cells are as good and the cache would
# grow with every landmark's many radii.
DISC_MAX_KM = 100.0
DISC_STEP_KM = 0.5  # radii are rounded up to a multiple: a cache entry serves every smaller one
# The polygon's own excess over the cap it contains (geo.cap_polygon); small, and only ever
# makes D larger (more conservative).
_POLYGON_RESOLUTION_KM = 0.1


def disc_area_km2(radius_km: float) -> float:
    """Area of a spherical cap of sphere radius `radius_km`: an upper bound of S's area."""
    angle = min(radius_km / EARTH_MEAN_RADIUS_KM, math.pi)
    return 2.0 * math.pi * EARTH_MEAN_RADIUS_KM**2 * (1.0 - math.cos(angle))


class DiscVerdicts:
    """For one sea-neutral single-country licence: which discs geo verifies outright (cached),
    and which landmark positions lie in the country."""

    def __init__(self, region: Region) -> None:
        self.region = region
        self.licence = Licence(allowed=(region,), prohibited=())
        self._verified: dict[tuple[float, float, int], bool] = {}
        self._inside: dict[tuple[float, float], bool] = {}

    def verified(self, lat_deg: float, lon_deg: float, radius_km: float) -> bool:
        """Would geo verify a region lying within sphere distance `radius_km` of the point
        (and touching the country)? Larger radii than DISC_MAX_KM are not judged (False)."""
        if radius_km > DISC_MAX_KM:
            return False
        steps = max(math.ceil(radius_km / DISC_STEP_KM), 1)
        key = (lat_deg, lon_deg, steps)
        known = self._verified.get(key)
        if known is None:
            outer_km = steps * DISC_STEP_KM
            # Cap.angle_rad = (radius · SPHERE_DISTANCE_INFLATION + FLOAT_MARGIN_KM) / R, so
            # this cap's sphere radius is exactly outer_km; its polygon contains that cap.
            cap = Cap(
                "disc",
                lat_deg,
                lon_deg,
                (outer_km - FLOAT_MARGIN_KM) / SPHERE_DISTANCE_INFLATION,
            )
            polygon = cap_polygon(cap, _POLYGON_RESOLUTION_KM).geometry
            known = judge(polygon, self.licence)[0] is Verdict.VERIFIED
            self._verified[key] = known
        return known

    def inside(self, lat_deg: float, lon_deg: float) -> bool:
        """Does the point lie in the licensed country (as drawn)?"""
        key = (lat_deg, lon_deg)
        known = self._inside.get(key)
        if known is None:
            known = bool(shapely.contains_xy(self.region.geometry, lon_deg, lat_deg))
            self._inside[key] = known
        return known


def disc_route_verified(
    discs: DiscVerdicts,
    lat_deg: np.ndarray,
    lon_deg: np.ndarray,
    outer_km: np.ndarray,
    witness: bool,
) -> bool:
    """`verified` by the disc route: `witness` (a point of S in the country) and the disc of
    every one of the f + 1 smallest caps (given, smallest first) verified by geo."""
    if not witness:
        return False
    return all(
        discs.verified(float(lat), float(lon), float(radius))
        for lat, lon, radius in zip(lat_deg, lon_deg, outer_km, strict=True)
    )
