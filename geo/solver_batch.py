"""Many cap sets at once: the batched local frame (`intersect_many`, `intersect_local_arrays`).

`intersect_many` runs `intersect_local` for many cap sets with one set of numpy/shapely
calls over all of them (flat arrays, each vertex knowing its cap, ring and problem), so the
fixed cost per library call is paid once per batch instead of once per set. The arithmetic
is the same, step by step; any set whose batched computation meets a case it does not
handle (a ring near the frame's horizon, a sharp non-convex result, a failed check, a
result across +-180 deg that needs cutting) is handed to `intersect`, which then runs the
single-set code in full. So every result is one `intersect` could have produced.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geo.cap_polygon import CURVATURE_SAFETY, MAX_VERTICES, wrap_longitudes
from geo.caps import Cap
from geo.constants import (
    EARTH_MEAN_RADIUS_KM,
)
from geo.geodesy import (
    FloatArray,
)
from geo.local_frame import (
    GAP_SLACK_RAD,
    JOIN_FACTOR,
    JOIN_STEP_RAD,
    JOIN_STEP_SLACK,
    LOCAL_MAX_LAT_RAD,
    LOCAL_MAX_SMALLEST_RAD,
    LOCAL_MAX_VERTEX_RAD,
    LOCAL_MIN_DEPTH,
    MIN_LOCAL_VERTICES,
    from_plane,
    local_bases,
    plane_vertices,
    vertex_angles,
)
from geo.solver import intersect

logger = logging.getLogger(__name__)

_HALF_PI = math.pi / 2
_POLYGON_TYPE_ID = 3  # shapely.get_type_id of a Polygon

IntArray = npt.NDArray[np.int64]


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
    batched = intersect_local_many(cap_sets, resolution_rad) if cap_sets else []
    return [
        result if result is not None else intersect(caps, resolution_km)
        for caps, result in zip(cap_sets, batched, strict=True)
    ]


def intersect_local_many(
    cap_sets: Sequence[Sequence[Cap]], resolution_rad: float
) -> list[tuple[BaseGeometry | None, float] | None]:
    """`intersect_local` over many cap sets; None for a set left to `intersect`."""
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
    ok = angle[starts] + cap_excess_rad < LOCAL_MAX_SMALLEST_RAD
    # Pruning, as in `intersect_local`: the smallest polygon's vertex circle for the fewest
    # vertices bounds it whatever n is chosen; a cap containing that circle cannot cut it.
    theta0 = angle[starts]
    with np.errstate(divide="ignore", invalid="ignore"):
        half0 = np.arccos(np.minimum(np.tan(theta0) / np.tan(theta0 + cap_excess_rad), 1.0))
        fewest = np.where(half0 <= 0.0, MAX_VERTICES, np.ceil(math.pi / half0))
    fewest = np.clip(np.nan_to_num(fewest, nan=MAX_VERTICES), MIN_LOCAL_VERTICES, MAX_VERTICES)
    outer = np.arctan(np.tan(theta0) / np.cos(math.pi / fewest))
    sin_lat, cos_lat = np.sin(lat), np.cos(lat)
    lat0s, lon0s = lat[starts][problem], lon[starts][problem]
    cos_gap = np.sin(lat0s) * sin_lat + np.cos(lat0s) * cos_lat * np.cos(lon - lon0s)
    gap = np.arccos(np.clip(cos_gap, -1.0, 1.0)) + GAP_SLACK_RAD
    used = (position == 0) | (gap + outer[problem] > angle)
    # One vertex count per set: the largest any used cap needs.
    used &= ok[problem]
    u_problem, u_theta = problem[used], angle[used]
    u_lat_deg, u_lon_deg = lat_deg[order][used], lon_deg[order][used]
    u_counts = np.bincount(u_problem, minlength=count)
    u_starts = np.cumsum(u_counts) - u_counts
    live = u_counts > 0
    too_big = np.zeros(count, dtype=bool)
    np.maximum.at(too_big, u_problem, u_theta + cap_excess_rad >= LOCAL_MAX_VERTEX_RAD)
    ratio = np.minimum(np.tan(u_theta) / np.tan(u_theta + cap_excess_rad), 1.0)
    half_step = np.full(count, np.inf)
    np.minimum.at(half_step, u_problem, np.arccos(ratio))
    with np.errstate(divide="ignore"):
        n_set = np.where(half_step <= 0.0, MAX_VERTICES, np.ceil(math.pi / half_step))
    n_set = np.clip(np.nan_to_num(n_set, posinf=MAX_VERTICES), MIN_LOCAL_VERTICES, MAX_VERTICES)
    n_set = n_set.astype(np.int64)
    per_cap_n = n_set[u_problem]
    vertex_angle = vertex_angles(u_theta, per_cap_n)
    worst = np.zeros(count)
    np.maximum.at(worst, u_problem, vertex_angle)
    excess = np.full(count, -np.inf)
    np.maximum.at(excess, u_problem, vertex_angle - u_theta)
    ok &= live & ~too_big & (worst < LOCAL_MAX_VERTEX_RAD)
    # Bases (east, north, centre) per used cap; the frame is each set's smallest cap. The
    # vertices (cap k has n of its set) are computed by the single path's own functions.
    bases = local_bases(u_lat_deg, u_lon_deg)
    frame = bases[u_starts[live]]  # (live sets, 3, 3)
    frame_of = np.full(count, -1, dtype=np.int64)
    frame_of[live] = np.arange(int(live.sum()))
    plane = plane_vertices(bases, vertex_angle, per_cap_n, frame[frame_of[u_problem]])
    v_cap = np.repeat(np.arange(len(per_cap_n)), per_cap_n)
    v_problem = u_problem[v_cap]
    shallow = np.zeros(count, dtype=bool)
    np.maximum.at(shallow, v_problem, plane[:, 2] < LOCAL_MIN_DEPTH)
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
        need = eps_rad * (1.0 + (r_max + JOIN_FACTOR * eps_plane) ** 2)
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
    whole_steps = np.ceil(turn / JOIN_STEP_RAD - JOIN_STEP_SLACK)
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
    reach_rad = np.arctan(r_max + JOIN_FACTOR * eps_plane)
    centre_lat = np.arcsin(np.clip(frames[:, 2, 2], -1.0, 1.0))
    far_lat = np.minimum(np.abs(centre_lat) + reach_rad, LOCAL_MAX_LAT_RAD)
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
    xyz = from_plane(dense, frame_of)
    lat = np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1]))
    lon = np.arctan2(xyz[:, 1], xyz[:, 0])
    polar = np.zeros(count, dtype=bool)
    np.maximum.at(polar, dense_of, np.abs(lat) > LOCAL_MAX_LAT_RAD)
    ok &= ~polar
    d_lengths = np.bincount(dense_of, minlength=count)
    d_starts = np.cumsum(d_lengths) - d_lengths
    nxt = _ring_next(d_starts, d_lengths)
    # `max_edge_deviation_rad`, per ring.
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
    inner_xyz = from_plane(inner_ok, f)
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
    margin = JOIN_FACTOR * eps_plane + deviation_rad
    for k, polygon, good in zip(rings_ok, polygons, valid, strict=True):
        if not good:
            continue
        inside = low[k] >= -180.0 and high[k] <= 180.0
        results[k] = (polygon if inside else wrap_longitudes(polygon), float(margin[k]))
    return results
