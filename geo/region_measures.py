"""Area and centre of lon/lat regions on WGS84, one at a time and batched."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geo.constants import (
    EARTH_AUTHALIC_RADIUS_KM,
)
from geo.geodesy import (
    FloatArray,
    authalic_latitude_rad,
    edge_integrals,
    unit_vectors,
)

_POLYGON_TYPE_ID = 3  # shapely.get_type_id of a Polygon
IntArray = npt.NDArray[np.intp]


def area_km2(geometry: BaseGeometry | None) -> float:
    """Area on WGS84 of a lon/lat (multi)polygon with straight lon/lat edges, km^2.

    The same exact edge integral as `geo.geodesy.ring_area_km2` (Green's theorem on the
    authalic sphere, authalic latitude linear along each edge), batched over every ring.
    """
    if geometry is None or geometry.is_empty:
        return 0.0
    if geometry.geom_type == "Polygon" and not geometry.interiors:  # the common case, cheaply
        xy = shapely.get_coordinates(geometry)
        ring_of = np.zeros(len(xy), dtype=np.int64)
        exterior = np.ones(1, dtype=bool)
    else:
        if geometry.geom_type == "MultiPolygon":  # overlays' usual result: parts are polygons
            polygons = shapely.get_parts(geometry)
            polygons = polygons[~shapely.is_empty(polygons)]
        else:
            parts = shapely.get_parts(shapely.get_parts(geometry))  # collections hold multis
            polygons = parts[
                (shapely.get_type_id(parts) == _POLYGON_TYPE_ID) & ~shapely.is_empty(parts)
            ]
        if len(polygons) == 0:
            return 0.0
        rings = shapely.get_rings(polygons)
        interiors = shapely.get_num_interior_rings(polygons)
        exterior = np.zeros(len(rings), dtype=bool)
        exterior[np.cumsum(interiors + 1) - (interiors + 1)] = True
        xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    signed = np.where(exterior, 1.0, -1.0) * ring_integrals(xy, ring_of, len(exterior))
    return max(float(np.sum(signed)) * EARTH_AUTHALIC_RADIUS_KM**2, 0.0)


def ring_integrals(xy: FloatArray, ring_of: IntArray, ring_count: int) -> FloatArray:
    """|area| of each ring on the unit authalic sphere, for edges straight in lon/lat (as GeoJSON
    draws them): the exact integral of sin(authalic latitude) dlon along every edge."""
    lon = np.radians(xy[:, 0])
    beta = authalic_latitude_rad(np.radians(xy[:, 1]))
    same_ring = ring_of[1:] == ring_of[:-1]
    dlon = np.diff(lon)[same_ring]
    integrals = edge_integrals(dlon, beta[:-1][same_ring], beta[1:][same_ring])
    per_ring = np.bincount(ring_of[:-1][same_ring], weights=integrals, minlength=ring_count)
    return np.abs(per_ring)


def centre(geometry: BaseGeometry) -> tuple[float, float]:
    """Area-weighted centre on the sphere (pieces split at +-180 deg recombine correctly);
    falls back to a point on the surface when the centre lies outside the region."""
    parts = [p for p in shapely.get_parts(geometry) if p.area > 0.0]
    weights = np.array([p.area for p in parts])
    centroids = shapely.get_coordinates([p.centroid for p in parts])
    vectors = unit_vectors(centroids[:, 1], centroids[:, 0])
    mean = (vectors * weights[:, None]).sum(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm > 1e-12:
        x, y, z = mean / norm
        lat_deg = math.degrees(math.asin(max(-1.0, min(1.0, z))))
        lon_deg = math.degrees(math.atan2(y, x))
        if geometry.covers(shapely.Point(lon_deg, lat_deg)):
            return lat_deg, lon_deg
    point = geometry.point_on_surface()
    return float(point.y), float(point.x)


def area_km2_many(geometries: Sequence[BaseGeometry | None]) -> FloatArray:
    """`area_km2` of each geometry, with one set of calls for all of them."""
    areas = np.zeros(len(geometries))
    present = [i for i, g in enumerate(geometries) if g is not None and not g.is_empty]
    if not present:
        return areas
    geoms = np.array([geometries[i] for i in present], dtype=object)
    parts, owner = shapely.get_parts(geoms, return_index=True)
    parts, inner = shapely.get_parts(parts, return_index=True)  # collections hold multis
    owner = owner[inner]
    polygon = (shapely.get_type_id(parts) == _POLYGON_TYPE_ID) & ~shapely.is_empty(parts)
    parts, owner = parts[polygon], owner[polygon]
    if len(parts) == 0:
        return areas
    rings, ring_polygon = shapely.get_rings(parts, return_index=True)
    exterior = np.ones(len(rings), dtype=bool)
    exterior[1:] = ring_polygon[1:] != ring_polygon[:-1]
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    signed = np.where(exterior, 1.0, -1.0) * ring_integrals(xy, ring_of, len(rings))
    per_geometry = np.bincount(owner[ring_polygon], weights=signed, minlength=len(present))
    areas[present] = np.maximum(per_geometry * EARTH_AUTHALIC_RADIUS_KM**2, 0.0)
    return areas


def centre_many(geometries: Sequence[BaseGeometry]) -> list[tuple[float, float]]:
    """`centre` of each geometry; single polygons together, others one by one."""
    geoms = np.array(geometries, dtype=object)
    single = shapely.get_type_id(geoms) == _POLYGON_TYPE_ID
    single[single] = shapely.area(geoms[single]) > 0.0
    results: list[tuple[float, float] | None] = [None] * len(geometries)
    if single.any():
        chosen = geoms[single]
        weights = shapely.area(chosen)
        xy = shapely.get_coordinates(shapely.centroid(chosen))
        mean = unit_vectors(xy[:, 1], xy[:, 0]) * weights[:, None]
        norm = np.sqrt(np.sum(mean * mean, axis=1))
        unit = mean / norm[:, None]
        lat_deg = np.degrees(np.arcsin(np.clip(unit[:, 2], -1.0, 1.0)))
        lon_deg = np.degrees(np.arctan2(unit[:, 1], unit[:, 0]))
        covered = shapely.covers(chosen, shapely.points(lon_deg, lat_deg)) & (norm > 1e-12)
        for i, inside, lat, lon in zip(
            np.flatnonzero(single), covered, lat_deg.tolist(), lon_deg.tolist(), strict=True
        ):
            if inside:
                results[i] = (lat, lon)
    return [r if r is not None else centre(g) for r, g in zip(results, geometries, strict=True)]
