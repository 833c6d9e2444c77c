"""Sound and plausible regions: intersections of speed-of-light caps.

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

import functools
import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geo.constants import EARTH_MEAN_RADIUS_KM, SPHERE_DISTANCE_INFLATION
from geo.errors import InsufficientDataError, InvalidMeasurementError
from geo.geodesy import FloatArray, angle_between_rad, sphere_destinations_rad, unit_vectors
from geo.measurement import LandmarkRtt

logger = logging.getLogger(__name__)

FLOAT_MARGIN_KM = 0.01
"""Added to every radius: absorbs floating-point error and 5-decimal output rounding (~1 m)."""

CURVATURE_SAFETY = 2.2
"""Bound on (geodesic curvature of a straight lon/lat line) / |tan(lat)|, with a 2x margin."""

MIN_LANDMARKS = 2
"""A verdict needs at least two distinct landmarks; one cap alone is rejected as bad input."""

_MIN_VERTICES = 16
_MAX_VERTICES = 720
_MAX_EXCLUSION_CANDIDATES = 12
_MAX_EXCLUSION_SIZE = 3
_HALF_PI = math.pi / 2
_POLE_SEAM_OVERLAP_DEG = 1e-7
_WORLD = shapely.box(-180.0, -90.0, 180.0, 90.0)
_POLYGON_TYPE_ID = 3  # shapely.get_type_id of a Polygon

IntArray = npt.NDArray[np.int64]


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


@dataclass(frozen=True, slots=True)
class CapPolygon:
    """A lon/lat geometry that contains `cap`."""

    cap: Cap
    geometry: BaseGeometry
    outer_angle_rad: float  # every point of `geometry` is within this angle of the centre
    excess_km: float  # how far the boundary may lie outside the inflated spherical cap


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


def _max_edge_deviation_rad(lat: FloatArray, lon: FloatArray) -> float:
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
    return int(min(max(math.ceil(max(tangent_n, curvature_n)), _MIN_VERTICES), _MAX_VERTICES))


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
        deviation = _max_edge_deviation_rad(lat, lon)
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
        deviation = _max_edge_deviation_rad(lat, lon)
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


def _polygonal(geometry: BaseGeometry) -> BaseGeometry | None:
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


# Local frame ------------------------------------------------------------------------------
#
# The gnomonic projection about a point P maps great circles to straight lines, so the
# circumscribed polygon of a cap (angle < 90 deg) with great-circle edges is, in that frame,
# an exact convex polygon, and intersecting caps is intersecting convex polygons. The result
# R (exact, in the frame) is converted back to lon/lat with a margin that keeps every
# lon/lat-straight edge outside it:
#
# 1. Offset: R is grown in the plane by eps_plane (tangent lines at distance eps_plane from
#    every supporting line of R: mitre corners up to 90 deg of turn, sharper corners
#    circumscribed in steps of at most 45 deg). The plane scale of the projection is >= 1
#    and <= 1 + r^2 at plane radius r, so a plane distance D between points within radius
#    r_reach is an angle >= D / (1 + r_reach^2); with eps_plane >= eps * (1 + r_reach^2)
#    every point of the grown boundary is >= eps (angle) from R. eps is the budget
#    (resolution / 5) divided by 1 + r_max^2, so eps_plane stays near the budget.
# 2. Densify: the grown boundary's edges are great circles; they are split until the
#    lon/lat-straight chord of every piece strays from it by at most eps / 2 (the same
#    curvature bound as `_max_edge_deviation_rad`, checked after splitting), so the lon/lat
#    ring stays >= eps / 2 from R. The ring must be valid and a vertex of R is checked to be
#    inside it; R is connected, so all of R is inside.
#
# Excess over the inflated caps: cap polygon (<= resolution / 2) + sqrt(2) * eps_plane +
# eps / 2 <= about 0.89 x resolution; the achieved figure is returned as `excess_km`.

_LOCAL_MAX_SMALLEST_RAD = math.radians(60.0)
"""The frame is centred on the smallest cap; beyond this its polygon falls back to lon/lat."""

_LOCAL_MAX_VERTEX_RAD = math.radians(89.0)
"""Other caps' polygons must stay pointed cones (well inside a hemisphere)."""

_LOCAL_MIN_DEPTH = 0.1
"""Rings reaching nearer than this to the frame's horizon (x . P) are clipped to a box first."""

_LOCAL_MAX_LAT_RAD = math.radians(89.5)
_JOIN_STEP_RAD = math.pi / 4
_JOIN_STEP_SLACK = 1e-9
"""A corner may turn this fraction beyond a whole number of join steps and keep that number:
the smallest cap's fewest-vertex polygon turns by exactly 45 deg, which rounding puts on either
side (one step or two, ~100 m apart in the grown ring) differently in the batched and single
paths. A step of 45 deg x (1 + 1e-9) reaches eps_plane / cos(22.5 deg), within _JOIN_FACTOR."""
_JOIN_FACTOR = math.sqrt(2.0)  # corner points' largest distance / eps_plane (90 deg mitre)
_MIN_LOCAL_VERTICES = 8
_GAP_SLACK_RAD = 1e-7


