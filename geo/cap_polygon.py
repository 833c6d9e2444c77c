"""Cap polygons in lon/lat, and the general (lon/lat) intersection of caps.

A landmark that measured round-trip time t proves the target lies within the geodesic disc
("cap") of radius v * (t - processing_floor) / 2 around it. The region is the intersection of
those caps, returned as a shapely geometry in lon/lat degrees (split at the antimeridian), that
always *contains* the true intersection of the WGS84 geodesic discs:

1. Sphere: each geodesic radius is multiplied by SPHERE_DISTANCE_INFLATION (1.0057) and
   FLOAT_MARGIN_KM is added, so the spherical cap contains the geodesic disc.
2. Circumscribed polygon: for a cap of angle theta < 90 deg the vertices lie at angle
   atan(tan(theta + delta) / cos(pi / n)), so the polygon with great-circle edges is tangent to
   the cap of angle theta + delta from outside.
3. Lon/lat edges: shapely (and GeoJSON) join vertices with straight lines in lon/lat, not
   great circles. Such a line has geodesic curvature at most 1.09 * |tan(lat)|, so it strays
   from the great circle through the same vertices by at most kappa * L^2 / 8 (L its length);
   we use CURVATURE_SAFETY = 2.2 (twice 1.09) and require that deviation <= delta. Hence
   every lon/lat edge lies outside the cap of angle theta; as the cap is connected and its
   centre is inside the polygon, the whole cap is inside the polygon.
4. Poles and antimeridian: a polygon whose vertex circle contains a pole is closed through
   the pole; longitudes are unwrapped along the ring and the polygon is cut at +-180 deg and
   the pieces shifted back into range. A cap of 90 deg or more is represented as the world
   minus a polygon inscribed (by the same argument, reversed) in the complementary cap
   around the antipode.

The resulting boundary lies at most `resolution_km` (requested; the achieved figure is
reported per cap) outside the inflated spherical cap, i.e. at most
0.57 % x radius + FLOAT_MARGIN_KM + resolution_km outside the true geodesic disc.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.caps import Cap
from geo.constants import (
    EARTH_MEAN_RADIUS_KM,
)
from geo.geodesy import (
    FloatArray,
    angle_between_rad,
    sphere_destinations_rad,
    unit_vectors,
)

logger = logging.getLogger(__name__)

CURVATURE_SAFETY = 2.2
"""Bound on (geodesic curvature of a straight lon/lat line) / |tan(lat)|, with a 2x margin."""


_MIN_VERTICES = 16
MAX_VERTICES = 720
_HALF_PI = math.pi / 2
_POLE_SEAM_OVERLAP_DEG = 1e-7
_WORLD = shapely.box(-180.0, -90.0, 180.0, 90.0)
_POLYGON_TYPE_ID = 3  # shapely.get_type_id of a Polygon


@dataclass(frozen=True, slots=True)
class CapPolygon:
    """A lon/lat geometry that contains `cap`."""

    cap: Cap
    geometry: BaseGeometry
    outer_angle_rad: float  # every point of `geometry` is within this angle of the centre
    excess_km: float  # how far the boundary may lie outside the inflated spherical cap


def max_edge_deviation_rad(lat: FloatArray, lon: FloatArray) -> float:
    """Upper bound on how far any straight lon/lat edge of the closed ring strays from the
    great circle through its end points (radians)."""
    lat_c = np.append(lat, lat[0])
    lat1, lat2 = lat_c[:-1], lat_c[1:]
    # Adjacent vertices are less than pi apart in longitude, so the wrapped difference is the
    # edge's (the closing edge of a ring around a pole spans the 2 pi seam).
    dlon = (np.diff(np.append(lon, lon[0])) + math.pi) % (2.0 * math.pi) - math.pi
    abs1, abs2 = np.abs(lat1), np.abs(lat2)
    # The length of a lon/lat-straight path is at most sqrt(dlat^2 + (cos_max * dlon)^2).
    cos_max = np.where(lat1 * lat2 <= 0.0, 1.0, np.cos(np.minimum(abs1, abs2)))
    length_sq = (lat2 - lat1) ** 2 + (cos_max * dlon) ** 2
    tan_max = np.tan(np.minimum(np.maximum(abs1, abs2), _HALF_PI - 1e-12))
    return float(np.max(tan_max * length_sq)) * CURVATURE_SAFETY / 8.0


def _vertex_count(angle_rad: float, centre_lat_rad: float, resolution_rad: float) -> int:
    """Enough vertices that the circumscription and edge-curvature excesses each stay near
    a quarter of the resolution."""
    tangent_n = math.pi * math.sqrt(
        2.0 * abs(math.sin(angle_rad) * math.cos(angle_rad)) / resolution_rad
    )
    far_lat = min(abs(centre_lat_rad) + angle_rad, math.radians(89.0))
    max_edge_rad = math.sqrt(
        0.25 * resolution_rad * 8.0 / (CURVATURE_SAFETY * max(math.tan(far_lat), 1e-3))
    )
    curvature_n = 2.0 * math.pi * math.sin(min(angle_rad, _HALF_PI)) / max_edge_rad
    return int(min(max(math.ceil(max(tangent_n, curvature_n)), _MIN_VERTICES), MAX_VERTICES))


def _ring(
    lat_rad: float, lon_rad: float, angle_rad: float, n: int
) -> tuple[FloatArray, FloatArray]:
    azimuths = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    lat, lon = sphere_destinations_rad(lat_rad, lon_rad, azimuths, angle_rad)
    return lat, np.unwrap(lon)


def _avoid_pole(lat_rad: float, angle_rad: float) -> float:
    """Nudge a vertex circle off the poles, where longitude is undefined."""
    for pole_distance in (_HALF_PI - lat_rad, _HALF_PI + lat_rad):
        if abs(angle_rad - pole_distance) < 1e-9:
            return angle_rad + 2e-9
    return angle_rad


def _ring_geometry(
    lat_rad: float, vertex_angle_rad: float, lat: FloatArray, lon: FloatArray
) -> BaseGeometry:
    """The lon/lat polygon bounded by a ring around a centre at `lat_rad`, wrapped into range.

    If the vertex circle contains a pole, the ring runs once around it: it is closed through
    that pole, which the polygon then contains.
    """
    lon_deg, lat_deg = np.degrees(lon), np.degrees(lat)
    if vertex_angle_rad > _HALF_PI - lat_rad or vertex_angle_rad > _HALF_PI + lat_rad:
        pole_deg = 90.0 if vertex_angle_rad > _HALF_PI - lat_rad else -90.0
        step = lon_deg[1] - lon_deg[0]
        # Overlap the seam slightly: shifting the pieces back by 360 deg in floating point
        # would otherwise leave a sliver of longitudes (all the same pole point) uncovered.
        closing = lon_deg[0] + math.copysign(360.0 + _POLE_SEAM_OVERLAP_DEG, step)
        lon_deg = np.concatenate((lon_deg, [closing, closing, lon_deg[0]]))
        lat_deg = np.concatenate((lat_deg, [lat_deg[0], pole_deg, pole_deg]))
    polygon = shapely.polygons(np.column_stack((lon_deg, lat_deg)))
    return wrap_longitudes(polygon)


def wrap_longitudes(geometry: BaseGeometry) -> BaseGeometry:
    """Cut a geometry given in unwrapped longitudes at +-180 deg and shift the pieces back."""
    min_lon, _, max_lon, _ = geometry.bounds
    if min_lon >= -180.0 and max_lon <= 180.0:
        return geometry
    pieces = []
    for shift in (-360.0, 0.0, 360.0):
        if min_lon + shift < 180.0 and max_lon + shift > -180.0:
            moved = shapely.transform(geometry, lambda xy, s=shift: xy + np.array([s, 0.0]))
            pieces.append(shapely.clip_by_rect(moved, -180.0, -90.0, 180.0, 90.0))
    return shapely.union_all(pieces)


def _circumscribed(cap: Cap, resolution_rad: float) -> CapPolygon | None:
    """Polygon containing a cap of angle < 90 deg, or None if the cap is too large for it."""
    theta = cap.angle_rad
    lat0, lon0 = math.radians(cap.lat_deg), math.radians(cap.lon_deg)
    delta = resolution_rad / 4.0
    n = _vertex_count(theta + delta, lat0, resolution_rad)
    for _ in range(8):
        tangent = theta + delta
        if tangent >= _HALF_PI - 1e-6:
            return None
        vertex_angle = _avoid_pole(lat0, math.atan(math.tan(tangent) / math.cos(math.pi / n)))
        if vertex_angle >= _HALF_PI - 1e-6:
            return None
        lat, lon = _ring(lat0, lon0, vertex_angle, n)
        deviation = max_edge_deviation_rad(lat, lon)
        if deviation <= delta:
            try:
                geometry = _ring_geometry(lat0, vertex_angle, lat, lon)
            except shapely.errors.GEOSException:
                return None  # the caller represents the cap as a complement (or the world)
            return CapPolygon(
                cap=cap,
                geometry=geometry,
                outer_angle_rad=vertex_angle + delta,
                excess_km=(vertex_angle + delta - theta) * EARTH_MEAN_RADIUS_KM,
            )
        delta = deviation * 1.25
    return None


def _complement(cap: Cap, resolution_rad: float) -> CapPolygon:
    """World minus a polygon inscribed in the complementary cap around the antipode."""
    world = CapPolygon(cap=cap, geometry=_WORLD, outer_angle_rad=math.inf, excess_km=math.inf)
    psi = math.pi - cap.angle_rad
    lat_a, lon_a = -math.radians(cap.lat_deg), math.radians(cap.lon_deg) + math.pi
    delta = resolution_rad / 4.0
    n = _vertex_count(max(psi - delta, 1e-9), lat_a, resolution_rad)
    for _ in range(8):
        vertex_angle = _avoid_pole(lat_a, psi - 2.0 * delta)
        if vertex_angle <= 1e-9:
            return world
        lat, lon = _ring(lat_a, lon_a, vertex_angle, n)
        deviation = max_edge_deviation_rad(lat, lon)
        # Strictly inside: the hole must not reach the cap we are representing.
        if deviation < delta:
            try:
                hole = _ring_geometry(lat_a, vertex_angle, lat, lon)
            except shapely.errors.GEOSException:
                # GEOS rejects some pole-closed rings when cutting them at +-180 deg; without
                # the hole the cap is represented by the whole world, larger and still sound.
                logger.debug(
                    "hole around (%s, %s) not representable; using the world", lat_a, lon_a
                )
                return world
            return CapPolygon(
                cap=cap,
                geometry=_WORLD.difference(hole),
                outer_angle_rad=math.inf,
                excess_km=(psi - vertex_angle + delta) * EARTH_MEAN_RADIUS_KM,
            )
        delta = deviation * 1.25
    return world


def cap_polygon(cap: Cap, resolution_km: float) -> CapPolygon:
    """A lon/lat geometry guaranteed to contain `cap` (see the module docstring)."""
    resolution_rad = resolution_km / EARTH_MEAN_RADIUS_KM
    if cap.angle_rad >= math.pi:
        return CapPolygon(cap=cap, geometry=_WORLD, outer_angle_rad=math.inf, excess_km=0.0)
    polygon = _circumscribed(cap, resolution_rad)
    return polygon if polygon is not None else _complement(cap, resolution_rad)


def polygonal_part(geometry: BaseGeometry) -> BaseGeometry | None:
    """The area-bearing part of an intersection result, or None when it has no area."""
    if geometry.is_empty:
        return None
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return geometry if geometry.area > 0.0 else None
    parts = [p for p in shapely.get_parts(geometry) if p.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    return merged if merged.area > 0.0 else None


def _cutting(smallest: CapPolygon, others: Sequence[Cap]) -> list[Cap]:
    """The caps that may cut `smallest`'s polygon: a cap that contains the polygon's whole
    outer circle cannot change the intersection, which keeps the work local."""
    if not others:
        return []
    centre = unit_vectors(smallest.cap.lat_deg, smallest.cap.lon_deg)
    centres = unit_vectors([c.lat_deg for c in others], [c.lon_deg for c in others])
    gaps = angle_between_rad(centre, centres)
    angles = np.array([c.angle_rad for c in others])
    keep = gaps + smallest.outer_angle_rad > angles
    return [c for c, k in zip(others, keep, strict=True) if k]


def intersect_lonlat(
    caps: Sequence[Cap], resolution_km: float
) -> tuple[BaseGeometry | None, float]:
    """The general path: intersect `cap_polygon`s in lon/lat."""
    ordered = sorted(caps, key=lambda c: c.angle_rad)
    smallest = cap_polygon(ordered[0], resolution_km)
    polygons = [smallest, *(cap_polygon(c, resolution_km) for c in _cutting(smallest, ordered[1:]))]
    excess_km = max((p.excess_km for p in polygons if math.isfinite(p.excess_km)), default=0.0)
    if len(polygons) == 1:
        return smallest.geometry, excess_km
    region = shapely.intersection_all([p.geometry for p in polygons])
    return polygonal_part(region), excess_km
