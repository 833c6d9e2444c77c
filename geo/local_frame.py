"""Intersecting caps in the gnomonic frame of the smallest cap (the common, fast path).

The gnomonic projection about a point P maps great circles to straight lines, so the
circumscribed polygon of a cap (angle < 90 deg) with great-circle edges is, in that frame,
an exact convex polygon, and intersecting caps is intersecting convex polygons. The result
R (exact, in the frame) is converted back to lon/lat with a margin that keeps every
lon/lat-straight edge outside it:

1. Offset: R is grown in the plane by eps_plane (tangent lines at distance eps_plane from
   every supporting line of R: mitre corners up to 90 deg of turn, sharper corners
   circumscribed in steps of at most 45 deg). The plane scale of the projection is >= 1
   and <= 1 + r^2 at plane radius r, so a plane distance D between points within radius
   r_reach is an angle >= D / (1 + r_reach^2); with eps_plane >= eps * (1 + r_reach^2)
   every point of the grown boundary is >= eps (angle) from R. eps is the budget
   (resolution / 5) divided by 1 + r_max^2, so eps_plane stays near the budget.
2. Densify: the grown boundary's edges are great circles; they are split until the
   lon/lat-straight chord of every piece strays from it by at most eps / 2 (the same
   curvature bound as `max_edge_deviation_rad`, checked after splitting), so the lon/lat
   ring stays >= eps / 2 from R. The ring must be valid and a vertex of R is checked to be
   inside it; R is connected, so all of R is inside.

Excess over the inflated caps: cap polygon (<= resolution / 2) + sqrt(2) * eps_plane +
eps / 2 <= about 0.89 x resolution; the achieved figure is returned as `excess_km`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geo.cap_polygon import (
    CURVATURE_SAFETY,
    MAX_VERTICES,
    max_edge_deviation_rad,
    polygonal_part,
    wrap_longitudes,
)
from geo.caps import Cap
from geo.constants import (
    EARTH_MEAN_RADIUS_KM,
)
from geo.geodesy import (
    FloatArray,
)

LOCAL_MAX_SMALLEST_RAD = math.radians(60.0)
"""The frame is centred on the smallest cap; beyond this its polygon falls back to lon/lat."""

LOCAL_MAX_VERTEX_RAD = math.radians(89.0)
"""Other caps' polygons must stay pointed cones (well inside a hemisphere)."""

LOCAL_MIN_DEPTH = 0.1
"""Rings reaching nearer than this to the frame's horizon (x . P) are clipped to a box first."""

LOCAL_MAX_LAT_RAD = math.radians(89.5)
JOIN_STEP_RAD = math.pi / 4
JOIN_STEP_SLACK = 1e-9
"""A corner may turn this fraction beyond a whole number of join steps and keep that number:
the smallest cap's fewest-vertex polygon turns by exactly 45 deg, which rounding puts on either
side (one step or two, ~100 m apart in the grown ring) differently in the batched and single
paths. A step of 45 deg x (1 + 1e-9) reaches eps_plane / cos(22.5 deg), within JOIN_FACTOR."""
JOIN_FACTOR = math.sqrt(2.0)  # corner points' largest distance / eps_plane (90 deg mitre)
MIN_LOCAL_VERTICES = 8
GAP_SLACK_RAD = 1e-7


def local_bases(lat_deg: FloatArray, lon_deg: FloatArray) -> FloatArray:
    """(k, 3, 3): rows east, north and the centre's unit vector (orthonormal) per cap.

    This and `plane_vertices`, `vertex_angles` and `from_plane` are the one place the single
    and the batched path (`geo.solver_batch`) compute a cap's polygon and map plane points
    back: element-wise numpy only (numpy gives an element the same bits whatever array holds
    it; math.sin, matmul and einsum round differently), so both hand GEOS the same bits.
    Where two caps' edges are nearly parallel (nearly co-located landmarks), a last-bit change
    of an edge's ends moves its crossing far along the edge, and densification turned that
    into metres between the two paths' regions.
    """
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    sin_lat, cos_lat, sin_lon, cos_lon = np.sin(lat), np.cos(lat), np.sin(lon), np.cos(lon)
    east = np.stack((-sin_lon, cos_lon, np.zeros_like(lat)), axis=-1)
    north = np.stack((-sin_lat * cos_lon, -sin_lat * sin_lon, cos_lat), axis=-1)
    centre = np.stack((cos_lat * cos_lon, cos_lat * sin_lon, sin_lat), axis=-1)
    return np.stack((east, north, centre), axis=1)