def _local_bases(caps: Sequence[Cap]) -> FloatArray:
    """(k, 3, 3): rows east, north and the centre's unit vector (orthonormal) per cap."""
    rows = []
    for cap in caps:  # scalar math: a handful of caps, cheaper than a dozen numpy calls
        lat, lon = math.radians(cap.lat_deg), math.radians(cap.lon_deg)
        sin_lat, cos_lat = math.sin(lat), math.cos(lat)
        sin_lon, cos_lon = math.sin(lon), math.cos(lon)
        rows.append(
            (
                (-sin_lon, cos_lon, 0.0),
                (-sin_lat * cos_lon, -sin_lat * sin_lon, cos_lat),
                (cos_lat * cos_lon, cos_lat * sin_lon, sin_lat),
            )
        )
    return np.array(rows)


@functools.lru_cache(maxsize=64)
def _azimuth_trig(n: int) -> FloatArray:
    """(n, 2): sin and cos of n equally spaced azimuths (from north towards east: sin along
    east, cos along north). Few distinct n occur, so they are computed once (read-only)."""
    azimuths = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    trig = np.column_stack((np.sin(azimuths), np.cos(azimuths)))
    trig.flags.writeable = False
    return trig


def _great_circle_rings(
    caps: Sequence[Cap], excess_rad: float
) -> tuple[FloatArray, FloatArray, FloatArray] | None:
    """For each cap, the vertices (k, n, 3) of a polygon with great-circle edges tangent to
    the cap from outside, lying at most `excess_rad` beyond it; their angles from the centres;
    and the caps' bases. One vertex count n (the largest needed) serves every cap."""
    theta = np.array([c.angle_rad for c in caps])
    if float(theta.max()) + excess_rad >= _LOCAL_MAX_VERTEX_RAD:
        return None
    ratio = np.minimum(np.tan(theta) / np.tan(theta + excess_rad), 1.0)
    half_step = float(np.min(np.arccos(ratio)))
    n = _MAX_VERTICES if half_step <= 0.0 else math.ceil(math.pi / half_step)
    n = min(max(n, _MIN_LOCAL_VERTICES), _MAX_VERTICES)
    vertex_angle = np.arctan(np.tan(theta) / math.cos(math.pi / n))
    if float(vertex_angle.max()) >= _LOCAL_MAX_VERTEX_RAD:
        return None
    bases = _local_bases(caps)
    trig = _azimuth_trig(n)
    sin_v, cos_v = np.sin(vertex_angle)[:, None, None], np.cos(vertex_angle)[:, None, None]
    vertices = cos_v * bases[:, None, 2, :] + sin_v * (trig @ bases[:, :2, :])
    return np.asarray(vertices, dtype=np.float64), vertex_angle, bases


def _clip_homogeneous(points: FloatArray, half_spaces: FloatArray) -> FloatArray:
    """Sutherland-Hodgman in homogeneous plane coordinates: keep the part of the convex ring
    (great-circle edges) where every `half_spaces @ point >= 0`."""
    for half_space in half_spaces:
        if len(points) == 0:
            break
        side = points @ half_space
        inside = side >= 0.0
        if inside.all():
            continue
        following, side_next = np.roll(points, -1, axis=0), np.roll(side, -1)
        crossing = inside != np.roll(inside, -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(crossing, side / (side - side_next), 0.0)
        cut = points + t[:, None] * (following - points)
        points = np.stack((points, cut), axis=1)[np.stack((inside, crossing), axis=1)]
    return points


def _grown_ring(ring: FloatArray, eps_plane: float) -> FloatArray | None:
    """Corners of a polygon whose edges are at plane distance >= eps_plane outside the convex
    counter-clockwise `ring` and at most _JOIN_FACTOR * eps_plane from it."""
    edges = np.concatenate((ring[1:], ring[:1])) - ring
    keep = np.abs(edges).max(axis=1) > 1e-13
    ring, edges = ring[keep], edges[keep]
    if len(ring) < 3:
        return None
    normals = (
        np.stack((edges[:, 1], -edges[:, 0]), axis=-1) / np.hypot(edges[:, 0], edges[:, 1])[:, None]
    )  # outward unit normal of edge k (CCW ring)
    incoming = np.concatenate((normals[-1:], normals[:-1]))
    cos_turn = np.sum(normals * incoming, axis=1)
    cross_turn = incoming[:, 0] * normals[:, 1] - incoming[:, 1] * normals[:, 0]
    if float(cross_turn.min()) < -1e-9:
        return None  # not convex: leave it to the general path
    if float(cos_turn.min()) >= 0.0:
        # Every turn <= 90 deg: the mitre point, where the two shifted edges meet, lies
        # eps_plane / cos(turn / 2) <= sqrt(2) * eps_plane from the corner.
        mitre = eps_plane * (incoming + normals) / (1.0 + cos_turn)[:, None]
        return np.asarray(ring + mitre, dtype=np.float64)
    # Sharp corners: circumscribe the corner's circle in steps of at most 45 deg.
    turn = np.arctan2(cross_turn, cos_turn)
    incoming_angle = np.arctan2(incoming[:, 1], incoming[:, 0])
    steps = np.maximum(np.ceil(turn / _JOIN_STEP_RAD - _JOIN_STEP_SLACK), 1).astype(np.int64)
    step = turn / steps
    owner = np.repeat(np.arange(len(ring)), steps)
    index = np.arange(int(steps.sum())) - np.repeat(np.cumsum(steps) - steps, steps)
    angle = incoming_angle[owner] + (index + 0.5) * step[owner]
    reach = eps_plane / np.cos(step[owner] / 2.0)
    offset = reach[:, None] * np.stack((np.cos(angle), np.sin(angle)), axis=-1)
    return np.asarray(ring[owner] + offset, dtype=np.float64)


def _local_region_to_lonlat(
    region: BaseGeometry, basis: FloatArray, budget_rad: float
) -> tuple[BaseGeometry, float] | None:
    """A lon/lat polygon containing the plane polygon `region` (see the section comment), and
    its boundary's largest angular distance from `region`; None if a check fails."""
    ring = shapely.get_coordinates(region.exterior)[:-1]
    if len(ring) < 3:
        return None
    # A convex hull's vertices are distinct and turn one way: three of them give the sense.
    (x0, y0), (x1, y1), (x2, y2) = ring[:3].tolist()
    if (x1 - x0) * (y2 - y1) - (y1 - y0) * (x2 - x1) < 0.0:
        ring = ring[::-1]
    r_max = float(np.sqrt(np.max(np.sum(ring * ring, axis=1))))
    # eps shrinks with the projection's stretch so the plane offset, and hence the excess,
    # stays near `budget_rad` however far the region reaches from the centre.
    eps_rad = budget_rad / (1.0 + r_max**2)
    eps_plane = eps_rad * (1.0 + r_max**2)
    for _ in range(8):
        need = eps_rad * (1.0 + (r_max + _JOIN_FACTOR * eps_plane) ** 2)
        if eps_plane >= need:
            break
        eps_plane = need * 1.01
    else:
        return None
    grown = _grown_ring(ring, eps_plane)
    if grown is None:
        return None
    # Plane lengths bound angles from above (scale >= 1), and every point of the grown ring
    # is within atan(r_max + reach) of the centre, which bounds its latitude.
    reach_rad = math.atan(r_max + _JOIN_FACTOR * eps_plane)
    centre_lat = math.asin(max(-1.0, min(1.0, float(basis[2, 2]))))
    far_lat = min(abs(centre_lat) + reach_rad, _LOCAL_MAX_LAT_RAD)
    deviation_rad = eps_rad / 2.0
    max_piece = math.sqrt(8.0 * deviation_rad / (CURVATURE_SAFETY * max(math.tan(far_lat), 1e-3)))
    edges = np.concatenate((grown[1:], grown[:1])) - grown
    pieces = np.maximum(np.ceil(np.hypot(edges[:, 0], edges[:, 1]) / max_piece), 1)
    pieces = pieces.astype(np.int64)
    if int(pieces.max()) > 1:
        owner = np.repeat(np.arange(len(grown)), pieces)
        fraction = np.arange(len(owner)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
        grown = grown[owner] + (fraction / pieces[owner])[:, None] * edges[owner]
    # The last point is a vertex of `region` itself, converted in the same call.
    plane = np.concatenate((grown, ring[:1]))
    xyz = np.concatenate((plane, np.ones((len(plane), 1))), axis=1) @ basis
    lat = np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1]))
    lon = np.arctan2(xyz[:, 1], xyz[:, 0])
    if float(np.max(np.abs(lat))) > _LOCAL_MAX_LAT_RAD:
        return None
    inner_lat, inner_lon, lat, lon = lat[-1], lon[-1], lat[:-1], lon[:-1]
    if _max_edge_deviation_rad(lat, lon) > deviation_rad:
        return None
    steps = (np.diff(lon, append=lon[:1]) + math.pi) % (2.0 * math.pi) - math.pi
    if abs(float(np.sum(steps))) > math.pi:
        return None  # the ring winds around a pole
    lon_deg = np.degrees(np.concatenate((lon[:1], lon[0] + np.cumsum(steps[:-1]))))
    polygon = shapely.polygons(np.stack((lon_deg, np.degrees(lat)), axis=-1))
    if not shapely.is_valid(polygon):
        return None
    inner_lon_deg = math.degrees(float(inner_lon))
    inner_lon_deg += 360.0 * round((float(lon_deg[0]) - inner_lon_deg) / 360.0)
    if not shapely.contains_xy(polygon, inner_lon_deg, math.degrees(float(inner_lat))):
        return None
    return wrap_longitudes(polygon), _JOIN_FACTOR * eps_plane + deviation_rad