def vertex_angles(theta: FloatArray, n: npt.NDArray[np.int64]) -> FloatArray:
    """Angle from its centre of each vertex of a cap's n-gon whose great-circle edges are
    tangent to the cap (angle theta)."""
    return np.asarray(np.arctan(np.tan(theta) / np.cos(math.pi / n)), dtype=np.float64)


def plane_vertices(
    bases: FloatArray, vertex_angle: FloatArray, n: npt.NDArray[np.int64], frames: FloatArray
) -> FloatArray:
    """(sum(n), 3): homogeneous coordinates, in frames[k] (rows as `local_bases`), of cap k's
    n[k] polygon vertices at azimuths 2 pi j / n[k] (from north towards east), caps back to
    back."""
    cap = np.repeat(np.arange(len(n)), n)
    j = np.arange(len(cap)) - np.repeat(np.cumsum(n) - n, n)
    azimuth = j * (2.0 * math.pi / n[cap])
    sin_az, cos_az = np.sin(azimuth)[:, None], np.cos(azimuth)[:, None]
    sin_v, cos_v = np.sin(vertex_angle)[cap, None], np.cos(vertex_angle)[cap, None]
    basis = bases[cap]
    vertices = cos_v * basis[:, 2] + sin_v * (sin_az * basis[:, 0] + cos_az * basis[:, 1])
    frame = frames[cap]
    return np.asarray(
        vertices[:, :1] * frame[:, :, 0]
        + vertices[:, 1:2] * frame[:, :, 1]
        + vertices[:, 2:] * frame[:, :, 2],
        dtype=np.float64,
    )


def from_plane(points: FloatArray, frames: FloatArray) -> FloatArray:
    """(m, 3): the points (m, 2) of the gnomonic plane of frames (3, 3), or of frames[i]
    (m, 3, 3) for point i, as (unnormalised) vectors."""
    return np.asarray(
        points[:, :1] * frames[..., 0, :] + points[:, 1:] * frames[..., 1, :] + frames[..., 2, :],
        dtype=np.float64,
    )