def _intersect_local(
    caps: Sequence[Cap], resolution_rad: float
) -> tuple[BaseGeometry | None, float] | None:
    """`intersect` in the gnomonic frame of the smallest cap; None when it does not apply."""
    ordered = sorted(caps, key=lambda c: c.angle_rad)
    cap_excess_rad = resolution_rad / 2.0
    smallest = ordered[0]
    if smallest.angle_rad + cap_excess_rad >= _LOCAL_MAX_SMALLEST_RAD:
        return None
    # Vertex angle of the smallest polygon for the fewest vertices we would use: an upper
    # bound, so the pruning below stays conservative whatever n is chosen.
    theta = smallest.angle_rad
    half_step = math.acos(min(math.tan(theta) / math.tan(theta + cap_excess_rad), 1.0))
    fewest = _MAX_VERTICES if half_step <= 0.0 else math.ceil(math.pi / half_step)
    fewest = min(max(fewest, _MIN_LOCAL_VERTICES), _MAX_VERTICES)
    outer_rad = math.atan(math.tan(theta) / math.cos(math.pi / fewest))
    # A cap that contains the smallest polygon's vertex circle cannot cut it. Scalar math is
    # cheaper than numpy for ten caps; the gap is over-estimated by _GAP_SLACK_RAD (acos is
    # inaccurate near 0), so a cap is only skipped when it surely contains the circle.
    lat0, lon0 = math.radians(smallest.lat_deg), math.radians(smallest.lon_deg)
    sin0, cos0 = math.sin(lat0), math.cos(lat0)
    used = [smallest]
    for cap in ordered[1:]:
        lat, lon = math.radians(cap.lat_deg), math.radians(cap.lon_deg)
        cos_gap = sin0 * math.sin(lat) + cos0 * math.cos(lat) * math.cos(lon - lon0)
        gap = math.acos(max(-1.0, min(1.0, cos_gap))) + _GAP_SLACK_RAD
        if gap + outer_rad > cap.angle_rad:
            used.append(cap)
    built = _great_circle_rings(used, cap_excess_rad)
    if built is None:
        return None
    vertices, vertex_angle, bases = built
    excess_km = float(np.max(vertex_angle - [c.angle_rad for c in used])) * EARTH_MEAN_RADIUS_KM
    basis = bases[0]
    plane = vertices @ basis.T  # (k, n, 3) homogeneous plane coordinates
    depth = plane[:, :, 2].min(axis=1)
    if bool(np.all(depth >= _LOCAL_MIN_DEPTH)):
        rings: list[FloatArray] | FloatArray = plane[:, :, :2] / plane[:, :, 2:]
    else:
        first_uv = plane[0, :, :2] / plane[0, :, 2:]
        (u_min, v_min) = first_uv.min(axis=0) - 1e-9
        (u_max, v_max) = first_uv.max(axis=0) + 1e-9
        box = np.array(
            [[1.0, 0.0, -u_min], [-1.0, 0.0, u_max], [0.0, 1.0, -v_min], [0.0, -1.0, v_max]]
        )
        rings = []
        for cap_plane, cap_depth in zip(plane, depth, strict=True):
            # Only the part inside the smallest polygon's bounding box can matter.
            kept = cap_plane if cap_depth >= _LOCAL_MIN_DEPTH else _clip_homogeneous(cap_plane, box)
            if len(kept) < 3:
                return None, excess_km
            rings.append(kept[:, :2] / kept[:, 2:])
    # One call builds every polygon when the rings share a length (no ring was clipped).
    polygons = (
        shapely.polygons(rings)
        if isinstance(rings, np.ndarray)
        else np.array([shapely.polygons(ring) for ring in rings])
    )
    region = shapely.intersection_all(polygons) if len(polygons) > 1 else polygons[0]
    area_part = _polygonal(region)
    if area_part is None:
        return None, excess_km
    converted = _local_region_to_lonlat(area_part.convex_hull, basis, resolution_rad / 5.0)
    if converted is None:
        return None
    geometry, margin_rad = converted
    return geometry, excess_km + margin_rad * EARTH_MEAN_RADIUS_KM


def intersect(caps: Sequence[Cap], resolution_km: float) -> tuple[BaseGeometry | None, float]:
    """Intersection of the caps' polygons (None when empty: the caps provably do not meet),
    and the largest boundary excess of any polygon used (km).

    Tries the local gnomonic frame first (see `_intersect_local`); near the poles, for caps of
    about a hemisphere, or whenever one of its checks fails it falls back to intersecting
    lon/lat polygons.
    """
    local = _intersect_local(caps, resolution_km / EARTH_MEAN_RADIUS_KM)
    if local is not None:
        return local
    return _intersect_lonlat(caps, resolution_km)


def _intersect_lonlat(
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
    return _polygonal(region), excess_km


@dataclass(frozen=True, slots=True)
class Solution:
    """Result of solving one tier."""

    region: BaseGeometry | None  # None when the caps do not intersect
    caps: tuple[Cap, ...]
    excluded_landmarks: tuple[str, ...]  # smallest removal set restoring consistency
    excess_km: float  # largest boundary excess over the inflated caps (achieved resolution)


def _conflict_counts(caps: Sequence[Cap]) -> list[int]:
    centres = unit_vectors([c.lat_deg for c in caps], [c.lon_deg for c in caps])
    angles = np.array([c.angle_rad for c in caps])
    gaps = angle_between_rad(centres[:, None, :], centres[None, :, :])
    disjoint = gaps > angles[:, None] + angles[None, :]
    return [int(v) for v in disjoint.sum(axis=1)]


def _restoring_removal(caps: Sequence[Cap], resolution_km: float) -> tuple[str, ...]:
    """Smallest set of landmarks whose removal makes the remaining caps intersect.

    Exhaustive over sets of up to three among the twelve most conflicting landmarks
    (conflict = pairwise disjoint caps), then greedy; () if nothing works while keeping
    at least MIN_LANDMARKS landmarks.
    """
    conflicts = _conflict_counts(caps)
    ranked = sorted(range(len(caps)), key=lambda i: (-conflicts[i], -caps[i].radius_km))
    candidates = ranked[:_MAX_EXCLUSION_CANDIDATES]
    for size in range(1, _MAX_EXCLUSION_SIZE + 1):
        if len(caps) - size < MIN_LANDMARKS:
            return ()
        for removed in itertools.combinations(candidates, size):
            rest = [c for i, c in enumerate(caps) if i not in removed]
            if intersect(rest, resolution_km)[0] is not None:
                return tuple(sorted(caps[i].landmark_id for i in removed))
    removed_set: list[int] = []
    for i in ranked:
        if len(caps) - len(removed_set) - 1 < MIN_LANDMARKS:
            break
        removed_set.append(i)
        rest = [c for j, c in enumerate(caps) if j not in removed_set]
        if intersect(rest, resolution_km)[0] is not None:
            return tuple(sorted(caps[j].landmark_id for j in removed_set))
    return ()


def solve(caps: Sequence[Cap], resolution_km: float) -> Solution:
    """Intersect caps; if they do not meet, name the landmarks whose removal restores it."""
    if len(caps) < MIN_LANDMARKS:
        raise InsufficientDataError(
            f"need measurements from at least {MIN_LANDMARKS} distinct landmarks, got {len(caps)}"
        )
    if not (math.isfinite(resolution_km) and resolution_km > 0.0):
        raise InvalidMeasurementError(f"resolution_km must be finite and > 0, got {resolution_km}")
    region, excess_km = intersect(caps, resolution_km)
    if region is not None:
        return Solution(region=region, caps=tuple(caps), excluded_landmarks=(), excess_km=excess_km)
    excluded = _restoring_removal(caps, resolution_km)
    logger.info("caps do not intersect; removing %s restores consistency", excluded or "nothing")
    return Solution(region=None, caps=tuple(caps), excluded_landmarks=excluded, excess_km=excess_km)


# Batches ----------------------------------------------------------------------------------
#
# `intersect_many` runs `_intersect_local` for many cap sets with one set of numpy/shapely
# calls over all of them (flat arrays, each vertex knowing its cap, ring and problem), so the
# fixed cost per library call is paid once per batch instead of once per set. The arithmetic
# is the same, step by step; any set whose batched computation meets a case it does not
# handle (a ring near the frame's horizon, a sharp non-convex result, a failed check, a
# result across +-180 deg that needs cutting) is handed to `intersect`, which then runs the
# single-set code in full. So every result is one `intersect` could have produced.


def _ring_next(starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]) -> IntArray:
    """Index of each element's successor within its ring (cyclic), for rings stored back to
    back starting at `starts`."""
    index = np.arange(int(lengths.sum()), dtype=np.int64)
    following = index + 1
    following[starts + lengths - 1] = starts
    return following