def _great_circle_rings(
    caps: Sequence[Cap], excess_rad: float
) -> tuple[FloatArray, FloatArray, FloatArray] | None:
    """For each cap, the vertices (k, n, 3) of a polygon with great-circle edges tangent to
    the cap from outside, lying at most `excess_rad` beyond it, in homogeneous coordinates of
    the first cap's frame; their angles from the centres; and the caps' bases. One vertex
    count n (the largest needed) serves every cap."""
    theta = np.array([c.angle_rad for c in caps])
    if float(theta.max()) + excess_rad >= LOCAL_MAX_VERTEX_RAD:
        return None
    ratio = np.minimum(np.tan(theta) / np.tan(theta + excess_rad), 1.0)
    half_step = float(np.min(np.arccos(ratio)))
    n = MAX_VERTICES if half_step <= 0.0 else math.ceil(math.pi / half_step)
    n = min(max(n, MIN_LOCAL_VERTICES), MAX_VERTICES)
    counts = np.full(len(caps), n, dtype=np.int64)
    vertex_angle = vertex_angles(theta, counts)
    if float(vertex_angle.max()) >= LOCAL_MAX_VERTEX_RAD:
        return None
    bases = local_bases(np.array([c.lat_deg for c in caps]), np.array([c.lon_deg for c in caps]))
    frames = np.broadcast_to(bases[0], bases.shape)
    plane = plane_vertices(bases, vertex_angle, counts, frames).reshape(len(caps), n, 3)
    return plane, vertex_angle, bases


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
    counter-clockwise `ring` and at most JOIN_FACTOR * eps_plane from it."""
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
    steps = np.maximum(np.ceil(turn / JOIN_STEP_RAD - JOIN_STEP_SLACK), 1).astype(np.int64)
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
        need = eps_rad * (1.0 + (r_max + JOIN_FACTOR * eps_plane) ** 2)
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
    reach_rad = math.atan(r_max + JOIN_FACTOR * eps_plane)
    centre_lat = math.asin(max(-1.0, min(1.0, float(basis[2, 2]))))
    far_lat = min(abs(centre_lat) + reach_rad, LOCAL_MAX_LAT_RAD)
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
    xyz = from_plane(plane, basis)
    lat = np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1]))
    lon = np.arctan2(xyz[:, 1], xyz[:, 0])
    if float(np.max(np.abs(lat))) > LOCAL_MAX_LAT_RAD:
        return None
    inner_lat, inner_lon, lat, lon = lat[-1], lon[-1], lat[:-1], lon[:-1]
    if max_edge_deviation_rad(lat, lon) > deviation_rad:
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
    return wrap_longitudes(polygon), JOIN_FACTOR * eps_plane + deviation_rad


def intersect_local(
    caps: Sequence[Cap], resolution_rad: float
) -> tuple[BaseGeometry | None, float] | None:
    """`intersect` in the gnomonic frame of the smallest cap; None when it does not apply."""
    ordered = sorted(caps, key=lambda c: c.angle_rad)
    cap_excess_rad = resolution_rad / 2.0
    smallest = ordered[0]
    if smallest.angle_rad + cap_excess_rad >= LOCAL_MAX_SMALLEST_RAD:
        return None
    # Vertex angle of the smallest polygon for the fewest vertices we would use: an upper
    # bound, so the pruning below stays conservative whatever n is chosen.
    theta = smallest.angle_rad
    half_step = math.acos(min(math.tan(theta) / math.tan(theta + cap_excess_rad), 1.0))
    fewest = MAX_VERTICES if half_step <= 0.0 else math.ceil(math.pi / half_step)
    fewest = min(max(fewest, MIN_LOCAL_VERTICES), MAX_VERTICES)
    outer_rad = math.atan(math.tan(theta) / math.cos(math.pi / fewest))
    # A cap that contains the smallest polygon's vertex circle cannot cut it. Scalar math is
    # cheaper than numpy for ten caps; the gap is over-estimated by GAP_SLACK_RAD (acos is
    # inaccurate near 0), so a cap is only skipped when it surely contains the circle.
    lat0, lon0 = math.radians(smallest.lat_deg), math.radians(smallest.lon_deg)
    sin0, cos0 = math.sin(lat0), math.cos(lat0)
    used = [smallest]
    for cap in ordered[1:]:
        lat, lon = math.radians(cap.lat_deg), math.radians(cap.lon_deg)
        cos_gap = sin0 * math.sin(lat) + cos0 * math.cos(lat) * math.cos(lon - lon0)
        gap = math.acos(max(-1.0, min(1.0, cos_gap))) + GAP_SLACK_RAD
        if gap + outer_rad > cap.angle_rad:
            used.append(cap)
    built = _great_circle_rings(used, cap_excess_rad)
    if built is None:
        return None
    plane, vertex_angle, bases = built
    excess_km = float(np.max(vertex_angle - [c.angle_rad for c in used])) * EARTH_MEAN_RADIUS_KM
    basis = bases[0]
    depth = plane[:, :, 2].min(axis=1)
    if bool(np.all(depth >= LOCAL_MIN_DEPTH)):
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
            kept = cap_plane if cap_depth >= LOCAL_MIN_DEPTH else _clip_homogeneous(cap_plane, box)
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
    area_part = polygonal_part(region)
    if area_part is None:
        return None, excess_km
    converted = _local_region_to_lonlat(area_part.convex_hull, basis, resolution_rad / 5.0)
    if converted is None:
        return None
    geometry, margin_rad = converted
    return geometry, excess_km + margin_rad * EARTH_MEAN_RADIUS_KM