def _ring_layout(counts: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """Starts, owner of each element and position within its ring for ragged `counts`."""
    starts = np.cumsum(counts) - counts
    owner = np.repeat(np.arange(len(counts)), counts)
    position = np.arange(int(counts.sum()), dtype=np.int64) - starts[owner]
    return starts, owner, position


def intersect_many(
    cap_sets: Sequence[Sequence[Cap]], resolution_km: float
) -> list[tuple[BaseGeometry | None, float]]:
    """`intersect` for each cap set (each of >= 1 cap), computed together; the same results
    up to floating-point rounding (see the section comment)."""
    resolution_rad = resolution_km / EARTH_MEAN_RADIUS_KM
    batched = _intersect_local_many(cap_sets, resolution_rad) if cap_sets else []
    return [
        result if result is not None else intersect(caps, resolution_km)
        for caps, result in zip(cap_sets, batched, strict=True)
    ]


def cap_angles_rad(radius_km: FloatArray) -> FloatArray:
    """`Cap.angle_rad` for many radii (the same arithmetic, element by element)."""
    return np.asarray(
        (radius_km * SPHERE_DISTANCE_INFLATION + FLOAT_MARGIN_KM) / EARTH_MEAN_RADIUS_KM,
        dtype=np.float64,
    )


def _intersect_local_many(
    cap_sets: Sequence[Sequence[Cap]], resolution_rad: float
) -> list[tuple[BaseGeometry | None, float] | None]:
    """`_intersect_local` over many cap sets; None for a set left to `intersect`."""
    counts = np.array([len(caps) for caps in cap_sets], dtype=np.int64)
    flat = [c for caps in cap_sets for c in caps]
    return intersect_local_arrays(
        counts,
        np.array([c.lat_deg for c in flat]),
        np.array([c.lon_deg for c in flat]),
        np.array([c.angle_rad for c in flat]),
        resolution_rad,
    )


def intersect_local_arrays(
    counts: IntArray,
    lat_deg: FloatArray,
    lon_deg: FloatArray,
    angle_rad: FloatArray,
    resolution_rad: float,
) -> list[tuple[BaseGeometry | None, float] | None]:
    """The batched local frame for cap sets given as flat arrays (set k holds the next
    counts[k] caps, in the order `caps_from_measurements` makes them); None for a set the
    caller must give to `intersect`. For callers that have not built `Cap` values."""
    results: list[tuple[BaseGeometry | None, float] | None] = [None] * len(counts)
    count = len(counts)
    cap_excess_rad = resolution_rad / 2.0
    # Each set's caps by angle, ties in their given order (as `sorted` orders them).
    owner = np.repeat(np.arange(len(counts)), counts)
    order = np.lexsort((angle_rad, owner))
    angle = angle_rad[order]
    lat = np.radians(lat_deg[order])
    lon = np.radians(lon_deg[order])
    starts, problem, position = _ring_layout(counts)
    ok = angle[starts] + cap_excess_rad < _LOCAL_MAX_SMALLEST_RAD
    # Pruning, as in `_intersect_local`: the smallest polygon's vertex circle for the fewest
    # vertices bounds it whatever n is chosen; a cap containing that circle cannot cut it.
    theta0 = angle[starts]
    with np.errstate(divide="ignore", invalid="ignore"):
        half0 = np.arccos(np.minimum(np.tan(theta0) / np.tan(theta0 + cap_excess_rad), 1.0))
        fewest = np.where(half0 <= 0.0, _MAX_VERTICES, np.ceil(math.pi / half0))
    fewest = np.clip(np.nan_to_num(fewest, nan=_MAX_VERTICES), _MIN_LOCAL_VERTICES, _MAX_VERTICES)
    outer = np.arctan(np.tan(theta0) / np.cos(math.pi / fewest))
    sin_lat, cos_lat = np.sin(lat), np.cos(lat)
    lat0s, lon0s = lat[starts][problem], lon[starts][problem]
    cos_gap = np.sin(lat0s) * sin_lat + np.cos(lat0s) * cos_lat * np.cos(lon - lon0s)
    gap = np.arccos(np.clip(cos_gap, -1.0, 1.0)) + _GAP_SLACK_RAD
    used = (position == 0) | (gap + outer[problem] > angle)
    # One vertex count per set: the largest any used cap needs.
    used &= ok[problem]
    u_problem, u_theta = problem[used], angle[used]
    u_lat, u_lon = lat[used], lon[used]
    u_counts = np.bincount(u_problem, minlength=count)
    u_starts = np.cumsum(u_counts) - u_counts
    live = u_counts > 0
    too_big = np.zeros(count, dtype=bool)
    np.maximum.at(too_big, u_problem, u_theta + cap_excess_rad >= _LOCAL_MAX_VERTEX_RAD)
    ratio = np.minimum(np.tan(u_theta) / np.tan(u_theta + cap_excess_rad), 1.0)
    half_step = np.full(count, np.inf)
    np.minimum.at(half_step, u_problem, np.arccos(ratio))
    with np.errstate(divide="ignore"):
        n_set = np.where(half_step <= 0.0, _MAX_VERTICES, np.ceil(math.pi / half_step))
    n_set = np.clip(np.nan_to_num(n_set, posinf=_MAX_VERTICES), _MIN_LOCAL_VERTICES, _MAX_VERTICES)
    n_set = n_set.astype(np.int64)
    vertex_angle = np.arctan(np.tan(u_theta) / np.cos(math.pi / n_set[u_problem]))
    worst = np.zeros(count)
    np.maximum.at(worst, u_problem, vertex_angle)
    excess = np.full(count, -np.inf)
    np.maximum.at(excess, u_problem, vertex_angle - u_theta)
    ok &= live & ~too_big & (worst < _LOCAL_MAX_VERTEX_RAD)
    # Bases (east, north, centre) per used cap; the frame is each set's smallest cap.
    s_lat, c_lat, s_lon, c_lon = np.sin(u_lat), np.cos(u_lat), np.sin(u_lon), np.cos(u_lon)
    zero = np.zeros_like(u_lat)
    east = np.stack((-s_lon, c_lon, zero), axis=-1)
    north = np.stack((-s_lat * c_lon, -s_lat * s_lon, c_lat), axis=-1)
    centre = np.stack((c_lat * c_lon, c_lat * s_lon, s_lat), axis=-1)
    frame = np.stack((east, north, centre), axis=1)[u_starts[live]]  # (live sets, 3, 3)
    frame_of = np.full(count, -1, dtype=np.int64)
    frame_of[live] = np.arange(int(live.sum()))
    # Vertices: cap k has n of its set, at azimuths 2 pi j / n.
    per_cap_n = n_set[u_problem]
    _, v_cap, v_j = _ring_layout(per_cap_n)
    azimuth = v_j * (2.0 * math.pi / per_cap_n[v_cap])
    sin_az, cos_az = np.sin(azimuth)[:, None], np.cos(azimuth)[:, None]
    sin_v, cos_v = np.sin(vertex_angle)[v_cap, None], np.cos(vertex_angle)[v_cap, None]
    vertices = cos_v * centre[v_cap] + sin_v * (sin_az * east[v_cap] + cos_az * north[v_cap])
    v_problem = u_problem[v_cap]
    plane = np.einsum("vi,vji->vj", vertices, frame[frame_of[v_problem]])
    shallow = np.zeros(count, dtype=bool)
    np.maximum.at(shallow, v_problem, plane[:, 2] < _LOCAL_MIN_DEPTH)
    ok &= ~shallow  # rings near the horizon are clipped by the single-set code
    keep_v = ok[v_problem]
    if not keep_v.any():
        return results
    cap_ids = np.flatnonzero(ok[u_problem])
    uv = plane[keep_v, :2] / plane[keep_v, 2:]
    rings = shapely.linearrings(uv, indices=np.searchsorted(cap_ids, v_cap[keep_v]))
    polygons = shapely.polygons(rings)
    sets = np.flatnonzero(ok)
    table = np.full((len(sets), int(u_counts[sets].max())), None, dtype=object)
    u_position = np.arange(len(u_problem)) - u_starts[u_problem]
    table[np.searchsorted(sets, u_problem[cap_ids]), u_position[cap_ids]] = polygons
    try:
        regions = shapely.intersection_all(table, axis=1)
    except shapely.errors.GEOSException:
        # One set's overlay failed: every set goes to `intersect`, which meets the failure
        # (or not) for that set alone instead of failing the batch.
        logger.debug("batched intersection failed; solving the %d sets one by one", len(sets))
        return results
    excess_km = excess * EARTH_MEAN_RADIUS_KM
    empty = shapely.is_empty(regions)
    for index in sets[empty]:
        results[index] = (None, float(excess_km[index]))
    simple = (shapely.get_type_id(regions) == _POLYGON_TYPE_ID) & ~empty
    simple[simple] = shapely.area(regions[simple]) > 0.0
    if not simple.any():
        return results
    converted = _plane_regions_to_lonlat(
        shapely.convex_hull(regions[simple]), frame[frame_of[sets[simple]]], resolution_rad / 5.0
    )
    for index, item in zip(sets[simple], converted, strict=True):
        if item is not None:
            geometry, margin_rad = item
            results[index] = (geometry, float(excess_km[index]) + margin_rad * EARTH_MEAN_RADIUS_KM)
    return results


def _plane_regions_to_lonlat(
    regions: npt.NDArray[np.object_], frames: FloatArray, budget_rad: float
) -> list[tuple[BaseGeometry, float] | None]:
    """`_local_region_to_lonlat` for many convex plane polygons, each in its own frame
    (frames: (m, 3, 3)); None for a polygon left to the single-set code."""
    count = len(regions)
    coords, ring_of = shapely.get_coordinates(shapely.get_exterior_ring(regions), return_index=True)
    closed = np.bincount(ring_of, minlength=count)
    keep_open = np.ones(len(coords), dtype=bool)
    keep_open[np.cumsum(closed) - 1] = False  # drop each ring's closing point
    coords, ring_of = coords[keep_open], ring_of[keep_open]
    lengths = closed - 1
    ok = lengths >= 3
    lengths = np.where(ok, lengths, 0)
    coords, ring_of = coords[ok[ring_of]], ring_of[ok[ring_of]]
    starts, _, position = _ring_layout(lengths)
    # Orientation from a ring's first three points (a convex hull turns one way); clockwise
    # rings are reversed element by element, as `ring[::-1]` does.
    first = np.minimum(starts, max(len(coords) - 1, 0))
    x0, y0 = coords[first, 0], coords[first, 1]
    x1, y1 = coords[np.minimum(first + 1, len(coords) - 1)].T
    x2, y2 = coords[np.minimum(first + 2, len(coords) - 1)].T
    clockwise = (x1 - x0) * (y2 - y1) - (y1 - y0) * (x2 - x1) < 0.0
    source = np.where(
        clockwise[ring_of],
        starts[ring_of] + lengths[ring_of] - 1 - position,
        starts[ring_of] + position,
    )
    ring = coords[source]
    radius_sq = np.zeros(count)
    np.maximum.at(radius_sq, ring_of, np.sum(ring * ring, axis=1))
    r_max = np.sqrt(radius_sq)
    eps_rad = budget_rad / (1.0 + r_max**2)
    eps_plane = eps_rad * (1.0 + r_max**2)
    done = np.zeros(count, dtype=bool)
    for _ in range(8):
        need = eps_rad * (1.0 + (r_max + _JOIN_FACTOR * eps_plane) ** 2)
        done |= eps_plane >= need
        eps_plane = np.where(done, eps_plane, need * 1.01)
    ok &= done
    # The region's own first vertex, converted with the ring, must end up inside it.
    inner = ring[np.minimum(starts, max(len(ring) - 1, 0))] if len(ring) else np.zeros((count, 2))
    # Grow (as `_grown_ring`): drop points whose edge to the next is degenerate.
    following = _ring_next(starts, lengths)
    edges = ring[following] - ring
    kept = np.abs(edges).max(axis=1) > 1e-13
    ring, edges, ring_of = ring[kept], edges[kept], ring_of[kept]
    lengths = np.bincount(ring_of, minlength=count)
    ok &= lengths >= 3
    starts = np.cumsum(lengths) - lengths
    following = _ring_next(starts, lengths)
    previous = np.empty_like(following)
    previous[following] = np.arange(len(following))
    normals = (
        np.stack((edges[:, 1], -edges[:, 0]), axis=-1) / np.hypot(edges[:, 0], edges[:, 1])[:, None]
    )
    incoming = normals[previous]
    cos_turn = np.sum(normals * incoming, axis=1)
    cross_turn = incoming[:, 0] * normals[:, 1] - incoming[:, 1] * normals[:, 0]
    lowest_cross = np.full(count, np.inf)
    np.minimum.at(lowest_cross, ring_of, cross_turn)
    ok &= lowest_cross >= -1e-9
    lowest_cos = np.full(count, np.inf)
    np.minimum.at(lowest_cos, ring_of, cos_turn)
    mitre_ring = lowest_cos >= 0.0
    eps_of = eps_plane[ring_of]
    turn = np.arctan2(cross_turn, cos_turn)
    whole_steps = np.ceil(turn / _JOIN_STEP_RAD - _JOIN_STEP_SLACK)
    steps = np.where(mitre_ring[ring_of], 1, np.maximum(whole_steps, 1)).astype(np.int64)
    _, corner, index = _ring_layout(steps)
    step = turn / steps
    with np.errstate(divide="ignore", invalid="ignore"):
        mitre = eps_of[:, None] * (incoming + normals) / (1.0 + cos_turn)[:, None]
    incoming_angle = np.arctan2(incoming[:, 1], incoming[:, 0])
    angle = incoming_angle[corner] + (index + 0.5) * step[corner]
    reach = eps_of[corner] / np.cos(step[corner] / 2.0)
    sharp = reach[:, None] * np.stack((np.cos(angle), np.sin(angle)), axis=-1)
    grown_of = ring_of[corner]
    grown = ring[corner] + np.where(mitre_ring[grown_of][:, None], mitre[corner], sharp)
    # Densify so every lon/lat-straight chord strays <= eps / 2 from its great circle.
    reach_rad = np.arctan(r_max + _JOIN_FACTOR * eps_plane)
    centre_lat = np.arcsin(np.clip(frames[:, 2, 2], -1.0, 1.0))
    far_lat = np.minimum(np.abs(centre_lat) + reach_rad, _LOCAL_MAX_LAT_RAD)
    deviation_rad = eps_rad / 2.0
    max_piece = np.sqrt(
        8.0 * deviation_rad / (CURVATURE_SAFETY * np.maximum(np.tan(far_lat), 1e-3))
    )
    g_lengths = np.bincount(grown_of, minlength=count)
    g_starts = np.cumsum(g_lengths) - g_lengths
    g_edges = grown[_ring_next(g_starts, g_lengths)] - grown
    pieces = np.maximum(
        np.ceil(np.hypot(g_edges[:, 0], g_edges[:, 1]) / max_piece[grown_of]), 1
    ).astype(np.int64)
    _, piece_owner, piece_index = _ring_layout(pieces)
    dense = grown[piece_owner] + (piece_index / pieces[piece_owner])[:, None] * g_edges[piece_owner]
    dense_of = grown_of[piece_owner]
    frame_of = frames[dense_of]
    xyz = dense[:, :1] * frame_of[:, 0] + dense[:, 1:] * frame_of[:, 1] + frame_of[:, 2]
    lat = np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1]))
    lon = np.arctan2(xyz[:, 1], xyz[:, 0])
    polar = np.zeros(count, dtype=bool)
    np.maximum.at(polar, dense_of, np.abs(lat) > _LOCAL_MAX_LAT_RAD)
    ok &= ~polar
    d_lengths = np.bincount(dense_of, minlength=count)
    d_starts = np.cumsum(d_lengths) - d_lengths
    nxt = _ring_next(d_starts, d_lengths)
    # `_max_edge_deviation_rad`, per ring.
    lat2 = lat[nxt]
    dlon = (lon[nxt] - lon + math.pi) % (2.0 * math.pi) - math.pi
    abs1, abs2 = np.abs(lat), np.abs(lat2)
    cos_max = np.where(lat * lat2 <= 0.0, 1.0, np.cos(np.minimum(abs1, abs2)))
    length_sq = (lat2 - lat) ** 2 + (cos_max * dlon) ** 2
    tan_max = np.tan(np.minimum(np.maximum(abs1, abs2), _HALF_PI - 1e-12))
    deviation = np.zeros(count)
    np.maximum.at(deviation, dense_of, tan_max * length_sq)
    ok &= deviation * CURVATURE_SAFETY / 8.0 <= deviation_rad
    winding = np.bincount(dense_of, weights=dlon, minlength=count)
    ok &= np.abs(winding) <= math.pi  # a ring winding around a pole is left to lon/lat
    # Unwrap longitudes along each ring from its first point.
    shifted = np.where(np.arange(len(dlon)) == d_starts[dense_of], 0.0, np.roll(dlon, 1))
    running = np.cumsum(shifted)
    lon_unwrapped = lon[d_starts[dense_of]] + (running - running[d_starts[dense_of]])
    lon_deg = np.degrees(lon_unwrapped)
    lat_deg = np.degrees(lat)
    results: list[tuple[BaseGeometry, float] | None] = [None] * count
    chosen = ok[dense_of]
    if not chosen.any():
        return results
    rings_ok = np.flatnonzero(ok)
    polygons = shapely.polygons(
        shapely.linearrings(
            np.stack((lon_deg[chosen], lat_deg[chosen]), axis=-1),
            indices=np.searchsorted(rings_ok, dense_of[chosen]),
        )
    )
    inner_ok = inner[rings_ok]
    f = frames[rings_ok]
    inner_xyz = inner_ok[:, :1] * f[:, 0] + inner_ok[:, 1:] * f[:, 1] + f[:, 2]
    inner_lat = np.degrees(np.arctan2(inner_xyz[:, 2], np.hypot(inner_xyz[:, 0], inner_xyz[:, 1])))
    inner_lon = np.degrees(np.arctan2(inner_xyz[:, 1], inner_xyz[:, 0]))
    first_lon = lon_deg[d_starts[rings_ok]]
    inner_lon += 360.0 * np.round((first_lon - inner_lon) / 360.0)
    valid = shapely.is_valid(polygons)
    valid[valid] = shapely.contains_xy(polygons[valid], inner_lon[valid], inner_lat[valid])
    low = np.full(count, np.inf)
    high = np.full(count, -np.inf)
    np.minimum.at(low, dense_of, lon_deg)
    np.maximum.at(high, dense_of, lon_deg)
    margin = _JOIN_FACTOR * eps_plane + deviation_rad
    for k, polygon, good in zip(rings_ok, polygons, valid, strict=True):
        if not good:
            continue
        inside = low[k] >= -180.0 and high[k] <= 180.0
        results[k] = (polygon if inside else wrap_longitudes(polygon), float(margin[k]))
    return results
